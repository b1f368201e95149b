"""LSTM recurrence shaped as matrix products, for wide or batched layers.

The same equations, gate order (i, f, o, g), buffers and cont semantics as `kernels.bvlc_lstm`
(see there), computed the way BLAS likes (`kernels.blas.gemm`, numpy's own BLAS): the input
projection, dx and every weight gradient are single products over all T*N rows, and the
recurrent product of a step is one (N, H) x (H, 4H) GEMM accumulated into the gates, which
are then activated together with the cell over the whole step. OpenBLAS's sgemm packs
W_h again on every such call, so for a few rows a step (`bvlc_lstm_path.uses_panels`) W_h
is packed once per call into 16-column panels and each step runs `kernels.panels.panel_gemm`
over them (2.4-6x faster than sgemm with 2-8 rows, 1.2-1.6x with 32); for one stream
`kernels.blas.gemm` makes the product a gemv. `kernels.bvlc_lstm`'s axpy loops win only
while a step is too small for a BLAS call to pay (`bvlc_lstm_path.choose_path`).

Threads (seqgen.threads): the products over all T*N rows are single BLAS calls on BLAS's
threads. The recurrence of each stream depends on no other stream, so with a budget of
P > 1 threads and steps large enough (`bvlc_lstm_path.split_parts`) the N streams are split
into P groups of contiguous rows (h[t, n0:n1], gates[t, n0:n1], ...) and each numba thread runs its
group's whole recurrence, forward (its step product, then its gates and cells) and
backward (its step gradients, then its dh_rec product), with no synchronisation between
steps. BLAS is held to one thread meanwhile (`blas.hold_one_blas_thread`), so BLAS threads
times numba threads never exceed the budget, and its idle workers, which would busy-wait
on the cores the numba threads need, are stopped (`blas.park_blas_threads`; numba's own
workers sleep when a region ends, `seqgen.threads`). Otherwise the per-step products are
left to BLAS, which threads such small products poorly, and the elementwise passes stay on
one thread. Each row's arithmetic is the same either way; only BLAS's tiling of a product's
rows may reorder its float sums (it does between 1 and 2 BLAS threads already).
"""
import numpy as np
from numba import njit, prange

from .activations import FASTMATH, sigmoid, tanh
from .blas import gemm, hold_one_blas_thread, set_blas_threads
from .bvlc_lstm import cell_step, forget_by_cont, step_gradients
from .panels import WIDTH, pack_panels, panel_count, panel_gemm
from .prefetch import AHEAD_MAX_WEIGHT, prefetch_span
from .target import wide_function

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)

def panel_buffer(H, dtype, backward=False, use=True):
    """The buffer `lstm_forward_gemm` (or `lstm_backward_gemm`) packs W_h into, or an empty
    one (use False), which keeps the products on BLAS."""
    if not use:
        return np.zeros((0, 0, WIDTH), dtype)
    columns, depth = (H, 4 * H) if backward else (4 * H, H)
    return np.zeros((panel_count(columns), depth, WIDTH), dtype)


@njit(inline="always", **JIT)
def _activate(gates, bias, cont, c, h, tanh_c, t, n, H):
    """Step t of stream n once gates[t, n] holds W_x x_t + W_h h_{t-1}: gates, cell, h."""
    for j in range(3 * H):
        gates[t, n, j] = sigmoid(gates[t, n, j] + bias[n, j])
    for k in range(H):  # a loop from 0: LLVM left range(3H, G) scalar, 5x slower
        gates[t, n, 3 * H + k] = tanh(gates[t, n, 3 * H + k] + bias[n, 3 * H + k])
    forget_by_cont(gates, cont, t, n, H)
    cell_step(gates, c, h, tanh_c, t, n, H)


