"""Where a command may write: never over a file seqgen did not write for this purpose, never
onto the command's own inputs or another run's files, always with the format's extension.

Every command checks its outputs here before it reads or computes anything, so a refused
command leaves every file as it was. The rules, in the order they are checked:

- the name ends in an extension the format writes (`--format onnx` writes .onnx);
- the place can take a file: its folder exists (not under a file) and it is no folder;
- never (not even with --force) one of the command's inputs, nor an existing file of a
  run folder (one holding run.json or snapshots) other than the run the command writes;
- an existing file needs --force, unless its bytes are exactly what would be written.

Why any existing file needs --force: seqgen cannot tell its own earlier export from a
user's file of the same name without a marker in every format, and a wrong guess costs
the file while a refusal costs one flag. Identical bytes (model.py beside a second export)
lose nothing, so they pass.
"""
import os
from pathlib import Path

from ..errors import SeqgenError
from .atomic import file_above, temp_path_for

__all__ = ["check_output", "check_output_folder", "is_run_folder", "RUN_FILE"]

RUN_FILE = "run.json"  # runs.record.RUN_FILE (io may not import runs)
SNAPSHOT_SUFFIXES = (".solverstate", ".caffemodel")


def is_run_folder(folder) -> bool:
    """Whether `folder` holds a run: its run.json or a snapshot (NAME_iter_K.*)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return RUN_FILE in names or any("_iter_" in n and n.endswith(SNAPSHOT_SUFFIXES)
                                    for n in names)


def _same(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_place(path: Path, flag: str) -> None:
    """The place can take a file: no folder of that name, its folder exists."""
    if path.is_dir():
        raise SeqgenError(f"{flag} {path}: is a folder; name a file")
    blocker = file_above(path)
    if blocker is not None:
        raise SeqgenError(f"{flag} {path}: lies under {blocker}, which is a file, not a "
                          f"folder; choose another {flag}")
    parent = path.parent
    if not parent.is_dir():
        raise SeqgenError(f"{flag} {path}: folder {parent} does not exist; create it or "
                          f"choose another {flag}")


def _same_bytes(path: Path, content) -> bool:
    if content is None:
        return False
    data = content.encode() if isinstance(content, str) else content
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def check_output(path, *, flag="--out", suffixes=(), what=None, inputs=(), force=False,
                 own_run=None, content=None):
    """Refuse (SeqgenError, exit 2, one line) to write the file `path` where the rules
    above forbid it. `suffixes`: the extensions `what` (e.g. "--format onnx") writes;
    `inputs`: the files the command reads; `own_run`: the run folder the command itself
    writes (its files may be rewritten); `content`: the bytes to be written, if known."""
    path = Path(path)
    if suffixes and not path.name.lower().endswith(tuple(suffixes)):
        raise SeqgenError(f"{flag} {path}: {what or 'this command'} writes "
                          f"{' or '.join(suffixes)} files; name it "
                          f"{path.stem or 'FILE'}{suffixes[0]}")
    _check_place(path, flag)
    if not (path.exists() or path.is_symlink()):
        return
    for given in inputs:
        if given is not None and _same(path, given):
            raise SeqgenError(f"{flag} {path}: is one of this command's inputs; seqgen never "
                              f"writes over its inputs, even with --force; choose another "
                              f"{flag}")
    folder = path.parent
    if is_run_folder(folder) and not (own_run is not None and _same(folder, own_run)):
        raise SeqgenError(f"{flag} {path}: is a file of the run folder {folder}; seqgen never "
                          f"writes over a run's files, even with --force; choose another "
                          f"{flag}")
    if not force and not _same_bytes(path, content):
        raise SeqgenError(f"{flag} {path}: the file exists; seqgen writes over it only with "
                          "--force")


def check_output_folder(path, *, flag="--out"):
    """Refuse (exit 2, one line) a folder `path` that cannot take files: a file, under a
    file, or on a read-only or forbidden place (tried by creating and removing an empty file
    in it, or in the nearest existing folder above it, which is left as it was)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SeqgenError(f"{flag} {path}: is a file, not a folder; choose another {flag}")
    blocker = file_above(path / "x")
    if blocker is not None:
        raise SeqgenError(f"{flag} {path}: lies under {blocker}, which is a file, not a "
                          f"folder; choose another {flag}")
    there = next((p for p in (path, *path.parents) if p.is_dir()), Path("."))
    probe = temp_path_for(there / "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise SeqgenError(f"{flag} {path}: cannot write in {there}: {e.strerror}; choose "
                          f"a writable {flag}") from None
    os.unlink(probe)
