"""Writes the binary files of this corpus (.caffemodel, .solverstate, .npy); run from
anywhere: python tests/malformed/make_binaries.py. The text files are written by hand.

Everything derives from the shipped lstm_short net and the caffe-lstm recording
tests/golden/caffe-lstm/e2e_short_2000/initial.caffemodel; random bytes use a fixed seed,
so the files are the same on every run.
"""
from pathlib import Path

import numpy as np

from seqgen import fillers
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net
from seqgen.proto import caffe_pb2

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
NET_TEXT = (ROOT / "prototxt" / "lstm_short.prototxt").read_text()
INITIAL = (ROOT / "tests" / "golden" / "caffe-lstm" / "e2e_short_2000" / "initial.caffemodel")


def model(**changes):
    """initial.caffemodel as a NetParameter, with blob values changed: {(layer, i): fn}."""
    param = caffe_pb2.NetParameter.FromString(INITIAL.read_bytes())
    for lp in param.layer:
        for i, blob in enumerate(lp.blobs):
            fn = changes.get(f"{lp.name}_{i}")
            if fn is not None:
                values = fn(np.asarray(blob.data, np.float32))
                del blob.data[:]
                blob.data.extend(values.tolist())
    return param.SerializeToString()


def model_with_shape(layer, index, shape):
    """initial.caffemodel with one blob replaced by zeros of another shape."""
    param = caffe_pb2.NetParameter.FromString(INITIAL.read_bytes())
    blob = next(lp for lp in param.layer if lp.name == layer).blobs[index]
    del blob.data[:]
    blob.data.extend([0.0] * int(np.prod(shape)))
    blob.shape.ClearField("dim")
    blob.shape.dim.extend(shape)
    return param.SerializeToString()


def solverstate(shapes, iter_=5):
    """An SGD solverstate with zero history blobs of these shapes."""
    state = caffe_pb2.SolverState(iter=iter_, current_step=0, learned_net="weights.caffemodel")
    for shape in shapes:
        blob = state.history.add()
        blob.shape.dim.extend(shape)
        blob.data.extend([0.0] * int(np.prod(shape)))
    return state.SerializeToString()


def main():
    rng = np.random.default_rng(0)
    fillers.seed(0)  # the saved nets' random weights
    initial = INITIAL.read_bytes()
    lstm_short = [(60, 1), (60, 15), (60,), (1, 15), (1,)]
    files = {
        "data_nan.npy": None,
        "data_3d.npy": None,
        "weights_truncated.caffemodel": initial[:1000],
        "weights_random.caffemodel": rng.integers(0, 256, 600, dtype=np.uint8).tobytes(),
        "weights_text.caffemodel": NET_TEXT.encode(),
        "weights_solverstate.caffemodel": solverstate(lstm_short),
        "weights_empty.caffemodel": b"",
        # lstm1 fits, but ip1 was trained on 7 hidden units where the net has 15
        "weights_ip_inputs.caffemodel": model_with_shape("ip1", 0, (1, 7)),
        "weights_nan.caffemodel": model(ip1_0=lambda w: np.where(np.arange(w.size) == 3,
                                                                 np.nan, w)),
        # every LSTM gate saturated open (h = tanh(1) in every unit from the first step)
        # and an output layer of 3e38s: the first prediction overflows to inf
        "weights_diverge.caffemodel": model(lstm1_2=lambda b: np.full_like(b, 10.0),
                                            ip1_0=lambda w: np.full_like(w, 3e38),
                                            ip1_1=lambda b: np.full_like(b, 3e38)),
        "state_truncated.solverstate": solverstate(lstm_short)[:700],
        "state_caffemodel.solverstate": initial,
        "state_other_net.solverstate": solverstate([(28, 1), (28, 7), (28,), (1, 7), (1,)]),
        "state_empty.solverstate": b"",
    }
    for name, data in files.items():
        if data is not None:
            (HERE / name).write_bytes(data)
    np.save(HERE / "data_nan.npy", np.array([0.1, np.nan, 0.3], np.float32))
    np.save(HERE / "data_3d.npy", np.zeros((320, 1, 1), np.float32))

    other = NET_TEXT.replace('"lstm1"', '"encoder"').replace('"ip1"', '"readout"')
    Net(parse_net_text(other), TRAIN).save(str(HERE / "weights_other_net.caffemodel"))
    no_bias = NET_TEXT.replace("    num_output: 1\n", "    num_output: 1\n    bias_term: false\n")
    Net(parse_net_text(no_bias), TRAIN).save(str(HERE / "weights_blob_count.caffemodel"))


if __name__ == "__main__":
    main()
