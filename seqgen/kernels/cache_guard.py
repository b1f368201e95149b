"""Drop numba's cached kernels when any kernel source changed since they were written.

numba checks a cached function against the contents of its own file only, while the code
it caches also holds every njit function it calls. After an upgrade (or an edit) that
changes `panels.py` but not `bvlc_lstm_gemm.py`, bvlc_lstm_gemm's cached code would keep
running the old panels. So one digest of all the sources of this folder is kept beside
numba's files, and when it differs every cached file of the folder goes: they are compiled
again once.
"""
import hashlib
from pathlib import Path

from numba.core import caching, config

STAMP = "seqgen-kernels.sha256"


def sources_digest(folder):
    """sha256 over the names and contents of the folder's .py files."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dirs(folder):
    """Where numba may cache this folder's kernels: its __pycache__, and the subfolder numba
    names after it under NUMBA_CACHE_DIR or its user-wide cache (for a read-only install)."""
    dirs = [Path(folder) / "__pycache__"]
    try:
        sub = caching._CacheLocator.get_suitable_cache_subpath(str(Path(folder) / "x.py"))
        roots = [config.CACHE_DIR] if config.CACHE_DIR else []
        roots.append(caching.AppDirs(appname="numba", appauthor=False).user_cache_dir)
        dirs += [Path(root) / sub for root in roots]
    except Exception:  # noqa: BLE001 - numba's internals moved: __pycache__ still counts
        pass
    return dirs


def drop_stale_cache(folder):
    """Delete the *.nbi, *.nbc files of every `cache_dirs` folder whose stamp does not match
    the sources, then write the stamp there. True if files were dropped. Best effort: a
    folder that cannot be written is left alone."""
    digest = sources_digest(folder)
    dropped = False
    for k, cache in enumerate(cache_dirs(folder)):
        if k and not cache.is_dir():
            continue
        try:
            if (cache / STAMP).read_text() == digest:
                continue
        except OSError:
            pass
        try:
            for path in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                path.unlink(missing_ok=True)
                dropped = True
            cache.mkdir(exist_ok=True)
            (cache / STAMP).write_text(digest)
        except OSError:
            pass
    return dropped