@njit(inline="always", **JIT)
def _forward_steps(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1, panels):
    """The recurrence of streams n0..n1-1 over every step, once gates holds W_x x_t; the
    step products over W_h packed in P when `panels`, else BLAS's."""
    ahead = panels and P.size * P.itemsize <= AHEAD_MAX_WEIGHT
    T, N, G = gates.shape
    H = G // 4
    for t in range(T):
        for n in range(n0, n1):
            m = cont[t, n]
            for k in range(H):
                hm[t, n, k] = h[t, n, k] * m
        if panels:
            panel_gemm(hm[t, n0:n1], P, 1.0, gates[t, n0:n1])
        else:
            gemm(False, True, 1.0, hm[t, n0:n1], W_h, 1.0, gates[t, n0:n1])
        for n in range(n0, n1):
            _activate(gates, bias, cont, c, h, tanh_c, t, n, H)
            if ahead and t + 1 < T:  # the next step's rows into L2 meanwhile
                r = (t + 1) * N + n
                prefetch_span(gates, r * G, G)
                prefetch_span(tanh_c, r * H, H)
                prefetch_span(hm, r * H, H)
                prefetch_span(c, (r + N) * H, H)
                prefetch_span(h, (r + N) * H, H)


@njit(**JIT)
def _forward_panels(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1):
    wide_function()
    _forward_steps(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1, True)


@njit(**JIT)
def _forward_blas(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1):
    _forward_steps(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1, False)


@njit(**JIT)
def _forward_rows(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1):
    """`_forward_steps` with the step products over the panels in P, or BLAS's when P is
    empty. Steps over panels (several streams, `bvlc_lstm_path.panels_for`) run their gate
    loops on 512-bit vectors where the CPU has AVX-512 (`target.wide_function`) and ask for
    the next step's rows ahead while the panels take at most half the L2 (`kernels.prefetch`).
    BLAS's steps (one stream, or more rows than the panels pay for) keep 256-bit loops and
    fetch nothing ahead: both had cost a one-stream iteration 5-10% at H = 128-256
    (docs/performance.md, "The widest vectors")."""
    if P.shape[0]:
        _forward_panels(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1)
    else:
        _forward_blas(bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1)


@njit(parallel=True, **JIT)
def _forward_parts(bias, W_h, cont, h, c, gates, tanh_c, hm, P, parts):
    N = gates.shape[1]
    for p in prange(parts):
        _forward_rows(bias, W_h, cont, h, c, gates, tanh_c, hm, P, p * N // parts,
                      (p + 1) * N // parts)


@njit(**JIT)
def lstm_forward_gemm(x2, W_x, bias, W_h, cont, h, c, gates, tanh_c, hm, P, parts):
    """Fill h, c (T+1, N, H; row 0 holds the initial state), tanh(c) and the activated
    gates (T, N, G) from x2 (T*N, I) with Caffe's W_x (G, I), bias (N, G), W_h (G, H); also
    hm (T, N, H) = cont_t h_{t-1}, the recurrent input of each step (for dW_h). P: W_h^T
    is packed there for the step products when it is not empty (`panel_buffer`).

    parts > 1 runs the recurrence of that many stream groups on numba threads, each with
    one BLAS thread (`bvlc_lstm_path.split_parts`); every row's arithmetic is the same as
    with parts = 1."""
    T, N, G = gates.shape
    gemm(False, True, 1.0, x2, W_x, 0.0, gates.reshape(T * N, G))
    lstm_recurrence_gemm(bias, W_h, cont, h, c, gates, tanh_c, hm, P, parts)


@njit(**JIT)
def lstm_recurrence_gemm(bias, W_h, cont, h, c, gates, tanh_c, hm, P, parts):
    """`lstm_forward_gemm` once gates (T, N, G) holds each step's input projection W_x x_t
    (written by the caller: a product, or rows of a precomputed table, `seqgen.fusion`)."""
    N = gates.shape[1]
    if P.shape[0]:
        pack_panels(W_h, True, P)
    if parts > 1:
        held = hold_one_blas_thread()
        _forward_parts(bias, W_h, cont, h, c, gates, tanh_c, hm, P, parts)
        set_blas_threads(held)
    else:
        _forward_rows(bias, W_h, cont, h, c, gates, tanh_c, hm, P, 0, N)


@njit(inline="always", **JIT)
def _backward_steps(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1,
                    panels):
    """The backward recurrence of streams n0..n1-1 over every step (the dh products over
    W_h packed in Q when `panels`, else BLAS's)."""
    ahead = panels and Q.size * Q.itemsize <= AHEAD_MAX_WEIGHT
    T, N, G = dpre.shape
    H = G // 4
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t, n, H)
            if ahead and t > 0:  # step t - 1's rows into L2 meanwhile
                r = (t - 1) * N + n
                prefetch_span(gates, r * G, G)
                prefetch_span(dpre, r * G, G)
                prefetch_span(tanh_c, r * H, H)
                prefetch_span(c, r * H, H)
                prefetch_span(top_diff, r * H, H)
        if panels:
            panel_gemm(dpre[t, n0:n1], Q, 0.0, dh_rec[n0:n1])
        else:
            gemm(False, False, 1.0, dpre[t, n0:n1], W_h, 0.0, dh_rec[n0:n1])
        for n in range(n0, n1):
            m = cont[t, n]
            for k in range(H):
                dh_rec[n, k] *= m


