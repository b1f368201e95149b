"""kernels/embed.py against plain numpy: the index check (first bad position), the gather
with and without bias, and the scatter-add with repeated indices, in float32 and float64;
the layer gives the bits of the numpy expressions it replaced."""
import numpy as np
import pytest
from google.protobuf import text_format

from seqgen.blob import Blob
from seqgen.kernels.embed import embed_backward, embed_forward, read_indices
from seqgen.net import TRAIN
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

K, E = 7, 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_indices_reads_integers_in_range(dtype):
    x = np.array([0, 6, 3, 3, 0, 1], dtype)
    idx = np.full(x.size, -5, np.int64)
    assert read_indices(x, K, idx) == -1
    np.testing.assert_array_equal(idx, [0, 6, 3, 3, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [7, 8, -2, 1.5, -0.5, 6.999, np.nan, np.inf, -np.inf, 1e30])
def test_read_indices_returns_the_first_bad_position(dtype, bad):
    x = np.array([1, 2, 3, 4, 5, 6], dtype)
    x[2] = bad
    x[4] = bad  # a later bad value: the first one is reported
    assert read_indices(x, K, np.zeros(x.size, np.int64)) == 2


def table(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, E)).astype(dtype), rng.normal(size=E).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_gathers_rows(dtype, bias):
    W, b = table(dtype)
    idx = np.array([3, 0, 3, 6, 6, 1], np.int64)
    top = np.full((idx.size, E), np.nan, dtype)
    embed_forward(idx, W, b if bias else np.zeros(0, dtype), top)
    want = np.stack([W[k] + (b if bias else 0) for k in idx])
    np.testing.assert_array_equal(top, want)  # one float add per element: exact


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_adds_repeated_indices(dtype):
    rng = np.random.default_rng(1)
    idx = np.array([2, 5, 2, 2, 0, 5, 2], np.int64)  # 2 four times, 5 twice, others never
    dy = rng.normal(size=(idx.size, E)).astype(dtype)
    dW0 = rng.normal(size=(K, E)).astype(dtype)  # diffs accumulate onto what is there
    dW = dW0.copy()
    embed_backward(idx, dy, dW)
    onehot = np.zeros((idx.size, K))
    onehot[np.arange(idx.size), idx] = 1
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dW, dW0 + onehot.T @ dy.astype(np.float64), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(dW[[1, 3, 4, 6]], dW0[[1, 3, 4, 6]])
    # in row order, one add after another (Caffe's axpy loop): the same bits as np.add.at
    ordered = dW0.copy()
    np.add.at(ordered, idx, dy)
    np.testing.assert_array_equal(dW, ordered)


def test_backward_of_no_rows_changes_nothing():
    W, _ = table(np.float32)
    dW = W.copy()
    embed_backward(np.zeros(0, np.int64), np.zeros((0, E), np.float32), dW)
    np.testing.assert_array_equal(dW, W)


@pytest.mark.parametrize("bias", [True, False])
def test_layer_gives_the_numbers_of_the_numpy_expressions(bias):
    """Embed's forward and backward: W[idx] + b, np.add.at and dy.sum(axis=0), bit for bit."""
    text = (f'name: "e" type: "Embed" embed_param {{ num_output: {E} input_dim: {K} '
            f'bias_term: {str(bias).lower()} weight_filler {{ type: "gaussian" std: 1 }} '
            'bias_filler { type: "gaussian" std: 1 } }')
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    layer = layer_class("Embed")(lp, TRAIN)
    rng = np.random.default_rng(2)
    x, top = Blob((40, 3)), Blob((0,))
    x.data[...] = rng.integers(0, K, x.shape)
    layer.setup([x], [top])
    layer.reshape([x], [top])
    for b in layer.blobs:
        b.diff[...] = rng.normal(size=b.shape)
    for _ in range(2):
        W = layer.blobs[0].data
        want_dW, want_db = layer.blobs[0].diff.copy(), layer.blobs[-1].diff.copy()
        layer.forward([x], [top])
        idx = x.data.astype(np.int64)
        np.testing.assert_array_equal(top.data, W[idx] + (layer.blobs[1].data if bias else 0))
        top.diff[...] = rng.normal(size=top.shape)
        layer.backward([top], [False], [x])
        dy = top.diff.reshape(-1, E)
        np.add.at(want_dW, idx.ravel(), dy)
        np.testing.assert_array_equal(layer.blobs[0].diff, want_dW)
        if bias:
            np.testing.assert_array_equal(layer.blobs[1].diff, want_db + dy.sum(axis=0))
