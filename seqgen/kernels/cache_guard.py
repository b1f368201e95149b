"""Drop numba's cached kernels when any kernel source changed since they were written, and
find numba somewhere to cache them.

numba checks a cached function against the contents of its own file only, while the code
it caches also holds every njit function it calls. After an upgrade (or an edit) that
changes `panels.py` but not `bvlc_lstm_gemm.py`, bvlc_lstm_gemm's cached code would keep
running the old panels. So one digest of all the sources of this folder is kept beside
numba's files, and when it differs every cached file of the folder goes: they are compiled
again once.

numba also needs somewhere to write: with `cache=True` it refuses to compile a function
(a RuntimeError naming no locator) when neither the folder's __pycache__, nor
NUMBA_CACHE_DIR, nor the user-wide cache can be written (a read-only install under a
read-only home). Then `ensure_cache_location` points numba at a private temporary folder,
with a warning: the kernels work, and are compiled again by the next process.
"""
import atexit
import hashlib
import os
import shutil
import sys
import tempfile
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


def _probe():
    """A function for numba's cache locators to place (they read its first line only)."""


def writable_location(folder):
    """Whether numba finds a writable cache folder for the kernels of `folder`, asking its
    locators in its own order (unknown internals count as yes: numba decides then)."""
    try:
        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
        source = str(Path(folder) / "__init__.py")
        for locator_class in impl._locator_classes:
            try:
                locator = locator_class.from_function(_probe, source)
                if locator is not None:
                    locator.ensure_cache_path()
                    return True
            except OSError:
                continue
    except Exception:  # noqa: BLE001 - numba's internals moved: leave the choice to numba
        return True
    return False


def ensure_cache_location(folder):
    """When numba can cache nowhere, give it a private temporary folder (NUMBA_CACHE_DIR,
    inherited by worker processes) and say so on stderr; returns that folder, or None."""
    if writable_location(folder):
        return None
    private = tempfile.mkdtemp(prefix="seqgen-numba-")
    atexit.register(shutil.rmtree, private, ignore_errors=True)  # (workers end before)
    config.CACHE_DIR = private
    os.environ["NUMBA_CACHE_DIR"] = private
    print(f"seqgen: warning: no writable folder for numba's cache ({Path(folder)}/__pycache__, "
          f"NUMBA_CACHE_DIR, the user's cache); the kernels are cached in {private} for this "
          "run only and compiled again next time (set NUMBA_CACHE_DIR to a writable folder)",
          file=sys.stderr)
    return private
