"""Resuming an older snapshot of a run folder that has newer ones: a branch, not a
continuation. Resumed in place it would rewrite loss.csv and test_loss.csv from the older
iteration on, and the newer snapshots would no longer belong to the curve beside them, so
it is refused unless the newer part of the run is first set aside (`--set-aside-newer`):
the newer snapshots move, and the logs, plots, best weights and run.json as they were are
copied, into a subfolder `set-aside-YYYYmmdd-HHMMSS/`; the folder's logs then end at the
snapshot. The other way out, `--out NEW`, leaves the folder as it is.
"""
import os
import shutil
import time

from ..errors import SeqgenError, SeqgenRuntimeError
from ..io.atomic import atomic_write, atomic_write_text
from .folder import snapshot_of
from .losslog import LOSS_HEADER, read_loss_csv
from .record import RUN_FILE

FLAG = "--set-aside-newer"
PREFIX = "set-aside-"
LOGS = ("loss.csv", "test_loss.csv", "caffe.log")  # (caffe.log is kept whole: appended to)
#: files the branch may rewrite, copied as they are: plots, early stopping's best weights
COPIED_SUFFIXES = (".png", "_best.caffemodel")
#: the files of a snapshot besides its .solverstate
SNAPSHOT_SUFFIXES = (".solverstate", ".caffemodel", ".seqgen.npz")


def snapshot_iters(folder):
    """{iteration: [paths of its snapshot files]} of the snapshots in `folder`."""
    found = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        for suffix in SNAPSHOT_SUFFIXES:
            if entry.is_file() and entry.name.endswith(suffix) and "_iter_" in entry.name:
                try:
                    k = int(entry.name[:-len(suffix)].rsplit("_iter_", 1)[1])
                except ValueError:
                    continue
                found.setdefault(k, []).append(entry.path)
    return found


def newer_snapshots(folder, iteration):
    """The iterations of the complete snapshots (with a .solverstate) in `folder` after
    `iteration`, ascending. A lone .caffemodel of a snapshot whose writing failed (a full
    disk) is not one: resuming the last complete snapshot continues the same run."""
    return sorted(k for k, paths in snapshot_iters(folder).items()
                  if k > iteration and any(p.endswith(".solverstate") for p in paths))


def check_not_older(resume, folder, iteration, set_aside):
    """Refuse to resume `resume` (at `iteration`) in `folder` when the folder has newer
    snapshots, unless `set_aside`; returns the newer iterations (empty: nothing to do)."""
    newer = newer_snapshots(folder, iteration)
    if newer and not set_aside:
        its = ("iterations " if len(newer) > 1 else "iteration ") + ", ".join(map(str, newer))
        newest = snapshot_of(folder)
        cont = (f"continue from the newest with --resume {os.path.relpath(newest[1])}; "
                if newest and newest[0] > iteration else "")
        raise SeqgenError(
            f"{resume}: the run folder {folder} has newer snapshots ({its}): "
            f"resuming iteration {iteration} there would branch off and rewrite its logs; "
            f"{cont}branch into a new folder with --out DIR, or add {FLAG} to move the newer "
            f"snapshots and the logs as they are into {folder}/{PREFIX}TIMESTAMP/")
    return newer


def set_aside(folder, iteration, log):
    """Move the snapshots after `iteration` into a new subfolder, copy the logs, plots,
    best weights and run.json there as they are, and cut the folder's logs at `iteration`;
    returns the subfolder. Every step keeps every file somewhere, so a kill halfway loses
    nothing."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = os.path.join(folder, PREFIX + stamp)
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = os.path.join(folder, f"{PREFIX}{stamp}-{n}")
    try:
        os.makedirs(aside)
        for name in os.listdir(folder):  # copies first: under their names only when whole
            if name in LOGS + (RUN_FILE,) or name.endswith(COPIED_SUFFIXES):
                atomic_write(os.path.join(aside, name), lambda tmp, name=name: shutil.copy2(
                    os.path.join(folder, name), tmp))
        moved = newer_snapshots(folder, iteration)
        for k in moved:  # then the snapshots, each file by one rename
            for path in snapshot_iters(folder)[k]:
                os.rename(path, os.path.join(aside, os.path.basename(path)))
    except OSError as e:
        raise SeqgenRuntimeError(f"{aside}: cannot set the newer snapshots aside "
                                 f"({e.strerror or e}); every file is still in {folder} or "
                                 "there, and the branch did not start") from None
    for name in LOGS:
        cut_log(os.path.join(folder, name), iteration)
    log(f"Set aside the snapshots after iteration {iteration} ({len(moved)} of them: "
        f"{', '.join(str(k) for k in moved)}) and the logs as they were in {aside}")
    return aside


def cut_log(path, iteration):
    """Keep the rows of a loss log before `iteration`, as written (the resumed session
    writes the rest). A log that does not read is left as it is (its copy is aside)."""
    if not os.path.exists(path):
        return
    try:
        read_loss_csv(path)
        with open(path) as f:
            rows = f.read().splitlines()[1:]
    except (SeqgenError, OSError, UnicodeDecodeError):
        return
    kept = [row for row in rows if row.strip() and int(float(row.split(",")[0])) < iteration]
    atomic_write_text(path, LOSS_HEADER + "\n" + "".join(row + "\n" for row in kept))
