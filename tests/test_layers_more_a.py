"""BVLC layers without images, first half (AbsVal, ArgMax, BNLL, BatchNorm, BatchReindex,
Clip, ContrastiveLoss, DummyData, ELU, Exp, Filter, HDF5Output): forward values against
numpy formulas written out here from Caffe's sources, backward against finite differences
(float64, gradcheck.py) and, where Caffe's gradient is not the exact derivative, against
Caffe's formula; the Caffe behaviours scripts rely on, and image layers refused by name."""
import sys

import numpy as np
import pytest
from gradcheck import check_layer_gradients
from helpers import layer_factory as factory
from helpers import run_layer as run

from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TEST, TRAIN, Net
from seqgen.registry import IMAGE_LAYERS, layer_class

pytestmark = pytest.mark.numerics




def away_from(shape, points=(0.0,), seed=1):
    """Uniform values in [-2, 2) at least 0.05 from every kink in `points`."""
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    for p in points:
        near = np.abs(x - p) < 0.05
        x[near] = p + 0.1 * np.sign(x[near] - p + 1e-9)
    return x


def net(text, phase=TRAIN):
    return Net(parse_net_text(text), phase=phase)


# ---------------------------------------------------------------------------------------
# the element-wise layers
# ---------------------------------------------------------------------------------------
ELEMENTWISE = {
    "AbsVal": ('type: "AbsVal"', lambda x: np.abs(x), (0.0,)),
    "BNLL": ('type: "BNLL"', lambda x: np.log(1 + np.exp(x)), ()),
    "Clip": ('type: "Clip" clip_param { min: -0.5 max: 1.25 }',
             lambda x: np.minimum(np.maximum(x, -0.5), 1.25), (-0.5, 1.25)),
    "ELU": ('type: "ELU" elu_param { alpha: 0.75 }',
            lambda x: np.where(x > 0, x, 0.75 * (np.exp(x) - 1)), (0.0,)),
    "ELU1": ('type: "ELU"', lambda x: np.where(x > 0, x, np.exp(x) - 1), (0.0,)),
    "Exp": ('type: "Exp"', np.exp, ()),
    "Exp2": ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }',
             lambda x: 2.0 ** (1 + 0.5 * x), ()),
    "ExpE": ('type: "Exp" exp_param { scale: -1.5 shift: 0.25 }',
             lambda x: np.exp(0.25 - 1.5 * x), ()),
}


@pytest.mark.parametrize("kind", sorted(ELEMENTWISE))
def test_elementwise_forward_and_gradients(kind):
    text, formula, kinks = ELEMENTWISE[kind]
    text = f'name: "f" {text} bottom: "x" top: "y"'
    x = away_from((3, 4, 5), kinks)
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, formula(x), rtol=1e-12, atol=1e-12)
    err = check_layer_gradients(factory(text), [x.shape], {0: x})
    assert err < 1e-6


@pytest.mark.parametrize("kind", ["ELU", "ELU1", "Exp", "Exp2", "ExpE"])
def test_elementwise_in_place_gradients(kind):
    """ELU and Exp compute their gradient from the output, so in place is exact."""
    text = f'name: "f" {ELEMENTWISE[kind][0]} bottom: "x" top: "x"'
    x = away_from((2, 3, 4), ELEMENTWISE[kind][2])
    assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=True) < 1e-6


def backward_of(text, x, dy, in_place=False):
    layer = factory(text)()
    b = Blob(x.shape, np.float64)
    b.data[...] = x
    t = b if in_place else Blob((0,), np.float64)
    layer.setup([b], [t])
    layer.reshape([b], [t])
    layer.forward([b], [t])
    t.diff[...] = dy
    layer.backward([t], [True], [b])
    return b.diff.copy()


def test_clip_gradient_includes_both_ends_and_in_place_passes_everything():
    text = 'name: "c" type: "Clip" clip_param { min: -1 max: 1 } bottom: "x" top: "y"'
    x = np.array([-2.0, -1.0, 0.0, 1.0, 3.0])
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(backward_of(text, x, dy), [0, 2, 3, 4, 0])
    # Caffe's quirk: in place its backward reads the clipped output, always inside [min, max]
    np.testing.assert_array_equal(backward_of(text, x, dy, in_place=True), dy)


