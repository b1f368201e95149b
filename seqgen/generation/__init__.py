"""Running a trained net free: generated sequences (generate.py) and sampled text
(sample.py)."""
