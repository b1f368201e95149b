"""kernels/dropout.py and the Dropout layer over it against x * (u >= ratio) * scale written
in numpy: the same bits in float32 and float64, in place, NaN and inf kept where Caffe's
order keeps them, and the layer's draws those of rng.random(shape)."""
import numpy as np
import pytest
from google.protobuf import text_format

from seqgen.blob import Blob
from seqgen.kernels.dropout import apply_mask
from seqgen.net import TRAIN
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_place", [False, True])
def test_apply_mask_is_the_numpy_formula(dtype, in_place):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, 0]
    u = rng.random(1000)
    u[:4] = [0.1, 0.2, 0.9, 0.9]  # NaN and inf dropped (NaN both), -inf kept
    ratio, scale = 0.3, dtype(1 / (1 - 0.3))
    with np.errstate(invalid="ignore"):  # inf * 0
        want = x * (u >= ratio) * scale
    out = x if in_place else np.zeros_like(x)
    apply_mask(x, u, ratio, scale, out)
    np.testing.assert_array_equal(out, want)  # assert_array_equal treats NaN == NaN
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == -np.inf
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_uses_the_draws_of_rng_random(dtype):
    ratio = 0.4
    lp = text_format.Parse(f'name: "d" type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}',
                           caffe_pb2.LayerParameter())
    layer = layer_class("Dropout")(lp, TRAIN)
    x, top = Blob((6, 7), dtype), Blob((0,), dtype)
    x.data[...] = np.random.default_rng(1).normal(size=x.shape)
    layer.setup([x], [top])
    layer.reshape([x], [top])
    scale = dtype(1.0 / (1.0 - float(np.float32(ratio))))
    for seed in (5, 6):  # the second call refills the same buffer
        layer.rng = np.random.default_rng(seed)
        layer.forward([x], [top])
        keep = np.random.default_rng(seed).random(x.shape) >= float(np.float32(ratio))
        np.testing.assert_array_equal(top.data, x.data * keep * scale)
        top.diff[...] = np.arange(42).reshape(6, 7)
        layer.backward([top], [True], [x])
        np.testing.assert_array_equal(x.diff, top.diff * keep * scale)