def test_nan_as_caffe_treats_it():
    """Caffe's Clip gives min for NaN (std::max(min, NaN) is min); AbsVal's gradient is 0."""
    _, _, top = run('name: "c" type: "Clip" clip_param { min: -1 max: 1 } bottom: "x" top: "y"',
                    [[np.nan, 2.0]])
    np.testing.assert_array_equal(top[0].data, [-1, 1])
    g = backward_of('name: "a" type: "AbsVal" bottom: "x" top: "y"', np.array([np.nan, -2.0, 0]),
                    np.ones(3))
    np.testing.assert_array_equal(g, [0, -1, 0])


def test_bnll_is_stable_and_caps_its_gradient_input():
    text = 'name: "b" type: "BNLL" bottom: "x" top: "y"'
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, [0, np.exp(-30.0), np.log(2), 30, 800], rtol=1e-12)
    g = backward_of(text, x, np.ones(5))
    np.testing.assert_allclose(g, [0, np.exp(-30) / (1 + np.exp(-30)), 0.5,
                                   1 / (1 + np.exp(-30)), np.exp(50) / (np.exp(50) + 1)],
                               rtol=1e-12)


def test_absval_refuses_in_place():
    with pytest.raises(SeqgenError, match="AbsVal cannot work in place"):
        net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
            'layer { name: "abs" type: "AbsVal" bottom: "x" top: "x" }')


@pytest.mark.parametrize("text, msg", [
    ('type: "Clip" clip_param { min: 0 }', "needs both min and max"),
    ('type: "Exp" exp_param { base: -2 }', "base is -2; it must be > 0"),
    ('type: "Exp" exp_param { base: 10 shift: 100 }', "overflow float32"),
])
def test_elementwise_bad_parameters(text, msg):
    with pytest.raises(SeqgenError, match=msg):
        run(f'name: "bad" {text} bottom: "x" top: "y"', [np.zeros(3)])


# ---------------------------------------------------------------------------------------
# ArgMax
# ---------------------------------------------------------------------------------------
def np_top_k(v, k):
    """Indices of the k largest per row, largest first, ties to the larger index (Caffe
    sorts (value, index) pairs descending)."""
    return np.array([sorted(range(len(r)), key=lambda j: (r[j], j), reverse=True)[:k]
                     for r in v])


def test_argmax_over_each_item():
    x = np.random.default_rng(2).integers(0, 4, (5, 3, 2)).astype(float)  # many ties
    idx = np_top_k(x.reshape(5, 6), 3)
    _, _, top = run('name: "a" type: "ArgMax" argmax_param { top_k: 3 } bottom: "x" top: "y"',
                    [x])
    assert top[0].shape == (5, 1, 3)
    np.testing.assert_array_equal(top[0].data[:, 0], idx)
    _, _, top = run('name: "a" type: "ArgMax" argmax_param { top_k: 3 out_max_val: true } '
                    'bottom: "x" top: "y"', [x])
    assert top[0].shape == (5, 2, 3)
    np.testing.assert_array_equal(top[0].data[:, 0], idx)
    np.testing.assert_array_equal(top[0].data[:, 1], np.take_along_axis(x.reshape(5, 6), idx, 1))
    _, _, top = run('name: "a" type: "ArgMax" bottom: "x" top: "y"', [np.zeros((4, 2, 2, 2))])
    assert top[0].shape == (4, 1, 1, 1)  # padded to the bottom's axes
    np.testing.assert_array_equal(top[0].data.ravel(), 7)  # all tied: the last index


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("out_max_val", ["false", "true"])
def test_argmax_along_an_axis(axis, out_max_val):
    x = np.random.default_rng(3).integers(0, 3, (4, 3, 5)).astype(float)
    v = np.moveaxis(x, axis, -1)
    idx = np_top_k(v.reshape(-1, v.shape[-1]), 2).reshape(v.shape[:-1] + (2,))
    want = np.take_along_axis(v, idx, -1) if out_max_val == "true" else idx
    _, _, top = run(f'name: "a" type: "ArgMax" argmax_param {{ top_k: 2 axis: {axis} '
                    f'out_max_val: {out_max_val} }} bottom: "x" top: "y"', [x])
    np.testing.assert_array_equal(top[0].data, np.moveaxis(want, -1, axis))


def test_argmax_takes_no_gradient_and_checks_top_k():
    assert layer_class("ArgMax").no_grad_bottoms == (0,)
    with pytest.raises(SeqgenError, match="top_k 7 is more than the 6 values"):
        run('name: "a" type: "ArgMax" argmax_param { top_k: 7 } bottom: "x" top: "y"',
            [np.zeros((2, 3, 2))])
    with pytest.raises(SeqgenError, match="axis 3 is out of range"):
        run('name: "a" type: "ArgMax" argmax_param { axis: 3 } bottom: "x" top: "y"',
            [np.zeros((2, 3, 2))])


