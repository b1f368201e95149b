"""Every solver type and lr policy against an independent numpy reference.

Each case trains a small LSTM net (the fork's Lstm, H = 6, or BVLC's LSTM) on two 20-step
chunks of the sinusoid from fixed initial weights for 250 iterations with seqgen's Solver.
The reference is written here, per parameter blob in float32 numpy following Caffe's
SGDSolver (ApplyUpdate -> ClipGradients, Normalize, Regularize, ComputeUpdateValue), with
the learning rate from the textbook formula of each policy in float64. It takes its
gradients from a second, identical net that it feeds the same chunks and gives its own
weights every iteration, so it never touches seqgen's solver, update or schedule code.

Tolerance: the loss trajectories and the final weights must agree to rtol 1e-4 plus an
absolute 1e-6 x the largest value of the blob; where the reference's rates equal seqgen's
exactly, the weights must be bit for bit equal. Measured: bit for bit equal weights and
losses after 250 iterations for every solver type, and for the fixed, step, exp and
multistep policies; for inv, poly and sigmoid, where the reference computes the rate in
float64 and Caffe (so seqgen) rounds intermediate terms to float32, the rates differ by up
to 3e-6 relative (poly near max_iter: 1 - iter/max_iter in float32) and the final weights
by at most 2e-7 of the blob's scale, the losses by 6e-7 relative. Formula variants that
Caffe does not use miss the tolerance by far (measured 0.35 of scale for the textbook Adam
with eps added to sqrt(v_hat), 0.42 for AdaDelta with the rate inside the update history,
6e-3 for multistep advancing several steps in one iteration):
test_variants_are_told_apart shows the tolerance can fail.
"""
import math

import numpy as np
import pytest
from helpers import Hooks

from seqgen.data.feeder import SequenceFeeder
from seqgen.data.sources import sinusoid
from seqgen.io.prototxt import parse_net_text, parse_solver_text
from seqgen.net import TRAIN, Net
from seqgen.solver import Solver

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

F = np.float32
T = 20
SEQ = sinusoid(320)[: 2 * T]
ITERS = 250
RTOL, ATOL_SCALE = 1e-4, 1e-6

FORK_NET = f"""
name: "tiny"
input: "data" input_shape {{ dim: {T} dim: 1 }}
input: "clip" input_shape {{ dim: {T} dim: 1 }}
input: "label" input_shape {{ dim: {T} dim: 1 }}
layer {{ name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 0.5 decay_mult: 2 }}
  param {{ lr_mult: 2 decay_mult: 0 }}
  lstm_param {{ num_output: 6 clipping_threshold: 0.1
    weight_filler {{ type: "gaussian" std: 0.1 }} bias_filler {{ type: "constant" }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  inner_product_param {{ num_output: 1
    weight_filler {{ type: "gaussian" std: 0.1 }} bias_filler {{ type: "constant" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""

BVLC_NET = f"""
name: "tiny_bvlc"
layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"
  input_param {{ shape {{ dim: {T} dim: 1 dim: 1 }} shape {{ dim: {T} dim: 1 }}
                shape {{ dim: {T} dim: 1 dim: 1 }} }} }}
