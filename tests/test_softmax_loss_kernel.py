"""kernels/softmax_loss.py and the SoftmaxWithLoss layer over it, against a float64 numpy
formula written here: labels (truncation, ignore_label, the first bad position), softmax,
loss with the FLT_MIN clamp, every normalization mode, ignored and all-ignored batches and
the gradient, in float32 and float64, for rows x classes (inner = 1) and (outer, C, inner)."""
import numpy as np
import pytest
from google.protobuf import text_format

from seqgen.blob import Blob
from seqgen.kernels.softmax_loss import (
    read_labels,
    softmax_loss_3d,
    softmax_loss_backward_3d,
    softmax_loss_backward_rows,
    softmax_loss_rows,
)
from seqgen.net import TRAIN
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

FLT_MIN = float(np.finfo(np.float32).tiny)
# float32: a row's normaliser is a float32 sum of C terms, whose rounding grows with C over
# the vector width numba compiles for; with C = 10000 the worst element was 3.3e-6 relative
# off in a generic (SSE2) build, where AVX-512 had stayed below 2e-6 (2026-12-06).
TOL = {np.float32: 1e-5, np.float64: 1e-13}


def np_softmax(x, axis):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- labels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_truncate_toward_zero_and_skip_the_ignored(dtype):
    labels = np.array([0, 2.7, -0.5, -1, 3.999, -1.5, 1], dtype)
    lab = np.full(labels.size, 99, np.int64)
    count, bad = read_labels(labels, 4, True, -1, lab)
    assert (count, bad) == (5, -1)
    # -1.5 truncates to -1 (numpy's astype and C's cast agree): ignored as well
    np.testing.assert_array_equal(lab, [0, 2, 0, -1, 3, -1, 1])


def test_an_ignore_label_inside_the_classes_is_skipped():
    lab = np.zeros(4, np.int64)
    assert read_labels(np.array([0.0, 1, 2, 0.5]), 3, True, 0, lab) == (2, -1)
    np.testing.assert_array_equal(lab, [-1, 1, 2, -1])


@pytest.mark.parametrize("bad", [4, -1, -2.5, 7.5, np.nan, np.inf, -np.inf, 1e30])
def test_labels_report_the_first_bad_position(bad):
    labels = np.array([0, 1, bad, 2, bad], np.float32)
    assert read_labels(labels, 4, False, 0, np.zeros(5, np.int64))[1] == 2
    if bad == -1:
        assert read_labels(labels, 4, True, -1, np.zeros(5, np.int64)) == (3, -1)
    else:
        assert read_labels(labels, 4, True, -1, np.zeros(5, np.int64))[1] == 2


# -- kernels -----------------------------------------------------------------------------------
def reference(x, lab, axis):
    """prob, summed loss, gradient per unit scale, for labels `lab` (-1 = ignored)."""
    p = np_softmax(x, axis)
    C = x.shape[axis]
    rows = np.moveaxis(p, axis, -1).reshape(-1, C)
    valid = lab.reshape(-1) >= 0
    k = np.where(valid, lab.reshape(-1), 0)
    picked = rows[np.arange(rows.shape[0]), k]
    loss = -np.log(np.maximum(picked[valid], FLT_MIN)).sum()
    grad = (rows - np.eye(C)[k]) * valid[:, None]
    shape = np.moveaxis(p, axis, -1).shape
    return p, loss, np.moveaxis(grad.reshape(shape), -1, axis)


def some_labels(rng, n, C, ignored):
    lab = rng.integers(0, C, n)
    lab[rng.permutation(n)[:ignored]] = -1
    return lab


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R, C, ignored", [(37, 10000, 5), (64, 65, 0), (9, 3, 9), (5, 1, 2)])
def test_rows_kernel(dtype, R, C, ignored):
    rng = np.random.default_rng(R + C)
    x = rng.normal(0, 4, (R, C)).astype(dtype)
    lab = some_labels(rng, R, C, ignored)
    prob = np.full_like(x, np.nan)
    loss = softmax_loss_rows(x, lab, prob)
    p, want, grad = reference(x, lab, 1)
    tol = TOL[dtype]
    np.testing.assert_allclose(prob, p, rtol=tol, atol=tol * 1e-3)
    assert loss == pytest.approx(want, rel=tol, abs=tol)  # 0 when all are ignored
    diff = np.full_like(x, np.nan)
    softmax_loss_backward_rows(prob, lab, dtype(0.75), diff)
    np.testing.assert_allclose(diff, 0.75 * grad, rtol=tol, atol=tol)
    assert not diff[lab < 0].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 7, 5), (1, 10000, 2), (4, 1, 3)])
