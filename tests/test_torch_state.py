"""PyTorch export and import: safetensors state dicts against seqgen's forward.

The numpy reference below is written from PyTorch's documentation of nn.LSTM, nn.RNN,
nn.Linear and nn.Embedding (gate blocks i, f, g, o; h' = o * tanh(c'), c' = f * c + i * g;
weight_ih_l[k] = (W_ii|W_if|W_ig|W_io)), not from seqgen's code; it always runs. The same
comparison through torch itself runs when torch is importable.
"""
import json

import numpy as np
import pytest
import safetensors.numpy as st
from helpers import ROOT, assert_close
from test_export import BVLC_STATIC, FORK_STACK, build, copy_weights

from seqgen.app.cli import main
from seqgen.export import net_view
from seqgen.extras import install_hint
from seqgen.io.weights import read_net_binary
from seqgen.net import TEST, Net

PROTO = ROOT / "prototxt"
SHORT_WEIGHTS = ROOT / "tests" / "fixtures" / "main_run" / "runs" / "short" / \
    "lstm_short_iter_400.caffemodel"

RNN_CHAIN = """
name: "rnn_chain"
layer { name: "in" type: "Input" top: "x" top: "cont"
        input_param { shape { dim: 6 dim: 2 dim: 3 } shape { dim: 6 dim: 2 } } }
layer { name: "rnn1" type: "RNN" bottom: "x" bottom: "cont" top: "o1"
        recurrent_param { num_output: 5 } }
layer { name: "rnn2" type: "RNN" bottom: "o1" bottom: "cont" top: "o2"
        recurrent_param { num_output: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "o2" top: "y"
        inner_product_param { num_output: 2 axis: 2 } }
"""

EMBED_CHAIN = """
name: "embed_chain"
layer { name: "in" type: "Input" top: "word" top: "cont"
        input_param { shape { dim: 5 dim: 3 } shape { dim: 5 dim: 3 } } }
layer { name: "embed" type: "Embed" bottom: "word" top: "e"
        embed_param { num_output: 4 input_dim: 7 } }
layer { name: "lstm1" type: "LSTM" bottom: "e" bottom: "cont" top: "h1"
        recurrent_param { num_output: 6 } }
layer { name: "lstm2" type: "LSTM" bottom: "h1" bottom: "cont" top: "h2"
        recurrent_param { num_output: 6 } }
layer { name: "ip" type: "InnerProduct" bottom: "h2" top: "logits"
        inner_product_param { num_output: 7 axis: 2 transpose: true } }
layer { name: "prob" type: "Softmax" bottom: "logits" top: "prob" softmax_param { axis: 2 } }
"""

FORK_EQUAL = FORK_STACK.replace("num_output: 4 batch_size: 3", "num_output: 5 batch_size: 3")
CHAINS = {"fork_stack": FORK_EQUAL, "rnn_chain": RNN_CHAIN, "embed_chain": EMBED_CHAIN}


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def torch_doc_forward(sd, config, x):
    """PyTorch's documented equations over a (T, N, ...) input from a zero state."""
    x = np.asarray(x, np.float64)
    if config["embed"]:
        x = sd["embed.weight"][x.astype(np.int64)].astype(np.float64)
        if config["embed"]["bias"]:
            x = x + sd["embed_bias"]
    T, N = x.shape[:2]
    for k, H in enumerate(config["hidden_sizes"]):
        h, c, ys = np.zeros((N, H)), np.zeros((N, H)), []
        pre = f"rnn.{k}." if config["kind"] == "rnn" else "rnn."
        sfx = "_l0" if config["kind"] == "rnn" else f"_l{k}"
        W_ih, W_hh = sd[f"{pre}weight_ih{sfx}"], sd[f"{pre}weight_hh{sfx}"]
        b_ih, b_hh = sd[f"{pre}bias_ih{sfx}"], sd[f"{pre}bias_hh{sfx}"]
        for t in range(T):
            a = x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh
            if config["kind"] == "lstm":
                i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
                g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
                ys.append(h)
            else:
                h = np.tanh(a)
                ys.append(np.tanh(h @ sd[f"rnn_out.{k}.weight"].T + sd[f"rnn_out.{k}.bias"]))
        x = np.stack(ys)
    if config["output_size"]:
        x = x @ sd["out.weight"].T + (sd["out.bias"] if config["out_bias"] else 0)
    if config["softmax"]:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        x = e / e.sum(axis=-1, keepdims=True)
    return x


