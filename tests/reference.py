"""Float64 numpy references of the recurrent layers' forward equations, for the tests to
compare seqgen with: BVLC's LSTM and RNN (see seqgen/layers/recurrent.py). The fork's Lstm
is the LSTM with cont = (clip != 0)."""
import numpy as np


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _states(T, h0):
    """A (T + 1, N, H) float64 state buffer whose row 0 is the initial state h0."""
    states = np.zeros((T + 1,) + np.shape(h0))
    states[0] = h0
    return states


def lstm_forward(x, cont, W_x, b, W_h, h0, c0, static=0):
    """BVLC's LSTM over x (T, N, I) with cont (T, N), from states h0, c0 (N, H); `static`
    is the x_static term W_xc_static x_static (N, 4H), added at every step.

    Returns (h, c, gates): the states (T + 1, N, H) with row 0 the initial one, and per
    step (m, i, s, f, o, g): cont as (N, 1), the gates, s the forget gate's sigmoid before
    cont scales it into f (what a backward pass needs)."""
    T, H = len(x), W_h.shape[1]
    cont = np.asarray(cont, np.float64)
    h, c, gates = _states(T, h0), _states(T, c0), []
    for t in range(T):
        m = cont[t][:, None]
        G = x[t] @ W_x.T + b + static + (m * h[t]) @ W_h.T
        i, s, o = sigmoid(G[:, :H]), sigmoid(G[:, H:2 * H]), sigmoid(G[:, 2 * H:3 * H])
        g = np.tanh(G[:, 3 * H:])
        f = np.where(m == 0, 0.0, m * s)
        c[t + 1] = f * c[t] + i * g
        h[t + 1] = o * np.tanh(c[t + 1])
        gates.append((m, i, s, f, o, g))
    return h, c, gates


def rnn_forward(x, cont, W_xh, b_h, W_hh, W_ho, b_o, h0, static=0):
    """BVLC's RNN over x (T, N, I) with cont (T, N), from h0 (N, H); `static` is the
    x_static term W_xh_static x_static (N, H). Returns (h (T + 1, N, H) with row 0 the
    initial state, o (T, N, H))."""
    T = len(x)
    cont = np.asarray(cont, np.float64)
    h, o = _states(T, h0), np.zeros((T,) + np.shape(h0))
    for t in range(T):
        h[t + 1] = np.tanh(x[t] @ W_xh.T + b_h + static + (cont[t][:, None] * h[t]) @ W_hh.T)
        o[t] = np.tanh(h[t + 1] @ W_ho.T + b_o)
    return h, o
