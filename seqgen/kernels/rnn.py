"""BVLC Caffe's RNN recurrence over a whole sequence in one jitted call.

    h_t = tanh(W_xh x_t + b_h + W_hh (cont_t * h_{t-1}) [+ W_xh_static x_static])
    o_t = tanh(W_ho h_t + b_o)

Shapes: T steps, N streams, I inputs, H hidden units; every array is time-major (T, N, ...).
`cont[t, n]` multiplies h_{t-1} (0 starts a new sequence: the recurrent term is dropped and
no gradient crosses that step). `h` is a (T+1, N, H) buffer whose row 0 holds the initial
state; step t writes row t+1. `bias` is per stream (N, H): b_h plus the static-input term,
which is the same at every step and not masked by cont.

Laid out like `kernels.bvlc_lstm`: weights are used transposed (W^T is (in, out)) so the inner
loops are axpys over contiguous rows; the input projection, the output layer, the weight
gradients and dx run in bulk loops outside the recurrence, so the time loop carries only
W_hh and tanh; nothing is allocated or sliced inside the time loop. dtype-generic
(float32 in production, float64 for finite differences).
"""
import numpy as np
from numba import njit

from .activations import FASTMATH, tanh

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
BLOCK = 16  # steps per partial sum (in the arrays' dtype) of the weight gradients


@njit(**JIT)
def rnn_forward(x, W_xhT, bias, W_hhT, W_hoT, b_o, cont, h, o):
    """Fill h (T+1, N, H; row 0 is the given initial state) and o (T, N, H) from x (T, N, I)
    with W_xh^T (I, H), bias (N, H), W_hh^T (H, H), W_ho^T (H, H) and b_o (H)."""
    T, N, H = o.shape
    I = x.shape[2]
    for t in range(T):  # input projection of every step, off the recurrent path
        for n in range(N):
            for j in range(H):
                h[t + 1, n, j] = bias[n, j]
            for i in range(I):
                a = x[t, n, i]
                for j in range(H):
                    h[t + 1, n, j] += W_xhT[i, j] * a
    for t in range(T):
        for n in range(N):
            m = cont[t, n]
            if m != 0:
                for k in range(H):
                    a = h[t, n, k] * m
                    for j in range(H):
                        h[t + 1, n, j] += W_hhT[k, j] * a
            for j in range(H):
                h[t + 1, n, j] = tanh(h[t + 1, n, j])
    for t in range(T):  # output layer: depends on h_t only
        for n in range(N):
            for j in range(H):
                o[t, n, j] = b_o[j]
            for k in range(H):
                a = h[t + 1, n, k]
                for j in range(H):
                    o[t, n, j] += W_hoT[k, j] * a
            for j in range(H):
                o[t, n, j] = tanh(o[t, n, j])


@njit(inline="always", **JIT)
def _parameter_gradients(x, h, cont, dpre_h, dpre_o, dW_xhT, dbias, dW_hhT, dW_hoT, db_o,
                         zero):
    """rnn_backward's weight and bias gradients from dpre_h and dpre_o (inlined there, so
    its code is the same as when it was written in place)."""
    T, N, H = dpre_h.shape
    I = x.shape[2]
    # bulk loops reading dpre_*: partial sums over blocks of BLOCK steps in the arrays'
    # dtype, added into the (float64 in production) accumulators, as kernels.bvlc_lstm does
    part = np.empty((I + 2 * H, H), dpre_h.dtype)
    pbias = np.empty((N, H), dpre_h.dtype)
    pbo = np.empty(H, dpre_h.dtype)
    for t0 in range(0, T, BLOCK):
        part[:] = zero
        pbias[:] = zero
        pbo[:] = zero
        for t in range(t0, min(T, t0 + BLOCK)):
            for n in range(N):
                for j in range(H):
                    pbias[n, j] += dpre_h[t, n, j]
                    pbo[j] += dpre_o[t, n, j]
                for i in range(I):
                    a = x[t, n, i]
                    for j in range(H):
                        part[i, j] += dpre_h[t, n, j] * a
                m = cont[t, n]
                if m != 0:
                    for k in range(H):
                        a = h[t, n, k] * m
                        for j in range(H):
                            part[I + k, j] += dpre_h[t, n, j] * a
                for k in range(H):
                    a = h[t + 1, n, k]
                    for j in range(H):
                        part[I + H + k, j] += dpre_o[t, n, j] * a
        for n in range(N):
            for j in range(H):
                dbias[n, j] += pbias[n, j]
        for j in range(H):
            db_o[j] += pbo[j]
        for i in range(I):
            for j in range(H):
                dW_xhT[i, j] += part[i, j]
        for k in range(H):
            for j in range(H):
                dW_hhT[k, j] += part[I + k, j]
                dW_hoT[k, j] += part[I + H + k, j]


@njit(**JIT)
def rnn_backward(top_diff, x, W_xhT, W_hhT, W_hoT, cont, h, o, dpre_o, dpre_h,
                 dW_xhT, dbias, dW_hhT, dW_hoT, db_o, dx, want_dx, dh_rec):
    """Back-propagate top_diff (T, N, H, the diff on o) through the recurrence.

    dh_rec (N, H) comes in holding the gradient on the final state h_T (zeros when nothing
    uses it) and goes out holding the gradient on the initial state h_0 (cont-scaled).
    dpre_o and dpre_h (T, N, H) receive the pre-activation gradients of the output and the
    hidden layer. Accumulates dW_xh^T (I, H), dbias (N, H: per stream, the caller sums it
    and derives the static-input gradients), dW_hh^T (H, H), dW_ho^T (H, H) and db_o (H);
    writes dx (T, N, I) when want_dx.
    """
    T, N, H = o.shape
    I = x.shape[2]
    zero = dh_rec[0, 0] * 0  # 0 in the arrays' dtype
    for t in range(T):  # output path, independent of the recurrence
        for n in range(N):
            for j in range(H):
                g = o[t, n, j]
                dpre_o[t, n, j] = top_diff[t, n, j] * (1 - g * g)
            for k in range(H):  # dpre_h starts as the gradient on h_t from o_t
                s = zero
                for j in range(H):
                    s += W_hoT[k, j] * dpre_o[t, n, j]
                dpre_h[t, n, k] = s
    for t in range(T - 1, -1, -1):
        for n in range(N):
            for k in range(H):
                g = h[t + 1, n, k]
                dpre_h[t, n, k] = (dpre_h[t, n, k] + dh_rec[n, k]) * (1 - g * g)
        for n in range(N):
            m = cont[t, n]
            if m != 0:
                for k in range(H):
                    s = zero
                    for j in range(H):
                        s += W_hhT[k, j] * dpre_h[t, n, j]
                    dh_rec[n, k] = s * m
            else:
                for k in range(H):
                    dh_rec[n, k] = zero
    _parameter_gradients(x, h, cont, dpre_h, dpre_o, dW_xhT, dbias, dW_hhT, dW_hoT, db_o,
                         zero)
    if want_dx:
        for t in range(T):
            for n in range(N):
                for i in range(I):
                    s = zero
                    for j in range(H):
                        s += W_xhT[i, j] * dpre_h[t, n, j]
                    dx[t, n, i] = s
