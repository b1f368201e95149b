"""LSTM recurrence shaped as matrix products, for wide or batched layers.

The same equations, gate order (i, f, o, g), buffers and cont semantics as `kernels.lstm`
(see there), computed the way BLAS likes (`kernels.blas.gemm`, numpy's own BLAS): the input
projection, dx and every weight gradient are single products over all T*N rows, and the
recurrent product of a step is one (N, H) x (H, 4H) GEMM accumulated into the gates, which
are then activated together with the cell over the whole step (for one or two streams
`kernels.blas.gemm` makes that product a gemv per row, 3-5x faster at H = 512 than an
sgemm that packs W_h every step). `kernels.lstm`'s axpy loops win only while a step is too
small for a BLAS call to pay (`choose_path`). Threads come
from BLAS (seqgen.threads): the elementwise passes stay on one.
"""
import numpy as np
from numba import njit

from .activations import FASTMATH, sigmoid, tanh
from .blas import gemm
from .lstm import cell_step, forget_by_cont, step_gradients

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)

#: below this many multiply-adds per step (N * H * 4H) the loop kernels are faster
#: (benchmarks/lstm_paths.py; README "Performance")
GEMM_MIN_STEP_WORK = 2048


def choose_path(N, H):
    """'gemm' or 'loops' for a layer of N streams and H units (the shapes decide)."""
    return "gemm" if N * H * 4 * H >= GEMM_MIN_STEP_WORK else "loops"


@njit(inline="always", **JIT)
def _activate(gates, bias, cont, c, h, tanh_c, t, n, H):
    """Step t of stream n once gates[t, n] holds W_x x_t + W_h h_{t-1}: gates, cell, h."""
    G = 4 * H
    for j in range(3 * H):
        gates[t, n, j] = sigmoid(gates[t, n, j] + bias[n, j])
    for j in range(3 * H, G):
        gates[t, n, j] = tanh(gates[t, n, j] + bias[n, j])
    forget_by_cont(gates, cont, t, n, H)
    cell_step(gates, c, h, tanh_c, t, n, H)


@njit(**JIT)
def lstm_forward_gemm(x2, W_x, bias, W_h, cont, h, c, gates, tanh_c, hm):
    """Fill h, c (T+1, N, H; row 0 holds the initial state), tanh(c) and the activated
    gates (T, N, G) from x2 (T*N, I) with Caffe's W_x (G, I), bias (N, G), W_h (G, H); also
    hm (T, N, H) = cont_t h_{t-1}, the recurrent input of each step (for dW_h)."""
    T, N, G = gates.shape
    H = G // 4
    gemm(False, True, 1.0, x2, W_x, 0.0, gates.reshape(T * N, G))
    for t in range(T):
        for n in range(N):
            m = cont[t, n]
            for k in range(H):
                hm[t, n, k] = h[t, n, k] * m
        gemm(False, True, 1.0, hm[t], W_h, 1.0, gates[t])
        for n in range(N):
            _activate(gates, bias, cont, c, h, tanh_c, t, n, H)


@njit(**JIT)
def lstm_backward_gemm(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc):
    """Back-propagate top_diff (T, N, H) into the gate pre-activation gradients dpre
    (T, N, G), with W_h (G, H) as Caffe stores it; dh_rec, dc (N, H) carry the gradient on
    the final state in and on the initial state out, as in `kernels.lstm.lstm_backward`."""
    T, N, G = dpre.shape
    H = G // 4
    for t in range(T - 1, -1, -1):
        for n in range(N):
            step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t, n, H)
        gemm(False, False, 1.0, dpre[t], W_h, 0.0, dh_rec)
        for n in range(N):
            m = cont[t, n]
            for k in range(H):
                dh_rec[n, k] *= m


@njit(**JIT)
def lstm_param_gradients_gemm(dpre, x2, hm, W_x, dW_x, db, dW_h, dx2, want_dx):
    """Accumulate dW_x += dpre^T x, db += the column sums of dpre and dW_h += dpre^T hm
    (float32 BLAS sums, as PyTorch's), and write dx = dpre W_x when want_dx; dpre is
    (T, N, G), x2 (T*N, I), hm (T, N, H)."""
    T, N, G = dpre.shape
    d2 = dpre.reshape(T * N, G)
    gemm(True, False, 1.0, d2, x2, 1.0, dW_x)
    gemm(True, False, 1.0, d2, hm.reshape(T * N, hm.shape[2]), 1.0, dW_h)
    for r in range(T * N):
        for j in range(G):
            db[j] += d2[r, j]
    if want_dx:
        gemm(False, False, 1.0, d2, W_x, 0.0, dx2)
