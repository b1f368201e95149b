"""`seqgen train --data FILE.npz`: NpzFeeder (seqgen/data/feeder.py) and its use by the
experiment and the CLI.

The BVLC-style net here has inputs x (T, N, I), cont (T, N) and label (T, N, 1); an
InnerProduct on axis 2 stands in for the recurrent layer so the feeding is tested without
it (one test adds BVLC's LSTM when that layer is registered). The fork-style net is
lstm_short (rows of T*N, one clip per row).
"""
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.app.train import train_sequence
from seqgen.data.feeder import NpzFeeder
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net

SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
T, N, I = 8, 2, 3

BVLC_STYLE = f"""
name: "bvlc_style"
layer {{ name: "in_x" type: "Input" top: "x"
  input_param {{ shape {{ dim: {T} dim: {N} dim: {I} }} }} }}
layer {{ name: "in_cont" type: "Input" top: "cont"
  input_param {{ shape {{ dim: {T} dim: {N} }} }} }}
layer {{ name: "in_label" type: "Input" top: "label"
        input_param {{ shape {{ dim: {T} dim: {N} dim: 1 }} }} }}
@BODY@
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "label" top: "loss" }}
"""
IP_BODY = """
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "silence" type: "Silence" bottom: "cont" }
"""
LSTM_BODY = """
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.2 max: 0.2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
"""
W_TRUE = np.array([0.5, -1.0, 0.25], np.float32)


def bvlc_net(body=IP_BODY):
    return Net(parse_net_text(BVLC_STYLE.replace("@BODY@", body), "bvlc_style"), TRAIN)


def arrays(steps=4 * T, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, N, I)).astype(np.float32)
    return {"x": x, "label": (x @ W_TRUE)[..., None]}


def save(tmp_path, name="data.npz", **values):
    path = tmp_path / name
    np.savez(path, **values)
    return path