def test_3d_kernel(dtype, shape):
    O, C, I = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(0, 4, shape).astype(dtype)
    lab = some_labels(rng, O * I, C, 2).reshape(O, I)
    prob = np.full_like(x, np.nan)
    loss = softmax_loss_3d(x, lab, prob, np.zeros(I, dtype), np.zeros(I))
    p, want, grad = reference(x, lab, 1)
    tol = TOL[dtype]
    np.testing.assert_allclose(prob, p, rtol=tol, atol=tol * 1e-3)
    assert loss == pytest.approx(want, rel=tol)
    diff = np.full_like(x, np.nan)
    softmax_loss_backward_3d(prob, lab, dtype(-2), diff)
    np.testing.assert_allclose(diff, -2 * grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_scores_and_the_flt_min_clamp(dtype):
    # target scores 0, 80, 90, 200 and 1000 below the best: the last three have probability
    # below FLT_MIN (float32 exp would clamp there) and cost -log(FLT_MIN) = 87.3365
    x = np.array([[1000, 1000, -1000], [0, -80, 1], [0, -90, 0], [0, -200, 0],
                  [1e3, 0, 0]], dtype)
    lab = np.array([2, 1, 1, 1, 1], np.int64)
    prob = np.zeros_like(x)
    losses = []
    for r in range(len(x)):
        losses.append(softmax_loss_rows(x[r:r + 1], lab[r:r + 1], prob[r:r + 1]))
    np.testing.assert_allclose(prob[0], [0.5, 0.5, 0], atol=1e-30)
    want = [-np.log(FLT_MIN), 81 + np.log1p(np.exp(-1) + np.exp(-81)), -np.log(FLT_MIN),
            -np.log(FLT_MIN), -np.log(FLT_MIN)]
    np.testing.assert_allclose(losses, want, rtol=2e-6)


@pytest.mark.parametrize("kernel", ["rows", "3d"])
def test_nan_scores_make_their_row_nan(kernel):
    x = np.zeros((2, 4, 1), np.float32)
    x[0, 2, 0] = np.nan
    lab = np.array([[1], [1]], np.int64)
    prob = np.zeros_like(x)
    if kernel == "rows":
        loss = softmax_loss_rows(x[:, :, 0], lab[:, 0], prob[:, :, 0])
    else:
        loss = softmax_loss_3d(x, lab, prob, np.zeros(1, np.float32), np.zeros(1))
    assert np.isnan(prob[0]).all() and np.isnan(loss)
    np.testing.assert_allclose(prob[1], 0.25)


# -- the layer ---------------------------------------------------------------------------------
NORMS = ["VALID", "FULL", "BATCH_SIZE", "NONE"]


def run_layer(x, labels, axis, mode, ignore, dtype, weight=1.0):
    text = (f'name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" '
            f'top: "prob" softmax_param {{ axis: {axis} }} loss_param {{ normalization: {mode} '
            + (f"ignore_label: {ignore}" if ignore is not None else "") + " }")
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    layer = layer_class(lp.type)(lp, TRAIN)
    bottom = [Blob(x.shape, dtype), Blob(labels.shape, dtype)]
    bottom[0].data[...] = x
    bottom[1].data[...] = labels
    top = [Blob((0,), dtype), Blob((0,), dtype)]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    out = []
    for _ in range(2):  # a second call at the same shapes reuses the buffers
        layer.forward(bottom, top)
        top[0].diff[...] = weight
        bottom[0].diff[...] = np.nan
        layer.backward(top, [True, False], bottom)
        out.append((float(top[0].data), top[1].data.copy(), bottom[0].diff.copy()))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][2], out[1][2])
    return out[1]


def layer_reference(x, labels, axis, mode, ignore, weight):
    outer = int(np.prod(x.shape[:axis]))
    lab = labels.astype(np.int64).reshape(-1)
    if ignore is not None:
        lab = np.where(lab == ignore, -1, lab)
    p, loss, grad = reference(x, lab, axis)
    n = {"VALID": (lab >= 0).sum(), "FULL": lab.size, "BATCH_SIZE": outer, "NONE": 1}[mode]
    n = max(1, n)
    return loss / n, p, weight * grad / n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", NORMS)
@pytest.mark.parametrize("shape, axis", [((6, 4, 50), 2), ((6, 50), 1), ((3, 5, 2), 1)])
@pytest.mark.parametrize("ignored", ["some", "all", "none"])
def test_layer_against_the_formula(dtype, mode, shape, axis, ignored):
    rng = np.random.default_rng(len(shape) + axis)
    x = rng.normal(0, 2, shape)
    C = shape[axis]
    lshape = shape[:axis] + shape[axis + 1:]
    labels = rng.integers(0, C, lshape).astype(np.float64)
    ignore = None if ignored == "none" else -1
    if ignored == "some":
        labels.reshape(-1)[::3] = -1
    elif ignored == "all":
        labels[...] = -1
    loss, prob, diff = run_layer(x, labels, axis, mode, ignore, dtype, weight=2.5)
    want_loss, want_prob, want_diff = layer_reference(x, labels, axis, mode, ignore, 2.5)
    tol = TOL[dtype]
    assert loss == pytest.approx(want_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(prob, want_prob, rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(diff, want_diff, rtol=tol, atol=tol)
    if ignored == "all":
        assert loss == 0 and not diff.any()  # the normalizer is max(1, 0), not 0
