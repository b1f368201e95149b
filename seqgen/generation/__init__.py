"""Running a trained net free: generated sequences (generate.py) and sampled text
(sample.py; decoding.py's `Decoding` and `sample` are the entry point, beam.py the beam
search)."""
