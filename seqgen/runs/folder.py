"""Run folders: where one training run keeps its snapshots, loss log, plots and `run.json`
(the RunRecord), and the lock a training run holds on its folder while it trains.
"""
import fcntl
import os
import socket
import time

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from .record import RUN_FILE, RunRecord

RUNS_DIR = "runs"
LOCK_FILE = ".seqgen.lock"
LAST_RUN = ".seqgen_last_run"  # in the working directory: the folder of the latest run
SWEEP_LOCK_FILE = ".seqgen-sweep.lock"  # in a sweep's folder (sweep.SweepLock)


def new_run_dir(name, base=RUNS_DIR):
    """A fresh, not yet existing folder name runs/NAME-YYYYmmdd-HHMMSS."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(base, f"{name}-{stamp}")
    k = 1
    while os.path.exists(path):
        k += 1
        path = os.path.join(base, f"{name}-{stamp}-{k}")
    return path


def remember_run(folder):
    """Note `folder` as the latest run of the working directory (also when it is --out).
    `seqgen train` does; a sweep's runs do not (the latest run stays the one trained here)."""
    atomic_write_text(LAST_RUN, os.path.abspath(folder) + "\n")


def latest_run(base=RUNS_DIR):
    """The latest run `seqgen train` started from this working directory (noted in
    LAST_RUN), else the run folder under `base` whose run.json changed last."""
    try:
        with open(LAST_RUN) as f:
            noted = f.read().strip()
        in_sweep = os.path.exists(os.path.join(os.path.dirname(noted), SWEEP_LOCK_FILE))
        if os.path.exists(os.path.join(noted, RUN_FILE)) and not in_sweep:
            return noted  # (an earlier seqgen noted a sweep's runs too: those are skipped)
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
                          "or name a run folder or a .caffemodel, with --net outside a run)")
    return max(candidates)[1]


def run_of_weights(weights):
    """The run folder a weights file lives in, or None."""
    folder = os.path.dirname(os.path.abspath(weights))
    return folder if os.path.exists(os.path.join(folder, RUN_FILE)) else None


def snapshot_of(folder):
    """The newest complete snapshot in `folder` as (iteration, .solverstate path), or None
    (a .caffemodel without its .solverstate is not a snapshot)."""
    best = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        name = entry.name
        if name.endswith(".solverstate") and "_iter_" in name:
            try:
                k = int(name[:-len(".solverstate")].rsplit("_iter_", 1)[1])
            except ValueError:
                continue
            if best is None or k > best[0]:
                best = (k, entry.path)
    return best


def check_folder_free(folder, resume, locked=False):
    """Refuse to train into a folder that another process trains in, or that holds
    another run: one with a run.json or snapshots, unless `resume` is a snapshot of that
    very folder. `locked`: this process holds the folder's lock already."""
    if not os.path.isdir(folder):
        return
    if not locked:
        RunLock(folder).check_free()
    if resume and os.path.samefile(os.path.dirname(os.path.abspath(resume)), folder):
        return
    holds, finished = None, True
    if os.path.exists(os.path.join(folder, RUN_FILE)):
        try:
            record = RunRecord.read(folder)
            finished = record.get("iterations") is not None
            holds = f"the run {record.name}" + (
                f" at iteration {record.get('iterations')}" if finished else "")
        except SeqgenError:
            holds = "a run (its run.json cannot be read)"
    last = snapshot_of(folder)
    if holds is None and last is None:
        _check_no_foreign_files(folder)
        return
    if last is None and not finished:
        return  # a run killed before its first snapshot: nothing in it can be resumed
    holds = holds or f"snapshots up to iteration {last[0]}"
    how = f"continue it with --resume {last[1]}, or " if last else ""
    raise SeqgenError(f"{folder}: the folder holds {holds}; {how}choose another --out")


#: files a run writes under these fixed names (besides run.json and its snapshots)
RUN_OUTPUTS = ("loss.csv", "test_loss.csv", "caffe.log", "loss.png", "generated.csv",
               "generated.json", "generated.png", "generated.txt")


def _check_no_foreign_files(folder):
    """A folder without a run that has files under a run's names (its outputs, weights
    named like snapshots): they are not seqgen's (no run.json says so), so a new run could
    replace someone's files, a --weights file among them; refuse."""
    names = sorted(os.listdir(folder))
    foreign = [n for n in RUN_OUTPUTS if n in names] + [
        n for n in names if "_iter_" in n and n.endswith((".caffemodel", ".seqgen.npz"))]
    if foreign:
        raise SeqgenError(f"{folder}: the folder holds {', '.join(foreign)} but no run "
                          "(no run.json); a run would write over them; choose another --out")


class RunLock:
    """An exclusive lock on a run folder while a run trains in it (flock on
    `.seqgen.lock`, which names the process): a second training is refused, naming it.
    The lock goes with the process, however it ends."""

    #: what the holder of the lock is doing there, for the refusal
    doing = "training in this folder"
    file = LOCK_FILE

    def __init__(self, folder):
        self.path = os.path.join(folder, self.file)
        self.fd = None

    def _lock(self, fd):
        """flock `fd`, or raise the error naming the process that holds the lock."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise SeqgenError(f"{os.path.dirname(self.path)}: another seqgen is {self.doing} "
                              f"({holder}); wait for it, or choose another --out") from None

    def check_free(self):
        """Refuse (naming the process) when a run holds the lock now; takes no lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        self._lock(fd)
        os.close(fd)

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._lock(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
