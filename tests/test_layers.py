"""The element-wise, shape, embedding and softmax layers: gradients against finite
differences (float64, see gradcheck.py), forward values against numpy formulas written
out here, in-place use, phases, and the errors users see."""
import numpy as np
import pytest
from gradcheck import check_layer_gradients, numeric_gradient
from helpers import layer_factory as factory
from helpers import run_layer as run
from reference import sigmoid

from seqgen import fillers
from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TEST, TRAIN, Net
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics




def away_from_zero(shape, seed=1):
    """Uniform magnitudes in [0.1, 1) with random signs: no kink within eps of a value."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------------
# Embed
# ---------------------------------------------------------------------------------------
EMBED = """name: "emb" type: "Embed" bottom: "words" top: "vec"
embed_param { num_output: 3 input_dim: 5 %s
  weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" min: -1 max: 1 } }"""
WORDS = np.array([[0, 4, 2, 4], [1, 1, 3, 0], [2, 4, 4, 0]], float)  # repeats on purpose


@pytest.mark.parametrize("bias", ["", "bias_term: false"])
def test_embed_gradients_and_values(bias):
    err = check_layer_gradients(factory(EMBED % bias), [WORDS.shape], {0: WORDS})
    assert err < 1e-6
    layer, _, top = run(EMBED % bias, [WORDS])
    W = layer.blobs[0].data
    assert W.shape == (5, 3)
    want = W[WORDS.astype(int)] + (layer.blobs[1].data if not bias else 0)
    assert top[0].shape == (3, 4, 3)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-6)


@pytest.mark.parametrize("bad", [5, -2, -0.5, 1.5, np.nan])
def test_embed_rejects_bad_indices(bad):
    words = WORDS.copy()
    words[1, 2] = bad
    with pytest.raises(SeqgenError, match=r"layer 'emb' \(Embed\).*bottom 'words'.*\[0, 5\)"):
        run(EMBED % "", [words])


def test_embed_takes_no_gradient_to_indices():
    assert 0 in layer_class("Embed").no_grad_bottoms


# ---------------------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_values_and_gradients(axis):
    text = f'name: "sm" type: "Softmax" softmax_param {{ axis: {axis} }}'
    x = np.random.default_rng(3).normal(0, 2, (2, 3, 4))
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, np_softmax(x, axis), rtol=1e-12)
    assert check_layer_gradients(factory(text), [(2, 3, 4)]) < 1e-6


def test_softmax_in_place():
    assert check_layer_gradients(factory('name: "sm" type: "Softmax"'), [(3, 4)],
                                 in_place=True) < 1e-6


def test_softmax_is_stable_for_large_inputs():
    _, _, top = run('name: "sm" type: "Softmax"', [[[1000.0, 1000.0, -1000.0]]],
                    dtype=np.float32)
    np.testing.assert_allclose(top[0].data, [[0.5, 0.5, 0.0]])


# ---------------------------------------------------------------------------------------
# SoftmaxWithLoss
# ---------------------------------------------------------------------------------------
LOSS = 'name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" %s'
# x (2, 3, 2): outer 2, 3 classes, inner 2 -> 4 predictions; one is ignored (-1)
LABELS = np.array([[0, 2], [1, -1]], float)
NORMS = {  # loss_param text -> what the summed loss of the 3 valid predictions is divided by
    "": 3, "normalization: VALID": 3, "normalization: FULL": 4,
    "normalization: BATCH_SIZE": 2, "normalization: NONE": 1,
    "normalize: true": 3, "normalize: false": 2,
    "normalize: false normalization: FULL": 4,  # the explicit mode wins over the legacy bool
}


@pytest.mark.parametrize("mode", list(NORMS))
def test_softmax_loss_normalization_by_hand(mode):
    # all-zero logits: every class has probability 1/3, each valid loss is ln 3
    text = LOSS % f"loss_param {{ ignore_label: -1 {mode} }}"
    _, _, top = run(text, [np.zeros((2, 3, 2)), LABELS])
    assert top[0].shape == ()
    np.testing.assert_allclose(top[0].data, 3 * np.log(3) / NORMS[mode], rtol=1e-12)


