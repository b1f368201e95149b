"""InnerProduct forward and backward against x W^T + b written out in float64 numpy, with
and without transpose and bias, on axis 1 and 2, accumulation onto diffs already there; and
the bits of the plain numpy expressions the layer used before (a 0.1.0 run depends on them)."""
import numpy as np
import pytest
from google.protobuf import text_format
from gradcheck import check_layer_gradients

from seqgen.blob import Blob
from seqgen.net import TRAIN
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def text(num_output, axis, transpose, bias):
    return (f'name: "ip" type: "InnerProduct" inner_product_param {{ num_output: {num_output} '
            f'axis: {axis} transpose: {str(transpose).lower()} bias_term: {str(bias).lower()} '
            'weight_filler { type: "gaussian" std: 1 } '
            'bias_filler { type: "uniform" min: -1 max: 1 } }')


def factory(t):
    lp = text_format.Parse(t, caffe_pb2.LayerParameter())
    return lambda: layer_class(lp.type)(lp, TRAIN)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape, axis", [((4, 3, 6), 2), ((5, 2, 3), 1)])
def test_against_the_formula(dtype, transpose, bias, shape, axis):
    rng = np.random.default_rng(3)
    N_out = 11
    layer = factory(text(N_out, axis, transpose, bias))()
    x = Blob(shape, dtype)
    x.data[...] = rng.normal(size=shape)
    top = Blob((0,), dtype)
    layer.setup([x], [top])
    for b in layer.blobs:
        b.set_arrays(b.data.astype(dtype), rng.normal(size=b.shape).astype(dtype))
    layer.reshape([x], [top])
    M, K = int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))
    W = layer.blobs[0].data.astype(np.float64)
    W = W.T if transpose else W  # (N_out, K)
    b = layer.blobs[1].data.astype(np.float64) if bias else np.zeros(N_out)
    dW0 = layer.blobs[0].diff.astype(np.float64)
    db0 = layer.blobs[1].diff.astype(np.float64) if bias else None
    X = x.data.astype(np.float64).reshape(M, K)
    tol = TOL[dtype]
    for _ in range(2):  # the second call adds on
        layer.forward([x], [top])
        assert top.shape == shape[:axis] + (N_out,)
        np.testing.assert_allclose(top.data.reshape(M, N_out), X @ W.T + b, rtol=tol, atol=tol)
        dy = rng.normal(size=top.shape).astype(dtype)
        top.diff[...] = dy
        layer.backward([top], [True], [x])
        dy = dy.astype(np.float64).reshape(M, N_out)
        dW0 = dW0 + (X.T @ dy if transpose else dy.T @ X)
        np.testing.assert_allclose(layer.blobs[0].diff, dW0, rtol=tol, atol=tol)
        if bias:
            db0 = db0 + dy.sum(axis=0)
            np.testing.assert_allclose(layer.blobs[1].diff, db0, rtol=tol, atol=tol)
        np.testing.assert_allclose(x.diff.reshape(M, K), dy @ W, rtol=tol, atol=tol)


def test_no_propagate_down_leaves_the_bottom_diff():
    layer = factory(text(3, 1, False, True))()
    x, top = Blob((2, 4)), Blob((0,))
    layer.setup([x], [top])
    layer.reshape([x], [top])
    layer.forward([x], [top])
    x.diff[...] = 7
    layer.backward([top], [False], [x])
    assert (x.diff == 7).all()


@pytest.mark.parametrize("transpose", [False, True])
def test_gradients_match_finite_differences(transpose):
    assert check_layer_gradients(factory(text(5, 2, transpose, True)), [(3, 2, 4)]) < 1e-6


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("M, N_out", [(320, 1), (40, 300)])
def test_the_bits_of_the_numpy_expressions(transpose, M, N_out):
    layer = factory(text(N_out, 1, transpose, True))()
    rng = np.random.default_rng(9)
    x, top = Blob((M, 7)), Blob((0,))
    x.data[...] = rng.normal(size=x.shape)
    layer.setup([x], [top])
    layer.reshape([x], [top])
    W, b = layer.blobs[0].data, layer.blobs[1].data
    for blob in layer.blobs:
        blob.diff[...] = rng.normal(size=blob.shape)
    dW, db = layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()
    for _ in range(2):
        layer.forward([x], [top])
        y = x.data @ (W if transpose else W.T)
        y += b
        np.testing.assert_array_equal(top.data, y)
        top.diff[...] = rng.normal(size=top.shape)
        layer.backward([top], [True], [x])
        dy = top.diff
        dW += x.data.T @ dy if transpose else dy.T @ x.data
        db += dy.sum(axis=0)
        np.testing.assert_array_equal(layer.blobs[0].diff, dW)
        np.testing.assert_array_equal(layer.blobs[1].diff, db)
        np.testing.assert_array_equal(x.diff, dy @ (W.T if transpose else W))