# ---------------------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------------------
BN = 'name: "bn" type: "BatchNorm" bottom: "x" top: "y" batch_norm_param { %s }'


def np_batch_norm(x, eps=1e-5):
    """Normalise over every axis but 1, with the biased variance."""
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean.ravel(), var.ravel()


def test_batch_norm_train_forward_and_running_statistics():
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(1, 2, (4, 3, 5)), rng.normal(-1, 0.5, (4, 3, 5))
    layer, bottom, top = run(BN % "moving_average_fraction: 0.5 eps: 0.001", [x1])
    y, m1, v1 = np_batch_norm(x1, np.float32(0.001))
    np.testing.assert_allclose(top[0].data, y, rtol=1e-10)
    bottom[0].data[...] = x2
    layer.forward(bottom, top)
    _, m2, v2 = np_batch_norm(x2)
    m = 20  # values per channel: Caffe's unbiased correction m / (m - 1)
    np.testing.assert_allclose(layer.blobs[2].data, [1 * 0.5 + 1])
    # (the statistics are float32 blobs, as parameters are)
    np.testing.assert_allclose(layer.blobs[0].data, m2 + 0.5 * m1, rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].data, m / (m - 1) * (v2 + 0.5 * v1), rtol=1e-6)


def test_batch_norm_global_statistics_divide_by_the_scale_factor():
    x = np.random.default_rng(5).normal(size=(3, 2, 4))
    for phase, param in ((TEST, ""), (TRAIN, "use_global_stats: true")):
        layer = factory(BN % param, phase)()
        b, t = Blob(x.shape, np.float64), Blob((0,), np.float64)
        b.data[...] = x
        layer.setup([b], [t])
        layer.blobs[0].data[...] = [2.0, -4.0]
        layer.blobs[1].data[...] = [8.0, 1.0]
        layer.blobs[2].data[...] = 4.0
        layer.reshape([b], [t])
        layer.forward([b], [t])
        mean, var = np.array([0.5, -1.0]), np.array([2.0, 0.25])
        want = (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + np.float32(1e-5))
        np.testing.assert_allclose(t.data, want, rtol=1e-12)
        np.testing.assert_array_equal(layer.blobs[2].data, [4.0])  # not updated
    # a scale factor of 0 (never trained) gives statistics 0, not a division by zero
    layer, _, top = run(BN % "", [x], phase=TEST)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(np.float32(1e-5)), rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3, 2), (5, 3), (6,)])
@pytest.mark.parametrize("param", ["", "use_global_stats: true"])
def test_batch_norm_gradients(shape, param):
    x = np.random.default_rng(6).normal(size=shape)

    def make():
        layer = factory(BN % param)()
        if param:  # statistics that are not trivial
            real = layer.layer_setup

            def setup(bottom, top):
                real(bottom, top)
                layer.blobs[0].data[...] = 0.3
                layer.blobs[1].data[...] = 2.0
                layer.blobs[2].data[...] = 1.5
            layer.layer_setup = setup
        return layer
    # the statistics take no gradient (lr_mult 0 in Caffe): only the bottom is checked
    assert check_layer_gradients(make, [shape], {0: x}, check_params=False) < 1e-6
    assert check_layer_gradients(make, [shape], {0: x}, check_params=False,
                                 in_place=True) < 1e-6


def test_batch_norm_statistics_are_not_learned():
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }'
            '\nlayer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" %s }')
    n = net(text % "")
    assert [p.lr_mult for p in n.learnable_params] == [0, 0, 0]
    assert n.layer_dict["bn"].param_names == ("mean", "variance", "scale_factor")
    with pytest.raises(SeqgenError, match="param 1 has lr_mult 1; BatchNorm's statistics"):
        net(text % "param { lr_mult: 0 } param { }")


# ---------------------------------------------------------------------------------------
# BatchReindex and Filter
# ---------------------------------------------------------------------------------------
REINDEX = 'name: "r" type: "BatchReindex" bottom: "x" bottom: "i" top: "y"'


def test_batch_reindex_forward_and_gradients():
    x = np.random.default_rng(7).normal(size=(4, 3, 2))
    idx = np.array([3, 0, 3, 3, 1.7])  # repeats, leaves out 2; 1.7 truncates to 1 as in Caffe
    _, _, top = run(REINDEX, [x, idx])
    np.testing.assert_array_equal(top[0].data, x[[3, 0, 3, 3, 1]])
    assert check_layer_gradients(factory(REINDEX), [x.shape, idx.shape], {0: x, 1: idx}) < 1e-6