def export(tmp_path, text, seed=0):
    """(net with random weights, its .caffemodel, the exported .safetensors, net file)."""
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(text)
    net = Net(str(net_file), TEST)
    copy_weights(build(text, seed), net)
    net.save(str(tmp_path / "w.caffemodel"))
    assert main(["export", str(tmp_path / "w.caffemodel"), "--net", str(net_file), "--format",
                 "torch", "--out", str(tmp_path / "w.safetensors")]) == 0
    return net, tmp_path / "w.caffemodel", tmp_path / "w.safetensors", net_file


def fresh_start(net):
    """Inputs of a zero-state start (cont 0 at t = 0, 1 after) and the module's (T, N, ...)
    view of the data input."""
    rng = np.random.default_rng(3)
    T = net_view.steps(net)
    cont = next(n for n in net.inputs if n in ("cont", "clip"))
    data = next(n for n in net.inputs if n != cont)
    N = net.blobs[cont].count // T
    feed = {cont: np.ones(net.blobs[cont].shape, np.float32)}
    feed[cont].reshape(T, N)[0] = 0
    shape = net.blobs[data].shape
    if data == "word":
        feed[data] = rng.integers(0, 7, shape).astype(np.float32)
        return feed, feed[data].reshape(T, N)
    feed[data] = rng.normal(0, 1, shape).astype(np.float32)
    return feed, feed[data].reshape(T, N, -1)


