"""Token sampling from an Embed -> LSTM stack -> InnerProduct language model, in one call.

The prime is fed one token at a time from a zero state, then every step draws the next
token from softmax(logits / temperature) (char-rnn's convention), optionally restricted
to the logits >= the top_k-th largest, and feeds it back. The LSTM layers use the flat
layout of `generate.lstm_stack_step`; the embedding table E is (V, E_dim).

M streams run at once (`lstm_stack_sample_rows`): each layer's gate products run in
register tiles of 4 streams by 32 gate columns, every column block of the weights staying
in cache while all the streams pass it. Each element is still the sum `_add_product`
computes for one stream: its old value (the bias), then the x terms, then the h terms,
added one after the other in k order (reassociation is off in both, so each
multiply-add rounds alike), so a stream's ids do not depend on how many run beside it: a
stream alone (`lstm_stack_sample`) draws what it draws in a batch (tests/test_decoding.py).

The draw rule (shared with the numpy path in generation/sample.py, which must match it):
only the first n logits count, n being the run's vocabulary size: the net may have more
outputs than the vocabulary has tokens, and an id without a token must never be drawn
(it has no text). Among those, in float64, w_j = exp((l_j - max l) / temperature) for
the kept j (0 elsewhere, and 0 for every j >= n),
c = cumsum(w) in index order, and the token is the first j with c_j > u * c[-1] (the last
kept j if rounding leaves none). Nucleus sampling (top_p < 1) then keeps, of those, the
smallest set of the most likely whose weights sum to at least top_p of their total (summed
from the largest down), and every token exactly as likely as the least likely kept one
(ties are kept, as top_k keeps ties); `argmax` takes the first index of the largest of the
n logits.
The draw runs without fastmath so that the sums are the sequential ones numpy computes.
numba's cache (cache=True) checks only this file's time stamp: after editing the helpers
imported from generate.py, delete seqgen/kernels/__pycache__/sample.* (or touch this file).
"""
import math

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .activations import sigmoid, tanh
from .generate import IN_ORDER, JIT, _add_product, affine_output, lstm_stack_step
from .scalars import U

EXACT = dict(JIT, fastmath=False)


@njit(**EXACT)
def _nucleus(logits, n, temperature, top, cut, top_p, w):
    """The weight a kept logit must reach for top_p: the smallest of the most likely weights
    whose sum (largest first) reaches top_p of all kept weights; w is scratch."""
    m = 0
    for j in range(n):
        if logits[j] >= cut:
            w[m] = math.exp((np.float64(logits[j]) - np.float64(top)) / temperature)
            m += 1
    q = np.sort(w[:m])[::-1]
    total = 0.0
    for r in range(m):
        total += q[r]
    target = top_p * total
    s = 0.0
    for r in range(m):
        s += q[r]
        if s >= target:
            return q[r]
    return q[m - 1]


@njit(**EXACT)
def _weights(logits, n, temperature, top_k, top_p, w):
    """w = the cumulative float64 weights exp((l - max) / T) of the kept logits among the
    first n (in place); returns the index of the last kept logit."""
    V = logits.shape[0]
    top = logits[:n].max()
    cut = -np.inf
    if 0 < top_k < n:
        cut = np.sort(logits[:n])[n - top_k]
    floor = 0.0
    if top_p < 1.0:
        floor = _nucleus(logits, n, temperature, top, cut, top_p, w)
    last = 0
    s = 0.0
    for j in range(V):
        if j < n and logits[j] >= cut:
            e = math.exp((np.float64(logits[j]) - np.float64(top)) / temperature)
            if e >= floor:
                s += e
                last = j
        w[j] = s
    return last


@njit(**EXACT)
def draw(logits, n, temperature, top_k, top_p, argmax, u, w):
    """The token (< n) drawn from logits (V,) with the uniform u in [0, 1); w (V,) float64
    is scratch and holds the cumulative weights afterwards."""
    if argmax:
        return np.argmax(logits[:n])
    last = _weights(logits, n, temperature, top_k, top_p, w)
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
                      uniforms, n, temperature, top_k, top_p, argmax, out, first_probs):
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
        out[i] = draw(logits[0], n, temperature, top_k, top_p, argmax, uniforms[i], w)
        if i == 0:
            _probabilities(w, out[0], argmax, first_probs)


