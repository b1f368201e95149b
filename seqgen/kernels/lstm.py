"""LSTM recurrence over a whole sequence in one jitted call (gate order i, f, o, g).

Shapes: T steps, N streams, H hidden units, G = 4H. Every array is time-major
(T, N, ...), i.e. row t*N + n of Caffe's (T*N, ...) blobs. `cont[t, n]` is 1 where the
step continues the previous one and 0 where a new sequence starts (h_{t-1}, c_{t-1}
are then treated as zero and no gradient crosses that step). The input projection
x W_x^T + b is done by the caller with one matrix product; these kernels own only the
part that must walk the time axis.

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
def lstm_forward(xproj, W_hT, cont, h0, c0, h, c, gates, tanh_c):
    """Fill h, c, tanh(c) (T, N, H) and activated gates (T, N, G) from xproj (T, N, G).

    A step that does not continue drops W_h h_{t-1} and forces f to exactly 0
    (Caffe's behaviour in both the fork and BVLC), so c_{t-1} is ignored too.
    """
    T, N, G = xproj.shape
    H = G // 4
    zero = xproj[0, 0, 0] * 0  # 0 in the arrays' dtype
    for t in range(T):
        for n in range(N):
            hp = h0[n] if t == 0 else h[t - 1, n]
            cp = c0[n] if t == 0 else c[t - 1, n]
            g = gates[t, n]
            x = xproj[t, n]
            for j in range(G):
                g[j] = x[j]
            go_on = cont[t, n] != 0
            if go_on:
                for k in range(H):
                    a = hp[k]
                    w = W_hT[k]
                    for j in range(G):
                        g[j] += w[j] * a
            for j in range(3 * H):
                g[j] = sigmoid(g[j])
            for j in range(3 * H, G):
                g[j] = tanh(g[j])
            if not go_on:
                for k in range(H):
                    g[H + k] = zero
            ct = c[t, n]
            for k in range(H):
                ct[k] = g[H + k] * cp[k] + g[k] * g[3 * H + k]
            tc = tanh_c[t, n]
            for k in range(H):
                tc[k] = tanh(ct[k])
            ht = h[t, n]
            for k in range(H):
                ht[k] = g[2 * H + k] * tc[k]


@njit(**JIT)
def lstm_backward(top_diff, W_hT, cont, h0, c0, h, c, gates, tanh_c, threshold, fork_dwh,
                  dpre, dW_hT, dh_rec, dc):
    """Back-propagate top_diff (T, N, H) through the recurrence.

    Writes the gate pre-activation gradients into dpre (T, N, G), clipped elementwise to
    [-threshold, threshold] when threshold > 0 (the fork's clipping_threshold; the cell
    path f*dc uses the unclipped dc, as the fork does), and accumulates dW_hT (H, G).
    dW_h pairs dpre[t, n] with h_{t-1}[n] only where the step continues; with
    fork_dwh it reproduces the fork's CPU term instead: every t >= 1 whatever cont says,
    plus dpre[0, 0] (x) h0[0] (batch_size 1 only, checked by the caller).
    dh_rec and dc (N, H) are scratch.
    """
    T, N, G = dpre.shape
    H = G // 4
    zero = dpre[0, 0, 0] * 0
    for n in range(N):
        for k in range(H):
            dh_rec[n, k] = zero
            dc[n, k] = zero
    for t in range(T - 1, -1, -1):
        for n in range(N):
            hp = h0[n] if t == 0 else h[t - 1, n]
            cp = c0[n] if t == 0 else c[t - 1, n]
            g = gates[t, n]
            d = dpre[t, n]
            tc = tanh_c[t, n]
            td = top_diff[t, n]
            go_on = cont[t, n] != 0
            dhr = dh_rec[n]
            dcn = dc[n]
            for k in range(H):
                gi = g[k]
                gf = g[H + k]
                go = g[2 * H + k]
                gg = g[3 * H + k]
                dh = td[k] + dhr[k]
                dct = dcn[k] + dh * go * (1 - tc[k] * tc[k])
                d[k] = dct * gg * gi * (1 - gi)
                d[H + k] = dct * cp[k] * gf * (1 - gf)
                d[2 * H + k] = dh * tc[k] * go * (1 - go)
                d[3 * H + k] = dct * gi * (1 - gg * gg)
                dcn[k] = gf * dct
            if not go_on:
                for k in range(H):
                    d[H + k] = zero
            if threshold > 0:
                for j in range(G):
                    d[j] = min(max(d[j], -threshold), threshold)
            if go_on:
                for k in range(H):
                    w = W_hT[k]
                    s = zero
                    for j in range(G):
                        s += w[j] * d[j]
                    dhr[k] = s
            else:
                for k in range(H):
                    dhr[k] = zero
            if (fork_dwh and (t > 0 or n == 0)) or (not fork_dwh and go_on):
                for k in range(H):
                    a = hp[k]
                    acc = dW_hT[k]
                    for j in range(G):
                        acc[j] += d[j] * a
