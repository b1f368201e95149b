"""Numba kernels: plain jitted functions over numpy arrays, free of framework objects."""
from pathlib import Path

from .cache_guard import drop_stale_cache, ensure_cache_location
from .notice import listen
from .target import widen

widen()  # before numba compiles or loads a kernel: the CPU's widest vectors
ensure_cache_location(Path(__file__).parent)  # numba refuses to compile with nowhere to cache
drop_stale_cache(Path(__file__).parent)  # before any kernel loads from numba's cache
COMPILE_NOTICE = listen(__name__)  # "Compiling..." on stderr, only when numba compiles
