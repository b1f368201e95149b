"""Run folders: where a run lives (folder.py), its record run.json (record.py) and its loss
log (losslog.py)."""
