"""LSTM recurrence shaped as matrix products, for wide or batched layers.

The same equations, gate order (i, f, o, g), buffers and cont semantics as `kernels.lstm`
(see there), computed the way BLAS likes: the input projection and every weight gradient
are single products over all T*N rows (done by the layer with numpy, float32), and the
recurrent product of a step is one (N, H) x (H, 4H) GEMM (`np.dot` in nopython mode calls
SciPy's BLAS), followed by the gates and the cell fused over the whole step. Per step the
time loop carries one GEMM and one elementwise pass, instead of `kernels.lstm`'s axpy
loops, which win only while the step is too small for a GEMM call to pay (`choose_path`).

`*_parallel` splits the streams into groups on separate threads; each group's GEMM runs on
its own rows (the caller keeps SciPy's BLAS single-threaded so the threads do not nest).
"""
import numpy as np
from numba import njit, prange

from .activations import FASTMATH, sigmoid, tanh

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)

#: below this many multiply-adds per step (N * H * 4H) the loop kernels are faster
#: (measured with benchmarks/lstm_paths.py; see README "Performance")
GEMM_MIN_STEP_WORK = 2048


def choose_path(N, H):
    """'gemm' or 'loops' for a layer of N streams and H units (the shapes decide)."""
    return "gemm" if N * H * 4 * H >= GEMM_MIN_STEP_WORK else "loops"


@njit(inline="always", **JIT)
def _activate(gates, rec, bias, cont, c, h, tanh_c, t, n, H):
    """Step t of stream n once the recurrent product is in rec[n]: gates, cell, h."""
    G = 4 * H
    for j in range(3 * H):
        gates[t, n, j] = sigmoid(gates[t, n, j] + rec[n, j] + bias[n, j])
    for j in range(3 * H, G):
        gates[t, n, j] = tanh(gates[t, n, j] + rec[n, j] + bias[n, j])
    m = cont[t, n]
    if m == 0:  # a restart ignores c_{t-1}: f is exactly 0 (Caffe)
        for k in range(H):
            gates[t, n, H + k] = 0
    elif m != 1:  # BVLC: f = cont * sigmoid(.)
        for k in range(H):
            gates[t, n, H + k] *= m
    for k in range(H):
        c[t + 1, n, k] = gates[t, n, H + k] * c[t, n, k] + gates[t, n, k] * gates[t, n, 3 * H + k]
    for k in range(H):
        tanh_c[t, n, k] = tanh(c[t + 1, n, k])
    for k in range(H):
        h[t + 1, n, k] = gates[t, n, 2 * H + k] * tanh_c[t, n, k]


@njit(**JIT)
def _forward_streams(bias, W_hT, cont, h, c, gates, tanh_c, hm, rec, n0, n1):
    T, N, G = gates.shape
    H = G // 4
    for t in range(T):
        for n in range(n0, n1):  # h_{t-1} as it enters the step (kept for dW_h)
            m = cont[t, n]
            for k in range(H):
                hm[t, n, k] = h[t, n, k] * m
        np.dot(hm[t, n0:n1], W_hT, rec[n0:n1])
        for n in range(n0, n1):
            _activate(gates, rec, bias, cont, c, h, tanh_c, t, n, H)


@njit(**JIT)
def lstm_forward_gemm(bias, W_hT, cont, h, c, gates, tanh_c, hm, rec):
    """Fill h, c (T+1, N, H), tanh(c) and the activated gates (T, N, G), which come in
    holding x_t W_x^T; also hm (T, N, H) = cont_t h_{t-1}, the recurrent input of each
    step. rec (N, G) is scratch. bias (N, G), W_h^T (H, G)."""
    _forward_streams(bias, W_hT, cont, h, c, gates, tanh_c, hm, rec, 0, gates.shape[1])


@njit(parallel=True, **JIT)
def lstm_forward_gemm_parallel(bias, W_hT, cont, h, c, gates, tanh_c, hm, rec, parts):
    """lstm_forward_gemm with the streams split into `parts` groups on separate threads."""
    N = gates.shape[1]
    for p in prange(parts):
        _forward_streams(bias, W_hT, cont, h, c, gates, tanh_c, hm, rec,
                         p * N // parts, (p + 1) * N // parts)


@njit(**JIT)
def _backward_streams(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, rec, n0, n1):
    T, N, G = dpre.shape
    H = G // 4
    zero = dpre[0, 0, 0] * 0  # typed constants: a bare int literal promotes float32 to float64
    one = zero + np.float32(1)
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            m = cont[t, n]
            # f = m * s, so df/dpre = m s (1 - s) = f (1 - f / m); f is 0 where m is 0
            inv_m = one / m if m != 0 else zero
            for k in range(H):
                gi = gates[t, n, k]
                gf = gates[t, n, H + k]
                go = gates[t, n, 2 * H + k]
                gg = gates[t, n, 3 * H + k]
                tc = tanh_c[t, n, k]
                dh = top_diff[t, n, k] + dh_rec[n, k]
                dct = dc[n, k] + dh * go * (1 - tc * tc)
                dpre[t, n, k] = dct * gg * gi * (1 - gi)
                dpre[t, n, H + k] = dct * c[t, n, k] * gf * (1 - gf * inv_m)
                dpre[t, n, 2 * H + k] = dh * tc * go * (1 - go)
                dpre[t, n, 3 * H + k] = dct * gi * (1 - gg * gg)
                dc[n, k] = gf * dct
        np.dot(dpre[t, n0:n1], W_h, rec[n0:n1])
        for n in range(n0, n1):
            m = cont[t, n]
            for k in range(H):
                dh_rec[n, k] = rec[n, k] * m


@njit(**JIT)
def lstm_backward_gemm(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, rec):
    """Back-propagate top_diff (T, N, H) into the gate pre-activation gradients dpre
    (T, N, G), with W_h (G, H) as Caffe stores it; dh_rec, dc (N, H) carry the gradient on
    the final state in and on the initial state out, as in `kernels.lstm.lstm_backward`.
    rec (N, H) is scratch."""
    _backward_streams(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, rec,
                      0, dpre.shape[1])


@njit(parallel=True, **JIT)
def lstm_backward_gemm_parallel(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, rec,
                                parts):
    """lstm_backward_gemm over `parts` stream groups on separate threads."""
    N = dpre.shape[1]
    for p in prange(parts):
        _backward_streams(top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, rec,
                          p * N // parts, (p + 1) * N // parts)
