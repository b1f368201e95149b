"""Reductions the solver makes over all parameters every iteration: the float64 sum of
squares (clip_gradients' norm) and the finiteness check."""
import numpy as np
from numba import njit

from .activations import FASTMATH
from .scalars import typed

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)


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
