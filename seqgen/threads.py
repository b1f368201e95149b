"""How many threads seqgen may use: SEQGEN_THREADS or `--threads` (default 1).

One is the default: these are 2-core machines, sweeps run one job per core, and a second
thread pays only for large products (README "Performance"). With n > 1, BLAS may use n
threads (OpenBLAS itself keeps small products on one) and the loop kernels split 8 or more
streams into groups on numba threads (`stream_parts`). The GEMM kernels run their large
products on BLAS's threads and, when a step is large enough
(`kernels.bvlc_lstm_gemm.split_parts`), their recurrence on numba threads over stream groups,
holding BLAS to one thread for that time; the two never nest.

The two thread pools must not busy-wait on each other's cores: OpenBLAS's idle workers are
stopped before such a region (`kernels.blas.park_blas_threads`), and numba's OpenMP workers
are asked to sleep as soon as a region ends (OMP_WAIT_POLICY=PASSIVE unless set; libgomp
otherwise spins for milliseconds, taking a core from the BLAS products that follow). That
default is set when the budget is above 1 and only takes effect before numba first starts
its threads (its first parallel kernel).
"""
import os
import sys

import numba

from .errors import SeqgenError
from .limits import threads_from_env

PARALLEL_MIN_STREAMS = 8


def _budget_from_env():
    """SEQGEN_THREADS's budget; 1, with a warning, for a value that is not one (importing
    seqgen must not fail: the `seqgen` command refuses the value with exit code 2 itself)."""
    try:
        return threads_from_env()
    except SeqgenError as e:
        print(f"seqgen: warning: {e}; using 1", file=sys.stderr)
        return 1


_threads = _budget_from_env()


def _quiet_waits():
    """numba's OpenMP workers sleep between parallel regions (see the module docstring)."""
    if _threads > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_quiet_waits()


def count():
    """The thread budget (1 unless set)."""
    return _threads


def set_threads(n):
    """Use up to n threads from now on, in numba's pool and in every BLAS library loaded."""
    global _threads
    from threadpoolctl import threadpool_limits  # lazy: only when the budget changes

    _threads = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    _quiet_waits()
    threadpool_limits(_threads, user_api="blas")  # stays in force (not used as a context)
    numba.set_num_threads(_threads)
    os.environ["SEQGEN_THREADS"] = str(_threads)  # processes started later inherit it


def stream_parts(N):
    """How many stream groups a loop kernel runs on separate threads (1: single-thread)."""
    if _threads < 2 or N < PARALLEL_MIN_STREAMS:
        return 1
    return max(1, min(_threads, numba.get_num_threads(), N // (PARALLEL_MIN_STREAMS // 2)))