@pytest.mark.parametrize("mode", list(NORMS))
def test_softmax_loss_values_and_gradients(mode):
    text = LOSS % f"loss_param {{ ignore_label: -1 {mode} }}"
    x = np.random.default_rng(4).normal(0, 1.5, (2, 3, 2))
    _, _, top = run(text, [x, LABELS])
    p = np_softmax(x, 1)
    picked = [p[0, 0, 0], p[0, 2, 1], p[1, 1, 0]]
    np.testing.assert_allclose(top[0].data, -np.sum(np.log(picked)) / NORMS[mode], rtol=1e-12)
    assert check_layer_gradients(factory(text), [x.shape, LABELS.shape], {0: x, 1: LABELS}) < 1e-6


def test_softmax_loss_ignored_positions_get_zero_gradient():
    text = LOSS % "loss_param { ignore_label: -1 }"
    layer, bottom, top = run(text, [np.random.default_rng(5).normal(size=(2, 3, 2)), LABELS])
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[1, :, 1], 0)
    assert np.all(bottom[0].diff[0, :, 0] != 0)


def test_softmax_loss_all_ignored_gives_zero_not_nan():
    text = LOSS % "loss_param { ignore_label: 7 }"
    _, _, top = run(text, [np.ones((3, 4)), np.full(3, 7.0)])
    assert top[0].data == 0  # normalizer max(1, 0 valid)


def test_softmax_loss_axis_2_with_probability_top():
    text = LOSS % 'top: "prob" softmax_param { axis: 2 }'
    x = np.random.default_rng(6).normal(size=(3, 2, 4))
    labels = np.array([[0, 3], [2, 2], [1, 0]], float)
    _, _, top = run(text, [x, labels], n_tops=2)
    p = np_softmax(x, 2)
    np.testing.assert_allclose(top[1].data, p, rtol=1e-12)
    want = -np.mean(np.log(np.take_along_axis(p, labels.astype(int)[..., None], 2)))
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    # the probability top is an output only: no gradient flows back from it (as in Caffe)
    assert check_layer_gradients(factory(text), [x.shape, labels.shape], {0: x, 1: labels},
                                 n_tops=2, objective_tops=[0]) < 1e-6


@pytest.mark.parametrize("label, msg", [(3.0, r"label 3 at \(1,\)"),
                                          (-1.0, r"label -1 at \(1,\)")])
def test_softmax_loss_rejects_labels_out_of_range(label, msg):
    labels = np.array([0.0, label])
    with pytest.raises(SeqgenError, match=r"layer 'loss'.*bottom 'y' holds " + msg):
        run(LOSS % "", [np.zeros((2, 3)), labels])


def test_softmax_loss_label_count_mismatch():
    with pytest.raises(SeqgenError, match=r"layer 'loss' \(SoftmaxWithLoss\).*'y' has 2 labels"):
        run(LOSS % "", [np.zeros((2, 3, 2)), np.zeros((2, 1))])
    with pytest.raises(SeqgenError, match=r"layer 'loss'.*differ in their first dimension"):
        run(LOSS % "", [np.zeros((2, 3)), np.zeros((1, 2))])


def test_softmax_loss_scales_gradient_by_loss_weight():
    text = LOSS % ""
    x = np.random.default_rng(7).normal(size=(4, 3))
    labels = np.array([0.0, 1, 2, 1])
    layer, bottom, top = run(text, [x, labels])
    top[0].diff[...] = 2.5
    layer.backward(top, [True, False], bottom)
    onehot = np.eye(3)[labels.astype(int)]
    np.testing.assert_allclose(bottom[0].diff, 2.5 * (np_softmax(x, 1) - onehot) / 4,
                               rtol=1e-12)


# ---------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------
def dropout(ratio=0.5):
    return f'name: "drop" type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}'


