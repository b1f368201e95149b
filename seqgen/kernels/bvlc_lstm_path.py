"""Which kernels run a BVLC LSTM layer of given shapes, and the switches that force them.

Three choices, made by the shapes unless `FORCED` says otherwise: the axpy loops
(`kernels.bvlc_lstm`) or the GEMM path (`kernels.bvlc_lstm_gemm`); how many stream groups
run the recurrence on separate threads; and whether the GEMM path's step products run on a
W_h packed into panels (`kernels.panels`) or on BLAS. The layer asks `path_for`, `parts_for`
and `panels_for`; tests and benchmarks set `FORCED`.
"""
import os
from dataclasses import dataclass

import numba

from .. import threads
from .blas import GEMV_MAX_ROWS
from .panels import WIDTH

#: below this many multiply-adds per step (N * H * 4H) the loop kernels are faster
#: (benchmarks/lstm_paths.py; README "Performance")
GEMM_MIN_STEP_WORK = 2048


#: with a thread budget, the recurrence is split over stream groups only when every group's
#: step product has at least this many multiply-adds (rows * H * 4H) and either at least
#: SPLIT_MIN_ROWS rows, at most blas.GEMV_MAX_ROWS (a gemv a row, which packs nothing) or
#: products on panels (`uses_panels`, packed once a call): otherwise sgemm's packing of all
#: of W_h in every group every step costs more than the second thread gives (before the
#: panels: 50 x 8, 256: 1.49x split against 1.64x on BLAS's threads; 50 x 32, 64: 1.42x
#: against 1.14x; `python benchmarks/lstm_paths.py --threads 2`, AMD EPYC)
SPLIT_MIN_ROWS = 12
SPLIT_MIN_PART_WORK = 1 << 16


#: the per-step products run on panels (`uses_panels`) for groups of 2 .. PANEL_MAX_ROWS
#: rows, forward and backward, over at least PANEL_MIN_STEPS steps, which pay for packing
#: W_h (about 1.3-5 one-row products); one row stays on gemv, which matched the panels at
#: H = 512 (`python benchmarks/gemm_rows.py [--backward]`, one thread). With AVX2's
#: 16-column panels sgemm is as fast from 64 rows forward (0.92-0.97x; backward panels
#: still won 1.02-1.18x there; AMD EPYC). On a CPU with AVX-512 the tile runs on 512-bit
#: vectors (`kernels.panels.WIDE`): forward 1.35-1.44x sgemm at 64 rows for H = 128-256,
#: 1.01x at 512, and 0.82-1.11x at 128 rows; backward 1.0-1.07x at 50 rows, 0.93-1.03x at
#: 64 (Intel Xeon with AVX-512, 2026-12-07, one thread, another job on the other core).
#: Those were 4-row tiles; with the 8-row tile the panels beat sgemm at 8-64 rows both ways
#: for H = 128-512 (forward 1.33-5.9x, backward 1.15-4.1x; docs/performance.md).
PANEL_MAX_ROWS = {False: 64 if WIDTH == 32 else 32, True: 64}
PANEL_MIN_STEPS = 8


def uses_panels(T, rows, backward=False):
    """Whether T steps of `rows`-row recurrent products (the largest stream group) run on
    a W_h packed into panels, forward (or backward)."""
    return T >= PANEL_MIN_STEPS and 2 <= rows <= PANEL_MAX_ROWS[backward]


def choose_path(N, H):
    """'gemm' or 'loops' for a layer of N streams and H units (the shapes decide)."""
    return "gemm" if N * H * 4 * H >= GEMM_MIN_STEP_WORK else "loops"


def split_parts(N, H, T=0):
    """How many stream groups the GEMM recurrence of N streams and H units, over T steps a
    call, runs on separate threads (1: unsplit, BLAS threads the per-step products)."""
    parts = min(threads.count(), numba.get_num_threads(), N)
    if parts < 2:
        return 1
    fewest, most = N // parts, -(-N // parts)  # rows of the smallest and largest group
    if fewest * H * 4 * H < SPLIT_MIN_PART_WORK:
        return 1
    fits = most <= GEMV_MAX_ROWS or fewest >= SPLIT_MIN_ROWS or uses_panels(T, most)
    return parts if fits else 1




@dataclass
class Forced:
    """Choices forced over the shapes' (None: the shapes decide)."""

    #: 'loops' or 'gemm' (tests, benchmarks; the environment's SEQGEN_LSTM_PATH at import)
    path: str | None = None
    #: a number of stream groups on the GEMM path (benchmarks)
    parts: int | None = None
    #: True or False puts the GEMM path's step products on W_h packed in panels or on BLAS
    #: (tests, benchmarks)
    panels: bool | None = None


FORCED = Forced(path=os.environ.get("SEQGEN_LSTM_PATH") or None)


def path_for(N, H):
    """'loops' or 'gemm' for a layer of N streams and H units."""
    return FORCED.path or choose_path(N, H)


def parts_for(path, N, H, T):
    """Stream groups to run on separate threads: the loop kernels split streams (as the
    fork's Lstm layer does); the GEMM path splits only large enough steps (`split_parts`),
    otherwise BLAS threads its products."""
    if path == "gemm":
        return FORCED.parts or split_parts(N, H, T)
    return threads.stream_parts(N)


def panels_for(T, rows, backward):
    """Whether the GEMM path's step products over T steps of `rows` rows (the largest
    stream group) run on W_h packed in panels, forward (or backward)."""
    if FORCED.panels is None:
        return uses_panels(T, rows, backward)
    return FORCED.panels
