"""Token sampling from an Embed -> LSTM stack -> InnerProduct language model, in one call.

The prime is fed one token at a time from a zero state, then every step draws the next
token from softmax(logits / temperature) (char-rnn's convention), optionally restricted
to the logits >= the top_k-th largest, and feeds it back. The LSTM layers use the flat
layout of `generate.lstm_stack_step`; the embedding table E is (V, E_dim).

The draw rule (shared with the numpy path in generation/sample.py, which must match it):
only the first n logits count, n being the run's vocabulary size: the net may have more
outputs than the vocabulary has tokens, and an id without a token must never be drawn
(it has no text). Among those, in float64, w_j = exp((l_j - max l) / temperature) for
the kept j (0 elsewhere, and 0 for every j >= n),
c = cumsum(w) in index order, and the token is the first j with c_j > u * c[-1] (the last
kept j if rounding leaves none); `argmax` takes the first index of the largest of the n logits.
The draw runs without fastmath so that the sums are the sequential ones numpy computes.
numba's cache (cache=True) checks only this file's time stamp: after editing the helpers
imported from generate.py, delete seqgen/kernels/__pycache__/sample.* (or touch this file).
"""
import math

import numpy as np
from numba import njit

from .generate import JIT, affine_output, lstm_stack_step

EXACT = dict(JIT, fastmath=False)


@njit(**EXACT)
def _weights(logits, n, temperature, top_k, w):
    """w = the unnormalised float64 weights exp((l - max) / T) of the kept logits among
    the first n; sets the cumulative sum in place and returns the index of the last kept
    logit."""
    V = logits.shape[0]
    top = logits[:n].max()
    cut = -np.inf
    if 0 < top_k < n:
        cut = np.sort(logits[:n])[n - top_k]
    last = 0
    s = 0.0
    for j in range(V):
        if j < n and logits[j] >= cut:
            s += math.exp((np.float64(logits[j]) - np.float64(top)) / temperature)
            last = j
        w[j] = s
    return last


@njit(**EXACT)
def draw(logits, n, temperature, top_k, argmax, u, w):
    """The token (< n) drawn from logits (V,) with the uniform u in [0, 1); w (V,) float64
    is scratch and holds the cumulative weights afterwards."""
    if argmax:
        return np.argmax(logits[:n])
    last = _weights(logits, n, temperature, top_k, w)
    target = u * w[w.shape[0] - 1]
    for j in range(w.shape[0]):
        if w[j] > target:
            return j
    return last


@njit(**EXACT)
def _probabilities(w, token, argmax, probs):
    """probs = the distribution the draw used: the normalised increments of w, or one-hot."""
    prev = 0.0
    for j in range(w.shape[0]):
        probs[j] = 0.0 if argmax else (w[j] - prev) / w[w.shape[0] - 1]
        prev = w[j]
    if argmax:
        probs[token] = 1.0


@njit(**JIT)
def _feed(table, table_b, token, x):
    """x[:E] = the embedding of token (row of the table plus its bias)."""
    for k in range(table.shape[1]):
        x[k] = table[token, k] + table_b[k]


@njit(**JIT)
def lstm_stack_sample(table, table_b, I, H, wx, ox, wh, oh, b, ob, W_out, b_out, prime,
                      uniforms, n, temperature, top_k, argmax, out, first_probs):
    """Feed prime (P >= 1 ids), then write out.shape[0] drawn ids (each < n, the
    vocabulary's size) into out, drawing step i with uniforms[i]; first_probs (V,) receives
    the distribution of the first draw."""
    L = I.shape[0]
    Hmax = H.max()
    V = W_out.shape[0]
    h = np.zeros((L, Hmax), table.dtype)
    c = np.zeros((L, Hmax), table.dtype)
    g = np.zeros(4 * Hmax, table.dtype)
    x = np.zeros(max(I[0], Hmax), table.dtype)
    logits = np.zeros((1, V), table.dtype)
    w = np.zeros(V, np.float64)
    for i in range(prime.shape[0]):
        _feed(table, table_b, prime[i], x)
        lstm_stack_step(I, H, wx, ox, wh, oh, b, ob, h, c, g, x, i == 0)
    for i in range(out.shape[0]):
        if i > 0:
            _feed(table, table_b, out[i - 1], x)
            lstm_stack_step(I, H, wx, ox, wh, oh, b, ob, h, c, g, x, False)
        affine_output(x, H[L - 1], W_out, b_out, logits, 0)
        out[i] = draw(logits[0], n, temperature, top_k, argmax, uniforms[i], w)
        if i == 0:
            _probabilities(w, out[0], argmax, first_probs)
