"""Crash-safe file writing: write to a temporary name in the same folder, then rename."""
import os
from contextlib import contextmanager


@contextmanager
def atomic_open(path, mode="wb"):
    """Yield a file object; on success it replaces `path` atomically, on error it vanishes."""
    path = os.fspath(path)
    folder, base = os.path.split(path)
    tmp = os.path.join(folder, f".{base}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path, data):
    with atomic_open(path, "wb") as f:
        f.write(data)
