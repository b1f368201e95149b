"""Run folders: where one training run keeps its snapshots, loss log, plots and `run.json`.

`run.json` records what `seqgen generate` and `seqgen plot` need later (net file, input
mode, data spec, last snapshot), so they work without repeating any option.
"""
import json
import os
import time

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text

RUNS_DIR = "runs"
RUN_FILE = "run.json"
LAST_RUN = ".seqgen_last_run"  # in the working directory: the folder of the latest run


def new_run_dir(name, base=RUNS_DIR):
    """A fresh, not yet existing folder name runs/NAME-YYYYmmdd-HHMMSS."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(base, f"{name}-{stamp}")
    k = 1
    while os.path.exists(path):
        k += 1
        path = os.path.join(base, f"{name}-{stamp}-{k}")
    return path


def write_run(folder, info):
    atomic_write_text(os.path.join(folder, RUN_FILE), json.dumps(info, indent=2) + "\n")


def read_run(folder):
    path = os.path.join(folder, RUN_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SeqgenError(f"{folder}: not a seqgen run folder (no {RUN_FILE})") from None
    except (OSError, ValueError) as e:
        raise SeqgenError(f"{path}: cannot read run record ({e})") from None


def remember_run(folder):
    """Note `folder` as the latest run of the working directory (also when it is --out)."""
    atomic_write_text(LAST_RUN, os.path.abspath(folder) + "\n")


def latest_run(base=RUNS_DIR):
    """The latest run started from this working directory, else the most recently updated
    run folder under `base`."""
    try:
        with open(LAST_RUN) as f:
            noted = f.read().strip()
        if os.path.exists(os.path.join(noted, RUN_FILE)):
            return noted
    except OSError:
        pass
    candidates = []
    if os.path.isdir(base):
        for entry in os.scandir(base):
            record = os.path.join(entry.path, RUN_FILE)
            if entry.is_dir() and os.path.exists(record):
                candidates.append((os.path.getmtime(record), entry.path))
    if not candidates:
        raise SeqgenError(f"no training run found under ./{base}/ (run `seqgen train` first, "
                          "or pass --weights and --net)")
    return max(candidates)[1]


def run_of_weights(weights):
    """The run folder a weights file lives in, or None."""
    folder = os.path.dirname(os.path.abspath(weights))
    return folder if os.path.exists(os.path.join(folder, RUN_FILE)) else None