def test_dropout_test_phase_is_identity():
    x = np.random.default_rng(8).normal(size=(3, 5))
    layer, bottom, top = run(dropout(), [x], phase=TEST)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = 2 * x
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 2 * x)


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_dropout_train_phase_masks_and_scales(ratio):
    x = np.random.default_rng(9).uniform(1, 2, (100, 100))
    layer, bottom, top = run(dropout(ratio), [x])
    y = top[0].data
    kept = y != 0
    scale = 1.0 / (1.0 - float(np.float32(ratio)))  # float proto field, double division
    np.testing.assert_allclose(y[kept], x[kept] * scale, rtol=1e-12)
    assert abs(kept.mean() - (1 - ratio)) < 0.02
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, kept * scale, rtol=1e-12)


def test_dropout_masks_differ_between_calls_and_repeat_with_a_seeded_rng():
    x = np.ones((20, 20))
    layer, bottom, top = run(dropout(), [x])
    first = top[0].data.copy()
    layer.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)
    outs = []
    for _ in range(2):
        layer.rng = np.random.default_rng(123)
        layer.forward(bottom, top)
        outs.append(top[0].data.copy())
    np.testing.assert_array_equal(*outs)


def test_dropout_float32_keeps_dtype():
    _, _, top = run(dropout(), [np.ones((4, 4))], dtype=np.float32)
    assert top[0].data.dtype == np.float32
    assert set(np.unique(top[0].data)) <= {0.0, 2.0}


@pytest.mark.parametrize("in_place", [False, True])
def test_dropout_train_gradients(in_place):
    def reseed(layer):  # the same mask for every finite-difference evaluation
        layer.rng = np.random.default_rng(42)

    assert check_layer_gradients(factory(dropout(0.4)), [(4, 5)], in_place=in_place,
                                 before_forward=reseed) < 1e-6


def test_dropout_ratio_one_is_refused():
    with pytest.raises(SeqgenError, match=r"layer 'drop' \(Dropout\).*dropout_ratio"):
        run(dropout(1.0), [np.ones(3)])


# ---------------------------------------------------------------------------------------
# ReLU, TanH, Sigmoid
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("in_place", [False, True])
def test_relu(slope, in_place):
    text = f'name: "r" type: "ReLU" relu_param {{ negative_slope: {slope} }}'
    x = away_from_zero((3, 4))
    _, _, top = run(text, [x])
    slope32 = float(np.float32(slope))  # negative_slope is a float proto field
    np.testing.assert_allclose(top[0].data, np.where(x > 0, x, slope32 * x), rtol=1e-12)
    assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=in_place) < 1e-6


@pytest.mark.parametrize("kind, formula", [("TanH", np.tanh), ("Sigmoid", sigmoid)])
@pytest.mark.parametrize("in_place", [False, True])
def test_tanh_sigmoid(kind, formula, in_place):
    text = f'name: "a" type: "{kind}"'
    x = np.random.default_rng(10).normal(0, 2, (3, 4))
    _, _, top = run(text, [x])
    np.testing.assert_allclose(top[0].data, formula(x), rtol=1e-12)
    assert check_layer_gradients(factory(text), [x.shape], {0: x}, in_place=in_place) < 1e-6


def test_in_place_forward_overwrites_the_shared_blob():
    layer = factory('name: "r" type: "ReLU"')()
    b = Blob((3,), np.float32)
    b.data[...] = [-1, 0.5, 2]
    layer.setup([b], [b])
    layer.reshape([b], [b])
    layer.forward([b], [b])
    np.testing.assert_array_equal(b.data, [0, 0.5, 2])
    assert b.data.dtype == np.float32


# ---------------------------------------------------------------------------------------
# Concat and Slice
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("param, axis", [("", 1), ("concat_param { axis: -1 }", 2),
                                         ("concat_param { axis: 0 }", 0),
                                         ("concat_param { concat_dim: 2 }", 2)])
def test_concat(param, axis):
    text = f'name: "cat" type: "Concat" {param}'
    rng = np.random.default_rng(11)
    shapes = []
    for k in (1, 3, 2):
        s = [2, 2, 3]
        s[axis] = k
        shapes.append(tuple(s))
    xs = [rng.normal(size=s) for s in shapes]
    _, _, top = run(text, xs)
    np.testing.assert_array_equal(top[0].data, np.concatenate(xs, axis))
    assert check_layer_gradients(factory(text), shapes) < 1e-6


