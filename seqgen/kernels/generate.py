"""Free-running generation of a stack of LSTM (or RNN) layers + one output projection, in
one call.

The per-step Python path (Net.forward with T = 1) costs tens of microseconds a step; this
kernel runs all steps, all layers and the feedback inside compiled code. Parameters of
the L layers are packed into flat arrays with offsets (numba has no ragged lists):
LSTM layer l has input size I[l], hidden size H[l], W_x^T at wx[ox[l]:...] (I x 4H
row-major), W_h^T at wh[oh[l]:...] (H x 4H), bias at b[ob[l]:...] (4H); the RNN layout is
in rnn_stack_generate. Both products then run as axpys over the contiguous gate block.
"""
import numpy as np
from numba import njit

from .activations import FASTMATH, sigmoid, tanh
from .scalars import U

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
# the four-row axpy must add its rows in order (no reassociation), see _add_product
IN_ORDER = dict(JIT, fastmath=FASTMATH - {"reassoc"})


@njit(**JIT)
def _step_input(x, i, n, feedback, true, prime, out):
    """x[:n] = the input of step i: 0 at i = 0 or without feedback, then the true value
    while priming, then the previous prediction."""
    zero = out[0, 0] * 0
    for k in range(n):
        if i == 0 or not feedback:
            x[k] = zero
        elif i - 1 < prime:
            x[k] = true[i - 1, k]
        else:
            x[k] = out[i - 1, k]


@njit(**JIT)
def _project(y, n, b, ob, w, ow, x, m):
    """y[:n] = b[ob:ob+n] + W x[:m], with W (n x m, row-major) at w[ow:]."""
    for j in range(n):
        s = b[U(ob + j)]
        row = ow + j * m
        for k in range(m):
            s += w[U(row + k)] * x[k]
        y[j] = s


@njit(**IN_ORDER)
def _add_product(y, n, w, ow, h, l, m):
    """y[:n] += W h[l, :m], with W^T (m x n, row-major) at w[ow:] (contiguous axpys, four
    rows of W^T per pass over y: a quarter of the loads and stores of y)."""
    k = 0
    while k + 4 <= m:
        a0, a1, a2, a3 = h[l, k], h[l, k + 1], h[l, k + 2], h[l, k + 3]
        r0 = ow + k * n
        r1, r2, r3 = r0 + n, r0 + 2 * n, r0 + 3 * n
        for j in range(n):
            # added one row after the other, as four separate axpys would: the same
            # rounding as the plain loop, so generation stays bit for bit what it was
            y[j] = y[j] + w[U(r0 + j)] * a0 + w[U(r1 + j)] * a1 \
                + w[U(r2 + j)] * a2 + w[U(r3 + j)] * a3
        k += 4
    for k in range(k, m):  # noqa: B020 (the remainder after the unrolled rows)
        a = h[l, k]
        base = ow + k * n
        for j in range(n):
            y[j] += w[U(base + j)] * a


@njit(**JIT)
def affine_output(x, H, W_out, b_out, out, i):
    """out[i] = W_out x[:H] + b_out (the affine output layer)."""
    for d in range(W_out.shape[0]):
        s = b_out[d]
        for k in range(H):
            s += W_out[d, k] * x[k]
        out[i, d] = s


@njit(**JIT)
def lstm_stack_step(I, H, wx, ox, wh, oh, b, ob, h, c, g, x, first):
    """One time step of the LSTM stack: x[:I[0]] in, the top layer's h out in x[:H[-1]];
    h, c (L, Hmax) hold the state and g (4 Hmax) is scratch. `first` starts from a zero
    state (no recurrent term, forget gate 0), as cont = 0 does."""
    zero = x[0] * 0
    x2 = x.reshape(1, x.shape[0])
    for l in range(I.shape[0]):
        Il, Hl = I[l], H[l]
        G = 4 * Hl
        for j in range(G):
            g[j] = b[U(ob[l] + j)]
        _add_product(g, G, wx, ox[l], x2, 0, Il)
        if not first:
            _add_product(g, G, wh, oh[l], h, l, Hl)
        for j in range(3 * Hl):
            g[j] = sigmoid(g[j])
        for k in range(Hl):  # a loop from 0: LLVM left range(3H, G) scalar, 5x slower
            g[3 * Hl + k] = tanh(g[3 * Hl + k])
        for k in range(Hl):
            f = zero if first else g[Hl + k]
            c[l, k] = f * c[l, k] + g[k] * g[3 * Hl + k]
            h[l, k] = g[2 * Hl + k] * tanh(c[l, k])
        for k in range(Hl):
            x[k] = h[l, k]


@njit(**JIT)
def lstm_stack_generate(I, H, wx, ox, wh, oh, b, ob, W_out, b_out, steps, feedback,
                        true, prime, out):
    """Write `steps` predictions (steps, D) into out; step 0 starts from a zero state.

    Input of step i with feedback: 0 at i = 0, true[i-1] while i - 1 < prime, else
    out[i-1]; without feedback always 0 (the fork's zero-input generator).
    """
    L = I.shape[0]
    Hmax = H.max()
    h = np.zeros((L, Hmax), out.dtype)
    c = np.zeros((L, Hmax), out.dtype)
    g = np.zeros(4 * Hmax, out.dtype)
    x = np.zeros(max(I[0], Hmax), out.dtype)
    for i in range(steps):
        _step_input(x, i, I[0], feedback, true, prime, out)
        lstm_stack_step(I, H, wx, ox, wh, oh, b, ob, h, c, g, x, i == 0)
        affine_output(x, H[L - 1], W_out, b_out, out, i)


@njit(**JIT)
def rnn_stack_generate(I, H, wx, ox, wh, oh, b, ob, wo, bo, W_out, b_out, steps, feedback,
                       true, prime, out):
    """The same for a stack of BVLC RNN layers: h = tanh(W_xh x + b_h + W_hh h_prev),
    o = tanh(W_ho h + b_o) feeds the next layer. Layer l has W_xh at wx[ox[l]:] (H x I),
    W_hh^T and W_ho^T at wh[oh[l]:] and wo[oh[l]:] (H x H), b_h and b_o at b/bo[ob[l]:]."""
    L = I.shape[0]
    Hmax = H.max()
    h = np.zeros((L, Hmax), out.dtype)
    pre = np.zeros(Hmax, out.dtype)
    x = np.zeros(max(I[0], Hmax), out.dtype)
    for i in range(steps):
        _step_input(x, i, I[0], feedback, true, prime, out)
        for l in range(L):
            Il, Hl = I[l], H[l]
            _project(pre, Hl, b, ob[l], wx, ox[l], x, Il)
            if i > 0:
                _add_product(pre, Hl, wh, oh[l], h, l, Hl)
            for j in range(Hl):
                h[l, j] = tanh(pre[j])
            for j in range(Hl):
                pre[j] = bo[ob[l] + j]
            _add_product(pre, Hl, wo, oh[l], h, l, Hl)
            for j in range(Hl):
                x[j] = tanh(pre[j])
        affine_output(x, H[L - 1], W_out, b_out, out, i)