def metadata(path):
    from safetensors import safe_open
    with safe_open(str(path), "np") as f:
        return json.loads(f.metadata()["seqgen"])


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_documented_torch_equations_on_the_state_dict_equal_seqgen(tmp_path, name):
    net, _, path, _ = export(tmp_path, CHAINS[name])
    feed, x = fresh_start(net)
    want = net.forward(**feed)
    out = [n for n in want if n not in net.inputs][0]
    got = torch_doc_forward(st.load_file(str(path)), metadata(path), x)
    assert_close(got, want[out], name)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_the_documented_module_in_torch_equals_seqgen(tmp_path, name):
    torch = pytest.importorskip("torch")
    import importlib.util

    net, _, path, _ = export(tmp_path, CHAINS[name])
    spec = importlib.util.spec_from_file_location(f"model_{name}", tmp_path / "model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    module = model.load(str(path))
    feed, x = fresh_start(net)
    want = net.forward(**feed)
    out = [n for n in want if n not in net.inputs][0]
    with torch.no_grad():
        y, _ = module(torch.from_numpy(np.ascontiguousarray(x)))
    assert_close(y.numpy(), want[out], name)


def blobs_bytes(path):
    return {lp.name: [np.asarray(b.data, np.float32).tobytes() for b in lp.blobs]
            for lp in read_net_binary(str(path)).layer if len(lp.blobs)}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_caffemodel_safetensors_caffemodel_is_byte_identical_in_the_blobs(tmp_path, name, capsys):
    _, caffemodel, path, net_file = export(tmp_path, CHAINS[name])
    assert main(["import", str(path), "--net", str(net_file), "--out",
                 str(tmp_path / "back.caffemodel")]) == 0
    assert blobs_bytes(tmp_path / "back.caffemodel") == blobs_bytes(caffemodel)


def test_round_trip_of_trained_lstm_short(tmp_path):
    net = str(PROTO / "lstm_short.prototxt")
    out = tmp_path / "s.safetensors"
    assert main(["export", str(SHORT_WEIGHTS), "--net", net, "--format", "torch", "--out",
                 str(out)]) == 0
    sd = st.load_file(str(out))
    assert sorted(sd) == ["out.bias", "out.weight", "rnn.bias_hh_l0", "rnn.bias_ih_l0",
                          "rnn.weight_hh_l0", "rnn.weight_ih_l0"]
    assert not sd["rnn.bias_hh_l0"].any()
    # the forget-gate block: Caffe's second block of b is torch's second block too
    caffe_b = Net(net, str(SHORT_WEIGHTS), TEST).params["lstm1"][2].data
    np.testing.assert_array_equal(sd["rnn.bias_ih_l0"][15:30], caffe_b[15:30])
    np.testing.assert_array_equal(sd["rnn.bias_ih_l0"][30:45], caffe_b[45:60])  # g
    assert main(["import", str(out), "--net", net, "--out", str(tmp_path / "b.caffemodel")]) == 0
    assert blobs_bytes(tmp_path / "b.caffemodel") == blobs_bytes(SHORT_WEIGHTS)


def test_import_sums_the_two_torch_biases(tmp_path):
    _, _, path, net_file = export(tmp_path, FORK_EQUAL)
    sd = st.load_file(str(path))
    sd["rnn.bias_hh_l1"] = np.full_like(sd["rnn.bias_hh_l1"], 0.25)
    st.save_file(sd, str(tmp_path / "moved.safetensors"), metadata={"seqgen": "{}"})
    assert main(["import", str(tmp_path / "moved.safetensors"), "--net", str(net_file),
                 "--out", str(tmp_path / "m.caffemodel")]) == 0
    net = Net(str(net_file), str(tmp_path / "m.caffemodel"), TEST)
    np.testing.assert_array_equal(net.params["lstm2"][2].data,
                                  np.float32(sd["rnn.bias_ih_l1"][[*range(5), *range(5, 10),
                                                                   *range(15, 20),
                                                                   *range(10, 15)]]) + 0.25)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_refuses_a_shape_mismatch_naming_layer_and_both_shapes(tmp_path, capsys):
    short = tmp_path / "s.safetensors"
    assert main(["export", str(SHORT_WEIGHTS), "--net", str(PROTO / "lstm_short.prototxt"),
                 "--format", "torch", "--out", str(short)]) == 0
    capsys.readouterr()
    code, out, err = run_cli(capsys, "import", short, "--net", PROTO / "lstm_long.prototxt",
                             "--out", tmp_path / "long.caffemodel")
    assert code == 2
    assert err == (f"seqgen: error: {short}: rnn.weight_ih_l0 has shape (60, 1), but layer "
                   "'lstm1' blob 0 needs (200, 1) (Caffe shape (200, 1))\n")
    assert not (tmp_path / "long.caffemodel").exists()


def test_import_refuses_missing_tensors(tmp_path, capsys):
    st.save_file({"rnn.weight_ih_l0": np.zeros((60, 1), np.float32)}, str(tmp_path / "x.st"))
    code, out, err = run_cli(capsys, "import", tmp_path / "x.st", "--net",
                             PROTO / "lstm_short.prototxt", "--out", tmp_path / "x.caffemodel")
    assert code == 2
    assert err.startswith(f"seqgen: error: {tmp_path / 'x.st'}: the tensors do not match the "
                          "net: missing out.bias, out.weight, rnn.bias_hh_l0")


@pytest.mark.parametrize("text, message", [
    (BVLC_STATIC, "layer 'lstm1' (LSTM) cannot go into the PyTorch module: nn.LSTM/nn.RNN "
                  "have no static input (x_static)"),
    (FORK_STACK, "layer 'lstm2' (Lstm) cannot go into the PyTorch module: nn.LSTM's "
                 "num_layers needs equal hidden sizes (5 before, 4 here)"),
])
def test_torch_export_refuses_what_the_module_cannot_hold(tmp_path, capsys, text, message):
    net_file = tmp_path / "n.prototxt"
    net_file.write_text(text)
    Net(str(net_file), TEST).save(str(tmp_path / "w.caffemodel"))
    code, out, err = run_cli(capsys, "export", tmp_path / "w.caffemodel", "--net", net_file,
                             "--format", "torch", "--out", tmp_path / "w.safetensors")
    assert code == 2
    assert err == f"seqgen: error: {net_file}: {message}\n"


def test_missing_safetensors_extra_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "safetensors.numpy", None)
    code, out, err = run_cli(capsys, "export", SHORT_WEIGHTS, "--net",
                             PROTO / "lstm_short.prototxt", "--format", "torch", "--out",
                             tmp_path / "x.safetensors")
    assert code == 2
    assert err == ("seqgen: error: the PyTorch state dict needs the safetensors package: "
                   f"{install_hint('torch')}\n")
    assert "safetensors" in install_hint("torch")