def test_concat_shape_mismatch_names_layer_and_blob():
    text = 'name: "cat" type: "Concat" bottom: "a" bottom: "b"'
    with pytest.raises(SeqgenError, match=r"layer 'cat' \(Concat\): bottom 'b' \(3, 4\)"):
        run(text, [np.zeros((2, 4)), np.zeros((3, 4))])


def test_concat_axis_and_concat_dim_together_is_an_error():
    with pytest.raises(SeqgenError, match="not both"):
        run('name: "cat" type: "Concat" concat_param { axis: 1 concat_dim: 1 }',
            [np.zeros((2, 2))] * 2)


@pytest.mark.parametrize("param, sizes", [("slice_point: 1 slice_point: 4", (1, 3, 2)),
                                          ("", (2, 2, 2)),
                                          ("axis: -1 slice_point: 1 slice_point: 2", (1, 1, 1))])
def test_slice(param, sizes):
    axis = 2 if "axis: -1" in param else 1
    text = f'name: "sl" type: "Slice" slice_param {{ {param} }}'
    shape = [2, 6, 3]
    x = np.random.default_rng(12).normal(size=shape)
    _, _, top = run(text, [x], n_tops=3)
    parts = np.split(x, np.cumsum(sizes)[:-1], axis)
    for t, want in zip(top, parts):
        np.testing.assert_array_equal(t.data, want)
    assert check_layer_gradients(factory(text), [shape], n_tops=3) < 1e-6


def test_slice_legacy_slice_dim():
    x = np.arange(12.0).reshape(2, 6)
    _, _, top = run('name: "sl" type: "Slice" slice_param { slice_dim: 0 }', [x], n_tops=2)
    np.testing.assert_array_equal(top[1].data, x[1:])


@pytest.mark.parametrize("param, n_tops, msg", [
    ("", 4, "do not divide"),
    ("slice_point: 2", 3, "1 slice_point"),
    ("slice_point: 3 slice_point: 2", 3, "increase strictly"),
    ("slice_point: 2 slice_point: 7", 3, "increase strictly"),
])
def test_slice_errors(param, n_tops, msg):
    with pytest.raises(SeqgenError, match=rf"layer 'sl' \(Slice\).*{msg}"):
        run(f'name: "sl" type: "Slice" slice_param {{ {param} }}', [np.zeros((2, 6))],
            n_tops=n_tops)


# ---------------------------------------------------------------------------------------
# Reshape and Flatten (identity on values: shapes, and that diffs come back)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("param, want", [
    ("shape { dim: 0 dim: -1 }", (2, 60)),
    ("shape { dim: 0 dim: 0 dim: -1 dim: 5 }", (2, 3, 4, 5)),
    ("shape { dim: -1 }", (120,)),
    ("shape { dim: 6 dim: 20 }", (6, 20)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 12, 5)),
    ("axis: 1 num_axes: 1 shape { dim: 3 dim: 1 }", (2, 3, 1, 4, 5)),
    ("axis: -1 num_axes: 0 shape { dim: 1 }", (2, 3, 4, 5, 1)),  # -1 = after the last axis
    ("axis: 0 num_axes: 0 shape { dim: 1 }", (1, 2, 3, 4, 5)),
    ("axis: -2 shape { dim: 0 dim: -1 }", (2, 3, 4, 5, 1)),  # replaces axes 3..
])
def test_reshape_shapes(param, want):
    x = np.random.default_rng(13).normal(size=(2, 3, 4, 5))
    layer, bottom, top = run(f'name: "rs" type: "Reshape" reshape_param {{ {param} }}', [x])
    assert top[0].shape == want
    np.testing.assert_array_equal(top[0].data.ravel(), x.ravel())
    top[0].diff[...] = top[0].data * 3
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 3 * x)


@pytest.mark.parametrize("param, msg", [
    ("shape { dim: -1 dim: -1 }", "more than one -1"),
    ("shape { dim: 7 dim: -1 }", "not divisible"),
    ("shape { dim: 5 dim: 5 }", "has 25 elements"),
    ("axis: 1 shape { dim: 0 dim: 0 dim: 0 dim: 0 }", "no bottom axis"),
    ("axis: 5 shape { dim: 1 }", "out of range"),
])
def test_reshape_errors(param, msg):
    with pytest.raises(SeqgenError, match=rf"layer 'rs' \(Reshape\).*{msg}"):
        run(f'name: "rs" type: "Reshape" reshape_param {{ {param} }}', [np.zeros((2, 3, 4))])


