"""LSTM recurrence over a whole sequence in one jitted call (gate order i, f, o, g).

Shapes: T steps, N streams, I inputs, H hidden units, G = 4H. Every array is time-major
(T, N, ...), i.e. row t*N + n of Caffe's (T*N, ...) blobs. `cont[t, n]` (float) is 1 where
the step continues the previous one and 0 where a new sequence starts (h_{t-1}, c_{t-1} are
then treated as zero and no gradient crosses that step). Other values follow BVLC Caffe's
forward: h_{t-1} and the forget gate are scaled by cont (the gradient computed here is the
exact one). h and c are (T+1, N, H) buffers whose row 0 holds the initial state; step t
writes row t+1. `bias` is per stream (N, G): the layer's bias plus any static input term.

Shaped for these small nets, where one step is a chain of dependent operations:
- work that does not depend on the previous step runs outside the recurrence: the input
  projection in a bulk loop, the weight gradients and dx as BLAS products over all steps
  (`param_gradients`), so the time loop carries only the recurrent product, the gates
  and the cell;
- weights are used transposed (W^T is (in, G)) so inner loops run over the contiguous
  gate block as axpys and vectorise without reordering sums;
- each phase of a step runs over all streams before the next phase, so independent
  streams overlap; `*_parallel` splits the streams over threads;
- sigmoid/tanh are the branch-free float32 versions of `activations`;
- no allocation and no slicing inside the time loop (views cost reference counting).
The kernels are dtype-generic: float32 in production, float64 for finite differences.
"""
import numpy as np
from numba import njit, prange

from .activations import FASTMATH, sigmoid, tanh
from .scalars import U, typed

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
# No fast-math: no multiply-add contracted into an FMA and no reordering, so the gate
# gradients have the same bits on every path, in kernels.fork_lstm and on either vector width
EXACT = dict(JIT, fastmath=False)


@njit(inline="always", **JIT)
def forget_by_cont(gates, cont, t, n, H):
    """The activated forget gate of step t, stream n, as cont says: exactly 0 at a restart
    (c_{t-1} is ignored, Caffe), cont * sigmoid(.) for other values than 1 (BVLC)."""
    m = cont[t, n]
    if m == 0:
        for k in range(H):
            gates[t, n, H + k] = 0
    elif m != 1:
        for k in range(H):
            gates[t, n, H + k] *= m


@njit(inline="always", **JIT)
def cell_step(gates, c, h, tanh_c, t, n, H):
    """c_t = f c_{t-1} + i g, tanh(c_t) and h_t = o tanh(c_t) from the activated gates."""
    for k in range(H):
        c[t + 1, n, k] = gates[t, n, H + k] * c[t, n, k] + gates[t, n, k] * gates[t, n, 3 * H + k]
    for k in range(H):
        tanh_c[t, n, k] = tanh(c[t + 1, n, k])
    for k in range(H):
        h[t + 1, n, k] = gates[t, n, 2 * H + k] * tanh_c[t, n, k]


@njit(**JIT)
def _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, n0, n1):
    T, N, G = gates.shape
    H = G // 4
    I = x.shape[2]
    for t in range(T):  # input projection of every step, off the recurrent path
        for n in range(n0, n1):
            for j in range(G):
                gates[t, n, j] = bias[n, j]
            for i in range(I):
                a = x[t, n, i]
                for j in range(G):
                    gates[t, n, j] += W_xT[i, j] * a
    for t in range(T):
        for n in range(n0, n1):
            m = cont[t, n]
            if m == 1:  # the common case, kept free of the scaling (it vectorises better)
                for k in range(H):
                    a = h[t, n, k]
                    for j in range(G):
                        gates[t, n, j] += W_hT[k, j] * a
            elif m != 0:
                for k in range(H):
                    a = h[t, n, k] * m
                    for j in range(G):
                        gates[t, n, j] += W_hT[k, j] * a
        for n in range(n0, n1):
            for j in range(3 * H):
                gates[t, n, j] = sigmoid(gates[t, n, j])
            for k in range(H):  # a loop from 0: LLVM left range(3H, G) scalar, 5x slower
                gates[t, n, 3 * H + k] = tanh(gates[t, n, 3 * H + k])
            forget_by_cont(gates, cont, t, n, H)
        for n in range(n0, n1):
            cell_step(gates, c, h, tanh_c, t, n, H)


@njit(**JIT)
def lstm_forward(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c):
    """Fill h, c (T+1, N, H), tanh(c) (T, N, H) and activated gates (T, N, G; f already
    scaled by cont) from the input x (T, N, I) with W_x^T (I, G), bias (N, G), W_h^T (H, G).

    A step that does not continue drops W_h h_{t-1} and forces f to exactly 0
    (Caffe's behaviour in both the fork and BVLC), so c_{t-1} is ignored too.
    """
    _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, 0, gates.shape[1])


@njit(parallel=True, **JIT)
def lstm_forward_parallel(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, parts):
    """lstm_forward with the streams split into `parts` groups run on separate threads."""
    N = gates.shape[1]
    for p in prange(parts):
        _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c,
                         p * N // parts, (p + 1) * N // parts)


