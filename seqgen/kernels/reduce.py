"""Reductions over whole arrays: column sums into a gradient, the float64 sum of squares
and the finiteness check the solver makes every iteration."""
import numpy as np
from numba import njit

from .activations import FASTMATH
from .scalars import typed

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


@njit(**JIT)
def sum_squares(a):
    """The sum of a's squares, accumulated in float64."""
    s = 0.0
    for i in range(a.size):
        v = np.float64(a[i])
        s += v * v
    return s


@njit(**JIT)
def all_finite(a):
    """No NaN or inf in a (a branch-free pass: x * 0 is NaN exactly for those)."""
    zero = typed(a, 0)
    acc = zero
    for i in range(a.size):
        acc += a[i] * zero
    return acc == zero