@pytest.mark.parametrize("param, want", [("", (2, 60)), ("axis: 1 end_axis: 2", (2, 12, 5)),
                                         ("axis: 0", (120,)), ("axis: -2", (2, 3, 20)),
                                         ("axis: 2 end_axis: 2", (2, 3, 4, 5))])
def test_flatten_shapes(param, want):
    x = np.random.default_rng(14).normal(size=(2, 3, 4, 5))
    layer, bottom, top = run(f'name: "fl" type: "Flatten" flatten_param {{ {param} }}', [x])
    assert top[0].shape == want
    np.testing.assert_array_equal(top[0].data, x.reshape(want))
    top[0].diff[...] = -top[0].data
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, -x)


def test_flatten_refuses_in_place():
    layer = factory('name: "fl" type: "Flatten"')()
    b = Blob((2, 3))
    with pytest.raises(SeqgenError, match="in place"):
        layer.setup([b], [b])


# ---------------------------------------------------------------------------------------
# Eltwise
# ---------------------------------------------------------------------------------------
def distinct(n_bottoms, shape, seed=15):
    """Bottoms whose values are all distinct and 0.03 apart (no MAX ties within eps)."""
    count = int(np.prod(shape))
    v = np.random.default_rng(seed).permutation(n_bottoms * count) * 0.03 - 1.0
    return [v[i * count:(i + 1) * count].reshape(shape) for i in range(n_bottoms)]


@pytest.mark.parametrize("param, formula", [
    ("operation: PROD", lambda a, b, c: a * b * c),
    ("operation: PROD stable_prod_grad: false", lambda a, b, c: a * b * c),
    ("", lambda a, b, c: a + b + c),
    ("operation: SUM coeff: 1 coeff: -0.5 coeff: 2", lambda a, b, c: a - 0.5 * b + 2 * c),
    ("operation: MAX", lambda a, b, c: np.maximum(np.maximum(a, b), c)),
])
def test_eltwise(param, formula):
    text = f'name: "el" type: "Eltwise" eltwise_param {{ {param} }}'
    xs = distinct(3, (2, 3, 2))
    _, _, top = run(text, xs)
    np.testing.assert_allclose(top[0].data, formula(*xs), rtol=1e-12)
    data = dict(enumerate(xs))
    assert check_layer_gradients(factory(text), [x.shape for x in xs], data) < 1e-6


def test_eltwise_max_ties_follow_caffe():
    # bottom 1 wins a tie with bottom 0; a later bottom must be strictly greater
    a, b, c = np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([1.0, 2.0])
    layer, bottom, top = run('name: "el" type: "Eltwise" eltwise_param { operation: MAX }',
                             [a, b, c])
    top[0].diff[...] = [10.0, 20.0]
    layer.backward(top, [True] * 3, bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 20])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0])


@pytest.mark.parametrize("param, arrays, msg", [
    ("operation: PROD coeff: 1 coeff: 2", [np.ones(2)] * 2, "only for operation SUM"),
    ("coeff: 1", [np.ones(2)] * 2, "1 coeff for 2 bottoms"),
    ("", [np.ones(2), np.ones(3)], r"bottom 'b' \(3,\) differs"),
    ("", [np.ones(2)], "at least 2 bottom"),
])
def test_eltwise_errors(param, arrays, msg):
    text = f'name: "el" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param {{ {param} }}'
    with pytest.raises(SeqgenError, match=rf"layer 'el' \(Eltwise\).*{msg}"):
        run(text, arrays)


# ---------------------------------------------------------------------------------------
# Scale and Bias
# ---------------------------------------------------------------------------------------
SHAPE = (2, 3, 4)
RANDOM = 'filler { type: "uniform" min: -1 max: 1 }'
RANDOM_BIAS = 'bias_filler { type: "uniform" min: -1 max: 1 }'