@pytest.mark.parametrize("bad", [4, -1, np.nan])
def test_batch_reindex_refuses_indices_outside_the_batch(bad):
    with pytest.raises(SeqgenError, match=r"holds .* at position 1; indices must lie in \[0, 4\)"):
        run(REINDEX, [np.zeros((4, 2)), [0, bad]])


FILTER = 'name: "f" type: "Filter" bottom: "a" bottom: "b" bottom: "s" top: "fa" top: "fb"'


def test_filter_keeps_the_selected_items():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 2, 2))
    sel = np.array([[0.0], [1.0], [0.0], [-2.0], [0.5]])
    _, _, top = run(FILTER, [a, b, sel], n_tops=2)
    np.testing.assert_array_equal(top[0].data, a[[1, 3, 4]])
    np.testing.assert_array_equal(top[1].data, b[[1, 3, 4]])


def test_filter_gradients():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 2, 2))
    sel = np.array([1.0, 0.0, 0.0, 1.0, 1.0])

    def make():  # past Caffe's first reshape (full size), so the top keeps its shape
        layer = factory(FILTER)()
        real = layer.layer_setup

        def setup(bottom, top):
            real(bottom, top)
            layer.first_reshape = False
        layer.layer_setup = setup
        return layer
    assert check_layer_gradients(make, [a.shape, b.shape, sel.shape], {0: a, 1: b, 2: sel},
                                 n_tops=2) < 1e-6
    assert make().no_grad_bottoms == ()  # set at setup: the last bottom, whatever the count


def test_filter_in_a_net_reshapes_what_follows_at_every_forward():
    """fx feeds two layers (through a Split, whose tops alias fx) and a loss: every one of
    them follows the selector, empty selections included, forward and backward."""
    n = net('force_backward: true\n'
            'layer { name: "in" type: "Input" top: "x" top: "t" top: "s" input_param { '
            'shape { dim: 4 dim: 2 } shape { dim: 4 dim: 2 } shape { dim: 4 } } }\n'
            'layer { name: "f" type: "Filter" bottom: "x" bottom: "t" bottom: "s" top: "fx" '
            'top: "ft" }\n'
            'layer { name: "abs" type: "AbsVal" bottom: "fx" top: "y" }\n'
            'layer { name: "am" type: "ArgMax" bottom: "fx" top: "am" }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "fx" bottom: "ft" }')
    assert n.blobs["fx"].shape == (4, 2)  # Caffe's first reshape: the full first axis
    x = np.arange(8.0).reshape(4, 2) - 3
    t = np.ones((4, 2))
    for sel, keep in (([1, 0, 1, 1], [0, 2, 3]), ([0, 0, 1, 0], [2]), ([0, 0, 0, 0], [])):
        with np.errstate(divide="ignore", invalid="ignore"):  # the loss of 0 items: 0 / 0
            out = n.forward(x=x, t=t, s=sel)
            n.backward()
        np.testing.assert_array_equal(out["y"], np.abs(x[keep]))
        np.testing.assert_array_equal(out["am"].ravel(), np.argmax(x[keep], axis=1))
        want = np.zeros((4, 2))
        if keep:
            want[keep] = (x[keep] - 1) / len(keep)  # EuclideanLoss: (a - b) / N
        np.testing.assert_allclose(n.blobs["x"].diff, want, rtol=1e-6)
    assert n.layer_dict["f"].no_grad_bottoms == (2,)


def test_filter_checks_its_counts_and_selector():
    with pytest.raises(SeqgenError, match="needs one top per filtered bottom"):
        run('name: "f" type: "Filter" bottom: "a" bottom: "s" top: "x" top: "y"',
            [np.zeros((2, 1)), np.zeros(2)], n_tops=2)
    with pytest.raises(SeqgenError, match=r"selector 's' has shape \(2, 2\)"):
        run('name: "f" type: "Filter" bottom: "a" bottom: "s" top: "x"',
            [np.zeros((2, 1)), np.zeros((2, 2))])


# ---------------------------------------------------------------------------------------
# ContrastiveLoss
# ---------------------------------------------------------------------------------------
CONTRASTIVE = ('name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" '
               'top: "loss" contrastive_loss_param { margin: 1.5 %s }')


