""".caffemodel reading and writing (seqgen/io/weights.py) against the fork's recorded files.

The golden files in tests/golden/caffe-lstm/e2e_short_2000 were written by the real
caffe-lstm build; initial.npz holds the same blobs as plain arrays.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net
from seqgen.proto import caffe_pb2

ROOT = Path(__file__).parents[1]
NET = ROOT / "prototxt" / "lstm_short.prototxt"
E2E = Path(__file__).parent / "golden" / "caffe-lstm" / "e2e_short_2000"
KEYS = ["lstm1/0", "lstm1/1", "lstm1/2", "ip1/0", "ip1/1"]


def golden(name):
    with np.load(E2E / name) as z:
        return {k: z[k] for k in z.files}


def param(net, key):
    layer, index = key.split("/")
    return net.params[layer][int(index)].data


def fresh_net(text=None):
    if text is None:
        return Net(str(NET), TRAIN)
    return Net(parse_net_text(text, "<test net>"), TRAIN)


# -- loading the fork's files ----------------------------------------------------------------

@pytest.mark.parametrize("stem", ["initial", "iter2000"])
def test_golden_caffemodel_loads_exactly(stem):
    ref = golden(stem + ".npz")
    assert sorted(ref) == sorted(KEYS)
    net = fresh_net()
    net.copy_from(str(E2E / (stem + ".caffemodel")))
    for key in KEYS:
        ours = param(net, key)
        assert ours.dtype == np.float32, key
        assert ours.shape == ref[key].shape, key
        assert ours.tobytes() == ref[key].astype(np.float32).tobytes(), key


def test_shapes_match_the_fork_layout():
    # H = 15 hidden units, 1 input, gates stacked along the first axis (4H = 60)
    net = fresh_net()
    assert [b.shape for b in net.params["lstm1"]] == [(60, 1), (60, 15), (60,)]
    assert [b.shape for b in net.params["ip1"]] == [(1, 15), (1,)]


# -- writing ---------------------------------------------------------------------------------

def _walk(data):
    """(field number, wire type, payload bytes or int) of the top-level fields of a message,
    decoded by hand so the check does not rely on the protobuf library's own parser."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            out.append((field, wire, varint()))
        elif wire == 1:
            out.append((field, wire, data[i:i + 8]))
            i += 8
        elif wire == 2:
            n = varint()
            out.append((field, wire, data[i:i + n]))
            i += n
        elif wire == 5:
            out.append((field, wire, data[i:i + 4]))
            i += 4
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    assert i == len(data)
    return out


def test_save_and_reload_is_bitwise_identical(tmp_path):
    ref = golden("initial.npz")
    net = fresh_net()
    net.copy_from(str(E2E / "initial.caffemodel"))
    out = tmp_path / "saved.caffemodel"
    net.save(str(out))

    other = fresh_net()  # different random fill
    assert param(other, "lstm1/1").tobytes() != ref["lstm1/1"].tobytes()
    other.copy_from(str(out))
    for key in KEYS:
        assert param(other, key).tobytes() == ref[key].tobytes(), key


