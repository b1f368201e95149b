"""BVLC's remaining non-image layers, second half (HingeLoss, InfogainLoss, LSTMUnit, Log,
MultinomialLogisticLoss, PReLU, Parameter, Power, SigmoidCrossEntropyLoss, Swish,
Threshold, Tile): forward against numpy formulas written here from Caffe's definitions,
backward against finite differences (float64, gradcheck.py), Caffe's edge cases, and the
one-line errors. LSTMUnit is also checked against seqgen's BVLC LSTM stepped once."""
import numpy as np
import pytest
from gradcheck import check_layer_gradients, numeric_gradient
from helpers import layer_factory as factory
from helpers import run_layer as run

from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics




def away_from(shape, points=(0.0,), gap=0.1, seed=1, lo=-2.0, hi=2.0):
    """Uniform values in [lo, hi) at least `gap` from each of `points` (no kink within eps)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, shape)
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + np.where(x[near] >= p, gap, -gap) * 1.5
    return x


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------------------------------
# Log, Power, Swish, Threshold
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("base, scale, shift", [(-1, 1, 0), (2, 1, 0), (10, 0.5, 1.5),
                                                (-1, -2, 3)])
def test_log_values_and_gradients(base, scale, shift):
    text = f'name: "l" type: "Log" log_param {{ base: {base} scale: {scale} shift: {shift} }}'
    x = np.random.default_rng(0).uniform(0.2, 1.0, (2, 3, 4))
    _, _, top = run(text, [x])
    inner = shift + scale * x
    want = np.log(inner) / (np.log(base) if base != -1 else 1)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    for in_place in (False, True):
        assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=in_place) < 1e-6


@pytest.mark.parametrize("base", [0, -2, 1])
def test_log_refuses_a_base_without_a_finite_inverse_log(base):
    with pytest.raises(SeqgenError, match=rf"layer 'l' \(Log\): log_param.base {base}"):
        run(f'name: "l" type: "Log" log_param {{ base: {base} }}', [np.ones((2, 2))])


POWER_CASES = [(2, 1.5, 0.5), (3, 2, 0), (0.5, 1, 2), (-1, 1, 3), (1, 2, 0.5), (1, 1, 0),
               (0, 1, 2), (2, 0, 3), (2.5, -0.5, 2)]


@pytest.mark.parametrize("power, scale, shift", POWER_CASES)
def test_power_values_and_gradients(power, scale, shift):
    text = (f'name: "p" type: "Power" power_param {{ power: {power} scale: {scale} '
            f'shift: {shift} }}')
    x = away_from((3, 4), points=(0.0,), lo=0.2, hi=1.0)
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, (shift + scale * x) ** power, rtol=1e-12)
    for in_place in (False, True):
        assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=in_place) < 1e-6


def test_power_edge_cases_as_caffe():
    """power * scale == 0: a constant (1 for power 0, else shift^power) and a zero gradient
    whatever the top diff; shift 0: the gradient power * y / x, NaN at x = 0 as in Caffe."""
    x = np.array([[-1.0, 0.0, 2.0]])
    for text, value in (("power: 0 shift: 5", 1.0), ("power: 3 scale: 0 shift: 2", 8.0)):
        layer, bottom, top = run(f'name: "p" type: "Power" power_param {{ {text} }}', [x])
        np.testing.assert_array_equal(top[0].data, np.full(x.shape, value))
        top[0].diff[...] = 7
        layer.backward(top, [True], bottom)
        np.testing.assert_array_equal(bottom[0].diff, 0)
    layer, bottom, top = run('name: "p" type: "Power" power_param { power: 3 scale: 2 }', [x])
    top[0].diff[...] = 1
    with np.errstate(invalid="ignore"):
        layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff[0, [0, 2]], [3 * 2 * (-2.0) ** 2, 3 * 2 * 16])
    assert np.isnan(bottom[0].diff[0, 1])


@pytest.mark.parametrize("beta", [1, 0.5, 2])
def test_swish_values_and_gradients(beta):
    text = f'name: "s" type: "Swish" swish_param {{ beta: {beta} }}'
    x = np.random.default_rng(2).normal(0, 2, (2, 5))
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, x * sigmoid(beta * x), rtol=1e-12)
    for in_place in (False, True):
        assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=in_place) < 1e-6


def test_threshold_values_and_zero_gradient():
    text = 'name: "t" type: "Threshold" threshold_param { threshold: 0.3 }'
    x = away_from((4, 5), points=(0.3,))
    x[0, 0] = 0.3  # not above: 0, as Caffe's strict >
    _, _, top = run(text, [x])
    np.testing.assert_array_equal(top[0].data, (x > 0.3).astype(float))
    assert top[0].data[0, 0] == 0
    x[0, 0] = 0.5
    assert check_layer_gradients(factory(text), [x.shape], {0: x}) < 1e-6


# ---------------------------------------------------------------------------------------
# PReLU, Tile, Parameter
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", [False, True])
def test_prelu_values_gradients_and_default_slope(shared):
    text = f'name: "pr" type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} }}'
    x = away_from((2, 3, 4))
    layer, _, top = run(text, [x])
    assert layer.blobs[0].shape == (() if shared else (3,))
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)  # Caffe's default filler
    np.testing.assert_allclose(top[0].data, np.where(x > 0, x, 0.25 * x), rtol=1e-12)
    filled = text[:-2] + ' filler { type: "uniform" min: -1 max: 1 } }'
    layer, _, top = run(filled, [x])
    a = layer.blobs[0].data.reshape((1, -1, 1) if not shared else ())
    np.testing.assert_allclose(top[0].data, np.maximum(x, 0) + a * np.minimum(x, 0))
    assert len(np.unique(layer.blobs[0].data)) == (1 if shared else 3)
    for in_place in (False, True):
        err = check_layer_gradients(factory(filled), [x.shape], {0: x}, in_place=in_place)
        assert err < 1e-6
    assert layer_class("PReLU").param_names == ("slope",)


def test_prelu_needs_a_channel_axis():
    with pytest.raises(SeqgenError, match=r"layer 'pr' \(PReLU\): bottom '#0' \(4,\) needs "
                                          "at least 2 axes"):
        run('name: "pr" type: "PReLU"', [np.ones(4)])


@pytest.mark.parametrize("axis, tiles", [(1, 3), (0, 2), (-1, 2), (2, 1)])
def test_tile_values_and_gradients(axis, tiles):
    text = f'name: "t" type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}'
    x = np.random.default_rng(4).normal(size=(2, 3, 4))
    _, _, top = run(text, [x])
    reps = [1, 1, 1]
    reps[axis] = tiles
    np.testing.assert_array_equal(top[0].data, np.tile(x, reps))
    assert check_layer_gradients(factory(text), [x.shape], {0: x}) < 1e-6


@pytest.mark.parametrize("param, msg", [("axis: 1", "tile_param.tiles must be given"),
                                        ("tiles: 0", "tile_param.tiles 0 must be > 0"),
                                        ("tiles: 2 axis: 3", "tile_param.axis 3 is out of")])
def test_tile_refuses_bad_parameters(param, msg):
    with pytest.raises(SeqgenError, match=rf"layer 't' \(Tile\): {msg}"):
        run(f'name: "t" type: "Tile" tile_param {{ {param} }}', [np.ones((2, 3))])


PARAMETER_NET = """
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "loss" }
"""


def test_parameter_exposes_its_blob_and_takes_its_gradient(tmp_path):
    """The top is the blob (data and diff), zeros at first; the loss's gradient lands in
    the blob's diff: (w - t) / N, and matches finite differences of the net's loss (a
    quadratic, so central differences are exact up to float32 rounding)."""
    net = Net(parse_net_text(PARAMETER_NET), TRAIN)
    assert list(net.params) == ["w"] and net.layer("w").param_names == ("value",)
    blob = net.params["w"][0]
    np.testing.assert_array_equal(blob.data, 0)
    rng = np.random.default_rng(5)
    blob.data[...] = rng.normal(size=(2, 3))
    t = rng.normal(size=(2, 3)).astype(np.float32)
    net.forward(target=t)
    np.testing.assert_array_equal(net.blobs["w"].data, blob.data)
    net.clear_param_diffs()
    net.backward()
    np.testing.assert_allclose(blob.diff, (blob.data - t) / 2, rtol=1e-6)

    def loss():
        return float(net.forward(target=t)["loss"])

    num = numeric_gradient(loss, blob.data, 1e-2)
    np.testing.assert_allclose(blob.diff, num, rtol=1e-3, atol=1e-4)
    net.save(str(tmp_path / "w.caffemodel"))
    other = Net(parse_net_text(PARAMETER_NET), TRAIN, weights=str(tmp_path / "w.caffemodel"))
    np.testing.assert_array_equal(other.params["w"][0].data, blob.data)


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_loss_values_and_gradients(norm):
    text = f'name: "h" type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}'
    x = away_from((4, 5), points=(-1.0, 1.0), seed=6)
    label = np.array([0, 4, 2, 2.0])
    _, _, top = run(text, [x, label])
    d = np.where(np.eye(5)[label.astype(int)] == 1, -1, 1)  # -1 at the label, 1 elsewhere
    margin = np.maximum(0, 1 + d * x)
    want = (margin if norm == "L1" else margin ** 2).sum() / 4
    assert float(top[0].data) == pytest.approx(want, rel=1e-12)
    assert check_layer_gradients(factory(text), [x.shape, (4,)], {0: x, 1: label}) < 1e-6


def test_hinge_loss_refuses_a_label_out_of_range():
    with pytest.raises(SeqgenError, match=r"layer 'h' \(HingeLoss\): bottom '#1' holds label 5 "
                                          r"at \(1,\); labels must be in \[0, 5\)"):
        run('name: "h" type: "HingeLoss"', [np.zeros((2, 5)), [1, 5]])


def test_multinomial_logistic_loss_values_gradients_and_clip():
    text = 'name: "m" type: "MultinomialLogisticLoss"'
    rng = np.random.default_rng(7)
    p = rng.uniform(0.1, 1, (4, 3))
    label = np.array([2, 0, 1, 1.0])
    _, _, top = run(text, [p, label])
    want = -np.log(p[np.arange(4), label.astype(int)]).mean()
    assert float(top[0].data) == pytest.approx(want, rel=1e-12)
    assert check_layer_gradients(factory(text), [p.shape, (4,)], {0: p, 1: label}) < 1e-6
    p[0, 2] = 0  # clipped at 1e-20 (kLOG_THRESHOLD)
    layer, bottom, top = run(text, [p, label])
    assert float(top[0].data) == pytest.approx(
        (-np.log(1e-20) - np.log(p[[1, 2, 3], [0, 1, 1]]).sum()) / 4, rel=1e-12)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff[0, 2] == pytest.approx(-1 / 4 / 1e-20)


def infogain_formula(x, label, H, axis, ignore=None, norm="VALID"):
    """-sum_l H[label, l] log softmax(x)_l per prediction, over the predictions that count."""
    x = np.moveaxis(x, axis, -1)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    lab = label.reshape(x.shape[:-1]).astype(int)
    valid = lab != ignore if ignore is not None else np.ones(lab.shape, bool)
    per = -(H[np.where(valid, lab, 0)] * np.log(p)).sum(-1)
    n = {"VALID": valid.sum(), "FULL": lab.size, "BATCH_SIZE": int(np.prod(x.shape[:axis])),
         "NONE": 1}[norm]
    return per[valid].sum() / max(n, 1), np.moveaxis(p, -1, axis)


@pytest.mark.parametrize("axis, shape", [(1, (4, 3)), (2, (2, 3, 4)), (1, (2, 4, 3))])
def test_infogain_loss_with_h_as_a_bottom(axis, shape):
    text = f'name: "i" type: "InfogainLoss" infogain_loss_param {{ axis: {axis} }}'
    rng = np.random.default_rng(8)
    x = rng.normal(size=shape)
    C = shape[axis]
    label = rng.integers(0, C, size=[s for i, s in enumerate(shape) if i != axis]).astype(float)
    H = rng.uniform(0, 1, (C, C))
    _, _, top = run(text, [x, label, H], n_tops=2)
    want, p = infogain_formula(x, label, H, axis)
    assert float(top[0].data) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(top[1].data, p, rtol=1e-12)
    err = check_layer_gradients(factory(text), [x.shape, label.shape, H.shape],
                                {0: x, 1: label, 2: H}, n_tops=2, objective_tops=[0])
    assert err < 1e-6


@pytest.mark.parametrize("norm", ["VALID", "FULL", "BATCH_SIZE", "NONE"])
def test_infogain_loss_with_h_from_a_file_and_ignore_label(tmp_path, norm):
    """H read from a binary BlobProto beside the net file; ignored positions count for
    nothing in the loss, the gradient or the VALID normalizer."""
    rng = np.random.default_rng(9)
    H = rng.uniform(0, 2, (4, 4))
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend([1, 1, 4, 4])
    proto.data.extend(H.ravel().tolist())
    (tmp_path / "H.binaryproto").write_bytes(proto.SerializeToString())
    text = ('name: "i" type: "InfogainLoss" infogain_loss_param { source: "H.binaryproto" } '
            f'loss_param {{ ignore_label: 3 normalization: {norm} }}')
    x = rng.normal(size=(5, 4))
    label = np.array([0, 3, 1, 3, 2.0])
    opts = {"net_dir": str(tmp_path)}
    _, _, top = run(text, [x, label], options=opts)
    want, _ = infogain_formula(x, label, H.astype(np.float32).astype(float), 1, 3, norm)
    assert float(top[0].data) == pytest.approx(want, rel=1e-6)
    make = factory(text, options=opts)
    assert check_layer_gradients(make, [x.shape, (5,)], {0: x, 1: label}) < 1e-6


def test_infogain_loss_errors(tmp_path):
    with pytest.raises(SeqgenError, match=r"layer 'i' \(InfogainLoss\): needs "
                                          "infogain_loss_param.source"):
        run('name: "i" type: "InfogainLoss"', [np.zeros((2, 3)), [0, 1]])
    with pytest.raises(SeqgenError, match=r"infogain_loss_param.source 'nope' not found"):
        run('name: "i" type: "InfogainLoss" infogain_loss_param { source: "nope" }',
            [np.zeros((2, 3)), [0, 1]], options={"net_dir": str(tmp_path)})
    with pytest.raises(SeqgenError, match=r"the infogain matrix has 4 values; 3 classes"):
        run('name: "i" type: "InfogainLoss"', [np.zeros((2, 3)), [0, 1], np.eye(2)])
    with pytest.raises(SeqgenError, match=r"loss_param.normalize is deprecated"):
        run('name: "i" type: "InfogainLoss" loss_param { normalize: true }',
            [np.zeros((2, 3)), [0, 1], np.eye(3)])


@pytest.mark.parametrize("loss_param, n", [("", 3), ("normalization: FULL", 12),
                                           ("normalize: true", 12), ("normalize: false", 3),
                                           ("normalization: NONE", 1)])
def test_sigmoid_cross_entropy_loss_values_and_normalization(loss_param, n):
    """Caffe's default here is BATCH_SIZE (the first axis), not LossParameter's VALID."""
    text = f'name: "s" type: "SigmoidCrossEntropyLoss" loss_param {{ {loss_param} }}'
    rng = np.random.default_rng(10)
    x = rng.normal(0, 3, (3, 4))
    t = rng.uniform(0, 1, (3, 4))
    _, _, top = run(text, [x, t])
    p = sigmoid(x)
    want = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / n
    assert float(top[0].data) == pytest.approx(want, rel=1e-10)
    assert check_layer_gradients(factory(text), [x.shape, t.shape], {0: x, 1: t}) < 1e-6


def test_sigmoid_cross_entropy_loss_ignore_label_and_stability():
    """Targets whose int() equals ignore_label are skipped (VALID counts the rest); huge
    logits stay finite through Caffe's stable form."""
    text = ('name: "s" type: "SigmoidCrossEntropyLoss" '
            'loss_param { ignore_label: -1 normalization: VALID }')
    x = np.array([[1.0, -2.0, 500.0], [-500.0, 0.5, 3.0]])
    t = np.array([[1.0, -1.0, 1.0], [0.0, -1.0, 0.0]])
    layer, bottom, top = run(text, [x, t])
    valid = t != -1
    p = sigmoid(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    terms[0, 2] = terms[1, 0] = 0  # log(1) exactly: the saturated ones cost nothing
    assert float(top[0].data) == pytest.approx(terms[valid].sum() / 4, rel=1e-10)
    top[0].diff[...] = 2
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.where(valid, p - t, 0) * 2 / 4, rtol=1e-12,
                               atol=1e-15)
    assert check_layer_gradients(factory(text), [(2, 3), (2, 3)],
                                 {0: x / 200, 1: t}) < 1e-6