def contrastive_case(seed=10):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(6, 3)) * 0.6, rng.normal(size=(6, 3)) * 0.6
    y = np.array([1, 0, 0, 1, 0.5, 0])  # 0.5 is dissimilar: Caffe truncates to int
    return a, b, y


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_forward(legacy):
    a, b, y = contrastive_case()
    d2 = ((a - b) ** 2).sum(1)
    far = np.maximum(1.5 - d2, 0) if legacy else np.maximum(1.5 - np.sqrt(d2), 0) ** 2
    want = np.where(y >= 1, d2, far).sum() / 6 / 2
    _, _, top = run(CONTRASTIVE % f"legacy_version: {str(legacy).lower()}",
                    [a, b.reshape(6, 3, 1, 1), y.reshape(6, 1)])
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    assert 0 < (far[y < 1] > 0).sum() < (y < 1).sum()  # the margin bites for some pairs only


def test_contrastive_loss_gradients():
    a, b, y = contrastive_case()
    text = CONTRASTIVE % "legacy_version: true"
    assert check_layer_gradients(factory(text), [a.shape, b.shape, y.shape],
                                 {0: a, 1: b, 2: y}) < 1e-6
    # the default version divides by d + 1e-4 (Caffe's), so its gradient is off by ~1e-4 / d
    text = CONTRASTIVE % ""
    err = check_layer_gradients(factory(text), [a.shape, b.shape, y.shape], {0: a, 1: b, 2: y},
                                tol=1e-3)
    assert 1e-6 < err < 1e-3
    layer, bottom, top = run(text, [a, b, y])
    top[0].diff[...] = 2.0
    layer.backward(top, [True, True, False], bottom)
    diff, d = a - b, np.sqrt(((a - b) ** 2).sum(1))
    coef = np.where(y >= 1, 1.0, np.where(1.5 - d > 0, -(1.5 - d) / (d + 1e-4), 0.0))
    want = 2.0 / 6 * coef[:, None] * diff  # Caffe's formula, written out
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-12)
    np.testing.assert_allclose(bottom[1].diff, -want, rtol=1e-12)


def test_contrastive_loss_refuses_blobs_with_more_than_channels():
    with pytest.raises(SeqgenError, match=r"bottom 'a' has shape \(2, 3, 4\); ContrastiveLoss"):
        run(CONTRASTIVE % "", [np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros(2)])


# ---------------------------------------------------------------------------------------
# DummyData
# ---------------------------------------------------------------------------------------
def test_dummy_data_constant_tops_keep_what_a_script_writes():
    n = net('layer { name: "d" type: "DummyData" top: "x" top: "c" dummy_data_param {\n'
            '  shape { dim: 3 dim: 2 } shape { dim: 3 }\n'
            '  data_filler { type: "constant" value: 0.5 } data_filler { } } }\n'
            'layer { name: "e" type: "Exp" bottom: "x" top: "y" }')
    np.testing.assert_array_equal(n.blobs["x"].data, 0.5)  # filled once, at setup
    np.testing.assert_array_equal(n.blobs["c"].data, 0.0)  # a default filler: constant 0
    n.blobs["x"].data[...] = [[1, 2], [3, 4], [5, 6]]
    for _ in range(2):
        out = n.forward()
        np.testing.assert_allclose(out["y"], np.exp(np.float32([[1, 2], [3, 4], [5, 6]])),
                                   rtol=1e-6)


def test_dummy_data_random_fillers_refill_every_forward():
    n = net('layer { name: "d" type: "DummyData" top: "g" dummy_data_param {\n'
            '  num: 400 channels: 50 height: 1 width: 1\n'
            '  data_filler { type: "gaussian" mean: 2 std: 3 } } }')
    assert n.blobs["g"].shape == (400, 50, 1, 1)  # the legacy 4-D fields
    np.testing.assert_array_equal(n.blobs["g"].data, 0)  # not filled before the first forward
    first = n.forward()["g"].copy()
    second = n.forward()["g"]
    assert not np.array_equal(first, second)
    for draw in (first, second):  # 20000 draws: standard errors 0.02 and 0.015
        assert abs(draw.mean() - 2) < 0.1 and abs(draw.std() - 3) < 0.1


@pytest.mark.parametrize("param, msg", [
    ('shape { dim: 2 } shape { dim: 3 } shape { dim: 4 }', "gives shape 3 times"),
    ('shape { dim: 2 } num: 2', "both shape and the legacy"),
    ('shape { dim: 2 } data_filler { } data_filler { } data_filler { }', "3 data_fillers for 2"),
    ('shape { dim: 2 } data_filler { type: "bogus" }', "unknown data_filler type 'bogus'"),
])
def test_dummy_data_bad_parameters(param, msg):
    with pytest.raises(SeqgenError, match=msg):
        net(f'layer {{ name: "d" type: "DummyData" top: "a" top: "b" '
            f'dummy_data_param {{ {param} }} }}')