def test_saved_file_is_a_caffe_net_parameter(tmp_path):
    ref = golden("initial.npz")
    net = fresh_net()
    net.copy_from(str(E2E / "initial.caffemodel"))
    out = tmp_path / "saved.caffemodel"
    net.save(str(out))
    raw = out.read_bytes()

    param_ = caffe_pb2.NetParameter()
    param_.ParseFromString(raw)
    layers = {lp.name: lp for lp in param_.layer}
    assert {"lstm1", "ip1", "loss"} <= set(layers)
    assert not len(param_.layers)  # new-style layers only, as Caffe's Net::ToProto
    assert layers["lstm1"].type == "Lstm"
    assert layers["ip1"].type == "InnerProduct"
    assert layers["loss"].type == "EuclideanLoss"
    assert list(layers["loss"].loss_weight) == [1.0]
    assert len(layers["loss"].blobs) == 0
    for name, n in (("lstm1", 3), ("ip1", 2)):
        blobs = layers[name].blobs
        assert len(blobs) == n
        for i, b in enumerate(blobs):
            key = f"{name}/{i}"
            assert tuple(b.shape.dim) == ref[key].shape, key
            assert not b.HasField("num") and not b.HasField("height"), key
            assert len(b.double_data) == 0
            np.testing.assert_array_equal(np.asarray(b.data, np.float32),
                                          ref[key].ravel(), err_msg=key)
    # Caffe's BlobProto.data is [packed = true]: one length-delimited field 5 holding
    # 4 bytes per value, not one fixed32 field per value.
    for lp_bytes in (p for f, w, p in _walk(raw) if f == 100 and w == 2):
        lp_fields = _walk(lp_bytes)
        name = next(p for f, w, p in lp_fields if f == 1).decode()
        blobs = [p for f, w, p in lp_fields if f == 7]  # LayerParameter.blobs = 7
        for i, blob_bytes in enumerate(blobs):
            fields = _walk(blob_bytes)
            assert not [f for f, w, p in fields if f == 5 and w == 5], "unpacked data"
            packed = [p for f, w, p in fields if f == 5 and w == 2]
            assert len(packed) == 1
            values = np.frombuffer(packed[0], "<f4")
            assert values.tobytes() == ref[f"{name}/{i}"].astype("<f4").ravel().tobytes()


def test_saved_file_matches_caffe_blob_content(tmp_path):
    """The fork's own file and seqgen's hold the same layer names and blob values."""
    net = fresh_net()
    net.copy_from(str(E2E / "iter2000.caffemodel"))
    out = tmp_path / "saved.caffemodel"
    net.save(str(out))
    ours = caffe_pb2.NetParameter.FromString(out.read_bytes())
    theirs = caffe_pb2.NetParameter.FromString((E2E / "iter2000.caffemodel").read_bytes())
    mine = {lp.name: lp for lp in ours.layer}
    for lp in theirs.layer:
        assert lp.name in mine
        assert len(mine[lp.name].blobs) == len(lp.blobs), lp.name
        for a, b in zip(mine[lp.name].blobs, lp.blobs):
            assert tuple(a.shape.dim) == tuple(b.shape.dim)
            assert np.asarray(a.data, np.float32).tobytes() == \
                np.asarray(b.data, np.float32).tobytes()


# -- legacy blobs ----------------------------------------------------------------------------

def _legacy(array, proto):
    dims = (1,) * (4 - array.ndim) + array.shape
    proto.num, proto.channels, proto.height, proto.width = dims
    proto.data.extend(array.ravel().tolist())


def test_legacy_4d_blobs_load(tmp_path):
    ref = golden("initial.npz")
    legacy = caffe_pb2.NetParameter(name="LSTM")
    for name in ("lstm1", "ip1"):
        lp = legacy.layer.add(name=name)
        for i in range(3 if name == "lstm1" else 2):
            _legacy(ref[f"{name}/{i}"], lp.blobs.add())
    assert legacy.layer[0].blobs[0].height == 60 and legacy.layer[0].blobs[0].num == 1
    assert legacy.layer[0].blobs[2].width == 60
    path = tmp_path / "legacy.caffemodel"
    path.write_bytes(legacy.SerializeToString())
    net = fresh_net()
    net.copy_from(str(path))
    for key in KEYS:
        assert param(net, key).tobytes() == ref[key].tobytes(), key


def test_legacy_blob_with_wrong_shape_is_refused(tmp_path):
    ref = golden("initial.npz")
    legacy = caffe_pb2.NetParameter(name="LSTM")
    lp = legacy.layer.add(name="lstm1")
    for i in range(3):
        _legacy(ref[f"lstm1/{i}"], lp.blobs.add())
    b = lp.blobs[1]  # (1, 1, 60, 15) -> (1, 1, 15, 60): same count, wrong shape
    b.height, b.width = 15, 60
    path = tmp_path / "legacy_bad.caffemodel"
    path.write_bytes(legacy.SerializeToString())
    with pytest.raises(SeqgenError) as e:
        fresh_net().copy_from(str(path))
    msg = str(e.value)
    assert "legacy_bad.caffemodel" in msg and "lstm1" in msg
    assert "(1, 1, 15, 60)" in msg and "(60, 15)" in msg


