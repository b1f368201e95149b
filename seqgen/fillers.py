"""Caffe's weight fillers (FillerParameter, include/caffe/filler.hpp), drawn from one
seedable generator.

Semantics follow Caffe's fillers: the distributions, the fans of xavier/msra (fan_in =
count / num, fan_out = count / channels, with Caffe's legacy num = shape[0] and channels =
shape[1], 1 for a missing axis), the sparse gaussian (each value kept with probability
sparse / shape[0]), positive_unitball (rows along axis 0 sum to 1) and bilinear, plus
Caffe's CHECKs as errors. The random numbers themselves are numpy's, not Caffe's
(boost mt19937): a seed repeats a seqgen run, not a Caffe run.
"""
import contextlib
import math

import numpy as np

from .errors import SeqgenError

_rng = np.random.default_rng()

KNOWN = ("constant", "uniform", "gaussian", "xavier", "msra", "positive_unitball", "bilinear")
f32 = np.float32


def seed(value):
    """Make fills repeatable (the solver's random_seed); a negative value means 'random'."""
    global _rng
    _rng = np.random.default_rng(None if value is None or value < 0 else int(value))


@contextlib.contextmanager
def seeded(value):
    """Fills from a generator seeded with `value` inside the block; the shared one, and the
    draws layers such as Dropout make from it, carry on afterwards as if untouched."""
    global _rng
    saved = _rng
    seed(value)
    try:
        yield
    finally:
        _rng = saved


def generator():
    """The shared random generator (seeded by the solver's random_seed), for layers that
    draw at run time such as Dropout."""
    return _rng


def _legacy(shape, axis):
    """Caffe's Blob::LegacyShape: the axis' size, 1 when the blob has fewer axes."""
    return shape[axis] if axis < len(shape) else 1


def fans(shape):
    """(fan_in, fan_out) as Caffe's xavier/msra fillers compute them (integer division)."""
    count = int(np.prod(shape, dtype=np.int64))
    num, channels = _legacy(shape, 0), _legacy(shape, 1)
    return (count // num if num else 0), (count // channels if channels else 0)


def _scale_n(filler, shape, where):
    fan_in, fan_out = fans(shape)
    norm = filler.variance_norm
    # VarianceNorm: FAN_IN = 0, FAN_OUT = 1, AVERAGE = 2 (Caffe: Dtype n)
    n = {0: f32(fan_in), 1: f32(fan_out), 2: f32(fan_in + fan_out) / f32(2)}[norm]
    if n <= 0:
        raise SeqgenError(f"{where}: {filler.type} filler on a blob of shape {tuple(shape)} "
                          "has a zero fan")
    return n


def fill(filler, shape, where="?"):
    """A new float32 array of `shape` filled as `filler` (a FillerParameter) says."""
    shape = tuple(int(s) for s in shape)
    kind = filler.type
    if kind not in KNOWN:
        raise SeqgenError(f"{where}: unknown filler type '{kind}' (known: {', '.join(KNOWN)})")
    if filler.sparse != -1 and kind != "gaussian":
        raise SeqgenError(f"{where}: sparse {filler.sparse} is only supported by the gaussian "
                          f"filler, not by '{kind}'")
    if len(shape) > 4 and kind in ("xavier", "msra", "positive_unitball", "bilinear"):
        raise SeqgenError(f"{where}: the {kind} filler needs a blob of at most 4 axes "
                          f"(Caffe's num/channels/height/width), got shape {shape}")
    if kind == "constant":
        return np.full(shape, filler.value, np.float32)
    if kind == "uniform":
        lo, hi = f32(filler.min), f32(filler.max)
        if lo > hi:
            raise SeqgenError(f"{where}: uniform filler with min {filler.min:g} > max "
                              f"{filler.max:g}")
        return _rng.uniform(lo, hi, shape).astype(np.float32)
    if kind == "gaussian":
        if filler.std <= 0:
            raise SeqgenError(f"{where}: gaussian filler needs std > 0 (got {filler.std:g})")
        if filler.sparse < -1:
            raise SeqgenError(f"{where}: gaussian filler: sparse must be >= -1 "
                              f"(got {filler.sparse})")
        out = _rng.normal(f32(filler.mean), f32(filler.std), shape).astype(np.float32)
        if filler.sparse >= 0:
            if not shape:
                raise SeqgenError(f"{where}: a sparse gaussian filler needs a blob with at "
                                  "least one axis")
            # Caffe keeps each value with probability sparse / num_outputs (shape[0])
            p = f32(filler.sparse) / f32(shape[0])
            if p > 1:
                raise SeqgenError(f"{where}: gaussian filler: sparse {filler.sparse} is more "
                                  f"than the {shape[0]} outputs of the blob (shape {shape})")
            out *= _rng.random(shape) < p
        return out
    if kind == "xavier":
        scale = f32(math.sqrt(f32(3) / _scale_n(filler, shape, where)))
        return _rng.uniform(-scale, scale, shape).astype(np.float32)
    if kind == "msra":
        std = f32(math.sqrt(f32(2) / _scale_n(filler, shape, where)))
        return _rng.normal(0.0, std, shape).astype(np.float32)
    if kind == "positive_unitball":
        out = _rng.uniform(0, 1, shape).astype(np.float32)
        num = _legacy(shape, 0)
        rows = out.reshape(num, -1)
        rows /= rows.sum(axis=1, dtype=np.float32, keepdims=True)
        return out
    # bilinear: a (K, K) interpolation kernel in every (num, channel) slice
    if len(shape) != 4:
        raise SeqgenError(f"{where}: the bilinear filler needs a 4-axis blob, got shape {shape}")
    if shape[2] != shape[3]:
        raise SeqgenError(f"{where}: the bilinear filler needs a square kernel, got "
                          f"{shape[2]} x {shape[3]}")
    return bilinear_kernel(shape)


def bilinear_kernel(shape):
    """Caffe's BilinearFiller values for a (num, channels, K, K) blob."""
    k = shape[3]
    f = math.ceil(k / 2.0)
    c = f32((2 * f - 1 - f % 2) / (2.0 * f))
    x = np.arange(k, dtype=np.float32) / f32(f)
    w = f32(1) - np.abs(x - c)
    return np.broadcast_to(np.outer(w, w).astype(np.float32), shape).copy()
