"""Caffe's weight fillers (FillerParameter), drawn from one seedable generator."""
import numpy as np

from .errors import SeqgenError

_rng = np.random.default_rng()


def seed(value):
    """Make fills repeatable (the solver's random_seed); a negative value means 'random'."""
    global _rng
    _rng = np.random.default_rng(None if value is None or value < 0 else int(value))


def generator():
    """The shared random generator (seeded by the solver's random_seed), for layers that
    draw at run time such as Dropout."""
    return _rng


def _fans(shape):
    # Caffe: fan_in = count / shape[0], fan_out = count / shape[1] (shape[0] for 1-D)
    count = int(np.prod(shape))
    fan_in = count // shape[0] if shape[0] else 0
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else fan_in
    return fan_in, fan_out


def _scale_n(filler, shape):
    fan_in, fan_out = _fans(shape)
    norm = filler.variance_norm
    # VarianceNorm: FAN_IN = 0, FAN_OUT = 1, AVERAGE = 2
    return {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2.0}[norm]


def fill(filler, shape, where="?"):
    """A new float32 array of `shape` filled as `filler` (a FillerParameter) says."""
    shape = tuple(int(s) for s in shape)
    kind = filler.type
    if kind == "constant":
        return np.full(shape, filler.value, np.float32)
    if kind == "uniform":
        return _rng.uniform(filler.min, filler.max, shape).astype(np.float32)
    if kind == "gaussian":
        out = _rng.normal(filler.mean, filler.std, shape).astype(np.float32)
        if filler.sparse >= 0 and len(shape) >= 2:
            # Caffe keeps each weight with probability sparse / num_outputs
            keep = _rng.random(shape) < filler.sparse / shape[0]
            out *= keep
        return out
    if kind == "xavier":
        scale = np.sqrt(3.0 / _scale_n(filler, shape))
        return _rng.uniform(-scale, scale, shape).astype(np.float32)
    if kind == "msra":
        std = np.sqrt(2.0 / _scale_n(filler, shape))
        return _rng.normal(0.0, std, shape).astype(np.float32)
    if kind == "positive_unitball":
        out = _rng.uniform(0, 1, shape).astype(np.float32)
        flat = out.reshape(shape[0], -1)
        flat /= flat.sum(axis=1, keepdims=True)
        return out
    raise SeqgenError(f"{where}: unknown filler type '{kind}' "
                      "(known: constant, uniform, gaussian, xavier, msra, positive_unitball)")
