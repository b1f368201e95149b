"""Snapshots and resume for every solver type: N iterations straight equal N/2, snapshot,
restore in a fresh Solver, N/2 -- bit for bit, weights and history; the .solverstate read
back with a protobuf wire decoder written here (Caffe's field numbers, not seqgen's proto
module); and solver states that do not fit, as one-line errors (API and command line)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgen.app.cli import main
from seqgen.data.feeder import SequenceFeeder
from seqgen.data.sources import sinusoid
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text, parse_solver_text
from seqgen.solver import Solver

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

ROOT = Path(__file__).parents[1]
T = 20
SEQ = sinusoid(320)[: 2 * T]
NET = f"""
name: "tiny"
input: "data" input_shape {{ dim: {T} dim: 1 }}
input: "clip" input_shape {{ dim: {T} dim: 1 }}
input: "label" input_shape {{ dim: {T} dim: 1 }}
layer {{ name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
  lstm_param {{ num_output: 6 clipping_threshold: 0.1
    weight_filler {{ type: "gaussian" std: 0.3 }} bias_filler {{ type: "constant" }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  inner_product_param {{ num_output: 1 weight_filler {{ type: "gaussian" std: 0.3 }}
                        bias_filler {{ type: "constant" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""
SHAPES = [(24, 1), (24, 6), (24,), (1, 6), (1,)]  # Lstm W_x, W_h, b; ip1 W, b

CASES = {
    "SGD": "type: 'SGD' base_lr: 0.05 momentum: 0.9 lr_policy: 'fixed' weight_decay: 0.001",
    "Nesterov": "type: 'Nesterov' base_lr: 0.03 momentum: 0.9 lr_policy: 'fixed' "
                "iter_size: 2",
    "AdaGrad": "type: 'AdaGrad' base_lr: 0.05 lr_policy: 'fixed' clip_gradients: 0.05",
    "RMSProp": "type: 'RMSProp' base_lr: 0.005 rms_decay: 0.9 lr_policy: 'fixed'",
    "AdaDelta": "type: 'AdaDelta' base_lr: 1 momentum: 0.95 delta: 1e-6 lr_policy: 'fixed'",
    "Adam": "type: 'Adam' base_lr: 0.01 momentum: 0.9 momentum2: 0.999 lr_policy: 'fixed'",
    # current_step is 2 at iteration 20 and must come back from the state
    "SGD multistep": "type: 'SGD' base_lr: 0.05 momentum: 0.9 lr_policy: 'multistep' "
                     "gamma: 0.5 stepvalue: 5 stepvalue: 8 stepvalue: 30",
    "Adam step": "type: 'Adam' base_lr: 0.01 momentum: 0.9 lr_policy: 'step' gamma: 0.5 "
                 "stepsize: 15",
}
N = 40


def make_solver(text, out_dir, seed=1, net=NET):
    sp = parse_solver_text(f"{text} random_seed: {seed}")
    sp.net_param.CopyFrom(parse_net_text(net, "tiny"))
    solver = Solver(sp, out_dir=str(out_dir), log=lambda *a: None)
    solver.add_callback(SequenceFeeder(solver.net, SEQ, "previous"))
    return solver


def weights(solver):
    return [lp.blob.data.copy() for lp in solver.net.learnable_params]


def history(solver):
    return [h.copy() for h in solver.history]


def split_run(text, tmp_path):
    first = make_solver(text, tmp_path / "split")
    first.step(N // 2)
    model, state = first.snapshot()
    # a fresh solver with other random weights: everything must come from the snapshot
    resumed = make_solver(text, tmp_path / "resumed", seed=99)
    assert not all(np.array_equal(a, b) for a, b in zip(weights(resumed), weights(first)))
    resumed.restore(state)
    resumed.callbacks[0].passes = resumed.iter * resumed.param.iter_size  # (the feeder)
    return first, resumed, state


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_bit_for_bit(case, tmp_path):
    text = CASES[case]
    straight = make_solver(text, tmp_path / "straight")
    straight.step(N)
    first, resumed, _ = split_run(text, tmp_path)
    assert resumed.iter == N // 2 and resumed.current_step == first.current_step
    for a, b in zip(history(resumed), history(first)):
        assert np.array_equal(a, b)
    resumed.step(N - N // 2)
    assert resumed.iter == N
    for i, (a, b) in enumerate(zip(weights(resumed), weights(straight))):
        assert np.array_equal(a, b), f"{case}: param {i} differs after resume"
    for i, (a, b) in enumerate(zip(history(resumed), history(straight))):
        assert np.array_equal(a, b), f"{case}: history blob {i} differs after resume"
    assert resumed.current_step == straight.current_step
    assert len(resumed.history) == len(SHAPES) * (2 if "Ada" in case and "AdaGrad" not in case
                                                 or "Adam" in case else 1)
    if case == "SGD multistep":
        assert first.current_step == 2 and straight.current_step == 3


def test_resume_without_current_step_would_differ(tmp_path):
    """The multistep case above depends on current_step: zeroed, the weights differ."""
    text = CASES["SGD multistep"]
    straight = make_solver(text, tmp_path / "straight")
    straight.step(N)
    _, resumed, _ = split_run(text, tmp_path)
    resumed.current_step = 0
    resumed.step(N - N // 2)
    assert not all(np.array_equal(a, b) for a, b in zip(weights(resumed), weights(straight)))


# -- the file as Caffe reads it ---------------------------------------------------------------

def varint(buf, i):
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def wire_fields(buf):
    """(field number, wire type, value) of a serialized protobuf message."""
    i, out = 0, []
    while i < len(buf):
        key, i = varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = varint(buf, i)
        elif kind == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif kind == 5:
            value, i = buf[i:i + 4], i + 4
        elif kind == 1:
            value, i = buf[i:i + 8], i + 8
        else:
            raise AssertionError(f"wire type {kind}")
        out.append((number, kind, value))
    return out


def decode_blob(buf):
    """BlobProto as Caffe writes it (Blob::ToProto): shape = 7 (BlobShape: dim = 1, packed
    int64), data = 5 (packed float); no diff (6) without snapshot_diff."""
    shape, data = None, None
    for number, kind, value in wire_fields(buf):
        if number == 7:
            dims = [v for n, k, v in wire_fields(value) if n == 1]
            assert len(dims) == 1 and isinstance(dims[0], bytes)  # one packed run
            shape, j = [], 0
            while j < len(dims[0]):
                d, j = varint(dims[0], j)
                shape.append(d)
        elif number == 5:
            assert kind == 2  # packed
            data = np.frombuffer(value, "<f4")
        else:
            raise AssertionError(f"unexpected BlobProto field {number}")
    return tuple(shape), data


def decode_state(path):
    """SolverState (caffe.proto): iter = 1, learned_net = 2, history = 3, current_step = 4."""
    state = {"history": []}
    for number, kind, value in wire_fields(Path(path).read_bytes()):
        if number == 1 and kind == 0:
            state["iter"] = value
        elif number == 2 and kind == 2:
            state["learned_net"] = value.decode()
        elif number == 3 and kind == 2:
            state["history"].append(decode_blob(value))
        elif number == 4 and kind == 0:
            state["current_step"] = value
        else:
            raise AssertionError(f"unexpected SolverState field {number} (wire type {kind})")
    return state


@pytest.mark.parametrize("case", ["SGD", "Adam", "AdaDelta", "SGD multistep"])
def test_solverstate_is_what_caffe_reads(case, tmp_path):
    solver = make_solver(CASES[case], tmp_path)
    solver.step(12)
    model, path = solver.snapshot()
    state = decode_state(path)
    assert state["iter"] == 12
    assert state["learned_net"] == "tiny_iter_12.caffemodel" == Path(model).name
    assert Path(path).name == "tiny_iter_12.solverstate"
    assert state.get("current_step", 0) == solver.current_step
    if case == "SGD multistep":
        assert state["current_step"] == 2
    slots = 2 if case in ("Adam", "AdaDelta") else 1
    # Caffe's order: one blob per learnable parameter; AdaDelta/Adam: all first-slot
    # blobs, then all second-slot blobs
    assert [s for s, _ in state["history"]] == SHAPES * slots
    for (_shape, data), h in zip(state["history"], solver.history):
        assert data.tobytes() == h.astype("<f4").tobytes()
    if case == "Adam":
        # after one update from zero history m = (1 - b1) g and v = (1 - b2) g^2: the first
        # half of the blobs must be the m's, the second half the v's
        first = make_solver(CASES[case], tmp_path / "one")
        first.step(1)
        for m, v in zip(first.history[:5], first.history[5:]):
            g = m.astype(np.float64) / 0.1
            np.testing.assert_allclose(v, 0.001 * g * g, rtol=1e-4, atol=1e-30)
            assert np.any(m < 0)  # (v >= 0 everywhere: the halves are not swapped)


# -- states that do not fit ---------------------------------------------------------------------

def test_state_of_another_net_names_what_differs(tmp_path):
    other = make_solver(CASES["Adam"], tmp_path / "h7", net=NET.replace("num_output: 6",
                                                                        "num_output: 7"))
    other.step(1)
    _, state = other.snapshot()
    solver = make_solver(CASES["Adam"], tmp_path / "h6")
    with pytest.raises(SeqgenError) as e:
        solver.restore(state)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(state)
    assert "lstm1/0" in msg and "(28, 1)" in msg and "(24, 1)" in msg and "another net" in msg
    assert solver.iter == 0  # nothing was changed


def test_state_of_another_solver_type(tmp_path):
    sgd = make_solver(CASES["SGD"], tmp_path / "sgd")
    sgd.step(1)
    _, state = sgd.snapshot()
    adam = make_solver(CASES["Adam"], tmp_path / "adam")
    with pytest.raises(SeqgenError) as e:
        adam.restore(state)
    msg = str(e.value)
    assert "\n" not in msg
    assert "holds 5 history blobs" in msg and "Adam solver" in msg and "needs 10" in msg
    assert "another solver type" in msg
    # and the other way round
    adam.step(1)
    _, state = adam.snapshot()
    with pytest.raises(SeqgenError, match="holds 10 history blobs.*needs 5.*another solver type"):
        make_solver(CASES["Nesterov"], tmp_path / "n").restore(state)


# -- through the command line: exit 2, one line, no traceback ---------------------------------

def lstm_short_solver(folder, text):
    net = ROOT / "prototxt" / "lstm_short.prototxt"
    path = folder / "my_solver.prototxt"
    path.write_text(f'net: "{net}"\n{text}\nmax_iter: 2\nrandom_seed: 3\n')
    return path


def one_line_error(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert err.startswith("seqgen: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("text, message", [
    ("type: 'Adamax' base_lr: 0.1 lr_policy: 'fixed'", "unknown solver type 'Adamax' (known: "
                                                      "SGD, Nesterov, AdaGrad, RMSProp, "
                                                      "AdaDelta, Adam)"),
    ("base_lr: 0.1 lr_policy: 'warmup'", "unknown lr_policy 'warmup'"),
    ("base_lr: 0.1 lr_policy: 'multistep' gamma: 0.1", "'multistep' needs at least one stepvalue"),
    ("base_lr: -0.001 lr_policy: 'fixed'", "base_lr must not be negative (got -0.001)"),
    ("type: 'AdaGrad' base_lr: 0.1 momentum: 0.9 lr_policy: 'fixed'",
     "momentum must be 0 for AdaGrad (got 0.9)"),
    ("type: 'RMSProp' base_lr: 0.1 rms_decay: 1 lr_policy: 'fixed'",
     "RMSProp needs 0 <= rms_decay < 1 (got 1)"),
    ("type: 'RMSProp' base_lr: 0.1 momentum: 0.5 lr_policy: 'fixed'",
     "momentum must be 0 for RMSProp"),
    ("base_lr: 0.1 lr_policy: 'fixed' weight_decay: 0.1 regularization_type: 'L3'",
     "unknown regularization_type 'L3' (known: L2, L1)"),
    ("base_lr: 0.1 lr_policy: 'fixed' iter_size: 0", "iter_size must be at least 1"),
])
def test_bad_solver_settings_on_the_command_line(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.chdir(tmp_path)
    solver = lstm_short_solver(tmp_path, text)
    err = one_line_error(capsys, "train", solver, "--out", "RUN")
    assert message in err and "my_solver.prototxt" in err
    assert not (tmp_path / "RUN").exists()


def test_resume_from_another_net_or_type_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small = make_solver(CASES["SGD"], tmp_path / "small")
    small.step(1)
    _, other_net = small.snapshot()
    sgd = lstm_short_solver(tmp_path, "base_lr: 0.001 momentum: 0.9 lr_policy: 'fixed'")
    err = one_line_error(capsys, "train", sgd, "--out", "RUN", "--resume", other_net)
    assert "lstm1/0" in err and "(24, 1)" in err and "(60, 1)" in err
    assert main(["train", str(sgd), "--out", "RUN"]) == 0
    capsys.readouterr()
    adam = tmp_path / "adam_solver.prototxt"
    adam.write_text(lstm_short_solver(tmp_path, "type: 'Adam' base_lr: 0.001 momentum: 0.9 "
                                                "lr_policy: 'fixed'").read_text())
    err = one_line_error(capsys, "train", adam, "--out", "RUN2", "--resume",
                         tmp_path / "RUN" / "my_iter_2.solverstate")
    assert "holds 5 history blobs" in err and "needs 10" in err
    # the same in a real process: no traceback, exit code 2
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", str(adam), "--out",
                           "RUN3", "--resume", str(tmp_path / "RUN" / "my_iter_2.solverstate")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "needs 10" in proc.stderr
