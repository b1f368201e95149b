"""Fillers with Caffe's semantics (include/caffe/filler.hpp): distribution statistics over
large draws (tolerances of 5 standard errors: they fail for a wrong mean, scale or fan),
xavier/msra fans per variance_norm, exact bilinear kernels, the sparse gaussian's fraction,
Caffe's CHECKs as errors, and random_seed repeatability."""
import math

import numpy as np
import pytest

from seqgen import fillers
from seqgen.errors import SeqgenError
from seqgen.fillers import fans, fill
from seqgen.io.prototxt import parse_net_text, parse_solver_text
from seqgen.proto import caffe_pb2
from seqgen.solver import Solver

FAN_IN, FAN_OUT, AVERAGE = 0, 1, 2


def filler(**fields):
    return caffe_pb2.FillerParameter(**fields)


@pytest.fixture(autouse=True)
def seeded():
    fillers.seed(1234)
    yield
    fillers.seed(-1)


def check_mean_std(x, mean, std):
    """Sample mean within 5 standard errors, sample std within 5 of its standard errors."""
    x = np.asarray(x, np.float64).ravel()
    n = x.size
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n) + 1e-12, (x.mean(), mean)
    assert abs(x.std() - std) < 5 * std / math.sqrt(2 * n), (x.std(), std)


def test_constant():
    out = fill(filler(type="constant", value=2.5), (3, 4))
    assert out.dtype == np.float32 and out.shape == (3, 4) and np.all(out == 2.5)
    assert np.all(fill(filler(), (5,)) == 0)  # the default filler is constant 0


def test_uniform():
    out = fill(filler(type="uniform", min=-2, max=3), (400, 500))
    assert out.dtype == np.float32
    assert out.min() >= -2 and out.max() <= 3
    assert out.min() < -1.99 and out.max() > 2.99
    check_mean_std(out, 0.5, 5 / math.sqrt(12))


def test_gaussian():
    out = fill(filler(type="gaussian", mean=1.5, std=0.2), (400, 500))
    check_mean_std(out, 1.5, 0.2)
    # the tail fractions of a normal distribution: |x - mean| > 2 std for 4.55 %
    frac = np.mean(np.abs(out - 1.5) > 0.4)
    assert abs(frac - 0.0455) < 5 * math.sqrt(0.0455 * 0.9545 / out.size)


def test_sparse_gaussian_keeps_sparse_over_outputs():
    # Caffe: each value kept with probability sparse / shape[0] (the number of outputs)
    out = fill(filler(type="gaussian", std=1.0, sparse=3), (12, 20000))
    p, n = 3 / 12, out.size
    frac = np.count_nonzero(out) / n
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n), frac
    check_mean_std(out[out != 0], 0.0, 1.0)
    # sparse 0 keeps nothing; sparse == outputs keeps all; a 1-D blob is allowed
    assert not np.any(fill(filler(type="gaussian", sparse=0), (10, 10)))
    assert np.all(fill(filler(type="gaussian", sparse=10), (10, 10)) != 0)
    one_d = fill(filler(type="gaussian", sparse=1), (4000,))  # keeps 1/4000 on average
    assert one_d.shape == (4000,) and np.count_nonzero(one_d) < 10


@pytest.mark.parametrize("shape, fan_in, fan_out", [
    ((300, 200), 200, 300),          # an InnerProduct weight: (outputs, inputs)
    ((50, 40, 2, 2), 160, 200),      # a conv weight: fan_in = C*k*k, fan_out = N*k*k
    ((24,), 1, 24),                  # 1-D: Caffe's channels() is 1, so fan_out = count
    ((6, 4, 5), 20, 30),
])
def test_fans_as_caffe_computes_them(shape, fan_in, fan_out):
    assert fans(shape) == (fan_in, fan_out)


@pytest.mark.parametrize("norm", [FAN_IN, FAN_OUT, AVERAGE])
def test_xavier_scale_per_variance_norm(norm):
    shape = (300, 200)
    n = {FAN_IN: 200, FAN_OUT: 300, AVERAGE: 250}[norm]
    out = fill(filler(type="xavier", variance_norm=norm), shape)
    scale = math.sqrt(3 / n)
    assert np.abs(out).max() <= scale * (1 + 1e-6) and np.abs(out).max() > 0.999 * scale
    check_mean_std(out, 0.0, scale / math.sqrt(3))  # uniform(-a, a): std a / sqrt(3)