@njit(inline="always", **JIT)
def step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t, n, H):
    """dpre[t, n] from the gradient on h_t (top_diff plus dh_rec, left in dh_rec) and on c_t
    (dc, which leaves holding the gradient on c_{t-1}): one stream's step of the backward
    recurrence."""
    for k in range(H):
        dh_rec[n, k] = top_diff[t, n, k] + dh_rec[n, k]
    gate_gradients(cont, c, gates, tanh_c, dh_rec, dc, dpre, t, n, t, H)


@njit(**EXACT)
def gate_gradients(cont, c, gates, tanh_c, dh, dc, dpre, t, n, row, H):
    """dpre[row, n] from dh[n] (the gradient on h_t) and dc[n] (on c_t, left holding the
    gradient on c_{t-1}) for step t of stream n; H: the gate blocks' width (the fork's
    kernels pass their padded one). In the arrays' own type (float32 as Caffe computes it;
    an int literal would promote each product to float64, which kept this loop scalar), every
    operation rounded on its own, so the fork's and these kernels agree bit for bit."""
    zero, one = typed(dpre, 0), typed(dpre, 1)
    m = cont[t, n]
    # f = m * s, so df/dpre = m s (1 - s) = f (1 - f / m); f is 0 where m is 0
    inv_m = one / m if m != 0 else zero
    for k in range(H):
        gi = gates[t, n, k]
        gf = gates[t, n, U(H + k)]
        go = gates[t, n, U(2 * H + k)]
        gg = gates[t, n, U(3 * H + k)]
        tc = tanh_c[t, n, k]
        d = dh[n, k]
        dct = dc[n, k] + d * go * (one - tc * tc)
        dpre[row, n, k] = dct * gg * gi * (one - gi)
        dpre[row, n, U(H + k)] = dct * c[t, n, k] * gf * (one - gf * inv_m)
        dpre[row, n, U(2 * H + k)] = d * tc * go * (one - go)
        dpre[row, n, U(3 * H + k)] = dct * gi * (one - gg * gg)
        dc[n, k] = gf * dct  # the cell path uses the unclipped dc (the fork's order)


@njit(**JIT)
def _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc,
                      n0, n1):
    T, N, G = dpre.shape
    H = G // 4
    zero = np.float64(0)  # dh_rec: float32 products summed in float64
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t, n, H)
            if threshold > 0:
                for j in range(G):
                    dpre[t, n, j] = min(max(dpre[t, n, j], -threshold), threshold)
        for n in range(n0, n1):
            m = cont[t, n]
            if m != 0:
                for k in range(H):
                    s = zero
                    for j in range(G):
                        s += W_hT[k, j] * dpre[t, n, j]
                    dh_rec[n, k] = s * m
            else:
                for k in range(H):
                    dh_rec[n, k] = zero


@njit(**JIT)
def lstm_backward(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc):
    """Back-propagate top_diff (T, N, H) through the recurrence into the gate
    pre-activation gradients dpre (T, N, G), clipped elementwise to [-threshold, threshold]
    when threshold > 0 (the fork's clipping_threshold).

    dh_rec and dc (N, H) come in holding the gradient on the final state h_T, c_T (zeros
    when nothing uses them) and go out holding the gradient on the initial state h_0, c_0.
    The parameter and input gradients follow from dpre alone: `param_gradients`.
    """
    _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc,
                      0, dpre.shape[1])


@njit(parallel=True, **JIT)
def lstm_backward_parallel(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec,
                           dc, parts):
    """lstm_backward over `parts` stream groups on separate threads."""
    N = dpre.shape[1]
    for p in prange(parts):
        _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc,
                          p * N // parts, (p + 1) * N // parts)


def param_gradients(dpre, x, h, cont, fork_dwh=False):
    """(dW_x (G, I), per-stream bias gradient (N, G), dW_h (G, H)) from dpre (T, N, G).

    These need no walk over time, so they are three BLAS products (blocked sums, like
    Caffe's). dW_h pairs dpre[t, n] with the h_{t-1} that entered the step, cont * h
    (nothing at a restart); with fork_dwh it is the fork's CPU term instead: h_{t-1} at
    every t >= 1 whatever cont says, plus h_0 of stream 0 at t = 0 (batch_size 1 only).
    """
    T, N, G = dpre.shape
    # summed in float64: the float32 BLAS sums drift from Caffe's over the 2000-iteration
    # golden run by more than Caffe drifts from itself; in float64 they do not
    d2 = dpre.reshape(T * N, G).astype(np.float64)
    I, H = x.shape[2], h.shape[2]
    rhs = np.empty((T, N, I + H), np.float64)  # [x_t, h_{t-1} as it entered] per row
    rhs[:, :, :I] = x
    if fork_dwh:
        rhs[:, :, I:] = h[:T]
        rhs[0, 1:, I:] = 0
    else:
        np.multiply(h[:T], cont[:, :, None], out=rhs[:, :, I:])
    W = d2.T @ rhs.reshape(T * N, I + H)
    dbias = (np.ones(T) @ d2.reshape(T, N * G)).reshape(N, G)
    return W[:, :I], dbias, W[:, I:]
