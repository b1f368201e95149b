"""LSTM recurrence over a whole sequence in one jitted call (gate order i, f, o, g).

Shapes: T steps, N streams, H hidden units, G = 4H. Every array is time-major
(T, N, ...), i.e. row t*N + n of Caffe's (T*N, ...) blobs. `cont[t, n]` is 1 where the
step continues the previous one and 0 where a new sequence starts (h_{t-1}, c_{t-1}
are then treated as zero and no gradient crosses that step). The input projection
x W_x^T + b is done by the caller with one matrix product; these kernels own only the
part that must walk the time axis. They are dtype-generic: float32 in production,
float64 for finite-difference checks.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@njit(cache=True)
def lstm_forward(xproj, W_h, cont, h0, c0, h, c, gates):
    """Fill h, c (T, N, H) and activated gates (T, N, G) from xproj (T, N, G).

    A step that does not continue drops W_h h_{t-1} and forces f to exactly 0
    (Caffe's behaviour in both the fork and BVLC), so c_{t-1} is ignored too.
    """
    T, N, G = xproj.shape
    H = G // 4
    for t in range(T):
        for n in range(N):
            hp = h0[n] if t == 0 else h[t - 1, n]
            cp = c0[n] if t == 0 else c[t - 1, n]
            g = gates[t, n]
            if cont[t, n]:
                for j in range(G):
                    s = xproj[t, n, j]
                    for k in range(H):
                        s += W_h[j, k] * hp[k]
                    g[j] = s
            else:
                for j in range(G):
                    g[j] = xproj[t, n, j]
            for k in range(H):
                gi = _sigmoid(g[k])
                gf = _sigmoid(g[H + k]) if cont[t, n] else g[H + k] * 0
                go = _sigmoid(g[2 * H + k])
                gg = np.tanh(g[3 * H + k])
                g[k] = gi
                g[H + k] = gf
                g[2 * H + k] = go
                g[3 * H + k] = gg
                ct = gf * cp[k] + gi * gg
                c[t, n, k] = ct
                h[t, n, k] = go * np.tanh(ct)


@njit(cache=True)
def lstm_backward(top_diff, W_h, cont, h0, c0, h, c, gates, threshold, fork_dwh,
                  dpre, dW_h):
    """Back-propagate top_diff (T, N, H) through the recurrence.

    Writes the gate pre-activation gradients into dpre (T, N, G), clipped elementwise to
    [-threshold, threshold] when threshold > 0 (the fork's clipping_threshold; the cell
    path f*dc uses the unclipped dc, as the fork does), and accumulates dW_h (G, H).
    dW_h pairs dpre[t, n] with h_{t-1}[n] only where the step continues; with
    fork_dwh it reproduces the fork's CPU term instead: every t >= 1 whatever cont says,
    plus dpre[0, 0] (x) h0[0] (batch_size 1 only, checked by the caller).
    """
    T, N, G = dpre.shape
    H = G // 4
    dh_rec = np.zeros_like(h0)
    dc = np.zeros_like(c0)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            hp = h0[n] if t == 0 else h[t - 1, n]
            cp = c0[n] if t == 0 else c[t - 1, n]
            g = gates[t, n]
            d = dpre[t, n]
            for k in range(H):
                gi = g[k]
                gf = g[H + k]
                go = g[2 * H + k]
                gg = g[3 * H + k]
                tc = np.tanh(c[t, n, k])
                dh = top_diff[t, n, k] + dh_rec[n, k]
                dct = dc[n, k] + dh * go * (1 - tc * tc)
                d[k] = dct * gg * gi * (1 - gi)
                d[H + k] = dct * cp[k] * gf * (1 - gf) if cont[t, n] else dct * 0
                d[2 * H + k] = dh * tc * go * (1 - go)
                d[3 * H + k] = dct * gi * (1 - gg * gg)
                dc[n, k] = gf * dct
            if threshold > 0:
                for j in range(G):
                    if d[j] > threshold:
                        d[j] = threshold
                    elif d[j] < -threshold:
                        d[j] = -threshold
            for k in range(H):
                dh_rec[n, k] = 0
            if cont[t, n]:
                for j in range(G):
                    dj = d[j]
                    for k in range(H):
                        dh_rec[n, k] += W_h[j, k] * dj
            if fork_dwh:
                if t > 0 or n == 0:
                    for j in range(G):
                        for k in range(H):
                            dW_h[j, k] += d[j] * hp[k]
            elif cont[t, n]:
                for j in range(G):
                    for k in range(H):
                        dW_h[j, k] += d[j] * hp[k]
