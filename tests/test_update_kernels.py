"""kernels/update.py and the solver's reductions in kernels/reduce.py against the rules
written here step by step in numpy (Caffe's CPU order, one rounding per operation): the
same bits, with lr_mult and decay_mult as one scalar or one value per element, in float32
(what the solver uses) and float64."""
import math

import numpy as np
import pytest

from seqgen.kernels import update as k
from seqgen.kernels.reduce import all_finite, sum_squares

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

N = 1003
DTYPES = [np.float32, np.float64]


def arrays(dtype, slots, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 1e-2, N).astype(dtype)
    w = rng.normal(0, 0.3, N).astype(dtype)
    hist = [np.abs(rng.normal(0, 1e-3, N)).astype(dtype) for _ in range(slots)]
    return g, w, hist


def mults(dtype, per_element):
    if per_element:
        return np.where(np.arange(N) < N // 2, dtype(0.5), dtype(2)).astype(dtype)
    return dtype(1.5)


def reference(kind, dtype, g, hist, lr, c):
    """The step, updating the history in place; lr is the local rate (array or scalar)."""
    one = dtype(1)
    if kind == "sgd":
        v, = hist
        v *= c["momentum"]
        v += lr * g
        return v.copy()
    if kind == "nesterov":
        v, = hist
        old = v.copy()
        v *= c["momentum"]
        v += lr * g
        old *= -c["momentum"]
        old += (one + c["momentum"]) * v
        return old
    if kind == "adagrad":
        h, = hist
        h += g * g
        return g / (np.sqrt(h) + c["delta"]) * lr
    if kind == "rmsprop":
        h, = hist
        h *= c["decay"]
        h += (one - c["decay"]) * (g * g)
        return g / (np.sqrt(h) + c["delta"]) * lr
    if kind == "adadelta":
        h1, h2 = hist
        h1 *= c["rho"]
        h1 += (one - c["rho"]) * (g * g)
        u = g * np.sqrt((h2 + c["delta"]) / (h1 + c["delta"]))
        h2 *= c["rho"]
        h2 += (one - c["rho"]) * (u * u)
        return u * lr
    if kind == "adam":
        m, v = hist
        m *= c["beta1"]
        m += (one - c["beta1"]) * g
        v *= c["beta2"]
        v += (one - c["beta2"]) * (g * g)
        return m / (np.sqrt(v) + c["delta"]) * (lr * c["correction"])
    raise AssertionError(kind)


def call(kind, g, hist, lr, c):
    if kind in ("sgd", "nesterov"):
        getattr(k, kind)(g, hist[0], lr, c["momentum"])
    elif kind == "adagrad":
        k.adagrad(g, hist[0], lr, c["delta"])
    elif kind == "rmsprop":
        k.rmsprop(g, hist[0], lr, c["decay"], c["delta"])
    elif kind == "adadelta":
        k.adadelta(g, hist[0], hist[1], lr, c["rho"], c["delta"])
    else:
        k.adam(g, hist[0], hist[1], lr, c["correction"], c["beta1"], c["beta2"], c["delta"])


SLOTS = {"sgd": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_element", [False, True])
@pytest.mark.parametrize("kind", list(SLOTS))
def test_rule_is_the_step_by_step_formula(kind, per_element, dtype):
    c = {key: dtype(v) for key, v in dict(momentum=0.9, delta=1e-6, decay=0.95, rho=0.95,
                                          beta1=0.9, beta2=0.999, correction=0.3).items()}
    lr = dtype(0.05) * mults(dtype, per_element)  # the local rate
    g, _, hist = arrays(dtype, SLOTS[kind])
    rg, rhist = g.copy(), [h.copy() for h in hist]
    for _ in range(3):  # the history carries over
        step = reference(kind, dtype, rg, rhist, lr, c)
        call(kind, g, hist, lr, c)
        np.testing.assert_array_equal(g, step)  # the step replaces g
        for ours, theirs in zip(hist, rhist):
            np.testing.assert_array_equal(ours, theirs)
        assert g.dtype == dtype
        g[...] = rg[...] = np.random.default_rng(len(rhist)).normal(0, 1e-2, N)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_element", [False, True])
@pytest.mark.parametrize("l1", [False, True])
def test_regularize(dtype, per_element, l1):
    g, w, _ = arrays(dtype, 0, seed=3)
    w[:4] = [0.0, -0.0, np.nan, -np.inf]
    decay = dtype(1e-3) * mults(dtype, per_element)
    want = g + decay * (np.sign(w) if l1 else w)
    k.regularize(g, w, dtype(1e-3), mults(dtype, per_element), l1)
    np.testing.assert_array_equal(g, want)
    assert np.isnan(g[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_in_float64(dtype):
    a = np.random.default_rng(4).normal(0, 1, 100_001).astype(dtype)
    a[0] = 3e19 if dtype == np.float32 else 1e150  # its square overflows float32 / float64
    want = math.fsum(float(x) ** 2 for x in a[1:])
    if dtype == np.float32:
        assert sum_squares(a) == pytest.approx(want + float(a[0]) ** 2, rel=1e-12)
    assert sum_squares(a[1:]) == pytest.approx(want, rel=1e-12)
    assert sum_squares(a[:0]) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 517, 9_999])
def test_all_finite(dtype, bad, where):
    a = np.random.default_rng(5).normal(0, 1e30 if dtype == np.float32 else 1e300,
                                        10_000).astype(dtype)
    assert all_finite(a) and all_finite(a[:0])
    a[where] = bad
    assert not all_finite(a)