@pytest.mark.parametrize("norm", [FAN_IN, FAN_OUT, AVERAGE])
def test_msra_std_per_variance_norm(norm):
    shape = (50, 40, 2, 2)  # fan_in 160, fan_out 200
    n = {FAN_IN: 160, FAN_OUT: 200, AVERAGE: 180}[norm]
    out = fill(filler(type="msra", variance_norm=norm), shape)
    check_mean_std(out, 0.0, math.sqrt(2 / n))


def test_xavier_and_msra_norms_are_told_apart():
    """The statistics tests above can fail: FAN_IN vs FAN_OUT differ by sqrt(300/200)."""
    out = fill(filler(type="msra", variance_norm=FAN_OUT), (300, 200))
    with pytest.raises(AssertionError):
        check_mean_std(out, 0.0, math.sqrt(2 / 200))


def test_positive_unitball():
    out = fill(filler(type="positive_unitball"), (5, 3, 4))
    assert np.all(out >= 0) and np.all(out <= 1)
    # Caffe normalises each of the num() rows of count/num values to sum 1
    np.testing.assert_allclose(out.reshape(5, -1).sum(axis=1), 1, rtol=1e-6)


def test_bilinear_exact_values():
    # K = 4 (upsampling by 2): f = 2, c = 0.75, weights 1 - |x/f - c| = .25 .75 .75 .25
    out = fill(filler(type="bilinear"), (2, 3, 4, 4))
    w = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    assert out.shape == (2, 3, 4, 4)
    for n in range(2):
        for c in range(3):
            assert np.array_equal(out[n, c], np.outer(w, w))
    # K = 5 (upsampling by 3): f = 3, c = 2/3: 1/3 2/3 1 2/3 1/3
    out5 = fill(filler(type="bilinear"), (1, 1, 5, 5))
    w5 = np.array([1, 2, 3, 2, 1]) / 3
    np.testing.assert_allclose(out5[0, 0], np.outer(w5, w5), atol=2e-7)
    assert out5[0, 0, 2, 2] == 1


@pytest.mark.parametrize("fields, shape, message", [
    (dict(type="orthogonal"), (3, 3), "unknown filler type 'orthogonal' (known: constant, "
                                      "uniform, gaussian, xavier, msra, positive_unitball, "
                                      "bilinear)"),
    (dict(type="uniform", sparse=2), (3, 3), "sparse 2 is only supported by the gaussian"),
    (dict(type="gaussian", sparse=-2), (3, 3), "sparse must be >= -1"),
    (dict(type="gaussian", sparse=5), (3, 3), "sparse 5 is more than the 3 outputs"),
    (dict(type="gaussian", std=0), (3, 3), "needs std > 0"),
    (dict(type="uniform", min=1, max=0), (3, 3), "min 1 > max 0"),
    (dict(type="bilinear"), (3, 3), "needs a 4-axis blob"),
    (dict(type="bilinear"), (1, 1, 3, 4), "needs a square kernel"),
])
def test_filler_checks(fields, shape, message):
    with pytest.raises(SeqgenError) as e:
        fill(filler(**fields), shape, "layer 'ip'")
    assert message in str(e.value) and str(e.value).startswith("layer 'ip': ")


NET = """
name: "f"
input: "x" input_shape { dim: 4 dim: 3 }
input: "y" input_shape { dim: 4 dim: 2 }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" }
                              bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "p" top: "q"
        inner_product_param { num_output: 2 weight_filler { type: "msra" variance_norm: AVERAGE }
                              bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "q" bottom: "y" top: "loss" }
"""


def solver_weights(seed):
    sp = parse_solver_text(f"base_lr: 0.1 lr_policy: 'fixed' random_seed: {seed}")
    sp.net_param.CopyFrom(parse_net_text(NET, "f"))
    solver = Solver(sp, log=lambda *a: None)
    return [lp.blob.data.copy() for lp in solver.net.learnable_params]


def test_random_seed_makes_the_initial_weights_repeatable():
    fillers.seed(-1)
    a, b, c = solver_weights(5), solver_weights(5), solver_weights(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(not np.array_equal(x, y) for x, y in zip(a, c))
    # the same draws as seeding the fillers directly: the solver seeds before the net is built
    fillers.seed(5)
    assert np.array_equal(fill(filler(type="xavier"), (2, 3)), a[0])
