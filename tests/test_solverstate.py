"""Snapshots (.caffemodel + .solverstate) and resuming from them (seqgen/io/solverstate.py)."""
import os
from pathlib import Path

import numpy as np
import pytest

from seqgen.data.feeder import SequenceFeeder
from seqgen.data.sources import sinusoid
from seqgen.errors import SeqgenError
from seqgen.proto import caffe_pb2
from seqgen.solver import Solver

ROOT = Path(__file__).parents[1]
SOLVER = ROOT / "prototxt" / "lstm_short_solver.prototxt"
INITIAL = Path(__file__).parent / "golden" / "caffe-lstm" / "e2e_short_2000" / "initial.caffemodel"
SEQUENCE = sinusoid(320)


def make_solver(out_dir, weights=INITIAL):
    solver = Solver(str(SOLVER), out_dir=str(out_dir), log=lambda *a: None)
    if weights is not None:
        solver.net.copy_from(str(weights))
    solver.add_callback(SequenceFeeder(solver.net, SEQUENCE, "zero", "sinusoid:320"))
    return solver


def weights_of(solver):
    return [lp.blob.data.copy() for lp in solver.net.learnable_params]


def test_snapshot_file_names(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(3)
    model, state = solver.snapshot()
    # the solver's snapshot_prefix is "lstm_short"; out_dir replaces its folder
    assert Path(model) == tmp_path / "lstm_short_iter_3.caffemodel"
    assert Path(state) == tmp_path / "lstm_short_iter_3.solverstate"
    assert Path(model).is_file() and Path(state).is_file()
    # no temporary files left behind
    # (and the resume sidecar, as `seqgen train` writes it)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lstm_short_iter_3.caffemodel", "lstm_short_iter_3.seqgen.npz",
        "lstm_short_iter_3.solverstate"]


def test_solverstate_is_a_caffe_solver_state(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(4)
    model, state_path = solver.snapshot()
    state = caffe_pb2.SolverState.FromString(Path(state_path).read_bytes())
    assert state.iter == 4
    assert os.path.basename(state.learned_net) == "lstm_short_iter_4.caffemodel"
    params = solver.net.learnable_params
    # SGD keeps one history (momentum) blob per learnable parameter, in parameter order:
    # lstm1 W_x (60,1), W_h (60,15), b (60,), ip1 W (1,15), b (1,)
    expected = [(60, 1), (60, 15), (60,), (1, 15), (1,)]
    assert [lp.blob.shape for lp in params] == expected
    assert len(state.history) == len(expected)
    for proto, shape, h in zip(state.history, expected, solver.history):
        assert tuple(proto.shape.dim) == shape
        values = np.asarray(proto.data, np.float32)
        assert values.size == int(np.prod(shape))
        assert values.tobytes() == h.astype(np.float32).ravel().tobytes()
    # after 4 momentum steps from a zero history the history is not zero
    assert any(np.any(np.asarray(p.data) != 0) for p in state.history)
    # the model named by the state holds the current weights
    net_param = caffe_pb2.NetParameter.FromString(Path(model).read_bytes())
    w_h = next(lp for lp in net_param.layer if lp.name == "lstm1").blobs[1]
    assert np.asarray(w_h.data, np.float32).tobytes() == \
        solver.net.params["lstm1"][1].data.ravel().tobytes()


def test_momentum_history_is_the_last_update(tmp_path):
    """SGD: W_{k+1} = W_k - V_{k+1}, so the stored history is the last weight change."""
    solver = make_solver(tmp_path)
    solver.step(5)
    before = weights_of(solver)
    solver.step(1)
    after = weights_of(solver)
    _, state_path = solver.snapshot()
    state = caffe_pb2.SolverState.FromString(Path(state_path).read_bytes())
    moved = 0
    for proto, b, a in zip(state.history, before, after):
        v = np.asarray(proto.data, np.float32).reshape(b.shape).astype(np.float64)
        change = b.astype(np.float64) - a.astype(np.float64)  # exact in float64
        # W_new = fl(W - V): the change equals V up to the rounding of W_new
        assert np.all(np.abs(change - v) <= np.spacing(np.abs(a))), "history != last step"
        moved += int(np.count_nonzero(v))
    # (W_x gets no gradient in "zero" mode: its input is always 0; the others do)
    assert moved > 0


def test_resume_is_bitwise_identical(tmp_path):
    straight = make_solver(tmp_path / "straight")
    straight.step(20)
    expected = weights_of(straight)

    first = make_solver(tmp_path / "split")
    first.step(10)
    _, state = first.snapshot()

    # a fresh solver, randomly initialised: every weight must come from the snapshot
    resumed = make_solver(tmp_path / "resumed", weights=None)
    resumed.restore(state)
    assert resumed.iter == 10
    for a, b in zip(weights_of(resumed), weights_of(first)):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(resumed.history, first.history):
        assert a.tobytes() == b.tobytes()
    resumed.step(10)
    assert resumed.iter == 20
    for i, (a, b) in enumerate(zip(weights_of(resumed), expected)):
        assert a.tobytes() == b.tobytes(), f"param {i} differs after resume"
    # and the run did move the weights
    initial = make_solver(tmp_path / "init")
    assert any(a.tobytes() != b.tobytes() for a, b in zip(weights_of(initial), expected))


def test_restore_finds_model_beside_state_from_another_cwd(tmp_path, monkeypatch):
    first = make_solver(tmp_path / "a")
    first.step(2)
    _, state = first.snapshot()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = make_solver(tmp_path / "b", weights=None)
    resumed.restore(state)
    for a, b in zip(weights_of(resumed), weights_of(first)):
        assert a.tobytes() == b.tobytes()


def test_restore_rejects_caffemodel_and_garbage(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(1)
    model, _ = solver.snapshot()
    fresh = make_solver(tmp_path / "fresh")
    with pytest.raises(SeqgenError) as e:
        fresh.restore(model)  # a .caffemodel is not a solver state
    assert model in str(e.value)
    junk = tmp_path / "junk.solverstate"
    junk.write_bytes(b"\xff" * 50)
    with pytest.raises(SeqgenError) as e:
        fresh.restore(str(junk))
    assert str(junk) in str(e.value)
