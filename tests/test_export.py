"""ONNX export: the step and sequence graphs run in onnxruntime against seqgen's own forward.

Nets with several streams, restarts (cont = 0 mid-sequence; in the step graph the state of
that stream is zeroed), stacks of the fork's Lstm, BVLC LSTM (with x_static and
expose_hidden) and RNN, and the stateless layers. Then free-running generation of lstm_short
through the step graph, and the CLI's messages.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import ROOT, assert_close, random_net

from seqgen.app.cli import main
from seqgen.data.sources import sinusoid
from seqgen.export import net_view
from seqgen.export.onnx_export import onnx_model
from seqgen.extras import install_hint
from seqgen.generation.generate import generate
from seqgen.net import TEST, Net

SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
SHORT_WEIGHTS = ROOT / "tests" / "fixtures" / "main_run" / "runs" / "short" / \
    "lstm_short_iter_400.caffemodel"

FORK_STACK = """
name: "fork_stack"
input: "data" input_shape { dim: 21 dim: 2 }
input: "clip" input_shape { dim: 21 dim: 1 }
layer { name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
        lstm_param { num_output: 5 batch_size: 3 } }
layer { name: "lstm2" type: "Lstm" bottom: "lstm1" bottom: "clip" top: "lstm2"
        lstm_param { num_output: 4 batch_size: 3 } }
layer { name: "ip1" type: "InnerProduct" bottom: "lstm2" top: "ip1"
        inner_product_param { num_output: 2 } }
"""

BVLC_STATIC = """
name: "bvlc_static"
layer { name: "in" type: "Input" top: "x" top: "cont" top: "x_static"
        input_param { shape { dim: 6 dim: 3 dim: 2 dim: 2 } shape { dim: 6 dim: 3 }
                      shape { dim: 3 dim: 3 } } }
layer { name: "lstm1" type: "LSTM" bottom: "x" bottom: "cont" bottom: "x_static" top: "h1"
        recurrent_param { num_output: 5 } }