def test_losses_refuse_mismatched_bottoms():
    with pytest.raises(SeqgenError, match=r"layer 's' \(SigmoidCrossEntropyLoss\): bottoms "
                                          r"'#0' \(2, 3\) and '#1' \(5,\) must have the same"):
        run('name: "s" type: "SigmoidCrossEntropyLoss"', [np.zeros((2, 3)), np.zeros(5)])
    with pytest.raises(SeqgenError, match=r"layer 'm' \(MultinomialLogisticLoss\): bottom "
                                          r"'#1' \(3,\) must hold one label per item"):
        run('name: "m" type: "MultinomialLogisticLoss"', [np.zeros((2, 3)), np.zeros(3)])


# ---------------------------------------------------------------------------------------
# LSTMUnit
# ---------------------------------------------------------------------------------------
LSTM_UNIT = 'name: "u" type: "LSTMUnit" bottom: "c_prev" bottom: "gates" bottom: "cont"'


def lstm_unit_formula(c_prev, x, cont):
    """Caffe's cell: gates i, f, o, g in that order; f scaled by cont (0 where cont is 0)."""
    i, f, o, g = np.split(x, 4, axis=-1)
    i, f, o, g = sigmoid(i), cont[..., None] * sigmoid(f), sigmoid(o), np.tanh(g)
    c = f * c_prev + i * g
    return c, o * np.tanh(c)