# -- M streams at once ----------------------------------------------------------------------

#: a register tile of the rows kernel: 4 streams by 32 gate columns (eight AVX-512 or
#: sixteen AVX2 accumulators)
TILE_ROWS, TILE_COLS = 4, 32


@intrinsic
def _tile_registers(typingctx, dtype):
    """A TILE_ROWS x TILE_COLS scratch on the stack (a pointer), which LLVM keeps in
    registers once the tile's loops over it are unrolled (as kernels/panels.py does)."""
    sig = types.CPointer(dtype.dtype)(dtype)

    def codegen(context, builder, signature, args):
        size = context.get_constant(types.intp, TILE_ROWS * TILE_COLS)
        return cgutils.alloca_once(builder, context.get_value_type(dtype.dtype), size=size)

    return sig, codegen


@njit(inline="always", **IN_ORDER)
def _tile(acc, G, r, j0, n, w, ow, A, m):
    """G[r:r+4, j0:j0+32] += A[r:r+4, :m] W^T[:, j0:j0+32], W^T (m x n) at w[ow:], each
    element summed in k order from its old value: `_add_product`'s arithmetic."""
    for c in range(TILE_COLS):
        acc[c] = G[r, j0 + c]
        acc[TILE_COLS + c] = G[r + 1, j0 + c]
        acc[2 * TILE_COLS + c] = G[r + 2, j0 + c]
        acc[3 * TILE_COLS + c] = G[r + 3, j0 + c]
    for k in range(m):
        a0, a1, a2, a3 = A[r, k], A[r + 1, k], A[r + 2, k], A[r + 3, k]
        base = ow + k * n + j0
        for c in range(TILE_COLS):
            p = w[U(base + c)]
            acc[c] = acc[c] + p * a0
            acc[TILE_COLS + c] = acc[TILE_COLS + c] + p * a1
            acc[2 * TILE_COLS + c] = acc[2 * TILE_COLS + c] + p * a2
            acc[3 * TILE_COLS + c] = acc[3 * TILE_COLS + c] + p * a3
    for c in range(TILE_COLS):
        G[r, j0 + c] = acc[c]
        G[r + 1, j0 + c] = acc[TILE_COLS + c]
        G[r + 2, j0 + c] = acc[2 * TILE_COLS + c]
        G[r + 3, j0 + c] = acc[3 * TILE_COLS + c]


@njit(**IN_ORDER)
def _add_rows(G, M, n, w, ow, A, m):
    """G[:M, :n] += A[:M, :m] W^T: four rows by 32 columns at a time (each column block of
    W^T stays in cache while every group of rows passes it), the rest one row at a time
    (`_add_product`): every element gets the same arithmetic."""
    groups = M // TILE_ROWS * TILE_ROWS
    acc = _tile_registers(G.dtype)
    j0 = 0
    while j0 + TILE_COLS <= n:
        for r in range(0, groups, TILE_ROWS):
            _tile(acc, G, r, j0, n, w, ow, A, m)
        j0 += TILE_COLS
    for r in range(groups):
        for j in range(j0, n):
            s = G[r, j]
            for k in range(m):
                s = s + w[U(ow + k * n + j)] * A[r, k]
            G[r, j] = s
    for r in range(groups, M):
        _add_product(G[r], n, w, ow, A, r, m)


@njit(**JIT)
def rows_step(I, H, wx, ox, wh, oh, b, ob, h, c, G, X, M, first):
    """One time step of the LSTM stack for rows 0..M-1: X[:M, :I[0]] in, the top layer's h
    out in X[:M, :H[-1]]; h, c (L, rows, Hmax) hold the states, G (rows, 4 Hmax) is scratch.
    Row by row the arithmetic of `generate.lstm_stack_step`."""
    zero = X[0, 0] * 0
    for l in range(I.shape[0]):
        Il, Hl = I[l], H[l]
        for r in range(M):
            for j in range(4 * Hl):
                G[r, j] = b[U(ob[l] + j)]
        _add_rows(G, M, 4 * Hl, wx, ox[l], X, Il)
        if not first:
            _add_rows(G, M, 4 * Hl, wh, oh[l], h[l], Hl)
        for r in range(M):
            g = G[r]
            for j in range(3 * Hl):
                g[j] = sigmoid(g[j])
            for k in range(Hl):
                g[3 * Hl + k] = tanh(g[3 * Hl + k])
            for k in range(Hl):
                f = zero if first else g[Hl + k]
                c[l, r, k] = f * c[l, r, k] + g[k] * g[3 * Hl + k]
                h[l, r, k] = g[2 * Hl + k] * tanh(c[l, r, k])
            for k in range(Hl):
                X[r, k] = h[l, r, k]