layer {{ name: "lstm1" type: "LSTM" bottom: "data" bottom: "cont" top: "lstm1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }} param {{ lr_mult: 1 }}
  recurrent_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.1 }}
                    bias_filler {{ type: "constant" }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
  inner_product_param {{ num_output: 1 axis: 2 weight_filler {{ type: "gaussian" std: 0.1 }}
                        bias_filler {{ type: "constant" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""

SOLVERS = {
    "SGD": "type: 'SGD' base_lr: 0.05 momentum: 0.9 lr_policy: 'fixed' weight_decay: 0.005",
    "Nesterov": "type: 'Nesterov' base_lr: 0.03 momentum: 0.9 lr_policy: 'fixed' "
                "weight_decay: 0.002 regularization_type: 'L1'",
    "AdaGrad": "type: 'AdaGrad' base_lr: 0.05 lr_policy: 'fixed' clip_gradients: 0.02 "
               "delta: 1e-6",
    "RMSProp": "type: 'RMSProp' base_lr: 0.005 rms_decay: 0.9 lr_policy: 'fixed' iter_size: 2 "
               "delta: 1e-6 weight_decay: 0.001",
    "AdaDelta": "type: 'AdaDelta' base_lr: 0.5 momentum: 0.95 delta: 1e-4 lr_policy: 'fixed' "
                "weight_decay: 0.001",
    "Adam": "type: 'Adam' base_lr: 0.01 momentum: 0.9 momentum2: 0.999 delta: 1e-4 "
            "lr_policy: 'fixed' weight_decay: 0.001 clip_gradients: 0.1",
    # the legacy enum (prototxt.py turns it into type: "Nesterov")
    "solver_type NESTEROV, iter_size 2": "solver_type: NESTEROV base_lr: 0.02 momentum: 0.8 "
                                         "lr_policy: 'fixed' iter_size: 2",
}

SGD = "type: 'SGD' base_lr: 0.05 momentum: 0.9 weight_decay: 0.001 "
POLICIES = {
    "fixed": SGD + "lr_policy: 'fixed'",
    "step": SGD + "lr_policy: 'step' stepsize: 60 gamma: 0.5",
    "exp": SGD + "lr_policy: 'exp' gamma: 0.995",
    "inv": SGD + "lr_policy: 'inv' gamma: 0.02 power: 0.75",
    "multistep": SGD + "lr_policy: 'multistep' gamma: 0.4 stepvalue: 40 stepvalue: 40 "
                       "stepvalue: 40 stepvalue: 170",
    "poly": SGD + f"lr_policy: 'poly' power: 1.5 max_iter: {ITERS}",
    "sigmoid": SGD + "lr_policy: 'sigmoid' gamma: 0.05 stepsize: 100",
}


# -- the reference ----------------------------------------------------------------------------

def reference_rate(sp, it, state):
    """The policies' formulas (Caffe's sgd_solver.cpp comments) in float64."""
    base, gamma, power = float(F(sp.base_lr)), float(F(sp.gamma)), float(F(sp.power))
    policy = sp.lr_policy
    if policy == "fixed":
        return base
    if policy == "step":
        return base * gamma ** math.floor(it / sp.stepsize)
    if policy == "exp":
        return base * gamma ** it
    if policy == "inv":
        return base * (1.0 + gamma * it) ** (-power)
    if policy == "multistep":
        # at most one step per iteration, even when several stepvalues have passed
        if state["step"] < len(sp.stepvalue) and it >= sp.stepvalue[state["step"]]:
            state["step"] += 1
        return base * gamma ** state["step"]
    if policy == "poly":
        return base * (1.0 - it / sp.max_iter) ** power
    if policy == "sigmoid":
        return base / (1.0 + math.exp(-gamma * (it - sp.stepsize)))
    raise AssertionError(policy)


def axpby(a, x, b, y):
    """Caffe's caffe_cpu_axpby: y = a*x + b*y, computed as y *= b; y += a*x (float32)."""
    y *= b
    y += a * x


class Reference:
    """Caffe's SGDSolver family, one parameter blob at a time, float32."""

    def __init__(self, sp, weights, lr_mults, decay_mults, variant=None):
        self.sp = sp
        self.w = [np.array(w, F) for w in weights]
        self.lr_mults, self.decay_mults = lr_mults, decay_mults
        slots = 2 if sp.type in ("AdaDelta", "Adam") else 1
        self.history = [[np.zeros_like(w) for w in self.w] for _ in range(slots)]
        self.it = 0
        self.state = {"step": 0}
        self.variant = variant
        self.rates = []

    def update(self, grads):
        sp = self.sp
        rate = F(reference_rate(sp, self.it, self.state))
        if self.variant == "multistep_while":
            while self.state["step"] < len(sp.stepvalue) and \
                    self.it >= sp.stepvalue[self.state["step"]]:
                self.state["step"] += 1
            rate = F(float(F(sp.base_lr)) * float(F(sp.gamma)) ** self.state["step"])
        self.rates.append(rate)
        g = [np.array(x, F) for x in grads]
        if sp.clip_gradients >= 0:
            norm = F(math.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g)))
            if norm > F(sp.clip_gradients):
                for x in g:
                    x *= F(sp.clip_gradients) / norm
        for i, (w, x) in enumerate(zip(self.w, g)):
            if sp.iter_size > 1:
                x *= F(1) / F(sp.iter_size)
            local_decay = F(sp.weight_decay) * F(self.decay_mults[i])
            if local_decay:
                x += local_decay * (w if sp.regularization_type == "L2" else np.sign(w))
            step = self.rule(i, x, rate * F(self.lr_mults[i]))
            w -= step
        self.it += 1

    def rule(self, i, g, lr):
        sp, kind, v = self.sp, self.sp.type, self.variant
        h = self.history[0][i]
        m, d = F(sp.momentum), F(sp.delta)
        if kind == "SGD":
            axpby(lr, g, m, h)
            return h.copy()
        if kind == "Nesterov":
            old = h.copy()
            axpby(lr, g, m, h)
            axpby(F(1) + m, h, -m, old)
            return old
        if kind == "AdaGrad":
            h += g * g
            return lr * (g / (np.sqrt(h) + d))
        if kind == "RMSProp":
            r = F(sp.rms_decay)
            axpby(F(1) - r, g * g, r, h)
            return lr * (g / (np.sqrt(h) + d))
        if kind == "AdaDelta":
            h2 = self.history[1][i]
            axpby(F(1) - m, g * g, m, h)
            u = g * np.sqrt((h2 + d) / (h + d))
            if v == "adadelta_lr_in_history":
                u = lr * u
                axpby(F(1) - m, u * u, m, h2)
                return u
            axpby(F(1) - m, u * u, m, h2)
            return lr * u
        if kind == "Adam":
            mv, vv = h, self.history[1][i]
            b2 = F(sp.momentum2)
            t = self.it + 1
            axpby(F(1) - m, g, m, mv)
            axpby(F(1) - b2, g * g, b2, vv)
            if v == "adam_textbook":  # eps added to sqrt(v_hat), not to sqrt(v)
                m_hat = mv / F(1 - float(m) ** t)
                v_hat = vv / F(1 - float(b2) ** t)
                return lr * (m_hat / (np.sqrt(v_hat) + d))
            correction = F(math.sqrt(1 - float(b2) ** t) / (1 - float(m) ** t))
            return (lr * correction) * (mv / (np.sqrt(vv) + d))
        raise AssertionError(kind)


# -- running both --------------------------------------------------------------------------------

def initial_weights(net):
    rng = np.random.default_rng(7)
    return [rng.normal(0, 0.3, p.blob.shape).astype(F) for p in net.learnable_params]


def make_solver(solver_text, net_text=FORK_NET):
    sp = parse_solver_text(solver_text + " random_seed: 1")
    sp.net_param.CopyFrom(parse_net_text(net_text, "tiny"))
    solver = Solver(sp, log=lambda *a: None)
    for p, w in zip(solver.net.learnable_params, initial_weights(solver.net)):
        p.blob.data[...] = w
    solver.add_callback(SequenceFeeder(solver.net, SEQ, "previous"))
    return solver


def run_seqgen(solver_text, net_text=FORK_NET, iters=ITERS):
    solver = make_solver(solver_text, net_text)
    losses, rates = [], []

    def record(s, loss):
        losses.append(loss)
        rates.append(s.last_rate)

    solver.add_callback(Hooks(after_iteration=record))
    solver.step(iters)
    weights = [p.blob.data.copy() for p in solver.net.learnable_params]
    return solver, np.array(losses), np.array(rates, F), weights


def run_reference(solver_text, net_text=FORK_NET, iters=ITERS, variant=None):
    sp = parse_solver_text(solver_text)
    net = Net(parse_net_text(net_text, "tiny"), TRAIN)
    params = net.learnable_params
    ref = Reference(sp, initial_weights(net), [p.lr_mult for p in params],
                    [p.decay_mult for p in params], variant)
    feed = SequenceFeeder(net, SEQ, "previous")
    losses = []
    for _ in range(iters):
        for p, w in zip(params, ref.w):
            p.blob.data[...] = w
            p.blob.diff[...] = 0
        loss = 0.0
        for _ in range(max(1, sp.iter_size)):
            feed(None)
            loss += net.forward_backward()
        losses.append(loss / max(1, sp.iter_size))
        ref.update([p.blob.diff for p in params])
    return ref, np.array(losses)


def close(ours, ref):
    """Within tolerance: rtol 1e-4 plus 1e-6 x the blob's largest value."""
    ref = np.asarray(ref, np.float64)
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    return np.allclose(np.asarray(ours, np.float64), ref, rtol=RTOL, atol=ATOL_SCALE * scale)


def check_against_reference(solver_text, net_text=FORK_NET):
    solver, losses, rates, weights = run_seqgen(solver_text, net_text)
    ref, ref_losses = run_reference(solver_text, net_text)
    # float32 rounding of Caffe's intermediate terms (1 - iter/max_iter in poly near the end)
    np.testing.assert_allclose(rates, ref.rates, rtol=1e-5)
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL, atol=1e-9)
    for p, ours, theirs in zip(solver.net.learnable_params, weights, ref.w):
        assert close(ours, theirs), (p.name, np.abs(ours - theirs).max())
    if np.array_equal(rates, np.array(ref.rates, F)):
        # the same rates: the same float32 operations in the same order, so the same bits
        for p, ours, theirs in zip(solver.net.learnable_params, weights, ref.w):
            assert np.array_equal(ours, theirs), p.name
        assert np.array_equal(losses, ref_losses)
    # and training did something: the weights moved, the loss went down
    start = initial_weights(solver.net)
    assert all(not np.array_equal(w, w0) for w, w0 in zip(weights, start))
    assert losses[-10:].mean() < losses[:10].mean()
    return solver, losses, ref


@pytest.mark.parametrize("case", list(SOLVERS))
def test_solver_matches_reference(case):
    solver, _, _ = check_against_reference(SOLVERS[case])
    if case.startswith("solver_type"):
        assert solver.param.type == "Nesterov"


@pytest.mark.parametrize("policy", list(POLICIES))
def test_policy_matches_reference(policy):
    solver, _, ref = check_against_reference(POLICIES[policy])
    rates = np.array(ref.rates, np.float64)
    base = rates[0]
    if policy == "multistep":
        # stepvalue 40 three times: one step per iteration at 40, 41, 42; 170 later
        assert solver.current_step == 4
        np.testing.assert_allclose(rates[[39, 40, 41, 42, 169, 170]],
                                   base * 0.4 ** np.array([0, 1, 2, 3, 3, 4]), rtol=1e-6)
    if policy == "step":
        assert solver.current_step == (ITERS - 1) // 60
    if policy == "sigmoid":
        assert rates[0] < rates[100] < rates[-1]  # gamma > 0: the rate rises


def test_bvlc_lstm_with_adam_matches_reference():
    check_against_reference(SOLVERS["Adam"], BVLC_NET)


def test_bvlc_lstm_with_rmsprop_and_step_matches_reference():
    check_against_reference("type: 'RMSProp' base_lr: 0.01 rms_decay: 0.95 lr_policy: 'step' "
                            "stepsize: 50 gamma: 0.7 weight_decay: 0.002 "
                            "regularization_type: 'L1' clip_gradients: 0.05", BVLC_NET)


@pytest.mark.parametrize("text, variant", [
    (SOLVERS["Adam"], "adam_textbook"),
    (SOLVERS["AdaDelta"], "adadelta_lr_in_history"),
    (POLICIES["multistep"], "multistep_while"),
])
def test_variants_are_told_apart(text, variant):
    """The tolerance can fail: references with formulas Caffe does not use are outside it."""
    solver, _, _, weights = run_seqgen(text)
    ref, _ = run_reference(text, variant=variant)
    assert not all(close(a, b) for a, b in zip(weights, ref.w))


def test_clip_gradients_and_iter_size_take_effect():
    """The pipeline pieces change the result (so the reference comparisons cover them)."""
    base = "type: 'SGD' base_lr: 0.05 momentum: 0.9 lr_policy: 'fixed'"
    _, _, _, plain = run_seqgen(base, iters=30)
    for extra in ("clip_gradients: 0.01", "iter_size: 2", "weight_decay: 0.05",
                  "weight_decay: 0.05 regularization_type: 'L1'"):
        _, _, _, other = run_seqgen(f"{base} {extra}", iters=30)
        assert not all(np.array_equal(a, b) for a, b in zip(plain, other)), extra


def test_lr_mult_zero_freezes_and_decay_mult_zero_skips_decay():
    net = FORK_NET.replace("param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }",
                           "param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 0 }")
    assert net != FORK_NET
    solver, _, _, weights = run_seqgen("type: 'SGD' base_lr: 0.05 momentum: 0.9 "
                                       "lr_policy: 'fixed' weight_decay: 0.1", net, iters=20)
    start = initial_weights(solver.net)
    assert np.array_equal(weights[-1], start[-1])  # ip1 bias: lr_mult 0
    assert not np.array_equal(weights[-2], start[-2])