def lstm_unit_inputs(N=4, H=3, seed=11):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(1, N, H)), rng.normal(size=(1, N, 4 * H)),
            np.array([[1.0, 0.0, 1.0, 0.0][:N]]))


def test_lstm_unit_values_and_gradients():
    c_prev, x, cont = lstm_unit_inputs()
    _, _, top = run(LSTM_UNIT, [c_prev, x, cont], n_tops=2)
    c, h = lstm_unit_formula(c_prev, x, cont)
    np.testing.assert_allclose(top[0].data, c, rtol=1e-12)
    np.testing.assert_allclose(top[1].data, h, rtol=1e-12)
    np.testing.assert_allclose(top[0].data[0, 1], (sigmoid(x[0, 1, :3]) *
                                                   np.tanh(x[0, 1, 9:])), rtol=1e-12)
    err = check_layer_gradients(factory(LSTM_UNIT), [c_prev.shape, x.shape, cont.shape],
                                {0: c_prev, 1: x, 2: cont}, n_tops=2)
    assert err < 1e-6
    assert layer_class("LSTMUnit").no_grad_bottoms == (2,)


def test_lstm_unit_forget_gradient_for_other_cont_values_is_caffes():
    """For cont 2 the forward scales f by 2 and Caffe's backward uses f (1 - f) with that
    scaled f (lstm_unit_layer.cpp), not the derivative 2 s (1 - s)."""
    c_prev, x, _ = lstm_unit_inputs(N=1)
    cont = np.array([[2.0]])
    layer, bottom, top = run(LSTM_UNIT, [c_prev, x, cont], n_tops=2)
    c, _ = lstm_unit_formula(c_prev, x, cont)
    np.testing.assert_allclose(top[0].data, c, rtol=1e-12)
    top[0].diff[...] = 1
    top[1].diff[...] = 0
    layer.backward(top, [True, True, False], bottom)
    f = 2 * sigmoid(x[0, 0, 3:6])
    np.testing.assert_allclose(bottom[1].diff[0, 0, 3:6], c_prev[0, 0] * f * (1 - f),
                               rtol=1e-12)


