"""Reductions over whole arrays: column sums into a gradient, the float64 sum of squares
and the finiteness check the solver makes every iteration."""
import numpy as np
from numba import njit

from .activations import FASTMATH

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)


@njit(**JIT)
def add_column_sums(a, acc, out):
    """out += a.sum(axis=0) for a 2-D `a`, summed into `acc` first, row after row as numpy's
    sum(axis=0) does (so the bits are numpy's); nothing changes for a without rows."""
    R, C = a.shape
    if R == 0:
        return
    for j in range(C):
        acc[j] = a[0, j]
    for r in range(1, R):
        for j in range(C):
            acc[j] += a[r, j]
    for j in range(C):
        out[j] += acc[j]
