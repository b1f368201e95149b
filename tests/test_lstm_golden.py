"""The fork's `Lstm` layer against recordings of real Caffe (tests/golden/caffe-lstm)."""
import numpy as np
import pytest
from helpers import GOLDEN, assert_close

from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.layers.fork_lstm import ForkLstmLayer
from seqgen.proto import caffe_pb2

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def make_layer(g, fork_compat=False, with_clip=True):
    lp = caffe_pb2.LayerParameter(name="lstm", type="Lstm")
    lp.lstm_param.num_output = int(g["H"])
    lp.lstm_param.batch_size = int(g["N"])
    lp.lstm_param.clipping_threshold = float(g["clipping_threshold"])
    layer = ForkLstmLayer(lp, caffe_pb2.TRAIN, {"fork_compat": fork_compat})
    x = Blob(g["x"].shape)
    bottom = [x] + ([Blob(g["clip"].shape)] if with_clip else [])
    top = [Blob()]
    layer.setup(bottom, top)
    layer.blobs[0].data[...] = g["W_i"]
    layer.blobs[1].data[...] = g["W_h"]
    layer.blobs[2].data[...] = g["b"]
    return layer, bottom, top


def run_call(layer, bottom, top, g, sfx):
    bottom[0].data[...] = g["x" + sfx]
    if len(bottom) > 1:
        bottom[1].data[...] = g["clip" + sfx]
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    fwd = {"top": top[0].data.copy(), "h_T": layer.h_T.copy(), "c_T": layer.c_T.copy(),
           "cell": layer._c[1:].reshape(top[0].shape).copy(),
           "gates": layer._gates.reshape(len(top[0].data), -1).copy()}
    for b in layer.blobs:
        b.diff[...] = 0
    top[0].diff[...] = g["top_diff" + sfx]
    layer.backward(top, [True, False], bottom)
    bwd = {"dx": bottom[0].diff.copy(), "dW_i": layer.blobs[0].diff.copy(),
           "dW_h": layer.blobs[1].diff.copy(), "db": layer.blobs[2].diff.copy(),
           "pre_gate_diff": layer._dpre.reshape(len(top[0].data), -1).copy()}
    return {**fwd, **bwd}


def check_case(path, fork_compat):
    g = np.load(path)
    layer, bottom, top = make_layer(g, fork_compat, bool(g["has_clip"]))
    for call in range(int(g["ncalls"])):
        sfx = "" if call == 0 else "_2"
        got = run_call(layer, bottom, top, g, sfx)
        for key, value in got.items():
            assert_close(value, g[key + sfx], f"{path.name} call {call + 1} {key}")


# a and d: N = 1 from a fresh state, identical in the fork and the corrected fork
@pytest.mark.parametrize("case", ["a", "d"])
def test_fork_cases_as_recorded(case):
    check_case(GOLDEN / "caffe-lstm" / f"layer_{case}.npz", fork_compat=False)
    check_case(GOLDEN / "caffe-lstm" / f"layer_{case}.npz", fork_compat=True)


@pytest.mark.parametrize("case", ["b", "c", "e", "f", "g"])
def test_corrected_cases_by_default(case):
    check_case(GOLDEN / "caffe-lstm" / "corrected" / f"layer_{case}.npz", fork_compat=False)


@pytest.mark.parametrize("case", ["e", "g"])
def test_fork_compat_reproduces_original_recording(case):
    check_case(GOLDEN / "caffe-lstm" / f"layer_{case}.npz", fork_compat=True)


def test_fork_compat_differs_where_the_fork_is_wrong():
    # case g call 2 restarts with clip 0 while a carried h_0 is nonzero: only dW_h differs
    g = np.load(GOLDEN / "caffe-lstm" / "layer_g.npz")
    layer, bottom, top = make_layer(g, fork_compat=False)
    run_call(layer, bottom, top, g, "")
    got = run_call(layer, bottom, top, g, "_2")
    assert np.abs(got["dW_h"] - g["dW_h_2"]).max() > 1e-2


def test_fork_compat_refused_for_several_streams():
    g = np.load(GOLDEN / "caffe-lstm" / "corrected" / "layer_b.npz")
    with pytest.raises(SeqgenError, match="batch_size 1"):
        make_layer(g, fork_compat=True)
