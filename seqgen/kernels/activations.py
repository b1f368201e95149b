"""Sigmoid and tanh that LLVM can vectorise (float32), exact libm calls for float64.

numba calls libm's expf/tanhf one element at a time (there is no SVML in PyPI's llvmlite),
and those calls were most of the LSTM's time. For float32 we evaluate exp with Cephes'
range reduction and degree-6 polynomial and build 2^n from its exponent bits: branch-free,
so whole gate blocks vectorise. Measured against float64 exp over [-87, 88]: at most 3e-7
relative (about 2.5 float32 ulps); tanh uses its Taylor series below |x| = 0.55, so it keeps
full relative precision near 0. float64 (used by the finite-difference checks) stays exact.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

FASTMATH = {"contract", "reassoc", "nsz"}  # no nnan/ninf: NaN must still propagate


@intrinsic
def _bits_to_f32(typingctx, value):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


def _f32(v):
    return np.float32(v)


def exp(x):
    """exp(x); see the module docstring."""
    return math.exp(x)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def tanh(x):
    return math.tanh(x)


def _is_f32(x):
    return isinstance(x, types.Float) and x.bitwidth == 32


@overload(exp, fastmath=FASTMATH)
def _exp(x):
    if _is_f32(x):
        lo, hi = np.float32(-87.0), np.float32(88.0)
        log2e, half = np.float32(1.44269504088896341), np.float32(0.5)
        c1, c2 = np.float32(0.693359375), np.float32(-2.12194440e-4)
        p0, p1, p2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)  # noqa: E501 (one polynomial a line)
        p3, p4, p5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)  # noqa: E501 (one polynomial a line)
        one = np.float32(1.0)

        def impl(x):
            v = min(max(x, lo), hi)
            fx = np.floor(v * log2e + half)
            r = v - fx * c1 - fx * c2
            y = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + one
            scale = _bits_to_f32((np.int32(fx) + np.int32(127)) << np.int32(23))
            out = y * scale
            return out if x == x else x  # keep NaN
        return impl
    return lambda x: math.exp(x)


@overload(sigmoid, fastmath=FASTMATH)
def _sigmoid(x):
    if _is_f32(x):
        one = np.float32(1.0)

        def impl(x):
            return one / (one + exp(-x))
        return impl
    return lambda x: 1.0 / (1.0 + math.exp(-x))


# Taylor coefficients of tanh(x) / x in powers of x^2 (exact rationals, rounded)
_T = [1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
      21844.0 / 6081075, -929569.0 / 638512875, 6404582.0 / 10854718875]


@overload(tanh, fastmath=FASTMATH)
def _tanh(x):
    if _is_f32(x):
        t0, t1, t2, t3, t4, t5, t6, t7, t8 = (np.float32(c) for c in _T)
        one, two, small = np.float32(1.0), np.float32(2.0), np.float32(0.55)

        def impl(x):
            a = abs(x)
            e = exp(-two * a)
            big = (one - e) / (one + e)
            s = x * x
            poly = x * (t0 + s * (t1 + s * (t2 + s * (t3 + s * (t4 + s * (t5 + s * (t6 + s * (t7 + s * t8))))))))  # noqa: E501 (one polynomial a line)
            r = big if x >= 0 else -big
            return poly if a < small else r
        return impl
    return lambda x: math.tanh(x)
