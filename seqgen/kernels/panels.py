"""Few-row matrix products over a weight packed once into WIDTH-column panels.

An LSTM step's recurrent product has one row per stream, against a weight of 4H x H that
stays the same for the whole sequence. OpenBLAS's sgemm packs op(B) again on every call,
and with a few rows that packing is most of each step. Here the weight is packed once per
forward (or backward) call into panels P[b, k, 0:W] = op(B)[k, Wb:Wb+W] (`pack_panels`),
and each step runs a ROWS-row by W-column tile whose accumulators stay in registers while
it walks one contiguous panel (`panel_gemm`): on AVX2 4 rows by 16 columns (eight of its
sixteen vector registers), on a CPU with AVX-512 8 rows by 32 columns (sixteen of its
thirty-two); a group's last rows run a tile with its last row repeated (a 4-row one when at
most 4 are left).
On AVX-512 `panel_gemm` alone is compiled for 512-bit vectors (`target.wide_function`), while
the other kernels keep the target's 256-bit preference (`kernels.target`), which suits the
fork's 7-50-unit gate loops better: one step's product of 50 rows at H = 128 took 53 us
against 71 us on 256-bit vectors (sgemm: 90 us; `python benchmarks/gemm_rows.py`, Intel
Xeon with AVX-512, one thread, 2026-12-07). The 8-row tile then ran the step products
1.07-1.49x as fast as the 4-row one on 512-bit vectors (H = 128-512, 8-64 rows, forward
and backward; its FMAs wait less on each other's results; the same command, which times
both), to the same bits.

Against sgemm on the step product (M x H by H x 4H, one thread, AMD EPYC with
AVX2; `python benchmarks/gemm_rows.py`, 2026-12-01): at H = 512, 3.4x faster with 2 rows,
2.7x with 8, 1.8x with 16, 1.2x with 32 and 0.97x with 64; the backward product
(M x 4H by 4H x H) 1.2x with 32 and 64. Packing costs about five one-row products.

Each element of C is the sum over k in order of A[i, k] op(B)[k, j], then added to
beta C[i, j]: the same arithmetic whichever tile computes it, so splitting the rows
between threads does not change a bit of the result.
"""
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .activations import FASTMATH
from .target import host_has_avx512, wide_function

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)

#: whether the tile runs on 512-bit vectors (the CPU has AVX-512 and numba compiles for it)
WIDE = host_has_avx512()
#: columns per panel (two float32 vectors: 16 with AVX2, 32 with AVX-512) and rows per
#: register tile (8 or 4: the two tiles `panel_gemm` has)
WIDTH = 32 if WIDE else 16
ROWS = 8 if WIDE else 4


@intrinsic
def _registers(typingctx, dtype):
    """An 8 x WIDTH scratch on the stack (a pointer): unlike an array, LLVM keeps it in
    registers once the tile's loops over it are unrolled."""
    sig = types.CPointer(dtype.dtype)(dtype)

    def codegen(context, builder, signature, args):
        size = context.get_constant(types.intp, 8 * WIDTH)  # room for the larger tile
        return cgutils.alloca_once(builder, context.get_value_type(dtype.dtype), size=size)

    return sig, codegen


def panel_count(columns):
    """Panels that hold `columns` columns (the last one zero-padded)."""
    return -(-columns // WIDTH)


@njit(**JIT)
def pack_panels(B, trans, P):
    """P (panels, K, WIDTH) = op(B) (K x columns) in WIDTH-column panels, zero past the last
    column; op(B) = B.T when trans (B is columns x K)."""
    panels, K, _ = P.shape
    columns = B.shape[0] if trans else B.shape[1]
    for b in range(panels):
        j0 = b * WIDTH
        w = min(WIDTH, columns - j0)
        # a panel row (one k) at a time, also from B.T: written column by column over all
        # of k, a deep panel (64 KB at K = 512) left L1 between columns (1.56 ms a pack at
        # H = 512, three times the untransposed one)
        for k in range(K):
            if trans:
                for c in range(w):
                    P[b, k, c] = B[j0 + c, k]
            else:
                for c in range(w):
                    P[b, k, c] = B[k, j0 + c]
            for c in range(w, WIDTH):
                P[b, k, c] = 0


@njit(inline="always", **JIT)
def _tile(A, P, acc, r0, last, b):
    """acc[r, 0:WIDTH] = sum_k A[min(r0 + r, last), k] P[b, k, 0:WIDTH] for r < 4: the
    4-row register tile. A group's last rows repeat its last row to fill the tile: LLVM
    vectorised narrower tiles only partly, and they ran 3-7x slower than this one."""
    i0, i1, i2, i3 = r0, min(r0 + 1, last), min(r0 + 2, last), min(r0 + 3, last)
    for i in range(4 * WIDTH):
        acc[i] = 0
    for k in range(A.shape[1]):
        a0, a1, a2, a3 = A[i0, k], A[i1, k], A[i2, k], A[i3, k]
        for c in range(WIDTH):
            p = P[b, k, c]
            acc[c] += a0 * p
            acc[WIDTH + c] += a1 * p
            acc[2 * WIDTH + c] += a2 * p
            acc[3 * WIDTH + c] += a3 * p


@njit(inline="always", **JIT)
def _tile8(A, P, acc, r0, last, b):
    """`_tile` for 8 rows (AVX-512's 32 registers hold its 16 accumulators): each element
    is the same sum, in the same order, as in the 4-row tile. Written out row by row like
    it on purpose: one tile with a loop over its rows compiled 25x slower (LLVM kept the
    accumulators in memory)."""
    i0, i1, i2, i3 = r0, min(r0 + 1, last), min(r0 + 2, last), min(r0 + 3, last)
    i4, i5, i6, i7 = min(r0 + 4, last), min(r0 + 5, last), min(r0 + 6, last), min(r0 + 7, last)
    for i in range(8 * WIDTH):
        acc[i] = 0
    for k in range(A.shape[1]):
        a0, a1, a2, a3 = A[i0, k], A[i1, k], A[i2, k], A[i3, k]
        a4, a5, a6, a7 = A[i4, k], A[i5, k], A[i6, k], A[i7, k]
        for c in range(WIDTH):
            p = P[b, k, c]
            acc[c] += a0 * p
            acc[WIDTH + c] += a1 * p
            acc[2 * WIDTH + c] += a2 * p
            acc[3 * WIDTH + c] += a3 * p
            acc[4 * WIDTH + c] += a4 * p
            acc[5 * WIDTH + c] += a5 * p
            acc[6 * WIDTH + c] += a6 * p
            acc[7 * WIDTH + c] += a7 * p


@njit(**JIT)
def panel_gemm(A, P, beta, C, rows=ROWS):
    """C = A op(B) + beta C, with op(B) packed by `pack_panels`; A (M, K) and C (M, columns)
    may have strided rows. beta 0 ignores C's old values (NaN included), as BLAS does.
    rows: the register tile's rows, 8 or 4 (tests run both; the results are the same)."""
    wide_function()
    M, columns = C.shape
    acc = _registers(C.dtype)
    for b in range(P.shape[0]):
        j0 = b * WIDTH
        w = min(WIDTH, columns - j0)
        for r0 in range(0, M, rows):
            if rows == 8 and M - r0 > 4:
                _tile8(A, P, acc, r0, M - 1, b)
            else:
                _tile(A, P, acc, r0, M - 1, b)
            for r in range(min(rows, M - r0)):
                for c in range(w):
                    v = acc[r * WIDTH + c]
                    if beta != 0:
                        v += beta * C[r0 + r, j0 + c]
                    C[r0 + r, j0 + c] = v
