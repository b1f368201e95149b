"""Caffe's SGD with momentum, lr_mult and decay_mult, against a plain numpy reference."""
import numpy as np
import pytest
from helpers import ROOT

from seqgen.data.feeder import SequenceFeeder
from seqgen.data.sources import sinusoid
from seqgen.io.prototxt import parse_solver_text, read_net
from seqgen.solver import Solver

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def make_solver(weight_decay):
    sp = parse_solver_text(f"base_lr: 0.01 momentum: 0.9 weight_decay: {weight_decay} "
                           "lr_policy: 'fixed' random_seed: 3")
    sp.net_param.CopyFrom(read_net(ROOT / "prototxt" / "deep_lstm_short.prototxt"))
    solver = Solver(sp, log=lambda *a: None)
    solver.add_callback(SequenceFeeder(solver.net, sinusoid(320), "previous"))
    return solver


def test_sgd_momentum_with_multipliers_matches_numpy():
    solver = make_solver(weight_decay=0.05)
    params = solver.net.learnable_params
    # deep_lstm_short's first layer: lr_mult 1, 1, 2 (its bias learns twice as fast)
    assert [p.lr_mult for p in params[:3]] == [1, 1, 2]
    w = [p.blob.data.astype(np.float64) for p in params]
    v = [np.zeros_like(x) for x in w]
    for _ in range(3):
        # the gradient of this iteration, from a throw-away forward/backward on copies
        solver.net.clear_param_diffs()
        feeder = solver.callbacks[0]
        feeder(solver)
        feeder.passes -= 1  # feed the same chunk again in step()
        state = solver.net.get_state()
        solver.net.forward_backward()
        grads = [p.blob.diff.astype(np.float64) for p in params]
        solver.net.set_state(state)
        solver.step(1)
        for i, p in enumerate(params):
            g = grads[i] + 0.05 * p.decay_mult * w[i]
            v[i] = 0.9 * v[i] + 0.01 * p.lr_mult * g
            w[i] = w[i] - v[i]
            np.testing.assert_allclose(p.blob.data, w[i], rtol=1e-5, atol=1e-7,
                                       err_msg=f"param {p.name}")