def broadcast(p, axis):
    """Parameter p applied to SHAPE from `axis`, as an explicit numpy broadcast."""
    return p.reshape((1,) * axis + p.shape + (1,) * (len(SHAPE) - axis - p.ndim))


@pytest.mark.parametrize("param, axis, pshape", [
    ("", 1, (3,)),
    ("axis: 0 num_axes: 2", 0, (2, 3)),
    ("axis: -1", 2, (4,)),
    ("axis: 1 num_axes: -1", 1, (3, 4)),
    ("num_axes: 0", 0, ()),
])
@pytest.mark.parametrize("bias_term", [False, True])
def test_scale_learned(param, axis, pshape, bias_term):
    extra = f"bias_term: true {RANDOM_BIAS}" if bias_term else ""
    text = f'name: "sc" type: "Scale" scale_param {{ {param} {RANDOM} {extra} }}'
    x = np.random.default_rng(16).normal(size=SHAPE)
    layer, _, top = run(text, [x])
    s = layer.blobs[0].data
    assert s.shape == pshape and len(layer.blobs) == 1 + bias_term
    want = x * broadcast(s, axis)
    if bias_term:
        assert layer.blobs[1].shape == pshape
        want = want + broadcast(layer.blobs[1].data, axis)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    assert check_layer_gradients(factory(text), [SHAPE]) < 1e-6


def test_scale_default_filler_is_identity():
    x = np.random.default_rng(17).normal(size=SHAPE)
    layer, _, top = run('name: "sc" type: "Scale"', [x])
    np.testing.assert_array_equal(layer.blobs[0].data, 1.0)
    np.testing.assert_array_equal(top[0].data, x)


@pytest.mark.parametrize("param, sshape, axis", [("axis: 0", (2, 3), 0), ("", (3,), 1),
                                                 ("axis: 1", (3, 4), 1), ("", (), 0)])
@pytest.mark.parametrize("bias_term", [False, True])
def test_scale_from_second_bottom(param, sshape, axis, bias_term):
    extra = f"bias_term: true {RANDOM_BIAS}" if bias_term else ""
    text = f'name: "sc" type: "Scale" scale_param {{ {param} {extra} }}'
    rng = np.random.default_rng(18)
    x, s = rng.normal(size=SHAPE), rng.normal(size=sshape)
    layer, _, top = run(text, [x, s])
    want = x * broadcast(s, axis)
    if bias_term:  # a learned bias shaped like the scale bottom
        assert [b.shape for b in layer.blobs] == [sshape]
        want = want + broadcast(layer.blobs[0].data, axis)
    else:
        assert layer.blobs == []
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    assert check_layer_gradients(factory(text), [SHAPE, sshape]) < 1e-6


@pytest.mark.parametrize("bias_term", [False, True])
def test_scale_in_place(bias_term):
    extra = f"bias_term: true {RANDOM_BIAS}" if bias_term else ""
    text = f'name: "sc" type: "Scale" scale_param {{ {RANDOM} {extra} }}'
    assert check_layer_gradients(factory(text), [SHAPE], in_place=True) < 1e-6


def test_scale_shape_mismatch():
    text = 'name: "sc" type: "Scale" bottom: "x" bottom: "s"'
    with pytest.raises(SeqgenError, match=r"layer 'sc' \(Scale\).*bottom 's' of shape \(4,\)"):
        run(text, [np.zeros(SHAPE), np.zeros(4)])


@pytest.mark.parametrize("param, axis, pshape", [("", 1, (3,)), ("axis: 0 num_axes: -1", 0, SHAPE),
                                                 ("num_axes: 0", 0, ())])
@pytest.mark.parametrize("in_place", [False, True])
def test_bias_learned(param, axis, pshape, in_place):
    text = f'name: "bi" type: "Bias" bias_param {{ {param} {RANDOM} }}'
    x = np.random.default_rng(19).normal(size=SHAPE)
    layer, _, top = run(text, [x])
    assert layer.blobs[0].shape == pshape
    np.testing.assert_allclose(top[0].data, x + broadcast(layer.blobs[0].data, axis),
                               rtol=1e-12)
    assert check_layer_gradients(factory(text), [SHAPE], in_place=in_place) < 1e-6