layer { name: "lstm2" type: "LSTM" bottom: "h1" bottom: "cont" top: "h2"
        recurrent_param { num_output: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "h2" top: "logits"
        inner_product_param { num_output: 3 axis: 2 } }
layer { name: "prob" type: "Softmax" bottom: "logits" top: "prob" softmax_param { axis: 2 } }
"""

RNN_STACK = """
name: "rnn_stack"
layer { name: "in" type: "Input" top: "x" top: "cont" top: "x_static"
        input_param { shape { dim: 7 dim: 2 dim: 3 } shape { dim: 7 dim: 2 }
                      shape { dim: 2 dim: 2 } } }
layer { name: "rnn1" type: "RNN" bottom: "x" bottom: "cont" top: "o1"
        recurrent_param { num_output: 6 } }
layer { name: "rnn2" type: "RNN" bottom: "o1" bottom: "cont" bottom: "x_static" top: "o2"
        recurrent_param { num_output: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "o2" top: "y"
        inner_product_param { num_output: 1 axis: 2 } }
"""

EXPOSED = """
name: "exposed"
layer { name: "in" type: "Input" top: "x" top: "cont" top: "h0" top: "c0"
        input_param { shape { dim: 5 dim: 2 dim: 3 } shape { dim: 5 dim: 2 }
                      shape { dim: 1 dim: 2 dim: 4 } shape { dim: 1 dim: 2 dim: 4 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "h0" bottom: "c0"
        top: "h" top: "hT" top: "cT" recurrent_param { num_output: 4 expose_hidden: true } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 2 axis: 2 } }
"""

# every stateless converter: Embed, Slice, Concat, Eltwise (3 ops), Scale/Bias (learned and
# from a bottom), ReLU (leaky), TanH, Sigmoid, Dropout, Reshape, Flatten, Softmax
LAYER_ZOO = """
name: "zoo"
layer { name: "in" type: "Input" top: "word" top: "cont"
        input_param { shape { dim: 6 dim: 2 } shape { dim: 6 dim: 2 } } }
layer { name: "embed" type: "Embed" bottom: "word" top: "e"
        embed_param { num_output: 6 input_dim: 9 } }
layer { name: "lstm" type: "LSTM" bottom: "e" bottom: "cont" top: "h"
        recurrent_param { num_output: 6 } }
layer { name: "cut" type: "Slice" bottom: "h" top: "a" top: "b" top: "c"
        slice_param { axis: 2 slice_point: 2 slice_point: 4 } }
layer { name: "prod" type: "Eltwise" bottom: "a" bottom: "b" top: "ab"
        eltwise_param { operation: PROD } }
layer { name: "sum" type: "Eltwise" bottom: "ab" bottom: "c" top: "abc"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "max" type: "Eltwise" bottom: "abc" bottom: "a" top: "m"
        eltwise_param { operation: MAX } }
layer { name: "relu" type: "ReLU" bottom: "m" top: "m" relu_param { negative_slope: 0.1 } }
layer { name: "scale" type: "Scale" bottom: "m" top: "s"
        scale_param { axis: 2 bias_term: true filler { type: "gaussian" } } }
layer { name: "scale2" type: "Scale" bottom: "s" bottom: "cont" top: "s2" scale_param { axis: 0 } }
layer { name: "bias" type: "Bias" bottom: "s2" top: "s2" bias_param { axis: 2 } }
layer { name: "tanh" type: "TanH" bottom: "s2" top: "t" }
layer { name: "sig" type: "Sigmoid" bottom: "h" top: "g" }
layer { name: "drop" type: "Dropout" bottom: "g" top: "g" }
layer { name: "join" type: "Concat" bottom: "t" bottom: "g" top: "j" concat_param { axis: 2 } }
layer { name: "flat" type: "Flatten" bottom: "j" top: "f" flatten_param { axis: 1 } }
layer { name: "shape" type: "Reshape" bottom: "f" top: "r"
        reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "r" top: "logits"
        inner_product_param { num_output: 5 axis: 2 } }
layer { name: "prob" type: "Softmax" bottom: "logits" top: "prob" softmax_param { axis: 2 } }
"""

NETS = {"fork_stack": FORK_STACK, "bvlc_static": BVLC_STATIC, "rnn_stack": RNN_STACK,
        "zoo": LAYER_ZOO}


def build(text, seed=0):
    """A TEST net with random weights (the same for every seed)."""
    return random_net(text, seed)


def copy_weights(src, dst):
    for name, blobs in src.params.items():
        for a, b in zip(blobs, dst.params[name]):
            b.data[...] = a.data


def random_inputs(net, T, seed=1, restarts=True):
    """Inputs for every net input; cont/clip 0 at t = 0 and (with restarts) at a few
    (step, stream) places mid-sequence."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name in net.inputs:
        shape = net.blobs[name].shape
        if name in ("cont", "clip"):
            cont = np.ones(shape, np.float32)
            k = shape[0] // T  # rows per step
            cont[:k] = 0
            if restarts:
                flat = cont.reshape(T, -1)
                flat[T // 2, 0] = 0
                flat[T - 2, -1] = 0
            feed[name] = cont
        elif name == "word":
            feed[name] = rng.integers(0, 9, shape).astype(np.float32)
        else:
            feed[name] = rng.normal(0, 1, shape).astype(np.float32)
    return feed


def seqgen_forward(net, feed):
    out = net.forward(**feed)
    return {k: v.copy() for k, v in out.items()}


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def state_inputs(sess):
    return [i for i in sess.get_inputs() if i.name.endswith((".h", ".c"))]


def run_steps(sess, feed, T, time_inputs, initial=None):
    """Step the step graph T times; a stream whose cont is 0 at step t gets a zero state.
    Returns {output: array stacked over steps in the blob's layout}, final states."""
    states = {i.name: np.zeros(i.shape, np.float32) for i in state_inputs(sess)}
    states.update(initial or {})
    names = {i.name for i in sess.get_inputs()}
    cont = next((feed[n] for n in ("cont", "clip") if n in feed), None)
    outs = [o.name for o in sess.get_outputs()]
    collected = {o: [] for o in outs if not o.endswith("_out")}
    for t in range(T):
        step = {}
        for name in names - set(states):
            value = feed[name]
            if name in time_inputs:
                k = value.shape[0] // T
                value = value[t * k:(t + 1) * k]
            step[name] = value
        if cont is not None:
            k = cont.shape[0] // T
            restart = cont[t * k:(t + 1) * k].reshape(-1) == 0
            for value in states.values():
                value[restart] = 0
        result = dict(zip(outs, sess.run(None, {**step, **states})))
        for name in collected:
            collected[name].append(result[name])
        states = {name: result[name + "_out"] for name in states}
    return {k: np.concatenate(v) for k, v in collected.items()}, states


@pytest.mark.parametrize("name", sorted(NETS))
def test_step_graph_with_restarts_equals_seqgen(name):
    net = build(NETS[name])
    T = net_view.steps(net)
    feed = random_inputs(net, T)
    want = seqgen_forward(net, feed)
    exported = build(NETS[name])
    time_inputs = net_view.time_inputs(exported)
    sess = session(onnx_model(exported, "step"))
    got, _ = run_steps(sess, feed, T, time_inputs)
    assert set(got) == set(net_view.predictions(net))
    for blob, value in got.items():
        assert_close(value, want[blob], f"{name}: {blob}")


@pytest.mark.parametrize("name", sorted(NETS))
def test_sequence_graph_equals_seqgen_and_stepped_step_graph(name):
    """From a nonzero initial state with cont = 1 everywhere: sequence graph = seqgen
    (state set by set_state) = the step graph stepped T times."""
    net = build(NETS[name])
    T = net_view.steps(net)
    feed = random_inputs(net, T, restarts=False)
    for key in ("cont", "clip"):
        if key in feed:
            feed[key][...] = 1
    rng = np.random.default_rng(5)
    sequence = build(NETS[name])
    sess = session(onnx_model(sequence, "sequence"))
    initial = {i.name: rng.normal(0, 0.5, i.shape).astype(np.float32)
               for i in state_inputs(sess)}
    net.set_state({layer: {key: initial[f"{layer}.{key}"] for key in "hc"
                           if f"{layer}.{key}" in initial}
                   for layer in {n.split(".")[0] for n in initial}})
    want = seqgen_forward(net, feed)
    final = net.get_state()
    names = [o.name for o in sess.get_outputs()]
    inputs = {i.name for i in sess.get_inputs()}
    got = dict(zip(names, sess.run(None, {**{k: v for k, v in feed.items() if k in inputs},
                                          **initial})))
    stepped, stepped_states = run_steps(session(onnx_model(build(NETS[name]), "step")), feed,
                                        T, net_view.time_inputs(net), initial)
    for blob in net_view.predictions(net):
        assert_close(got[blob], want[blob], f"{name}: sequence graph {blob}")
        assert_close(stepped[blob], got[blob], f"{name}: step graph x T {blob}")
    for state, value in stepped_states.items():
        layer, key = state.split(".")
        assert_close(got[state + "_out"], value, f"{name}: {state}_out")
        assert_close(value, final[layer][key], f"{name}: {state} after T steps")


def test_expose_hidden_states_are_the_nets_own_inputs_and_outputs():
    """With expose_hidden the graphs read h0/c0 and return hT/cT (no extra state names);
    stepping feeds hT/cT back, and a restart zeroes them."""
    net = build(EXPOSED)
    T = net_view.steps(net)
    feed = random_inputs(net, T)
    want = seqgen_forward(net, feed)
    step = session(onnx_model(build(EXPOSED), "step"))
    assert [i.name for i in step.get_inputs()] == ["x", "h0", "c0"]
    assert [o.name for o in step.get_outputs()] == ["cT", "hT", "y"]
    h, c, ys = feed["h0"].copy(), feed["c0"].copy(), []
    for t in range(T):
        restart = feed["cont"][t] == 0
        h[:, restart], c[:, restart] = 0, 0
        c, h, y = step.run(None, {"x": feed["x"][t:t + 1], "h0": h, "c0": c})
        ys.append(y)
    assert_close(np.concatenate(ys), want["y"])
    assert_close(h, want["hT"])
    assert_close(c, want["cT"])
    feed["cont"][...] = 1
    want = seqgen_forward(build(EXPOSED), feed)
    sequence = session(onnx_model(build(EXPOSED), "sequence"))
    got = dict(zip(["cT", "hT", "y"], sequence.run(["cT", "hT", "y"], {
        k: feed[k] for k in ("x", "h0", "c0")})))
    for blob in ("y", "cT", "hT"):
        assert_close(got[blob], want[blob], blob)


def test_sequence_graph_of_lstm_short_from_zero_is_the_fork_forward():
    """Zero initial state = Caffe's clip[0] = 0: the 320-step forward of trained weights."""
    net = Net(SHORT, SHORT_WEIGHTS, TEST)
    x = np.random.default_rng(2).normal(0, 0.3, (320, 1)).astype(np.float32)
    clip = np.ones((320, 1), np.float32)
    clip[0] = 0
    want = net.forward(data=x, clip=clip)["ip1"]
    sess = session(onnx_model(Net(SHORT, SHORT_WEIGHTS, TEST), "sequence"))
    zero = np.zeros((1, 15), np.float32)
    got = sess.run(["ip1"], {"data": x, "lstm1.h": zero, "lstm1.c": zero})[0]
    assert_close(got, want)


def test_models_are_checked_and_document_their_io():
    for graph in ("step", "sequence"):
        model = onnx_model(Net(SHORT, SHORT_WEIGHTS, TEST), graph)
        onnx.checker.check_model(model, full_check=True)
        names = [v.name for v in model.graph.input]
        assert names == ["data", "lstm1.h", "lstm1.c"]
        assert [v.name for v in model.graph.output] == ["ip1", "lstm1.h_out", "lstm1.c_out"]
        for name in names:
            assert f"input {name}:" in model.doc_string
        assert model.opset_import[0].version == 17
    assert "WITHOUT restarts" in model.doc_string
    ops = {n.op_type for n in model.graph.node}
    assert "LSTM" in ops and not any(a.name == "clip" for n in model.graph.node
                                     for a in n.attribute)


def fork_generation_by_onnx(path, steps):
    """Free-running generation from an exported lstm_short step graph: step 0 from a zero
    state with input 0, then each prediction is the next input."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h = np.zeros((1, 15), np.float32)
    c = np.zeros((1, 15), np.float32)
    x = np.zeros((1, 1), np.float32)
    out = np.zeros((steps, 1), np.float32)
    for i in range(steps):
        y, h, c = sess.run(["ip1", "lstm1.h_out", "lstm1.c_out"],
                           {"data": x, "lstm1.h": h, "lstm1.c": c})
        out[i] = y[0]
        x = y
    return out


def test_free_running_generation_from_the_step_graph_reproduces_seqgen_generate(tmp_path):
    code = main(["export", str(SHORT_WEIGHTS), "--net", str(SHORT), "--format", "onnx",
                 "--out", str(tmp_path / "short.onnx")])
    assert code == 0
    true = sinusoid(320).reshape(-1, 1)
    ours = generate(Net(SHORT, SHORT_WEIGHTS, TEST), 320, "previous")
    theirs = fork_generation_by_onnx(tmp_path / "short.onnx", 320)
    mse_ours = float(np.mean((ours - true) ** 2))
    mse_onnx = float(np.mean((theirs - true) ** 2))
    assert abs(mse_ours - mse_onnx) < 1e-6, (mse_ours, mse_onnx)
    assert np.abs(ours - theirs).max() < 1e-4


# -- refusals and the command line ------------------------------------------------------------

def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_cli_writes_and_names_the_io(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", SHORT_WEIGHTS, "--net", SHORT, "--format", "onnx",
                             "--graph", "sequence", "--out", tmp_path / "seq.onnx")
    assert code == 0, err
    assert out == ""  # what was written is said on stderr, stdout is for results
    assert "inputs: data, lstm1.h, lstm1.c" in err
    assert "outputs: ip1, lstm1.h_out, lstm1.c_out" in err
    onnx.checker.check_model(str(tmp_path / "seq.onnx"))


def test_export_from_a_run_folder(tmp_path, capsys):
    """run.json names net and weights; a moved folder's weights are found by name."""
    import json
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(SHORT_WEIGHTS, run / SHORT_WEIGHTS.name)
    (run / "run.json").write_text(json.dumps({"net": str(SHORT),
                                              "weights": "/gone/" + SHORT_WEIGHTS.name}))
    code, out, err = run_cli(capsys, "export", run, "--format", "onnx", "--out",
                             tmp_path / "r.onnx")
    assert code == 0, err
    assert (tmp_path / "r.onnx").is_file()


@pytest.mark.parametrize("argv, message", [
    ([], "give --format (onnx or torch)"),
    (["--format", "onx"], "unknown --format 'onx' (known: onnx, torch)"),
    (["--format", "onnx", "--graph", "steps"], "unknown --graph 'steps' (known: step, sequence)"),
    (["--format", "torch", "--graph", "step"],
     "--graph is for --format onnx; the torch state dict has no graph"),
])
def test_export_cli_refuses_bad_options(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "export", SHORT_WEIGHTS, "--net", SHORT, *argv,
                             "--out", tmp_path / "x.onnx")
    assert code == 2
    assert err == f"seqgen: error: {message}\n"
    assert not (tmp_path / "x.onnx").exists()


def test_export_refuses_a_layer_onnx_cannot_express(tmp_path, capsys):
    text = """
    name: "red"
    layer { name: "in" type: "Input" top: "x" top: "cont"
            input_param { shape { dim: 4 dim: 1 dim: 2 } shape { dim: 4 dim: 1 } } }
    layer { name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "o"
            recurrent_param { num_output: 3 } }
    layer { name: "total" type: "Reduction" bottom: "o" top: "s" }
    """
    path = tmp_path / "red.prototxt"
    path.write_text(text)
    Net(str(path), TEST).save(str(tmp_path / "red.caffemodel"))
    code, out, err = run_cli(capsys, "export", tmp_path / "red.caffemodel", "--net", path,
                             "--format", "onnx", "--out", tmp_path / "red.onnx")
    assert code == 2
    assert err.startswith(f"seqgen: error: {path}: layer 'total' (Reduction) cannot be "
                          "exported to ONNX (exported layer types: ")
    assert err.count("\n") == 1


def test_missing_onnx_extra_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    code, out, err = run_cli(capsys, "export", SHORT_WEIGHTS, "--net", SHORT, "--format",
                             "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2
    assert err == ("seqgen: error: ONNX export needs the onnx package: "
                   f"{install_hint('onnx')}\n")
    assert "onnx" in install_hint("onnx")


def test_export_of_a_missing_file_names_it(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", tmp_path / "nope.caffemodel", "--net", SHORT,
                             "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2
    assert err == (f"seqgen: error: {tmp_path / 'nope.caffemodel'}: no such run folder or "
                   "snapshot\n")


def test_export_subprocess_exit_code_and_no_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "seqgen", "export", str(SHORT_WEIGHTS),
                           "--net", str(SHORT), "--format", "bogus", "--out",
                           str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "seqgen: error: unknown --format 'bogus' (known: onnx, torch)\n"