def test_double_data_is_read(tmp_path):
    ref = golden("initial.npz")
    param_ = caffe_pb2.NetParameter(name="LSTM")
    lp = param_.layer.add(name="ip1")
    for i in range(2):
        b = lp.blobs.add()
        b.shape.dim.extend(ref[f"ip1/{i}"].shape)
        b.double_data.extend(ref[f"ip1/{i}"].astype(np.float64).ravel().tolist())
    path = tmp_path / "double.caffemodel"
    path.write_bytes(param_.SerializeToString())
    net = fresh_net()
    before = param(net, "lstm1/1").copy()
    net.copy_from(str(path))
    assert param(net, "ip1/0").tobytes() == ref["ip1/0"].tobytes()
    assert param(net, "ip1/1").tobytes() == ref["ip1/1"].tobytes()
    # layers missing from the file keep their values
    assert param(net, "lstm1/1").tobytes() == before.tobytes()


# -- errors ----------------------------------------------------------------------------------

def load_error(path):
    with pytest.raises(SeqgenError) as e:
        fresh_net().copy_from(str(path))
    msg = str(e.value)
    assert str(path) in msg, msg
    assert "\n" not in msg
    return msg


def test_truncated_file(tmp_path):
    raw = (E2E / "initial.caffemodel").read_bytes()
    path = tmp_path / "half.caffemodel"
    path.write_bytes(raw[: len(raw) // 2])
    msg = load_error(path)
    assert "truncated" in msg or "not a valid" in msg


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.caffemodel"
    path.write_bytes(np.random.default_rng(1234).bytes(3000))
    load_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    assert "empty" in load_error(path)


def test_missing_file(tmp_path):
    load_error(tmp_path / "nope.caffemodel")


def test_solverstate_passed_as_weights(tmp_path):
    # a real SolverState: iter, learned_net, one history blob per parameter
    ref = golden("initial.npz")
    state = caffe_pb2.SolverState(iter=10, learned_net="lstm_short_iter_10.caffemodel",
                                  current_step=0)
    for key in KEYS:
        b = state.history.add()
        b.shape.dim.extend(ref[key].shape)
        b.data.extend(np.zeros(ref[key].size).tolist())
    path = tmp_path / "lstm_short_iter_10.solverstate"
    path.write_bytes(state.SerializeToString())
    net = fresh_net()
    before = {k: param(net, k).copy() for k in KEYS}
    with pytest.raises(SeqgenError) as e:
        net.copy_from(str(path))
    assert str(path) in str(e.value)
    for key in KEYS:  # nothing was half-loaded
        assert param(net, key).tobytes() == before[key].tobytes()


def test_other_hidden_size_names_layer_blob_and_shapes(tmp_path):
    text = NET.read_text().replace("num_output: 15", "num_output: 7")
    assert "num_output: 7" in text
    small = fresh_net(text)
    assert small.params["lstm1"][0].shape == (28, 1)
    path = tmp_path / "h7.caffemodel"
    small.save(str(path))
    msg = load_error(path)
    assert "'lstm1'" in msg
    assert re.search(r"blob 0\b", msg), msg
    assert "(28, 1)" in msg and "(60, 1)" in msg


def test_blob_count_mismatch(tmp_path):
    ref = golden("initial.npz")
    param_ = caffe_pb2.NetParameter(name="LSTM")
    lp = param_.layer.add(name="lstm1")
    for i in range(2):  # W_x and W_h only: the bias blob is missing
        b = lp.blobs.add()
        b.shape.dim.extend(ref[f"lstm1/{i}"].shape)
        b.data.extend(ref[f"lstm1/{i}"].ravel().tolist())
    path = tmp_path / "two_blobs.caffemodel"
    path.write_bytes(param_.SerializeToString())
    msg = load_error(path)
    assert "'lstm1'" in msg and "2" in msg and "3" in msg


def test_no_matching_layer(tmp_path):
    param_ = caffe_pb2.NetParameter(name="other")
    lp = param_.layer.add(name="conv9")
    b = lp.blobs.add()
    b.shape.dim.append(3)
    b.data.extend([1.0, 2.0, 3.0])
    path = tmp_path / "other.caffemodel"
    path.write_bytes(param_.SerializeToString())
    msg = load_error(path)
    assert "lstm1" in msg
