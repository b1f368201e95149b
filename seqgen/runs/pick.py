"""Which run a command works on: a run folder, a snapshot (.caffemodel) inside one, or, when
none is named, the latest run of the working directory. `generate`, `test`, `plot` and
`export` all ask here, so that they read a RUN argument the same way."""
import os
from dataclasses import dataclass

from ..errors import SeqgenError
from .folder import latest_run, run_of_weights
from .record import RUN_FILE, RunRecord

#: runs named in a message about a folder of runs (a sweep's), before "..."
SHOWN = 5


@dataclass
class Picked:
    """The run a command works on: its folder and record (None for loose weights outside
    any run), and the snapshot chosen (the run's last when none was named; None when the
    run has none yet)."""
    folder: str | None
    record: RunRecord | None
    weights: str | None

    def need_weights(self):
        """The snapshot, or the error of a run that has none yet."""
        if self.weights is None:
            raise SeqgenError(f"{self.folder}: the run has no snapshot yet (train it longer, "
                              "or give --weights FILE.caffemodel)")
        return self.weights


def shown(path):
    """`path` relative to the working directory when it lies inside it, else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def runs_inside(folder):
    """The names of `folder`'s subfolders that hold a run (a sweep's runs, or runs/), sorted."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(e.name for e in entries
                  if e.is_dir() and os.path.exists(os.path.join(e.path, RUN_FILE)))


def not_a_run(folder, command):
    """The error for a folder without run.json: when it holds runs (a sweep folder, runs/),
    it says so and how to pick one of them."""
    inside = runs_inside(folder)
    if not inside:
        return SeqgenError(f"{folder}: not a run folder (no {RUN_FILE}); give a run folder, or "
                           "a .caffemodel (with --net NET.prototxt outside a run)")
    names = ", ".join(inside[:SHOWN]) + (", ..." if len(inside) > SHOWN else "")
    return SeqgenError(f"{folder}: a folder of {len(inside)} run(s), not one run; pick one, "
                       f"e.g. seqgen {command} {os.path.join(folder, inside[0])} "
                       f"(its runs: {names})")


def _result(folder, record, say):
    """The run's snapshot a command uses when none is named: its result (the best checked
    one with --keep-best, said through `say`), else its last."""
    weights = record.result_weights()
    if say is not None and weights and weights != record.get("weights"):
        best = record.best
        say(f"Using {shown(folder)}'s best checked weights, {os.path.basename(weights)} "
            f"(free-running MSE {best['mse']:.4g}; the run's last snapshot is "
            f"{os.path.basename(record.get('weights') or '')})")
    return weights


def _named_run(target, weights, command, say):
    """Picked for a RUN argument (a folder or a snapshot) and an optional --weights file
    (`say`: a function taking a line, or None)."""
    if not os.path.exists(target):
        raise SeqgenError(f"{target}: no such run folder or snapshot")
    if not os.path.isdir(target):
        if weights is not None:
            raise SeqgenError(f"{target} names a snapshot already; leave out --weights "
                              f"{weights}")
        return _loose(target)
    if not os.path.exists(os.path.join(target, RUN_FILE)):
        raise not_a_run(target, command)
    record = RunRecord.read(target)
    return Picked(target, record,
                  weights if weights is not None else _result(target, record, say))


def _loose(weights):
    """Picked for a snapshot file: its run when it lies in a run folder, else none."""
    if not os.path.isfile(weights):
        raise SeqgenError(f"{weights}: no such snapshot file (--weights FILE.caffemodel)")
    folder = run_of_weights(weights)
    return Picked(folder, RunRecord.read(folder) if folder else None, weights)


def pick_run(target=None, weights=None, say=None, command="generate"):
    """The run of `seqgen COMMAND [RUN] [--weights W]`. RUN is a run folder or a snapshot in
    one; --weights a snapshot (in a run or loose) or a run folder (taken as RUN). Neither:
    the latest run, which `say` (a function taking a line) reports."""
    if weights is not None and os.path.isdir(weights):
        if target is not None:
            raise SeqgenError(f"--weights {weights} is a folder, and {target} names the run "
                              "already; give --weights FILE.caffemodel, or the run once")
        target, weights = weights, None
    if target is not None:
        return _named_run(target, weights, command, say)
    if weights is not None:
        return _loose(weights)
    folder = latest_run()
    if say is not None:
        say(f"Using {shown(folder)} (latest run)")
    record = RunRecord.read(folder)
    return Picked(folder, record, _result(folder, record, say))
