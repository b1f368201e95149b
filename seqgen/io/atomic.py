"""Atomic file writing: a kill or an exception never leaves a truncated file under the real name.

Every writer produces a temporary file ``.<name>.tmp-<pid>-<n>`` in the destination's folder
(same file system, so the final ``os.replace`` is atomic) and renames it into place only after
the content is complete (and, by default, fsync'ed).  On an exception the temporary file is
removed and any existing file under the real name is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from seqgen.errors import SeqgenError, SeqgenRuntimeError

__all__ = [
    "temp_path_for",
    "atomic_write",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_csv_atomic",
    "format_cell",
    "format_cells",
    "is_temp_name",
    "remove_stale_temps",
    "signals_deferred",
    "atomic_files",
    "WriteFailed",
    "PLACE_ERRORS",
    "file_above",
]


#: errors that say the place cannot be written at all (the user's path is at fault: exit 2)
#: and what to do about each; any other error is a failure of this run (a full disk: exit 1)
PLACE_ERRORS = {
    errno.EROFS: "choose a writable place",
    errno.EACCES: "choose a place you may write to",
    errno.EPERM: "choose a place you may write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another place",
    errno.EISDIR: "it is a folder; name a file",
}


class WriteFailed(SeqgenRuntimeError, OSError):
    """A file could not be written (full disk, no permission, read-only file system...);
    `path` is the file, and nothing was left under its name. Also an OSError, as what
    the write raised. Exit 2 when the place cannot be written at all (PLACE_ERRORS: the
    path given is at fault), 1 when the write failed mid-run (a full disk)."""

    def __init__(self, path, error):
        reason = error.strerror or str(error)
        advice = PLACE_ERRORS.get(error.errno)
        super().__init__(f"cannot write {path}: {reason}" + (f"; {advice}" if advice else ""))
        self.path, self.error = os.fspath(path), error
        self.exit_code = 2 if advice else 1


_counter = itertools.count()
_counter_lock = threading.Lock()


def temp_path_for(path) -> Path:
    """A temporary name next to ``path``, unique within this process."""
    path = Path(path)
    with _counter_lock:
        n = next(_counter)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{n}")


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-\d+$")


def is_temp_name(name) -> bool:
    """Whether a file name is one of our temporary names (never a real file's name)."""
    return _TEMP_NAME.match(os.path.basename(os.fspath(name))) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def remove_stale_temps(folder) -> list:
    """Delete the temporary files a killed seqgen process left in `folder` (those whose
    process no longer runs); returns their names. Real files are never touched."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m and entry.is_file() and not _pid_alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT, SIGTERM and SIGHUP back while the block runs (they are delivered when it
    ends), so that a signal handler cannot cut a group of files (a snapshot) in half. Only
    in the main thread and where the platform has pthread_sigmask; elsewhere a no-op."""
    if not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    if hasattr(signal, "SIGHUP"):
        held.add(signal.SIGHUP)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_file(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(p: Path) -> None:
    """Remove a temporary file after a failure; never raises, so that the failure itself
    (not EROFS from removing a file that was never created) is what the user sees."""
    with contextlib.suppress(OSError):
        os.unlink(p)


def file_above(path) -> Path | None:
    """The nearest existing ancestor of `path` that is a file, not a folder (so nothing
    can be written under it), or None."""
    for above in Path(path).parents:
        if above.exists() or above.is_symlink():
            return None if above.is_dir() else above
    return None


def _check_destination(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        blocker = file_above(path)
        if blocker is not None:
            raise SeqgenError(f"{path}: cannot write: it lies under {blocker}, which is a "
                              "file, not a folder; choose another place")
        raise SeqgenError(f"{path}: cannot write: folder {parent} does not exist")
    if path.is_dir():
        raise SeqgenError(f"{path}: cannot write: it is a folder")


@contextlib.contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` for the block to write and rename into place; it is
    removed when the block fails, and an OSError becomes WriteFailed naming `path`."""
    tmp = temp_path_for(path)
    try:
        yield tmp
    except OSError as e:
        _discard(tmp)
        raise WriteFailed(path, e) from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write(path, writer_fn: Callable[[Path], object], *, fsync: bool = True):
    """Call ``writer_fn(tmp_path)`` to write the content to a temporary file, then move it to
    ``path``.  Returns whatever ``writer_fn`` returned.  If ``writer_fn`` raises (or does not
    create the file), the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    _check_destination(path)
    with _temporary(path) as tmp:
        result = writer_fn(tmp)
        if not tmp.exists():
            raise RuntimeError(f"atomic_write: the writer for {path} did not create {tmp}")
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    return result


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None,
                fsync: bool = True) -> Iterator:
    """``with atomic_open(path) as fh: fh.write(...)`` — the file appears under ``path`` only when
    the block completes without an exception.  ``mode`` is ``"wb"`` (default) or ``"w"`` (text,
    UTF-8 unless ``encoding`` says otherwise)."""
    if mode not in ("w", "wb", "wt", "x", "xb"):
        raise ValueError(f"atomic_open: unsupported mode {mode!r}")
    path = Path(path)
    if mode.startswith("x") and path.exists():
        raise FileExistsError(path)
    _check_destination(path)
    with _temporary(path) as tmp:
        if "b" in mode:
            fh = open(tmp, "wb")
        else:
            fh = open(tmp, "w", encoding=encoding or "utf-8", newline=newline)
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)


def atomic_write_bytes(path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (``\n`` line endings kept as is)."""
    with atomic_open(path, "w", encoding=encoding, newline="\n", fsync=fsync) as fh:
        fh.write(text)


# The CSV cell rules, stated once for format_cell (one value) and write_csv_atomic (whole
# columns): a kind of number -> (the Python type its values are converted to, the cells
# of a list of such values). float32 gets 9 significant digits (round-trips exactly),
# other floats Python's shortest round-trip repr. A list in, a list out keeps the column
# path one list comprehension per column, as fast as the rules written out inline.
_CELL_RULES = {
    "float32": (float, lambda values: [f"{v:.9g}" for v in values]),
    "float": (float, lambda values: [repr(v) for v in values]),
    "int": (int, lambda values: [str(v) for v in values]),
    "bool": (bool, lambda values: ["1" if v else "0" for v in values]),
}
_KIND_OF_DTYPE = {"f": "float", "i": "int", "u": "int", "b": "bool"}


def _dtype_rule(dtype):
    """The cell rule for values of a numpy dtype; None for non-numbers (written with str)."""
    kind = "float32" if dtype == np.float32 else _KIND_OF_DTYPE.get(dtype.kind)
    return _CELL_RULES.get(kind)


def _value_rule(v):
    """The cell rule for one value (a numpy scalar by its dtype; bool before int, as bool
    is an int); None for anything else."""
    if isinstance(v, np.generic):
        return _dtype_rule(v.dtype)
    for python, kind in ((bool, "bool"), (int, "int"), (float, "float")):
        if isinstance(v, python):
            return _CELL_RULES[kind]
    return None


_RULE_OF_TYPE = {}  # type of a value -> its _value_rule (the rule depends on the type only)


def format_cell(v) -> str:
    """Text for one CSV cell: ints as integers, float32 with 9 significant digits (round-trips
    exactly), other floats with Python's shortest round-trip repr, None as an empty cell."""
    if v is None:
        return ""
    try:
        rule = _RULE_OF_TYPE[type(v)]
    except KeyError:  # first value of this type: look its rule up once
        rule = _RULE_OF_TYPE[type(v)] = _value_rule(v)
    if rule is None:
        return str(v)
    python, cells = rule
    return cells((python(v),))[0]


def format_cells(column) -> list:
    """The cells of a 1-D array, each as format_cell writes it, with the rule chosen once
    from the dtype (fast for long columns); objects and strings go through format_cell."""
    rule = _dtype_rule(column.dtype)
    if rule is None:
        return [format_cell(v) for v in column.tolist()]
    python, cells = rule
    # tolist gives Python numbers; floats go through float64 as format_cell's float() does
    return cells((column.astype(np.float64) if python is float else column).tolist())


def write_csv_atomic(path, header: Sequence[str], columns: Sequence, *,
                     fsync: bool = True) -> None:
    """Write a CSV with one header line and one column per entry of ``columns``.

    A column may be None (all cells empty) or shorter than the longest column (its missing
    trailing cells are empty).  The file is written atomically."""
    header = [str(h) for h in header]
    if len(header) != len(columns):
        raise ValueError(f"write_csv_atomic: {len(header)} header names but {len(columns)} "
                         "columns")
    for name in header:
        if any(c in name for c in ',"\n\r'):
            raise ValueError(f"write_csv_atomic: header name {name!r} needs quoting")
    cols = [None if c is None else np.asarray(c).reshape(-1) for c in columns]
    nrows = max((len(c) for c in cols if c is not None), default=0)
    text_cols = []
    for c in cols:
        cells = [] if c is None else format_cells(c)
        text_cols.append(cells + [""] * (nrows - len(cells)))

    def write(fh):
        fh.write(",".join(header) + "\n")
        for row in zip(*text_cols):
            fh.write(",".join(row) + "\n")

    with atomic_open(path, "w", encoding="utf-8", newline="\n", fsync=fsync) as fh:
        write(fh)


def atomic_files(contents, *, fsync: bool = True) -> None:
    """Write several files as one group: every one is written in full under a temporary
    name first, then all are renamed into place in the order given (put the file whose
    presence means "complete" last). If any write fails, none of them appears and the
    temporary files are removed. `contents`: [(path, bytes)]."""
    temps = []
    try:
        for path, data in contents:
            path = Path(path)
            _check_destination(path)
            tmp = temp_path_for(path)
            temps.append(tmp)
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    if fsync:
                        os.fsync(fh.fileno())
            except OSError as e:
                raise WriteFailed(path, e) from None
        for (path, _), tmp in zip(contents, temps):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise WriteFailed(path, e) from None
    except BaseException:
        for tmp in temps:
            _discard(tmp)
        raise
