"""Numba kernels: plain jitted functions over numpy arrays, free of framework objects."""
from pathlib import Path

from .cache_guard import drop_stale_cache, ensure_cache_location

ensure_cache_location(Path(__file__).parent)  # numba refuses to compile with nowhere to cache
drop_stale_cache(Path(__file__).parent)  # before any kernel loads from numba's cache

from . import fork_lstm  # noqa: E402
from .bvlc_lstm import lstm_backward, lstm_forward  # noqa: E402
from .generate import lstm_stack_generate  # noqa: E402


def kernels_cached():
    """True when numba's on-disk cache already holds the main kernels, so nothing needs
    compiling (best effort: reads numba's cache index; unknown internals count as cached)."""
    try:
        return all(k._cache._cache_file._load_index()
                   for k in (lstm_forward, lstm_backward, fork_lstm.lstm_forward,
                             fork_lstm.lstm_backward, lstm_stack_generate))
    except Exception:  # noqa: BLE001 - numba internals changed: stay quiet rather than wrong
        return True


def compile_notice(log):
    """One line before the first, slow, compilation of the kernels on a fresh install."""
    if not kernels_cached():
        log("Compiling seqgen's kernels for this machine (first run only; later runs load "
            "them from numba's cache)...")