def test_bias_default_filler_is_zero_and_second_bottom_works():
    layer, _, _ = run('name: "bi" type: "Bias"', [np.zeros(SHAPE)])
    np.testing.assert_array_equal(layer.blobs[0].data, 0.0)
    text = 'name: "bi" type: "Bias" bias_param { axis: 1 }'
    rng = np.random.default_rng(20)
    x, b = rng.normal(size=SHAPE), rng.normal(size=(3, 4))
    _, _, top = run(text, [x, b])
    np.testing.assert_allclose(top[0].data, x + b, rtol=1e-12)
    assert check_layer_gradients(factory(text), [SHAPE, (3, 4)]) < 1e-6


# ---------------------------------------------------------------------------------------
# Reduction
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("op, formula", [
    ("SUM", lambda x, ax: x.sum(ax)), ("ASUM", lambda x, ax: np.abs(x).sum(ax)),
    ("SUMSQ", lambda x, ax: (x * x).sum(ax)), ("MEAN", lambda x, ax: x.mean(ax)),
])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduction(op, formula, axis):
    text = (f'name: "red" type: "Reduction" '
            f"reduction_param {{ operation: {op} axis: {axis} coeff: -1.5 }}")
    x = away_from_zero(SHAPE, seed=21)
    _, _, top = run(text, [x])
    a = axis % 3
    assert top[0].shape == SHAPE[:a]
    np.testing.assert_allclose(top[0].data, -1.5 * formula(x, tuple(range(a, 3))), rtol=1e-12)
    assert check_layer_gradients(factory(text), [SHAPE], {0: x}) < 1e-6


def test_reduction_axis_out_of_range():
    with pytest.raises(SeqgenError, match=r"layer 'red' \(Reduction\).*axis 3"):
        run('name: "red" type: "Reduction" reduction_param { axis: 3 }', [np.zeros(SHAPE)])


# ---------------------------------------------------------------------------------------
# Errors for wrong blob counts and axes, as the Net reports them
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, n_bottoms, msg", [
    ('name: "s" type: "Softmax" softmax_param { axis: 2 }', 1, "axis 2 is out of range"),
    ('name: "s" type: "TanH"', 2, "needs 1 bottom"),
    ('name: "s" type: "SoftmaxWithLoss"', 1, "needs 2 bottom"),
    ('name: "s" type: "Flatten" flatten_param { axis: 1 end_axis: 0 }', 1, "before axis"),
])
def test_shape_errors_name_the_layer(text, n_bottoms, msg):
    with pytest.raises(SeqgenError, match=rf"layer 's' \(\w+\).*{msg}"):
        run(text, [np.zeros((2, 3))] * n_bottoms)


# ---------------------------------------------------------------------------------------
# A whole net: Input -> Embed -> InnerProduct(axis 2) -> SoftmaxWithLoss
# ---------------------------------------------------------------------------------------
T, N, V, E = 4, 2, 7, 5
NET = f"""
name: "tiny"
layer {{ name: "in" type: "Input" top: "words" top: "target"
        input_param {{ shape {{ dim: {T} dim: {N} }} }} }}
layer {{ name: "emb" type: "Embed" bottom: "words" top: "e"
        embed_param {{ num_output: {E} input_dim: {V} bias_term: false
                      weight_filler {{ type: "uniform" min: -0.5 max: 0.5 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "e" top: "logits"
        inner_product_param {{ num_output: {V} axis: 2
                              weight_filler {{ type: "gaussian" std: 0.5 }}
                              bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "target" top: "loss"
        softmax_param {{ axis: 2 }} loss_param {{ ignore_label: -1 }} }}
"""


