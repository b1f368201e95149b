"""Embedding lookup: index check, row gather (forward) and row scatter-add (backward).

`x` holds the indices as float values, flat; `idx` is the int64 buffer they are read into.
Rows are (rows, E) C-contiguous; `b` is empty (size 0) for a layer without bias. An index
of -1 is padding (LRCN's caption files): a zero row that takes no gradient.
"""
import numpy as np
from numba import njit

from .activations import FASTMATH

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)


@njit(**JIT)
def read_indices(x, K, idx):
    """idx[i] = int(x[i]); returns the first position whose value is neither an integer in
    [0, K) nor the padding -1 (NaN and inf included), or -1 when all are."""
    for i in range(x.size):
        v = x[i]
        if v == -1:
            idx[i] = -1
            continue
        if not (v >= 0 and v < K):  # also false for NaN
            return i
        k = np.int64(v)
        if k != v:
            return i
        idx[i] = k
    return -1


@njit(**JIT)
def embed_forward(idx, W, b, top):
    """top[r] = W[idx[r]] (+ b); zeros where idx[r] is the padding -1."""
    E = W.shape[1]
    for r in range(idx.size):
        k = idx[r]
        if k < 0:
            for j in range(E):
                top[r, j] = 0
        elif b.size:
            for j in range(E):
                top[r, j] = W[k, j] + b[j]
        else:
            for j in range(E):
                top[r, j] = W[k, j]


@njit(**JIT)
def embed_backward(idx, dy, dW):
    """dW[idx[r]] += dy[r] in row order (Caffe's loop of axpys, so repeated indices add up
    one after the other, as np.add.at does); padding rows (-1) add nothing."""
    E = dy.shape[1]
    for r in range(idx.size):
        k = idx[r]
        if k < 0:
            continue
        for j in range(E):
            dW[k, j] += dy[r, j]