def test_lstm_unit_is_one_step_of_bvlc_lstm():
    """BVLC's LSTM (expose_hidden, T = 1) from h_0, c_0 equals LSTMUnit on the gate inputs
    W_xc x + b_c + W_hc (cont h_0), the unrolled net's own wiring."""
    N, I, H = 3, 2, 4
    net = Net(parse_net_text(f"""
        layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "h0" top: "c0"
          input_param {{ shape {{ dim: 1 dim: {N} dim: {I} }} shape {{ dim: 1 dim: {N} }}
                        shape {{ dim: 1 dim: {N} dim: {H} }} shape {{ dim: 1 dim: {N} dim: {H} }}
          }} }}
        layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "h0" bottom: "c0"
          top: "h" top: "hT" top: "cT"
          recurrent_param {{ num_output: {H} expose_hidden: true
            weight_filler {{ type: "uniform" min: -1 max: 1 }}
            bias_filler {{ type: "uniform" min: -1 max: 1 }} }} }}"""), TRAIN)
    rng = np.random.default_rng(12)
    feed = {"x": rng.normal(size=(1, N, I)), "cont": np.array([[1.0, 0.0, 1.0]]),
            "h0": rng.normal(size=(1, N, H)), "c0": rng.normal(size=(1, N, H))}
    out = net.forward(**{k: v.astype(np.float32) for k, v in feed.items()})
    W_xc, b_c, W_hc = (b.data.astype(np.float64) for b in net.params["lstm"])
    gates = (feed["x"] @ W_xc.T + b_c + (feed["cont"][..., None] * feed["h0"]) @ W_hc.T)
    _, _, top = run(LSTM_UNIT, [feed["c0"], gates, feed["cont"]], n_tops=2,
                    dtype=np.float32)
    np.testing.assert_allclose(top[0].data, out["cT"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top[1].data, out["h"], rtol=1e-5, atol=1e-6)


def test_lstm_unit_refuses_bad_shapes():
    c_prev, x, cont = lstm_unit_inputs()
    with pytest.raises(SeqgenError, match=r"layer 'u' \(LSTMUnit\): bottom 'gates' \(1, 4, 8\) "
                                          r"must hold 4 x 3 gate inputs"):
        run(LSTM_UNIT, [c_prev, x[..., :8], cont], n_tops=2)
    with pytest.raises(SeqgenError, match=r"bottom 'cont' \(1, 3\) must be 2-D with shape "
                                          r"\(1, N\) and the N of bottom 'c_prev' \(4\)"):
        run(LSTM_UNIT, [c_prev, x, cont[:, :3]], n_tops=2)


# ---------------------------------------------------------------------------------------
# Embed's padding (-1), as LRCN's files hold it
# ---------------------------------------------------------------------------------------
def test_embed_padding_rows_are_zero_and_take_no_gradient(capsys):
    from seqgen.layers import embed

    embed.WARNED_PADDING.discard("emb_pad")
    text = ('name: "emb_pad" type: "Embed" bottom: "words" top: "vec" embed_param { '
            'num_output: 3 input_dim: 5 weight_filler { type: "gaussian" std: 1 } '
            'bias_filler { type: "uniform" min: -1 max: 1 } }')
    words = np.array([[0, -1, 2], [-1, 4, 4]], float)
    layer, _, top = run(text, [words])
    W, b = layer.blobs[0].data, layer.blobs[1].data
    pad = words == -1
    want = np.where(pad[..., None], 0, W[np.where(pad, 0, words).astype(int)] + b)
    np.testing.assert_array_equal(top[0].data, want)
    assert check_layer_gradients(factory(text), [words.shape], {0: words}) < 1e-6
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "'emb_pad' (Embed)" in err and "holds 2 padding" in err


def test_a_solver_trains_a_parameter_blob(tmp_path):
    """SGD on 0.5 |w - t|^2 / N through the Parameter's shared diff: w moves toward t by
    lr * (w - t) / N a step, exactly as the formula says (the solver packs the blob's
    arrays, and the top follows them)."""
    (tmp_path / "net.prototxt").write_text(PARAMETER_NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.5 lr_policy: "fixed" max_iter: 10 display: 0\n')
    import seqgen

    solver = seqgen.get_solver(str(tmp_path / "solver.prototxt"), log=lambda *a: None)
    t = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = np.zeros((2, 3))
    for _ in range(3):
        solver.net.blobs["target"].data[...] = t
        solver.step(1)
        w -= 0.5 * (w - t) / 2
    np.testing.assert_allclose(solver.net.params["w"][0].data, w, rtol=1e-6)