def test_net_embed_innerproduct_softmax_loss():
    fillers.seed(1)
    net = Net(parse_net_text(NET, "tiny.prototxt"), phase=TRAIN)
    words = np.array([[0, 3], [6, 3], [2, 0], [5, 1]], float)
    target = np.array([[3, 6], [2, -1], [0, 5], [1, 1]], float)
    out = net.forward(words=words, target=target)
    net.backward()

    # the same computation written out in numpy (float64)
    Wemb = net.params["emb"][0].data.astype(np.float64)
    W, b = (p.data.astype(np.float64) for p in net.params["ip"])
    idx, lab = words.astype(int), target.astype(int)
    e = Wemb[idx]
    logits = e @ W.T + b
    p = np_softmax(logits, 2)
    valid = lab != -1
    picked = np.take_along_axis(p, np.where(valid, lab, 0)[..., None], 2)[..., 0]
    loss = -np.log(picked[valid]).sum() / valid.sum()
    assert net.blobs["logits"].shape == (T, N, V)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-5)

    dlogits = p.copy()
    dlogits[valid, lab[valid]] -= 1
    dlogits *= valid[..., None] / valid.sum()
    dW = dlogits.reshape(-1, V).T @ e.reshape(-1, E)
    de = dlogits @ W
    dWemb = np.zeros_like(Wemb)
    np.add.at(dWemb, idx.ravel(), de.reshape(-1, E))
    np.testing.assert_allclose(net.params["ip"][0].diff, dW, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, dlogits.sum((0, 1)), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(net.params["emb"][0].diff, dWemb, rtol=1e-4, atol=1e-6)
    assert np.all(net.params["emb"][0].diff[4] == 0)  # word 4 never occurs
    assert net.blobs["words"].diff.max() == 0  # indices take no gradient


def test_net_reports_bad_embed_index_with_the_layer_name():
    net = Net(parse_net_text(NET, "tiny.prototxt"), phase=TRAIN)
    with pytest.raises(SeqgenError, match=r"layer 'emb' \(Embed\).*bottom 'words'"):
        net.forward(words=np.full((T, N), V), target=np.zeros((T, N)))


IN_PLACE_NET = """
name: "inplace"
layer { name: "in" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 6 } shape { dim: 4 dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "scale" type: "Scale" bottom: "h" top: "h"
        scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 1.5 }
                      bias_filler { type: "constant" value: 0.2 } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" relu_param { negative_slope: 0.1 } }
layer { name: "drop" type: "Dropout" bottom: "h" top: "h" dropout_param { dropout_ratio: 0.3 } }
layer { name: "slice" type: "Slice" bottom: "h" top: "a" top: "b" slice_param { slice_point: 2 } }
layer { name: "sig" type: "Sigmoid" bottom: "a" top: "a" }
layer { name: "tanh" type: "TanH" bottom: "b" top: "b" }
layer { name: "cat" type: "Concat" bottom: "b" bottom: "a" top: "c" }
layer { name: "rs" type: "Reshape" bottom: "c" top: "r"
        reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "r" bottom: "y" top: "loss" }
"""


def test_net_with_in_place_layers_matches_finite_differences():
    """In-place Scale -> ReLU -> Dropout share one blob inside a real Net (a chain that is
    valid in Caffe too: ReLU's backward reads the blob's final data, whose sign Dropout
    keeps), and Sigmoid / TanH work in place on the slices; the weight gradient agrees
    with finite differences of the (float32) loss."""
    fillers.seed(3)  # fixed weights: no ReLU kink within eps of the checked points
    net = Net(parse_net_text(IN_PLACE_NET, "inplace.prototxt"), phase=TRAIN)
    drop = net.layer("drop")
    rng = np.random.default_rng(22)
    inputs = {"x": rng.normal(size=(4, 6)), "y": rng.uniform(size=(4, 2, 3))}

    def loss():
        drop.rng = np.random.default_rng(0)  # the same mask every time
        return float(net.forward(**inputs)["loss"])

    loss()
    net.backward()
    W = net.params["ip"][0]
    analytic = W.diff.copy()
    assert np.count_nonzero(analytic) > 0
    indices = [(0, 0), (2, 3), (5, 1), (4, 5), (3, 2)]
    num = numeric_gradient(loss, W.data, 1e-3, indices)
    for idx in indices:
        assert abs(num[idx] - analytic[idx]) <= 2e-2 * max(abs(num[idx]), 1e-2), \
            (idx, num[idx], analytic[idx])