# ---------------------------------------------------------------------------------------
# HDF5Output
# ---------------------------------------------------------------------------------------
H5OUT = ('layer {{ name: "in" type: "Input" top: "x" top: "t" input_param {{ shape {{ dim: 2 '
         'dim: 3 }} shape {{ dim: 2 }} }} }}\n'
         'layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "t" '
         'hdf5_output_param {{ file_name: "{}" }} }}')


def test_hdf5_output_appends_every_batch(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "out.h5"
    n = net(H5OUT.format(path))
    assert not path.exists()  # nothing written until the first forward
    xs = [np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)]
    for i, x in enumerate(xs):
        n.forward(x=x, t=[i, i + 0.5])
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (4, 3, 1, 1)  # Caffe's (num, channels, height, width)
        np.testing.assert_array_equal(f["data"][...].reshape(4, 3), np.concatenate(xs))
        np.testing.assert_array_equal(f["label"][...].ravel(), [0, 0.5, 1, 1.5])
    n2 = net(H5OUT.format(path))  # a file seqgen wrote may be written again
    n2.forward(x=xs[1], t=[7, 8])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["label"][...].ravel(), [7, 8])


def test_hdf5_output_never_writes_over_a_file_seqgen_did_not_write(tmp_path):
    h5py = pytest.importorskip("h5py")
    theirs = tmp_path / "theirs.h5"
    with h5py.File(theirs, "w") as f:
        f["data"] = np.ones(3)
    text = tmp_path / "notes.txt"
    text.write_text("keep me")
    for path in (theirs, text):
        with pytest.raises(SeqgenError, match=r"layer 'out' \(HDF5Output\): hdf5_output_param"
                                              r"\.file_name .*: the file exists and seqgen did "
                                              "not write it"):
            net(H5OUT.format(path))
    assert text.read_text() == "keep me"
    with pytest.raises(SeqgenError, match="folder .* does not exist"):
        net(H5OUT.format(tmp_path / "nowhere" / "out.h5"))


# ---------------------------------------------------------------------------------------
# image layers
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(IMAGE_LAYERS))
def test_image_layers_are_refused_by_name(kind):
    with pytest.raises(SeqgenError) as e:
        net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
            f'layer {{ name: "img" type: "{kind}" bottom: "x" top: "y" }}')
    assert f"layer 'img': {kind} is an image layer (" in str(e.value)
    assert str(e.value).endswith("seqgen runs recurrent nets and has no image layers")
    assert "unknown" not in str(e.value)


def test_hdf5_output_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(SeqgenError, match=r"layer 'out' \(HDF5Output\): writing HDF5 files "
                                          "needs the h5py package.*pip install"):
        net(H5OUT.format(tmp_path / "out.h5"))


def test_batch_norm_statistics_survive_training_with_weight_decay():
    """A solver step leaves BatchNorm's blobs to the layer: after K iterations the scale
    factor is 1 + f + ... + f^(K-1) and the mean sum the moving sum of the batch means."""
    from seqgen.io.prototxt import parse_solver_text
    from seqgen.solver import Solver

    sp = parse_solver_text("base_lr: 0.1 momentum: 0.9 weight_decay: 0.5 lr_policy: 'fixed' "
                           "random_seed: 3 type: 'Adam'")
    sp.net_param.CopyFrom(parse_net_text(
        'layer { name: "d" type: "DummyData" top: "x" top: "t" dummy_data_param { shape { dim: 8 '
        'dim: 2 } data_filler { type: "gaussian" mean: 3 std: 1 } } }\n'
        'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" '
        'batch_norm_param { moving_average_fraction: 0.5 } }\n'
        'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" }'))
    solver = Solver(sp, log=lambda *a: None)
    means = []
    for _ in range(4):
        solver.step(1)
        means.append(solver.net.blobs["x"].data.mean(axis=0).astype(np.float64))
    bn = solver.net.layer_dict["bn"]
    np.testing.assert_allclose(bn.blobs[2].data, [1 + 0.5 + 0.25 + 0.125])
    want = sum(m * 0.5 ** (3 - k) for k, m in enumerate(means))
    np.testing.assert_allclose(bn.blobs[0].data, want, rtol=1e-5)
