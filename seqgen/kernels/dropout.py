"""Dropout's mask applied from the uniform draws: out = x * (u >= ratio) * scale.

`u` holds the float64 draws in [0, 1) the layer made for this forward; keeping them (not a
mask) lets the generator fill a kept buffer. Caffe's order x * mask * scale is kept, so a
dropped inf or NaN still gives NaN. No fastmath: the same roundings as numpy.
"""
from numba import njit

from .scalars import typed

JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**JIT)
def apply_mask(x, u, ratio, scale, out):
    """out = x * (u >= ratio) * scale elementwise over flat arrays (out may be x)."""
    one, zero = typed(x, 1), typed(x, 0)
    for i in range(x.size):
        m = one if u[i] >= ratio else zero
        out[i] = x[i] * m * scale