@njit(**JIT)
def rows_affine(I, H, W_out, b_out, X, M, logits):
    """logits[:M] (M, V) = the output layer over the top layer's h in X[:M]."""
    for r in range(M):
        affine_output(X[r], H[I.shape[0] - 1], W_out, b_out, logits, r)


@njit(**JIT)
def rows_logits(table, table_b, I, H, wx, ox, wh, oh, b, ob, W_out, b_out, tokens, h, c, G,
                X, logits):
    """Feed tokens (M,) to rows 0..M-1 of the stack (states h, c, after at least one
    step) and write their logits (M, V): one step of every stream, for beam search."""
    M = tokens.shape[0]
    for r in range(M):
        _feed(table, table_b, tokens[r], X[r])
    rows_step(I, H, wx, ox, wh, oh, b, ob, h, c, G, X, M, False)
    rows_affine(I, H, W_out, b_out, X, M, logits)


@njit(**JIT)
def rows_state(table, I, H, M):
    """Zeroed states h, c (L, M, Hmax) and scratch G (M, 4 Hmax), X (M, max(I0, Hmax))."""
    L, Hmax = I.shape[0], H.max()
    h = np.zeros((L, M, Hmax), table.dtype)
    c = np.zeros((L, M, Hmax), table.dtype)
    G = np.zeros((M, 4 * Hmax), table.dtype)
    X = np.zeros((M, max(I[0], Hmax)), table.dtype)
    return h, c, G, X


@njit(**JIT)
def prime_rows(table, table_b, I, H, wx, ox, wh, oh, b, ob, prime, M):
    """States (h, c, G, X) of M rows that have all read the prime: it runs on one row,
    copied to the others (a row's arithmetic does not depend on its neighbours)."""
    h, c, G, X = rows_state(table, I, H, M)
    for i in range(prime.shape[0]):
        _feed(table, table_b, prime[i], X[0])
        rows_step(I, H, wx, ox, wh, oh, b, ob, h, c, G, X, 1, i == 0)
    for r in range(1, M):
        h[:, r] = h[:, 0]
        c[:, r] = c[:, 0]
        X[r] = X[0]
    return h, c, G, X


@njit(**JIT)
def lstm_stack_sample_rows(table, table_b, I, H, wx, ox, wh, oh, b, ob, W_out, b_out,
                           prime, uniforms, n, temperature, top_k, top_p, argmax, out,
                           first_probs):
    """M streams after the same prime: out (M, S) receives stream r's ids drawn with
    uniforms[r] (M, S); first_probs (V,) the distribution of the first draw (the same for
    every stream)."""
    M, S = out.shape
    V = W_out.shape[0]
    L = I.shape[0]
    h, c, G, X = prime_rows(table, table_b, I, H, wx, ox, wh, oh, b, ob, prime, M)
    logits = np.zeros((M, V), table.dtype)
    w = np.zeros(V, np.float64)
    for i in range(S):
        if i > 0:
            for r in range(M):
                _feed(table, table_b, out[r, i - 1], X[r])
            rows_step(I, H, wx, ox, wh, oh, b, ob, h, c, G, X, M, False)
        for r in range(M):
            affine_output(X[r], H[L - 1], W_out, b_out, logits, r)
            out[r, i] = draw(logits[r], n, temperature, top_k, top_p, argmax,
                             uniforms[r, i], w)
            if i == 0 and r == 0:
                _probabilities(w, out[0, 0], argmax, first_probs)
