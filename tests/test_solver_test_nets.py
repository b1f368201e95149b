"""The solver's test nets as Caffe's InitTestNets / TestAll make them: one per test_iter
(test_net_param, test_net, then the net), each in its test_state; the training net in
train_state; the net file's own state merged under them; Caffe's count CHECKs."""
import pytest

from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text, parse_solver_text, solver_net_state
from seqgen.net import TEST, TRAIN
from seqgen.proto import caffe_pb2
from seqgen.solver.callbacks import Callback
from seqgen.solver.solver import Solver

# Input blobs: these nets need a tester from outside (tests set `solver.testers`).
NET = """
name: "staged"
state { level: 2 }
layer { name: "in" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "s"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "drop" type: "Dropout" bottom: "s" top: "s" include { stage: "drop" } }
layer { name: "lvl" type: "Silence" bottom: "y" include { phase: TEST min_level: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "y" top: "loss"
        loss_weight: 3 include { phase: TRAIN } }
layer { name: "acc" type: "Accuracy" bottom: "s" bottom: "y" top: "acc"
        include { phase: TEST stage: "a" } }
layer { name: "acc2" type: "Accuracy" bottom: "s" bottom: "y" top: "acc2"
        accuracy_param { top_k: 2 } include { phase: TEST stage: "b" } }
"""


def solver_text(extra):
    return ("base_lr: 0.1\nlr_policy: 'fixed'\nmax_iter: 2\nrandom_seed: 1\n"
            "net_param {" + NET + "}\n" + extra)


def make_solver(extra, log=None):
    return Solver(parse_solver_text(solver_text(extra), "s"), log=log or (lambda *a: None),
                  source="s.prototxt")


def test_state_merge_follows_caffe():
    net = parse_net_text(NET)
    state = solver_net_state(net, TRAIN, caffe_pb2.NetState(stage=["drop"]))
    assert (state.phase, state.level, list(state.stage)) == (TRAIN, 2, ["drop"])
    state = solver_net_state(net, TEST, caffe_pb2.NetState(level=0))
    assert (state.phase, state.level) == (TEST, 0)  # a test_state's level wins
    net.state.phase = TEST  # Caffe: the net file's phase overrides the solver's
    assert solver_net_state(net, TRAIN).phase == TEST


def test_train_state_and_each_test_state():
    solver = make_solver("train_state { stage: 'drop' }\ntest_interval: 1\n"
                         "test_iter: 1 test_state { stage: 'a' }\n"
                         "test_iter: 2 test_state { stage: 'b' stage: 'drop' }\n")
    assert "drop" in solver.net.layer_names and "lvl" not in solver.net.layer_names
    first, second = solver.test_nets
    # the net file's `state { level: 2 }` is kept: "lvl" (min_level 2) is in both
    layers = [[n for n in net.layer_names if n not in ("in", "ip") and "split" not in n]
              for net in (first, second)]
    assert layers == [["lvl", "acc"], ["drop", "lvl", "acc2"]]
    assert second.phase == TEST and second.layer("drop").train is False
    assert first.params["ip"][0].data is solver.net.params["ip"][0].data
    # Input nets wait for a tester from their data (the driver's plan)
    assert solver.testers == [None, None] and solver.tester is None and not solver.can_test


def test_test_all_numbers_each_net_and_tells_callbacks_which(monkeypatch):
    lines, seen = [], []
    solver = make_solver("test_interval: 1\ntest_compute_loss: true\n"
                         "test_iter: 1 test_state { stage: 'a' }\n"
                         "test_iter: 1 test_state { stage: 'b' }\n", log=lines.append)

    class Spy(Callback):
        def after_test(self, solver, results):  # the existing signature, unchanged
            seen.append((solver.testing_net, results[0][0]))

    solver.add_callback(Spy())
    solver.testers = [lambda s: [("acc", 0.5, 0.0), ("loss", 2.0, 3.0)],
                      lambda s: [("acc2", 0.25, 0.0)]]
    first = solver.test_all()
    assert first[0] == ("acc", 0.5, 0.0)
    assert lines == ["Iteration 0, Testing net (#0)", "Test loss: 6",
                     "    Test net output #0: acc = 0.5",
                     "    Test net output #1: loss = 2 (* 3 = 6 loss)",
                     "Iteration 0, Testing net (#1)", "Test loss: 0",
                     "    Test net output #0: acc2 = 0.25"]
    assert seen == [(0, "acc"), (1, "acc2")] and solver.testing_net == 0
    solver.tester = None  # the driver's way of replacing net #0's tester
    lines.clear()
    solver.test_all()
    assert lines[0] == "Iteration 0, Testing net (#1)"


def test_a_net_without_test_iter_has_no_test_net_as_in_pycaffe():
    solver = make_solver("")
    assert solver.test_nets == [] and solver.testers == [] and solver.test_net() is None


@pytest.mark.parametrize("extra, message", [
    ("test_iter: 1\ntest_iter: 1\ntest_interval: 1\ntest_state { stage: 'a' }",
     r"s.prototxt: 1 test_state for 2 test net\(s\) \(one per test_iter\)"),
    ("test_iter: 1",
     r"s.prototxt: test_iter asks for 1 test net\(s\) but test_interval is not set"),
    ("test_net_param {" + NET + "}\ntest_interval: 1",
     r"s.prototxt: 0 test_iter for 1 test net\(s\) \(test_net / test_net_param\); "
     r"Caffe needs one"),
    ("net: 'x.prototxt'", r"s.prototxt: give net or net_param, not both"),
])
def test_caffe_count_checks(extra, message):
    with pytest.raises(SeqgenError, match=message):
        make_solver(extra)


def test_test_iter_without_a_test_net_for_a_train_net():
    param = parse_solver_text("base_lr: 0.1\nlr_policy: 'fixed'\ntest_iter: 3\n"
                              "test_interval: 1\ntrain_net_param {" + NET + "}", "t")
    with pytest.raises(SeqgenError, match=r"t: 1 test_iter for 0 test net\(s\)"):
        Solver(param, log=lambda *a: None, source="t")


def test_test_net_param_comes_first_then_the_net():
    solver = make_solver("test_net_param {" + NET.replace('"staged"', '"own"') + "}\n"
                         "test_interval: 1\ntest_iter: 1\ntest_iter: 1\n"
                         "test_state { stage: 'b' }\ntest_state { stage: 'a' }\n")
    own, generic = solver.test_nets
    assert own.name == "own" and "acc2" in own.layer_names
    assert generic.name == "staged" and "acc" in generic.layer_names
