"""Learning-rate policies (seqgen/solver/schedules.py): values at chosen iterations worked out by
hand, multistep's current_step, float32 results, and the settings Caffe refuses."""
import numpy as np
import pytest
from helpers import Hooks

from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_solver_text
from seqgen.solver import Solver
from seqgen.solver.schedules import learning_rate

TINY_NET = """
name: "t"
input: "x" input_shape { dim: 2 dim: 3 }
input: "y" input_shape { dim: 2 dim: 1 }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p"
        inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def sp(text):
    return parse_solver_text(text, "s.prototxt")


def rate(text, it, current_step=0):
    return learning_rate(sp(text), it, current_step)


@pytest.mark.parametrize("text, it, expected", [
    ("lr_policy: 'fixed' base_lr: 0.1", 12345, 0.1),
    ("lr_policy: 'step' base_lr: 0.1 gamma: 0.5 stepsize: 10", 9, 0.1),
    ("lr_policy: 'step' base_lr: 0.1 gamma: 0.5 stepsize: 10", 10, 0.05),
    ("lr_policy: 'step' base_lr: 0.1 gamma: 0.5 stepsize: 10", 35, 0.0125),
    ("lr_policy: 'exp' base_lr: 0.1 gamma: 0.9", 0, 0.1),
    ("lr_policy: 'exp' base_lr: 0.1 gamma: 0.9", 3, 0.1 * 0.729),
    ("lr_policy: 'inv' base_lr: 0.1 gamma: 0.25 power: 0.5", 12, 0.1 / 2.0),
    ("lr_policy: 'inv' base_lr: 0.1 gamma: 0.25 power: 2", 4, 0.1 / 4.0),
    ("lr_policy: 'poly' base_lr: 0.1 power: 2 max_iter: 100", 50, 0.025),
    ("lr_policy: 'poly' base_lr: 0.1 power: 1 max_iter: 100", 100, 0.0),
    ("lr_policy: 'sigmoid' base_lr: 0.1 gamma: 0.5 stepsize: 20", 20, 0.05),
    ("lr_policy: 'sigmoid' base_lr: 0.1 gamma: 0.5 stepsize: 20", 22, 0.1 / (1 + np.exp(-1))),
    ("lr_policy: 'sigmoid' base_lr: 0.1 gamma: 0 stepsize: 20", 0, 0.05),
])
def test_policy_values(text, it, expected):
    value, _ = rate(text, it)
    assert isinstance(value, np.float32)  # Caffe's GetLearningRate returns Dtype
    # float32 parameters (gamma 0.9 is 0.89999998), so compare to float32 precision
    assert value == pytest.approx(expected, rel=3e-7 * max(1, it), abs=1e-12)


def test_float32_parameters_and_integer_iteration():
    # gamma is a float in caffe.proto: 0.9 is stored as 0.89999998; the rate follows
    value, _ = rate("lr_policy: 'exp' base_lr: 1 gamma: 0.9", 100)
    assert value == np.float32(np.float64(np.float32(0.9)) ** 100)
    assert value != np.float32(0.9 ** 100)
    # step: integer division of the iteration
    assert rate("lr_policy: 'step' base_lr: 1 gamma: 0.1 stepsize: 3", 5)[1] == 1


def test_huge_iterations_do_not_raise():
    assert rate("lr_policy: 'exp' base_lr: 1 gamma: 1.5", 10 ** 6)[0] == np.inf
    assert rate("lr_policy: 'sigmoid' base_lr: 1 gamma: 1 stepsize: 1", 10 ** 6)[0] == 1
    assert rate("lr_policy: 'sigmoid' base_lr: 1 gamma: 1 stepsize: 1000000", 0)[0] == 0


def test_multistep_steps_at_most_once_per_iteration():
    text = "lr_policy: 'multistep' base_lr: 1 gamma: 0.1 stepvalue: 10 stepvalue: 20 stepvalue: 30"
    p = sp(text)
    step, rates = 0, []
    for it in range(40):
        r, step = learning_rate(p, it, step)
        rates.append(r)
    assert step == 3
    assert [rates[i] for i in (9, 10, 19, 20, 29, 30)] == [
        1, np.float32(0.1), np.float32(0.1), np.float32(0.1 * np.float32(0.1)),
        np.float32(np.float64(np.float32(0.1)) ** 2), np.float32(np.float64(np.float32(0.1)) ** 3)]
    # a solver resumed at iteration 100 with current_step 0 catches up one step per update,
    # as Caffe does (current_step is therefore stored in the .solverstate)
    assert [learning_rate(p, 100 + k, k)[1] for k in range(4)] == [1, 2, 3, 3]
    # repeated stepvalues are taken on consecutive iterations
    p2 = sp("lr_policy: 'multistep' base_lr: 1 gamma: 0.5 stepvalue: 5 stepvalue: 5")
    assert learning_rate(p2, 5, 0) == (0.5, 1)
    assert learning_rate(p2, 6, 1) == (0.25, 2)


def make_solver(folder, text):
    (folder / "t.prototxt").write_text(TINY_NET)
    path = folder / "s_solver.prototxt"
    path.write_text('net: "t.prototxt"\n' + text + "\n")
    return Solver(str(path), log=lambda *a: None)


def test_solver_rate_has_no_side_effect_and_step_advances_current_step(tmp_path):
    solver = make_solver(tmp_path, "base_lr: 0.1 lr_policy: 'multistep' gamma: 0.5 stepvalue: 2 "
                         "stepvalue: 3 random_seed: 1")
    for _ in range(5):
        _ = solver.rate  # reading the rate must not move the schedule
    assert solver.current_step == 0
    rates = []
    solver.add_callback(Hooks(after_iteration=lambda s, loss: rates.append(float(s.last_rate))))
    solver.step(5)
    assert rates == [float(np.float32(r)) for r in (0.1, 0.1, 0.05, 0.025, 0.025)]
    assert solver.current_step == 2


@pytest.mark.parametrize("text, message", [
    ("base_lr: 0.1", "lr_policy is not set"),
    ("base_lr: 0.1 lr_policy: 'cosine'", "unknown lr_policy 'cosine' (known: fixed, step, exp, "
                                         "inv, multistep, poly, sigmoid)"),
    ("base_lr: 0.1 lr_policy: 'multistep' gamma: 0.1", "'multistep' needs at least one stepvalue"),
    ("base_lr: 0.1 lr_policy: 'step' gamma: 0.1", "'step' needs stepsize > 0 (got 0)"),
    ("base_lr: 0.1 lr_policy: 'step' gamma: -0.1 stepsize: 3", "needs gamma >= 0 (got -0.1)"),
    ("base_lr: 0.1 lr_policy: 'sigmoid' gamma: -1 stepsize: 3", "'sigmoid' needs gamma >= 0"),
    ("base_lr: 0.1 lr_policy: 'sigmoid' gamma: 1", "'sigmoid' needs stepsize > 0"),
    ("base_lr: 0.1 lr_policy: 'exp' gamma: -0.5", "'exp' needs gamma >= 0"),
    ("base_lr: 0.1 lr_policy: 'poly' power: 1", "'poly' needs max_iter > 0"),
    ("base_lr: -0.1 lr_policy: 'fixed'", "base_lr must not be negative (got -0.1)"),
])
def test_bad_policies_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(SeqgenError) as e:
        make_solver(tmp_path, text)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(tmp_path / "s_solver.prototxt") + ": ")