def feed_error(tmp_path, net=None, **values):
    path = save(tmp_path, **values)
    with pytest.raises(SeqgenError) as e:
        NpzFeeder(net or bvlc_net(), path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


# -- the feeder ------------------------------------------------------------------------------

def test_arrays_of_the_input_shapes_are_fed_whole(tmp_path):
    a = arrays(T)
    cont = np.ones((T, N), np.float32)
    net = bvlc_net()
    feeder = NpzFeeder(net, save(tmp_path, cont=cont, **a))
    assert feeder.chunks == 1 and not feeder.walked and not feeder.made_up_cont
    for _ in range(2):
        feeder(None)
        assert np.array_equal(net.blobs["x"].data, a["x"])
        assert np.array_equal(net.blobs["label"].data, a["label"])
        assert np.array_equal(net.blobs["cont"].data, cont)


def test_longer_arrays_are_walked_in_chunks_of_T_and_cycle(tmp_path):
    a = arrays(4 * T)
    net = bvlc_net()
    feeder = NpzFeeder(net, save(tmp_path, **a))
    assert feeder.chunks == 4 and feeder.made_up_cont
    assert feeder.describe() == ("x 32 steps in 4 chunks of 8; cont 32 steps in 4 chunks of 8 "
                                 "made up: 0 at the first step; label 32 steps in 4 chunks of 8")
    for k in range(6):
        feeder(None)
        c = k % 4
        assert np.array_equal(net.blobs["x"].data, a["x"][c * T:(c + 1) * T]), k
        assert np.array_equal(net.blobs["label"].data, a["label"][c * T:(c + 1) * T]), k
        cont = net.blobs["cont"].data
        # 0 at the first step of the file (every stream), 1 everywhere else
        assert np.all(cont[0] == (0 if c == 0 else 1)) and np.all(cont[1:] == 1), k


def test_cont_from_the_file_and_under_the_other_name(tmp_path):
    a = arrays(2 * T)
    cont = np.ones((2 * T, N), np.float32)
    cont[[0, 5, 11], [0, 1, 0]] = 0
    for key in ("cont", "clip"):
        net = bvlc_net()
        feeder = NpzFeeder(net, save(tmp_path, name=f"{key}.npz", **{key: cont}, **a))
        assert not feeder.made_up_cont
        feeder(None)
        feeder(None)
        assert np.array_equal(net.blobs["cont"].data, cont[T:])


def test_axes_of_size_one_may_be_left_out(tmp_path):
    a = arrays(2 * T)
    net = bvlc_net()
    feeder = NpzFeeder(net, save(tmp_path, x=a["x"], label=a["label"][..., 0]))
    feeder(None)
    assert np.array_equal(net.blobs["label"].data, a["label"][:T])


def test_fork_style_rows_and_streams(tmp_path):
    seq = np.sin(np.arange(640) * 0.05).astype(np.float32)
    net = Net(SHORT, TRAIN)
    feeder = NpzFeeder(net, save(tmp_path, data=seq[:, None], label=seq))
    assert feeder.chunks == 2 and feeder.T == {"data": 320, "clip": 320, "label": 320}
    feeder(None)
    clip = net.blobs["clip"].data.ravel()
    assert clip[0] == 0 and np.all(clip[1:] == 1)
    # the fork's Lstm with 2 streams: rows t*N + n, so the first step is two rows
    text = SHORT.read_text().replace("clipping_threshold: 0.1", "clipping_threshold: 0.1\n"
                                     "    batch_size: 2")
    two = Net(parse_net_text(text, "two streams"), TRAIN)
    feeder = NpzFeeder(two, save(tmp_path, name="two.npz", data=seq[:, None], label=seq))
    feeder(None)
    clip = two.blobs["clip"].data.ravel()
    assert np.all(clip[:2] == 0) and np.all(clip[2:] == 1)


def test_errors_name_the_file_and_the_array(tmp_path):
    a = arrays(4 * T)
    msg = feed_error(tmp_path, y=a["label"], **a)
    assert "array 'y' is not an input" in msg and "inputs: x, cont, label" in msg
    msg = feed_error(tmp_path, x=a["x"])
    assert "no array for the net's input(s) 'label'" in msg
    msg = feed_error(tmp_path, x=a["x"][..., :2], label=a["label"])
    assert "array 'x' has shape (32, 2, 2)" in msg and "input 'x' has shape (8, 2, 3)" in msg
    msg = feed_error(tmp_path, x=a["x"][:4], label=a["label"][:4])
    assert "array 'x' has shape (4, 2, 3)" in msg
    msg = feed_error(tmp_path, x=a["x"][:30], label=a["label"][:30])
    assert "array 'x' has 30 steps along axis 0, not a multiple of the net's 8" in msg
    msg = feed_error(tmp_path, x=a["x"], label=a["label"][:16])
    assert "array 'label' gives 2 chunks" in msg and "'x' gives 4" in msg
    bad = a["x"].copy()
    bad[3, 1, 2] = np.nan
    msg = feed_error(tmp_path, x=bad, label=a["label"])
    assert "array 'x' holds a non-finite value at index (3, 1, 2)" in msg
    msg = feed_error(tmp_path, x=a["x"], label=np.array(["a"] * 32))
    assert "array 'label' has dtype" in msg


def test_files_that_are_not_npz(tmp_path):
    for name, content in (("single.npz", None), ("text.npz", b"x,label\n1,2\n")):
        path = tmp_path / name
        if content is None:
            np.save(path, np.zeros(3))
            Path(str(path) + ".npy").rename(path)
        else:
            path.write_bytes(content)
        with pytest.raises(SeqgenError, match=f"{name}: not an .npz archive"):
            NpzFeeder(bvlc_net(), path)
    with pytest.raises(SeqgenError, match="missing.npz: no such file"):
        NpzFeeder(bvlc_net(), tmp_path / "missing.npz")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(SeqgenError, match="holds no arrays"):
        NpzFeeder(bvlc_net(), tmp_path / "empty.npz")


# -- training ----------------------------------------------------------------------------------

def write_net(folder, body=IP_BODY):
    (folder / "bvlc_style.prototxt").write_text(BVLC_STYLE.replace("@BODY@", body))
    (folder / "bvlc_style_solver.prototxt").write_text(
        'net: "bvlc_style.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\n'
        "display: 0\nmax_iter: 100\nrandom_seed: 1\n")
    return folder / "bvlc_style.prototxt"


def test_train_on_npz_learns_and_records_the_run(cwd):
    net = write_net(cwd)
    np.savez(cwd / "data.npz", **arrays(4 * T))
    log = []
    folder = train_sequence(str(net), iters=60, data="data.npz", out="RUN", log=log.append)
    assert any("Training bvlc_style on data.npz (x 32 steps in 4 chunks of 8;" in line
               for line in log), log
    info = json.loads((cwd / "RUN" / "run.json").read_text())
    assert info["data"] == "data.npz" and info["data_kind"] == "npz" and info["input"] is None
    assert info["iterations"] == 60
    losses = np.loadtxt(cwd / "RUN" / "loss.csv", delimiter=",", skiprows=1)[:, 1]
    assert len(losses) == 60 and np.all(np.isfinite(losses))
    assert losses[-4:].mean() < 0.05 * losses[:4].mean()  # a linear fit: it must learn
    assert folder == "RUN"


def test_cli_train_npz_then_generate_refuses(cwd, capsys):
    net = write_net(cwd)
    np.savez(cwd / "data.npz", **arrays(2 * T))
    assert main(["train", str(net), "--data", "data.npz", "--iters", "3", "--out", "RUN"]) == 0
    capsys.readouterr()
    assert main(["generate", "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "trained on data.npz, not on a sequence" in err and "seqgen.Net(" in err
    weights = cwd / "RUN" / "bvlc_style_iter_3.caffemodel"
    assert weights.is_file()
    assert main(["generate", "--weights", str(weights), "--net", str(net),
                 "--data", "data.npz"]) == 2
    assert "not with an .npz of input arrays" in capsys.readouterr().err


def test_cli_npz_errors(cwd, capsys):
    net = write_net(cwd)
    np.savez(cwd / "data.npz", **arrays(2 * T))
    assert main(["train", str(net), "--data", "data.npz", "--input", "zero"]) == 2
    assert "--input zero is for sequence data" in capsys.readouterr().err
    np.savez(cwd / "bad.npz", x=arrays(2 * T)["x"])
    assert main(["train", str(net), "--data", "bad.npz", "--out", "BAD"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz: no array for the net's input(s) 'label'" in err
    assert not (cwd / "BAD").exists()  # a run that cannot start leaves nothing


def test_fork_net_on_npz(cwd):
    seq = np.sin(np.arange(640) * 0.05).astype(np.float32)
    prev = np.concatenate([[0], seq[:-1]]).astype(np.float32)
    np.savez(cwd / "seq.npz", data=prev, label=seq)
    log = []
    train_sequence(str(ROOT / "prototxt" / "lstm_short_solver.prototxt"), iters=4,
                   data="seq.npz", out="RUN", log=log.append)
    assert any("clip 640 steps in 2 chunks of 320 made up" in line for line in log), log
    assert (cwd / "RUN" / "lstm_short_iter_4.caffemodel").is_file()


def test_bvlc_lstm_net_on_npz(cwd):
    net = write_net(cwd, LSTM_BODY)
    np.savez(cwd / "data.npz", **arrays(4 * T))
    train_sequence(str(net), iters=20, data="data.npz", out="RUN", log=lambda *a: None)
    losses = np.loadtxt(cwd / "RUN" / "loss.csv", delimiter=",", skiprows=1)[:, 1]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
