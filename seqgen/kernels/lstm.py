"""LSTM recurrence over a whole sequence in one jitted call (gate order i, f, o, g).

Shapes: T steps, N streams, H hidden units, G = 4H. Every array is time-major
(T, N, ...), i.e. row t*N + n of Caffe's (T*N, ...) blobs. `cont[t, n]` is 1 where the
step continues the previous one and 0 where a new sequence starts (h_{t-1}, c_{t-1}
are then treated as zero and no gradient crosses that step). The input projection
x W_x^T + b is folded into the time loop too: at these sizes a BLAS call per layer cost
more than the arithmetic.

Layout for speed: the recurrent weights are used transposed, W_hT (H, G), so that every
inner loop runs over the contiguous 4H gate block as an axpy (no reductions, so it
vectorises without reordering sums); sigmoid/tanh are the branch-free float32 versions of
`activations`; nothing is allocated inside the time loop. The kernels are dtype-generic:
float32 in production, float64 (exact libm activations) for finite-difference checks.
"""
import numpy as np
from numba import njit

from .activations import FASTMATH, sigmoid, tanh

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)


@njit(**JIT)
def lstm_forward(x, W_xT, b, W_hT, cont, h, c, gates, tanh_c):
    """Fill h, c (T+1, N, H), tanh(c) (T, N, H) and activated gates (T, N, G) from the
    input x (T, N, I) with W_x^T (I, G), bias b (G) and W_h^T (H, G).

    Row 0 of h and c holds the initial state (h_0, c_0); step t writes row t+1. A step
    that does not continue drops W_h h_{t-1} and forces f to exactly 0 (Caffe's
    behaviour in both the fork and BVLC), so c_{t-1} is ignored too. Loops index the
    arrays directly (no slicing inside the time loop: views cost reference counting).
    """
    T, N, G = gates.shape
    H = G // 4
    I = x.shape[2]
    zero = b[0] * 0  # 0 in the arrays' dtype
    for t in range(T):
        for n in range(N):
            for j in range(G):
                gates[t, n, j] = b[j]
            for i in range(I):
                a = x[t, n, i]
                for j in range(G):
                    gates[t, n, j] += W_xT[i, j] * a
            go_on = cont[t, n] != 0
            if go_on:
                for k in range(H):
                    a = h[t, n, k]
                    for j in range(G):
                        gates[t, n, j] += W_hT[k, j] * a
            for j in range(3 * H):
                gates[t, n, j] = sigmoid(gates[t, n, j])
            for j in range(3 * H, G):
                gates[t, n, j] = tanh(gates[t, n, j])
            if not go_on:
                for k in range(H):
                    gates[t, n, H + k] = zero
            for k in range(H):
                c[t + 1, n, k] = gates[t, n, H + k] * c[t, n, k] + gates[t, n, k] * gates[t, n, 3 * H + k]
            for k in range(H):
                tanh_c[t, n, k] = tanh(c[t + 1, n, k])
            for k in range(H):
                h[t + 1, n, k] = gates[t, n, 2 * H + k] * tanh_c[t, n, k]


@njit(**JIT)
def lstm_backward(top_diff, x, W_xT, W_hT, cont, h, c, gates, tanh_c, threshold, fork_dwh,
                  dpre, dW_xT, db, dW_hT, dx, want_dx, dh_rec, dc):
    """Back-propagate top_diff (T, N, H) through the recurrence.

    h, c are the (T+1, N, H) buffers of lstm_forward. Writes the gate pre-activation
    gradients into dpre (T, N, G), clipped elementwise to [-threshold, threshold] when
    threshold > 0 (the fork's clipping_threshold; the cell path f*dc uses the unclipped
    dc, as the fork does), and accumulates dW_hT (H, G). dW_h pairs dpre[t, n] with
    h_{t-1}[n] only where the step continues; with fork_dwh it reproduces the fork's CPU
    term instead: every t >= 1 whatever cont says, plus dpre[0, 0] (x) h_0[0] (batch_size
    1 only, checked by the caller). Also accumulates dW_xT (I, G) and db (G), and writes
    dx (T, N, I) when want_dx. dh_rec and dc (N, H) are scratch.
    """
    T, N, G = dpre.shape
    I = x.shape[2]
    H = G // 4
    zero = dpre[0, 0, 0] * 0
    for n in range(N):
        for k in range(H):
            dh_rec[n, k] = zero
            dc[n, k] = zero
    for t in range(T - 1, -1, -1):
        for n in range(N):
            go_on = cont[t, n] != 0
            for k in range(H):
                gi = gates[t, n, k]
                gf = gates[t, n, H + k]
                go = gates[t, n, 2 * H + k]
                gg = gates[t, n, 3 * H + k]
                tc = tanh_c[t, n, k]
                dh = top_diff[t, n, k] + dh_rec[n, k]
                dct = dc[n, k] + dh * go * (1 - tc * tc)
                dpre[t, n, k] = dct * gg * gi * (1 - gi)
                dpre[t, n, H + k] = dct * c[t, n, k] * gf * (1 - gf)
                dpre[t, n, 2 * H + k] = dh * tc * go * (1 - go)
                dpre[t, n, 3 * H + k] = dct * gi * (1 - gg * gg)
                dc[n, k] = gf * dct
            if not go_on:
                for k in range(H):
                    dpre[t, n, H + k] = zero
            if threshold > 0:
                for j in range(G):
                    dpre[t, n, j] = min(max(dpre[t, n, j], -threshold), threshold)
            for k in range(H):
                s = zero
                if go_on:
                    for j in range(G):
                        s += W_hT[k, j] * dpre[t, n, j]
                dh_rec[n, k] = s
            for j in range(G):
                db[j] += dpre[t, n, j]
            for i in range(I):
                a = x[t, n, i]
                for j in range(G):
                    dW_xT[i, j] += dpre[t, n, j] * a
            if want_dx:
                for i in range(I):
                    s = zero
                    for j in range(G):
                        s += W_xT[i, j] * dpre[t, n, j]
                    dx[t, n, i] = s
            if (fork_dwh and (t > 0 or n == 0)) or (not fork_dwh and go_on):
                for k in range(H):
                    a = h[t, n, k]
                    for j in range(G):
                        dW_hT[k, j] += dpre[t, n, j] * a
