"""The pycaffe-style Python API: Net construction, blobs, forward/backward, loss_weight,
propagate_down, force_backward, parameter sharing, Split, recurrent state, the solver,
weights files written by Caffe, and the runnable "Coming from pycaffe" document.

Small nets of InnerProduct / EuclideanLoss / Input are checked against numpy; the fork's
lstm_short with its Caffe-trained weights stands in for a recurrent net. Tests that need
BVLC's LSTM/RNN layers skip when those layers are not registered.
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import GOLDEN, ROOT

import seqgen
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.io.weights import blob_from_proto, blob_shape, read_net_binary
from seqgen.net import TEST, TRAIN, Net
from seqgen.proto import caffe_pb2

SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
E2E = GOLDEN / "caffe-lstm" / "e2e_short_2000"
BVLC = GOLDEN / "bvlc"
DOC = ROOT / "docs" / "pycaffe.md"  # "Coming from pycaffe"


def net_from(text, phase=TRAIN):
    return Net(parse_net_text(text, "<test net>"), phase)


def ip_text(name, bottom, top, n, extra=""):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" '
            f'{extra} inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" '
            f'std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }} }} }}\n')


def input_text(name, dims):
    shape = " ".join(f"dim: {d}" for d in dims)
    return (f'layer {{ name: "in_{name}" type: "Input" top: "{name}" '
            f'input_param {{ shape {{ {shape} }} }} }}\n')


def loss_text(name, a, b, extra=""):
    return (f'layer {{ name: "{name}" type: "EuclideanLoss" bottom: "{a}" bottom: "{b}" '
            f'top: "{name}" {extra} }}\n')


RNG = np.random.default_rng(42)
X = RNG.standard_normal((4, 3)).astype(np.float32)
TGT = RNG.standard_normal((4, 2)).astype(np.float32)


def affine(net, layer, x):
    W, b = (p.data.astype(np.float64) for p in net.params[layer])
    return x.astype(np.float64) @ W.T + b


# -- construction ----------------------------------------------------------------------------

def test_phase_constants_are_caffes():
    assert seqgen.TRAIN == caffe_pb2.TRAIN == 0
    assert seqgen.TEST == caffe_pb2.TEST == 1


def test_constructor_forms():
    weights = E2E / "iter2000.caffemodel"
    ref = Net(SHORT, weights, TRAIN).params["lstm1"][1].data.copy()
    assert Net(SHORT).phase == TEST  # pycaffe's default... and seqgen's
    assert Net(str(SHORT), TRAIN).phase == TRAIN  # Net(prototxt, phase)
    for net in (Net(SHORT, str(weights), TEST),  # Net(prototxt, weights, phase)
                Net(SHORT, TEST, weights=weights),  # Net(prototxt, phase, weights=...)
                Net(SHORT, weights=weights, phase="TEST"),
                seqgen.Net(SHORT, weights)):
        assert net.phase == TEST
        assert net.params["lstm1"][1].data.tobytes() == ref.tobytes()
    assert "Silence" in Net(SHORT, TEST).layer_names  # phase filtering took effect
    assert "loss" in Net(SHORT, TRAIN).layer_names


def test_constructor_mistakes():
    with pytest.raises(SeqgenError, match="phase must be TRAIN or TEST"):
        Net(SHORT, weights=None, phase=7)
    with pytest.raises(TypeError):
        Net(SHORT, TRAIN, phase=TEST)
    with pytest.raises(TypeError):
        Net(SHORT, E2E / "iter2000.caffemodel", TRAIN, TEST)
    with pytest.raises(SeqgenError, match="path of a .caffemodel"):
        Net(SHORT, weights=3.5)


def test_unknown_layer_type_lists_supported_types():
    text = input_text("x", (4, 3)) + 'layer { name: "c" type: "Lsmt" bottom: "x" top: "c" }'
    with pytest.raises(SeqgenError) as e:
        net_from(text)
    msg = str(e.value)
    assert "'Lsmt'" in msg and "InnerProduct" in msg and "HDF5Data" in msg


# -- blobs, forward, reshape -----------------------------------------------------------------

def test_inputs_written_into_blobs_stay_and_forward_uses_them():
    net = net_from(input_text("x", (4, 3)) + ip_text("ip", "x", "y", 2))
    assert net.inputs == ["x"] and net.outputs == ["y"]
    net.blobs["x"].data[...] = X
    out = net.forward()
    assert list(out) == ["y"]
    np.testing.assert_allclose(out["y"], affine(net, "ip", X), rtol=1e-5, atol=1e-6)
    again = net.forward()["y"]  # nothing written: the same input is still there
    np.testing.assert_allclose(again, affine(net, "ip", X), rtol=1e-5, atol=1e-6)
    net.blobs["x"].data[0] = 0
    changed = net.forward()["y"]
    np.testing.assert_allclose(changed[0], net.params["ip"][1].data, rtol=1e-6)


def test_forward_keywords_extra_blobs_and_errors():
    net = net_from(input_text("x", (4, 3)) + ip_text("ip1", "x", "h", 5)
                   + ip_text("ip2", "h", "y", 2))
    out = net.forward(x=X, blobs=["h"])
    assert list(out) == ["y", "h"]
    np.testing.assert_allclose(out["h"], affine(net, "ip1", X), rtol=1e-5, atol=1e-6)
    assert np.array_equal(net.blobs["x"].data, X)
    with pytest.raises(SeqgenError, match="'h' is not an input"):
        net.forward(h=np.zeros((4, 5)))
    with pytest.raises(SeqgenError, match="no blob named 'nope'"):
        net.forward(blobs=["nope"])
    # pycaffe's start/end: run only the first layer
    net.blobs["y"].data[...] = -1
    net.forward(x=2 * X, end="ip1")
    np.testing.assert_allclose(net.blobs["h"].data, affine(net, "ip1", 2 * X), rtol=1e-5,
                               atol=1e-5)
    assert np.all(net.blobs["y"].data == -1)


def test_blob_reshape_then_net_reshape():
    # x feeds two layers, so a Split sits between: its tops must follow the new array
    net = net_from(input_text("x", (4, 3)) + ip_text("a", "x", "ya", 2)
                   + ip_text("b", "x", "yb", 1))
    x7 = RNG.standard_normal((7, 3)).astype(np.float32)
    net.blobs["x"].reshape(7, 3)
    net.reshape()
    assert net.blobs["ya"].shape == (7, 2) and net.blobs["yb"].shape == (7, 1)
    net.blobs["x"].data[...] = x7
    out = net.forward()
    np.testing.assert_allclose(out["ya"], affine(net, "a", x7), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["yb"], affine(net, "b", x7), rtol=1e-5, atol=1e-6)
    # forward() also notices a reshaped input by itself
    net.blobs["x"].reshape((2, 3))
    net.blobs["x"].data[...] = x7[:2]
    np.testing.assert_allclose(net.forward()["ya"], affine(net, "a", x7[:2]), rtol=1e-5,
                               atol=1e-6)


def test_pycaffe_views_of_the_net():
    net = net_from(input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip", "x", "y", 2)
                   + loss_text("loss", "y", "t"))
    assert list(net.layer_dict) == net.layer_names == ["in_x", "in_t", "ip", "loss"]
    assert net.layer_dict["ip"].type == "InnerProduct"
    assert net.bottom_names["loss"] == ["y", "t"] and net.top_names["ip"] == ["y"]
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["y"] == 0.0
    assert [b.shape for b in net.params["ip"]] == [(2, 3), (2,)]
    assert list(net.params) == ["ip"]  # only layers with parameters, as in pycaffe


# -- backward --------------------------------------------------------------------------------

FORCED = "force_backward: true\n" + input_text("x", (4, 3)) + ip_text("ip", "x", "y", 2)


def test_backward_with_top_diffs_returns_input_diffs():
    net = net_from(FORCED)
    net.forward(x=X)
    dy = RNG.standard_normal((4, 2)).astype(np.float32)
    W = net.params["ip"][0].data.astype(np.float64)
    grads = net.backward(y=dy)
    assert list(grads) == ["x"]
    np.testing.assert_allclose(grads["x"], dy @ W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, dy.T.astype(np.float64) @ X,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, dy.sum(0), rtol=1e-5, atol=1e-6)
    # parameter diffs accumulate until cleared, as in Caffe
    net.backward(y=dy)
    np.testing.assert_allclose(net.params["ip"][1].diff, 2 * dy.sum(0), rtol=1e-5, atol=1e-6)
    net.clear_param_diffs()
    assert not net.params["ip"][1].diff.any()
    # a diff set on the blob beforehand is used too; diffs=[...] returns more blobs
    net.blobs["y"].diff[...] = 1
    grads = net.backward(diffs=["y"])
    assert list(grads) == ["x", "y"]
    np.testing.assert_allclose(grads["x"], np.ones((4, 2)) @ W, rtol=1e-5, atol=1e-6)


def test_backward_argument_errors():
    net = net_from(FORCED)
    net.forward(x=X)
    with pytest.raises(SeqgenError, match="'x' is not an output"):
        net.backward(x=np.ones((4, 3)))
    with pytest.raises(SeqgenError, match=r"shape \(3, 2\).*\(4, 2\)"):
        net.backward(y=np.ones((3, 2)))


def test_without_loss_or_force_backward_nothing_runs_backward():
    # Caffe skips layers that do not reach a loss
    net = net_from(input_text("x", (4, 3)) + ip_text("ip", "x", "y", 2))
    net.forward(x=X)
    grads = net.backward(y=np.ones((4, 2)))
    assert not grads["x"].any()
    assert not net.params["ip"][0].diff.any()
    assert not net.layer_needs_backward("ip")


LOSS_NET = (input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip", "x", "y", 2)
            + loss_text("loss", "y", "t", "@W@"))


def test_force_backward_gives_input_diffs():
    plain = net_from(LOSS_NET.replace("@W@", ""))
    forced = net_from("force_backward: true\n" + LOSS_NET.replace("@W@", ""))
    forced.params["ip"][0].data[...] = plain.params["ip"][0].data
    forced.params["ip"][1].data[...] = plain.params["ip"][1].data
    expected = (affine(plain, "ip", X) - TGT) / 4 @ plain.params["ip"][0].data.astype(np.float64)
    for net in (plain, forced):
        net.blobs["x"].diff[...] = 5  # a sentinel
        net.forward(x=X, t=TGT)
        grads = net.backward()
        if net is plain:
            assert np.all(grads["x"] == 5)  # untouched: no layer propagates to x
        else:
            np.testing.assert_allclose(grads["x"], expected, rtol=1e-5, atol=1e-6)
            # the labels, too: EuclideanLoss gives both bottoms a gradient
            np.testing.assert_allclose(grads["t"], -(affine(net, "ip", X) - TGT) / 4,
                                       rtol=1e-5, atol=1e-6)


def test_loss_weight_two_doubles_loss_and_every_diff():
    nets = [net_from("force_backward: true\n" + LOSS_NET.replace("@W@", w))
            for w in ("", "loss_weight: 2")]
    for p, q in zip(nets[0].params["ip"], nets[1].params["ip"]):
        q.data[...] = p.data
    losses, diffs = [], []
    for net in nets:
        net.forward(x=X, t=TGT)
        losses.append(net.forward_backward())
        diffs.append([net.blobs["x"].diff.copy(), net.blobs["y"].diff.copy()]
                     + [p.diff.copy() for p in net.params["ip"]])
    assert losses[1] == pytest.approx(2 * losses[0], rel=1e-6)
    assert diffs[0][0].any()
    for one, two in zip(*diffs):
        np.testing.assert_array_equal(two, 2 * one)  # x 2 is exact in float32


def test_loss_weight_on_a_top_that_is_also_consumed():
    # y is a loss (weight 0.5: loss += 0.5 * sum(y)) and feeds EuclideanLoss: Caffe puts a
    # Split in between whose first top carries the loss weight
    text = (input_text("x", (4, 3)) + input_text("t", (4, 2))
            + ip_text("ip", "x", "y", 2, "loss_weight: 0.5") + loss_text("loss", "y", "t"))
    net = net_from(text)
    assert "y_ip_0_split" in net.layer_names
    net.forward(x=X, t=TGT)
    loss = net.forward_backward()
    y = affine(net, "ip", X)
    assert loss == pytest.approx(0.5 * y.sum() + ((y - TGT) ** 2).sum() / 8, rel=1e-5)
    dy = 0.5 + (y - TGT) / 4
    np.testing.assert_allclose(net.params["ip"][1].diff, dy.sum(0), rtol=1e-5, atol=1e-6)


CHAIN = (input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip1", "x", "h", 5)
         + ip_text("ip2", "h", "y", 2, "@PD@") + loss_text("loss", "y", "t"))


def test_propagate_down_false_leaves_the_bottom_diff_alone():
    cut = net_from(CHAIN.replace("@PD@", "propagate_down: false"))
    full = net_from(CHAIN.replace("@PD@", ""))
    for net in (cut, full):
        net.blobs["h"].diff[...] = 7  # a sentinel
        net.forward(x=X, t=TGT)
        net.backward()
    assert np.all(cut.blobs["h"].diff == 7)
    assert not full.blobs["h"].diff.any() or not np.all(full.blobs["h"].diff == 7)
    # ip1's only top is cut off, so Caffe does not run ip1 backward at all
    assert not cut.layer_needs_backward("ip1") and full.layer_needs_backward("ip1")
    assert not cut.params["ip1"][0].diff.any() and full.params["ip1"][0].diff.any()
    assert cut.params["ip2"][0].diff.any()


def test_propagate_down_true_reaches_an_input_and_force_backward_overrides_false():
    # explicit true on an input (no force_backward): the label gets its diff
    text = (input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip", "x", "y", 2)
            + loss_text("loss", "y", "t", "propagate_down: true propagate_down: true"))
    net = net_from(text)
    net.forward(x=X, t=TGT)
    grads = net.backward()
    np.testing.assert_allclose(grads["t"], -(affine(net, "ip", X) - TGT) / 4, rtol=1e-5,
                               atol=1e-6)
    assert not grads["x"].any()
    # Caffe's force_backward wins over propagate_down: false
    forced = net_from("force_backward: true\n" + CHAIN.replace("@PD@", "propagate_down: false"))
    forced.blobs["h"].diff[...] = 7
    forced.forward(x=X, t=TGT)
    forced.backward()
    assert not np.all(forced.blobs["h"].diff == 7)


def test_backward_from_start_to_end():
    net = net_from("force_backward: true\n" + CHAIN.replace("@PD@", ""))
    net.forward(x=X, t=TGT)
    dy = RNG.standard_normal((4, 2)).astype(np.float32)
    net.blobs["y"].diff[...] = dy
    net.blobs["x"].diff[...] = 3
    net.backward(start="ip2", end="ip2")  # only ip2: the loss does not overwrite y's diff
    W2 = net.params["ip2"][0].data.astype(np.float64)
    np.testing.assert_allclose(net.blobs["h"].diff, dy @ W2, rtol=1e-5, atol=1e-6)
    assert np.all(net.blobs["x"].diff == 3) and not net.params["ip1"][0].diff.any()
    net.backward(start="ip1")  # from ip1 down: uses h's diff as it is
    W1 = net.params["ip1"][0].data.astype(np.float64)
    np.testing.assert_allclose(net.blobs["x"].diff, dy @ W2 @ W1, rtol=1e-4, atol=1e-5)


def test_propagate_down_count_must_match_bottoms():
    text = (input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip", "x", "y", 2)
            + loss_text("loss", "y", "t", "propagate_down: true"))
    with pytest.raises(SeqgenError, match="propagate_down 1 times for 2 bottom"):
        net_from(text)


def shared_net_text(b_outputs=2, lr_a="", lr_b=""):
    return (input_text("x1", (4, 3)) + input_text("x2", (4, 3)) + input_text("t1", (4, 2))
            + input_text("t2", (4, 2))
            + ip_text("ipa", "x1", "ya", 2, f'param {{ name: "w" {lr_a} }} param {{ name: "ba" }}')
            + ip_text("ipb", "x2", "yb", b_outputs,
                      f'param {{ name: "w" {lr_b} }} param {{ name: "bb" }}')
            + loss_text("la", "ya", "t1") + loss_text("lb", "yb", "t2"))


SHARED = shared_net_text()


def shared_gradient(net, x1, x2):
    W = net.params["ipa"][0].data.astype(np.float64)
    ga = ((x1 @ W.T + net.params["ipa"][1].data - TGT) / 4).T @ x1
    gb = ((x2 @ W.T + net.params["ipb"][1].data - 2 * TGT) / 4).T @ x2
    return ga + gb


def test_shared_parameter_is_one_blob_with_the_summed_gradient():
    net = net_from(SHARED)
    assert net.params["ipa"][0] is net.params["ipb"][0]
    assert net.params["ipa"][1] is not net.params["ipb"][1]
    assert len(net.learnable_params) == 3  # w once, ba, bb
    x2 = X[::-1].copy()
    net.forward(x1=X, x2=x2, t1=TGT, t2=2 * TGT)
    net.backward()
    np.testing.assert_allclose(net.params["ipa"][0].diff, shared_gradient(net, X, x2),
                               rtol=1e-5, atol=1e-6)


def test_solver_updates_a_shared_parameter_once(tmp_path):
    (tmp_path / "net.prototxt").write_text(SHARED)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\nrandom_seed: 1\n')
    solver = seqgen.get_solver(str(tmp_path / "solver.prototxt"), log=lambda *a: None)
    net = solver.net
    x2 = X[::-1].copy()
    for name, value in (("x1", X), ("x2", x2), ("t1", TGT), ("t2", 2 * TGT)):
        net.blobs[name].data[...] = value
    w0 = net.params["ipa"][0].data.astype(np.float64)
    grad = shared_gradient(net, X, x2)
    solver.step(1)
    assert solver.iter == 1
    np.testing.assert_allclose(net.params["ipa"][0].data, w0 - 0.1 * grad, rtol=1e-5,
                               atol=1e-6)
    assert net.params["ipb"][0].data is net.params["ipa"][0].data


def test_sharing_mistakes_are_named():
    with pytest.raises(SeqgenError,
                       match=r"shares parameter 'w' with layer 'ipa'.*\(3, 3\) vs \(2, 3\)"):
        net_from(shared_net_text(b_outputs=3))
    with pytest.raises(SeqgenError, match="'w' has lr_mult 1 in layer 'ipa' but 2 in layer 'ipb'"):
        net_from(shared_net_text(lr_a="lr_mult: 1", lr_b="lr_mult: 2"))
    # an unset lr_mult agrees with anything; the explicit one is used
    net = net_from(shared_net_text(lr_b="lr_mult: 3"))
    assert net.learnable_params[0].lr_mult == 3


def test_split_sums_the_gradients_of_two_consumers():
    text = ("force_backward: true\n" + input_text("x", (4, 3)) + input_text("t", (4, 2))
            + input_text("u", (4, 1)) + ip_text("a", "x", "ya", 2) + ip_text("b", "x", "yb", 1)
            + loss_text("la", "ya", "t") + loss_text("lb", "yb", "u"))
    net = net_from(text)
    # Caffe's names for the inserted layer and its tops
    assert "x_in_x_0_split" in net.layer_names
    assert net.bottom_names["a"] == ["x_in_x_0_split_0"]
    assert net.bottom_names["b"] == ["x_in_x_0_split_1"]
    u = RNG.standard_normal((4, 1)).astype(np.float32)
    net.forward(x=X, t=TGT, u=u)
    grads = net.backward()
    Wa, Wb = (net.params[k][0].data.astype(np.float64) for k in "ab")
    expected = (affine(net, "a", X) - TGT) / 4 @ Wa + (affine(net, "b", X) - u) / 4 @ Wb
    np.testing.assert_allclose(grads["x"], expected, rtol=1e-5, atol=1e-6)


# -- recurrent state -------------------------------------------------------------------------

def one_step_net():
    net = Net(SHORT, E2E / "iter2000.caffemodel", TEST)
    for name in ("data", "clip"):
        net.blobs[name].reshape(1, 1)
    net.reshape()
    return net


def run_steps(net, values, first_clip=1.0):
    out = []
    for k, v in enumerate(values):
        clip = first_clip if k == 0 else 1.0
        out.append(net.forward(data=[[v]], clip=[[clip]])["ip1"].item())
    return out


def test_get_set_reset_state():
    net = one_step_net()
    run_steps(net, [0.1, 0.2, 0.3], first_clip=0.0)
    state = net.get_state()
    assert list(state) == ["lstm1"]
    assert state["lstm1"]["h"].shape == (1, 15) and state["lstm1"]["h"].any()
    ahead = run_steps(net, [0.4, 0.5])
    net.set_state(state)
    assert run_steps(net, [0.4, 0.5]) == ahead
    state["lstm1"]["h"][...] = 0  # get_state gave copies
    net.set_state(net.get_state())
    assert run_steps(net, [0.4]) != run_steps(one_step_net(), [0.4])
    net.reset_state()
    assert not any(v.any() for v in net.get_state()["lstm1"].values())
    assert run_steps(net, [0.4]) == run_steps(one_step_net(), [0.4])
    with pytest.raises(SeqgenError, match="no layer with recurrent state named 'ip1'"):
        net.set_state({"ip1": {}})


def test_one_call_of_T_steps_equals_T_calls_of_one_step():
    whole = Net(SHORT, E2E / "iter2000.caffemodel", TEST)
    values = np.sin(np.arange(320) * 0.05).astype(np.float32)
    clip = np.ones((320, 1), np.float32)
    clip[0] = 0
    out = whole.forward(data=values[:, None], clip=clip)["ip1"].ravel()
    steps = run_steps(one_step_net(), values[:40], first_clip=0.0)
    np.testing.assert_allclose(steps, out[:40], rtol=1e-5, atol=1e-6)


# -- solver ----------------------------------------------------------------------------------

def tiny_solver(tmp_path, extra=""):
    text = (input_text("x", (4, 3)) + input_text("t", (4, 2)) + ip_text("ip", "x", "y", 2)
            + loss_text("loss", "y", "t"))
    (tmp_path / "tiny.prototxt").write_text(text)
    (tmp_path / "tiny_solver.prototxt").write_text(
        'net: "tiny.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 7\n'
        f'random_seed: 5\nsnapshot_prefix: "snap/tiny"\n{extra}')
    solver = seqgen.get_solver(str(tmp_path / "tiny_solver.prototxt"), log=lambda *a: None)
    solver.net.blobs["x"].data[...] = X
    solver.net.blobs["t"].data[...] = TGT
    return solver


def test_solver_step_snapshot_restore_solve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = tiny_solver(tmp_path)
    assert isinstance(solver, seqgen.Solver) and solver.iter == 0
    first = solver.step(3)
    assert solver.iter == 3
    assert float(solver.net.blobs["loss"].data) > 0 and np.isfinite(first)
    model, state = solver.snapshot()
    assert model == "snap/tiny_iter_3.caffemodel" and state == "snap/tiny_iter_3.solverstate"
    assert (tmp_path / model).is_file() and (tmp_path / state).is_file()
    w3 = solver.net.params["ip"][0].data.copy()
    solver.step(2)
    w5 = solver.net.params["ip"][0].data.copy()
    assert not np.array_equal(w3, w5)

    again = tiny_solver(tmp_path)
    again.restore(state)
    assert again.iter == 3
    assert again.net.params["ip"][0].data.tobytes() == w3.tobytes()
    again.step(2)  # momentum history restored too: the same weights as without the break
    assert again.net.params["ip"][0].data.tobytes() == w5.tobytes()
    paths = again.solve()
    assert again.iter == 7 and Path(paths[0]).name == "tiny_iter_7.caffemodel"


# -- weights files written by Caffe ----------------------------------------------------------

BVLC_MODELS = sorted(BVLC.glob("layer_*.caffemodel"))


def bvlc_case(path):
    stem = path.stem.replace("_legacy4d", "")
    z = np.load(BVLC / f"{stem}.npz")
    return stem, z, json.loads(str(z["meta_json"]))


@pytest.mark.parametrize("path", BVLC_MODELS, ids=lambda p: p.stem)
def test_caffe_written_caffemodel_holds_the_recorded_weights(path):
    stem, z, meta = bvlc_case(path)
    param = read_net_binary(str(path))
    layers = {lp.name: lp for lp in param.layer}
    assert layers["rec"].type == meta["layer_type"]
    blobs = layers["rec"].blobs
    assert len(blobs) == len(meta["param_order"])
    for name, proto in zip(meta["param_order"], blobs):
        dims = blob_shape(proto)
        if "legacy4d" in path.stem:
            assert len(dims) == 4 and dims[-z[name].ndim:] == z[name].shape
        else:
            assert dims == z[name].shape, name
        assert blob_from_proto(proto).tobytes() == z[name].astype(np.float32).tobytes(), name


@pytest.mark.parametrize("stem", ["layer_b", "layer_c", "layer_e", "layer_g_rnn_static"])
def test_seqgen_save_of_a_caffe_model_reads_back_identical(stem, tmp_path):
    z = np.load(BVLC / f"{stem}.npz")
    meta = json.loads(str(z["meta_json"]))
    net = Net(BVLC / f"{stem}.prototxt", BVLC / f"{stem}.caffemodel", TRAIN)
    out = tmp_path / "saved.caffemodel"
    net.save(out)
    other = Net(BVLC / f"{stem}.prototxt", TRAIN)
    other.copy_from(out)
    for name, mine, theirs in zip(meta["param_order"], net.params["rec"], other.params["rec"]):
        assert theirs.data.tobytes() == mine.data.tobytes() == \
            z[name].astype(np.float32).tobytes(), name
    # the saved file holds Caffe's blobs, shape and values, under Caffe's layer name
    ours = {lp.name: lp for lp in read_net_binary(str(out)).layer}
    caffes = {lp.name: lp for lp in read_net_binary(str(BVLC / f"{stem}.caffemodel")).layer}
    assert ours["rec"].type == caffes["rec"].type
    for a, b in zip(ours["rec"].blobs, caffes["rec"].blobs):
        assert tuple(a.shape.dim) == tuple(b.shape.dim)
        assert np.asarray(a.data, np.float32).tobytes() == np.asarray(b.data, np.float32).tobytes()
    # and saving is deterministic
    other.save(tmp_path / "again.caffemodel")
    assert (tmp_path / "again.caffemodel").read_bytes() == out.read_bytes()


def test_caffe_model_through_the_pycaffe_api_gives_caffes_numbers():
    z = np.load(BVLC / "layer_b.npz")
    net = Net(BVLC / "layer_b.prototxt", BVLC / "layer_b.caffemodel", TRAIN)
    out = net.forward(x=z["x"], cont=z["cont"])
    np.testing.assert_allclose(out["h"], z["top_h"], rtol=1e-5, atol=1e-6)
    grads = net.backward(h=z["top_diff_h"])  # force_backward: true in the file
    np.testing.assert_allclose(grads["x"], z["bottom_diff_x"], rtol=1e-4, atol=1e-6)


def bvlc_load_error(weights, prototxt=BVLC / "layer_b.prototxt", text=None):
    net = Net(prototxt, TRAIN) if text is None else net_from(text)
    with pytest.raises(SeqgenError) as e:
        net.copy_from(weights)
    msg = str(e.value)
    assert str(weights) in msg and "\n" not in msg
    return msg


def test_truncated_caffe_file(tmp_path):
    raw = (BVLC / "layer_b.caffemodel").read_bytes()
    for cut in (len(raw) - 1, len(raw) // 2, 7):
        path = tmp_path / f"cut{cut}.caffemodel"
        path.write_bytes(raw[:cut])
        assert "truncated" in bvlc_load_error(path)


def test_files_that_are_not_a_net_parameter(tmp_path):
    assert "text file" in bvlc_load_error(BVLC / "layer_b.prototxt")
    assert "zip" in bvlc_load_error(BVLC / "layer_b.npz")
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    assert "HDF5" in bvlc_load_error(path)


def test_caffe_file_into_a_net_of_another_size_names_layer_blob_and_shapes():
    text = (BVLC / "layer_b.prototxt").read_text().replace("num_output: 4", "num_output: 5")
    assert "num_output: 5" in text
    msg = bvlc_load_error(BVLC / "layer_b.caffemodel", text=text)
    assert "'rec'" in msg and "blob 0 (W_xc)" in msg
    assert "(16, 2)" in msg and "(20, 2)" in msg


def test_a_mismatch_leaves_the_net_untouched(tmp_path):
    # lstm1 fits, ip1 does not: nothing is loaded (no half-loaded net)
    text = SHORT.read_text().replace("num_output: 1\n", "num_output: 2\n")
    net = net_from(text, TEST)
    before = [b.data.copy() for b in net.params["lstm1"]]
    with pytest.raises(SeqgenError, match=r"'ip1' blob 0 \(W\): the file has shape \(1, 15\), "
                                          r"the net needs \(2, 15\)"):
        net.copy_from(E2E / "iter2000.caffemodel")
    for b, old in zip(net.params["lstm1"], before):
        assert b.data.tobytes() == old.tobytes()


# -- the "Coming from pycaffe" document ------------------------------------------------------

def doc_blocks():
    """The page's Python blocks, but for the one that runs `import caffe` on seqgen.caffe
    (install_as_caffe), which tests/test_docs_examples.py runs."""
    found = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [b for b in found if "install_as_caffe" not in b]


def test_doc_shows_a_pycaffe_script_and_its_seqgen_equivalent():
    blocks = doc_blocks()
    pycaffe = [b for b in blocks if "import caffe" in b]
    ours = [b for b in blocks if "import seqgen" in b]
    assert len(pycaffe) == 1 and len(ours) >= 1
    # the equivalent is the pycaffe script with `caffe` renamed (plus checks)
    translated = pycaffe[0].replace("import caffe\n", "import seqgen\n")
    translated = translated.replace("caffe.", "seqgen.")
    translated = translated.replace("seqgen.set_mode_cpu()\n", "")
    kept = [line for line in ours[0].splitlines() if not line.startswith("assert ")]
    words = lambda lines: [" ".join(line.split()) for line in lines if line.strip()]
    assert words(translated.splitlines()) == words(kept)


def test_doc_seqgen_code_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "prototxt", tmp_path / "prototxt")
    (tmp_path / "runs" / "short").mkdir(parents=True)
    shutil.copy(E2E / "iter2000.caffemodel",
                tmp_path / "runs" / "short" / "lstm_short_iter_2000.caffemodel")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "coming_from_pycaffe"}
    for i, block in enumerate(b for b in doc_blocks() if "import caffe" not in b):
        exec(compile(block, f"{DOC.name} seqgen block {i + 1}", "exec"), namespace)
    assert (tmp_path / "lstm_short_iter_20.caffemodel").is_file()
    assert (tmp_path / "mine.caffemodel").is_file()
    assert namespace["solver"].iter == 20
    assert namespace["grads"]["data"].any()
    assert "20 " in capsys.readouterr().out
