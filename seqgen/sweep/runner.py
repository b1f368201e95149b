"""The Dask task of a sweep: one run, trained by `seqgen train`'s own code in its run
folder, then scored by evaluate_run. It resumes from the newest complete snapshot the folder
holds (a worker died, or the sweep was interrupted), and returns a status instead of
raising for bad input or divergence, so that only a process death makes Dask retry it."""
import json
import os
import socket
import time

from ..app.evaluate import evaluate_run
from ..app.train import TrainOptions, train
from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from ..limits import threads_from_env
from ..runs.folder import snapshot_of
from ..runs.record import RUN_FILE
from ..solver.diagnosis import Diverged
from .cores import core_slots
from .run_specs import write_copies

SCORES_FILE = "scores.json"  # a finished run's status and scores: the sweep skips it
LOG_FILE = "train.log"
#: what a run that never reached its first snapshot leaves; removed before it starts again
_UNSNAPSHOTTED = (RUN_FILE, "loss.csv", "test_loss.csv", "loss.png")


def finished(spec):
    """The result a run that finished well left in its folder (scores.json), or None: a
    failed or diverged run is tried again (from its last good snapshot)."""
    try:
        with open(os.path.join(spec.folder, SCORES_FILE), encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if result.get("status") == "ok" else None


class _Log:
    """train.log of the run folder, appended line by line (it survives a killed worker)."""

    def __init__(self, folder):
        self.file = open(os.path.join(folder, LOG_FILE), "a", encoding="utf-8")

    def __call__(self, line):
        self.file.write(f"{line}\n")
        self.file.flush()

    def close(self):
        self.file.close()


def _train(spec, log):
    """Train the run to its max_iter: resume from its newest snapshot, or start afresh.
    Returns the iteration it resumed from (None for a fresh start or nothing to do)."""
    last = snapshot_of(spec.folder)
    if last is not None and last[0] >= spec.max_iter:
        log(f"Already trained to iteration {last[0]}: scoring only")
        return None
    options = TrainOptions(mode=spec.mode, data=spec.data, out=spec.folder, remember=False,
                           **dict(spec.options))
    if last is None:
        for name in _UNSNAPSHOTTED:  # killed before its first snapshot: start again
            path = os.path.join(spec.folder, name)
            if os.path.exists(path):
                os.remove(path)
    else:
        options.resume = last[1]
    train(spec.solver, options, log)
    return None if last is None else last[0]


def run_one(spec):
    """Train and score one run (the task `seqgen sweep` submits); returns its result dict:
    status ok, failed (bad input, SeqgenError) or diverged, with scores or the error."""
    write_copies(spec)
    done = finished(spec)
    if done is not None:
        return {**done, "skipped": True}
    log = _Log(spec.folder)
    log(f"== seqgen sweep: {spec.name} on {socket.gethostname()} pid {os.getpid()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    start = time.perf_counter()
    result = {"run": spec.name, "status": "ok", "resumed_from": None, "error": None}
    try:
        with core_slots(threads_from_env(), log):  # another sweep's runs wait, and ours
            result["resumed_from"] = _train(spec, log)
            result.update(evaluate_run(spec.folder, log))
    except Diverged as e:
        result.update(status="diverged", error=str(e).splitlines()[0])
    except SeqgenError as e:
        result.update(status="failed", error=str(e).splitlines()[0])
    result["wall_seconds"] = round(time.perf_counter() - start, 2)
    log(f"== {result['status']}" + (f": {result['error']}" if result["error"] else ""))
    log.close()
    atomic_write_text(os.path.join(spec.folder, SCORES_FILE),
                      json.dumps(result, indent=1) + "\n")
    return result