@njit(**JIT)
def _backward_panels(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1):
    wide_function()
    _backward_steps(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1, True)


@njit(**JIT)
def _backward_blas(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1):
    _backward_steps(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1,
                    False)


@njit(**JIT)
def _backward_rows(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1):
    """`_backward_steps` over the panels in Q, or with BLAS's products when Q is empty; the
    two kinds of step compiled as in `_forward_rows`."""
    if Q.shape[0]:
        _backward_panels(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1)
    else:
        _backward_blas(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1)


@njit(parallel=True, **JIT)
def _backward_parts(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, parts):
    N = dpre.shape[1]
    for p in prange(parts):
        _backward_rows(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q,
                       p * N // parts, (p + 1) * N // parts)


@njit(**JIT)
def lstm_backward_gemm(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, parts):
    """Back-propagate top_diff (T, N, H) into the gate pre-activation gradients dpre
    (T, N, G), with W_h (G, H) as Caffe stores it; dh_rec, dc (N, H) carry the gradient on
    the final state in and on the initial state out, as in `kernels.bvlc_lstm.lstm_backward`.
    Q: W_h is packed there for the dh products when it is not empty (`panel_buffer`, with
    backward=True); parts: as in `lstm_forward_gemm`."""
    if Q.shape[0]:
        pack_panels(W_h, False, Q)
    if parts > 1:
        held = hold_one_blas_thread()
        _backward_parts(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, parts)
        set_blas_threads(held)
    else:
        _backward_rows(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, 0,
                       dpre.shape[1])


@njit(**JIT)
def lstm_param_gradients_gemm(dpre, x2, hm, W_x, dW_x, db, dW_h, dx2, want_dx):
    """Accumulate dW_x += dpre^T x, db += the column sums of dpre and dW_h += dpre^T hm
    (float32 BLAS sums, as PyTorch's), and write dx = dpre W_x when want_dx; dpre is
    (T, N, G), x2 (T*N, I), hm (T, N, H)."""
    T, N, G = dpre.shape
    d2 = dpre.reshape(T * N, G)
    gemm(True, False, 1.0, d2, x2, 1.0, dW_x)
    lstm_state_gradients_gemm(dpre, hm, db, dW_h)
    if want_dx:
        gemm(False, False, 1.0, d2, W_x, 0.0, dx2)


@njit(**JIT)
def lstm_state_gradients_gemm(dpre, hm, db, dW_h):
    """The gradients that do not involve the input: dW_h += dpre^T hm and db += the column
    sums of dpre (float32 BLAS sums, as in `lstm_param_gradients_gemm`)."""
    T, N, G = dpre.shape
    d2 = dpre.reshape(T * N, G)
    gemm(True, False, 1.0, d2, hm.reshape(T * N, hm.shape[2]), 1.0, dW_h)
    for r in range(T * N):
        for j in range(G):
            db[j] += d2[r, j]
