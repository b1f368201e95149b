"""Numerical trouble: a NaN or inf in the loss, a gradient or the weights
stops training with exit 1 and a message naming the iteration and the first layer/blob
where it appeared, keeps the last good snapshot (writing the weights before the failing
update when the run has none), never saves the diverged weights under a snapshot name, and
suggests the usual remedies; generation that runs off to inf is reported, not drawn."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import run, solver_file

import seqgen
import seqgen.data.feedback as feedback
from seqgen.data.feeder import SequenceFeeder
from seqgen.generation.generate import GenerationDiverged
from seqgen.net import Net as NetClass
from seqgen.proto import caffe_pb2

ROOT = Path(__file__).parents[1]


def write_solver(folder, extra, name="d_solver.prototxt", net="lstm_short"):
    return solver_file(folder, net, "momentum: 0.95\ndisplay: 0\nrandom_seed: 7\n", extra,
                       name)


def snapshots(folder):
    return sorted(int(p.name.split("_iter_")[1].split(".")[0])
                  for p in folder.glob("*.caffemodel"))


def assert_finite_snapshot(model, net="lstm_short.prototxt"):
    """The snapshot loads (the loader refuses non-finite weights) and is finite."""
    loaded = seqgen.Net(str(net), str(model), seqgen.TEST)
    for blobs in loaded.params.values():
        for blob in blobs:
            assert np.isfinite(blob.data).all()
    assert Path(model).with_suffix(".solverstate").is_file()


def test_exploding_rate_in_a_real_process(cwd):
    """lr_policy 'exp' with gamma 2 doubles the rate every iteration: the loss overflows
    at iteration 24. Exit 1, no traceback, the message says where and what to do."""
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "exp"\ngamma: 2\nmax_iter: 1000\n'
                      'snapshot: 10\n')
    # (the feedback schedule as before lstm_short's own recipe: test_short_recipe.py)
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", "d_solver.prototxt",
                           "--out", "RUN", "--feedback-refresh", "20", "--feedback-ramp",
                           "0.1"], cwd=cwd, capture_output=True, text=True, timeout=120)
    err = proc.stderr
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    assert err.startswith("seqgen: error: training diverged at iteration 24: the loss is inf")
    assert "top 'loss' of layer 'loss' (EuclideanLoss), forward pass" in err
    assert "largest magnitudes: bottom 'ip1'" in err
    assert "last good snapshot: RUN/lstm_short_iter_20.caffemodel (iteration 20)" in err
    assert "the diverged weights were not saved" in err
    assert "clip_gradients: 10 in the solver" in err and "a lower base_lr (now 0.0001" in err
    assert "lr_policy 'exp' has raised the rate" in err
    assert "data scaled" not in err  # (the 'data' input holds the net's own predictions)
    assert "--resume RUN/lstm_short_iter_20.solverstate --out RUN --allow-changes" in err
    # the good snapshots are kept, nothing of the diverged weights is
    assert snapshots(cwd / "RUN") == [10, 20]
    assert_finite_snapshot(cwd / "RUN" / "lstm_short_iter_20.caffemodel")
    info = json.loads((cwd / "RUN" / "run.json").read_text())
    assert info["diverged"]["iteration"] == 24 and "EuclideanLoss" in info["diverged"]["where"]
    assert info["weights"].endswith("lstm_short_iter_20.caffemodel")
    rows = (cwd / "RUN" / "loss.csv").read_text().splitlines()
    assert rows[-1] == "24,inf" and len(rows) == 26
    assert (cwd / "RUN" / "loss.png").is_file()
    # `seqgen generate` uses the last good snapshot of the run
    proc = subprocess.run([sys.executable, "-m", "seqgen", "generate", "--steps", "20"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Using RUN (latest run)\n")
    record = json.loads((cwd / "RUN" / "generated.json").read_text())
    assert record["weights"].endswith("lstm_short_iter_20.caffemodel")


def inject(monkeypatch, at_pass, action):
    """Run `action(net)` just before the forward pass number `at_pass` (0-based)."""
    original = SequenceFeeder.__call__

    def feeding(self, solver):
        if self.passes == at_pass:
            action(self.net)
        original(self, solver)

    monkeypatch.setattr(SequenceFeeder, "__call__", feeding)


def test_nan_weight_is_named_and_not_saved(cwd, capsys, monkeypatch):
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 100\nsnapshot: 10\n')

    def poison(net):
        net.params["ip1"][0].data[0, 3] = np.nan

    inject(monkeypatch, 25, poison)
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--out", "RUN")
    assert code == 1
    assert "training diverged at iteration 25: the loss is nan" in err
    assert ("where: parameter blob 0 of layer 'ip1' (InnerProduct) holds nan (1 of 15 values "
            "are not finite; the first at index (0, 3)): the weights themselves are not "
            "finite") in err
    assert "last good snapshot: RUN/lstm_short_iter_20.caffemodel (iteration 20)" in err
    assert snapshots(cwd / "RUN") == [10, 20]
    assert_finite_snapshot(cwd / "RUN" / "lstm_short_iter_20.caffemodel")


def test_gradient_only_blow_up_is_found_in_the_backward_pass(cwd, capsys, monkeypatch):
    """A finite loss with an infinite gradient: the layers are walked in backward order."""
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 100\nsnapshot: 10\n')
    original = NetClass.forward_backward
    calls = []

    def forward_backward(self):
        loss = original(self)
        calls.append(1)
        if len(calls) == 13:
            self.params["lstm1"][1].diff[2, 4] = np.inf
        return loss

    monkeypatch.setattr(NetClass, "forward_backward", forward_backward)
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--out", "RUN")
    assert code == 1
    assert "training diverged at iteration 12: the loss is finite (" in err
    assert "but the gradient is not" in err
    assert ("where: the gradient of parameter blob 1 of layer 'lstm1' (Lstm), backward pass: "
            "it holds inf (1 of 900 values are not finite; the first at index (2, 4)); the "
            "forward pass was finite") in err
    assert snapshots(cwd / "RUN") == [10]


def test_overflowing_data_at_the_start_writes_the_weights_before_the_update(cwd, capsys):
    """Diverging before any snapshot: the weights before the failing update (finite) are
    written as the run's snapshot, resumable, and named as the last good one."""
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 100\n')
    np.savetxt(cwd / "huge.csv", np.full(320, 1e20))
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--data", "huge.csv",
                         "--out", "RUN")
    assert code == 1
    assert "training diverged at iteration 0: the loss is inf" in err
    assert "bottom 'label' 1e+20" in err
    assert ("last good snapshot: RUN/lstm_short_iter_0.caffemodel (iteration 0: the weights "
            "before the update that failed; written now, as the run had none)") in err
    assert "usual remedies: data scaled to about [-1, 1] (input 'label' reaches 1e+20)" in err
    assert snapshots(cwd / "RUN") == [0]
    assert_finite_snapshot(cwd / "RUN" / "lstm_short_iter_0.caffemodel")
    assert (cwd / "RUN" / "lstm_short_iter_0.seqgen.npz").is_file()
    state = caffe_pb2.SolverState.FromString(
        (cwd / "RUN" / "lstm_short_iter_0.solverstate").read_bytes())
    assert state.iter == 0


def test_pre_update_snapshot_resumes_exactly(cwd, capsys, monkeypatch):
    """The snapshot written at the failing iteration holds the state from before that
    iteration (data position, carried LSTM state), so that resuming it with the cause
    removed is the run that never met the trouble. lstm_long, iteration 4 (4 % 3 == 1)."""
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 8\n', net="lstm_long")
    assert run(capsys, "train", "d_solver.prototxt", "--input", "zero", "--out", "CLEAN")[0] == 0

    original = SequenceFeeder.__call__

    def late(self, solver):
        original(self, solver)
        if self.passes == 5:  # the 5th pass is iteration 4
            self.net.blobs["label"].data[0] = 1e20

    monkeypatch.setattr(SequenceFeeder, "__call__", late)
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--input", "zero",
                         "--out", "RUN")
    assert code == 1 and "diverged at iteration 4" in err and "written now" in err
    monkeypatch.setattr(SequenceFeeder, "__call__", original)
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--out", "RUN",
                         "--resume", "RUN/lstm_long_iter_4.solverstate")
    assert code == 0, err
    assert (cwd / "RUN" / "lstm_long_iter_8.caffemodel").read_bytes() == \
        (cwd / "CLEAN" / "lstm_long_iter_8.caffemodel").read_bytes()


def test_feedback_generation_blow_up_stops_training(cwd, capsys, monkeypatch):
    write_solver(cwd, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 100\nsnapshot: 10\n')

    def wild(*args, **kwargs):
        raise GenerationDiverged("generation diverged: step 3 produced [inf]", 3, [np.inf])

    monkeypatch.setattr(feedback, "generate", wild)
    code, out, err = run(capsys, "train", "d_solver.prototxt", "--out", "RUN",
                         "--feedback-refresh", "20")
    assert code == 1
    # the schedule's first refresh with p > 0 is at iteration 20 (the shipped lstm_short
    # asks for refresh 5: test_short_recipe.py)
    assert "training diverged at iteration 20: the net's free-running predictions, which " \
           "the feedback schedule feeds back as inputs, are not finite" in err
    assert "last good snapshot: RUN/lstm_short_iter_20.caffemodel" in err


def test_generation_to_inf_is_reported_not_plotted(cwd, capsys):
    """Weights that run off to inf when fed their own predictions: exit 1, a message with
    the step, and no generated.csv / generated.png (an older one stays as it was)."""
    shutil.copy(ROOT / "prototxt" / "lstm_short.prototxt", cwd / "lstm_short.prototxt")
    net = seqgen.Net(str(cwd / "lstm_short.prototxt"), seqgen.TEST)
    # step 0 (input 0, zero state): h = 0 and the output is the bias 3e38; step 1 (input
    # 3e38): every gate saturates, h = tanh(1) and the output overflows
    W_x, W_h, b = net.params["lstm1"]
    W_x.data[...], W_h.data[...], b.data[...] = 1, 0, 0
    net.params["ip1"][0].data[...] = 3e38
    net.params["ip1"][1].data[...] = 3e38
    net.save(str(cwd / "wild.caffemodel"))
    (cwd / "OUT").mkdir()
    (cwd / "OUT" / "generated.png").write_bytes(b"an older figure")
    code, out, err = run(capsys, "generate", "--weights", "wild.caffemodel", "--net",
                         "lstm_short.prototxt", "--out", "OUT", "--input", "previous")
    assert code == 1
    assert err.startswith("seqgen: error: generation diverged: step ")
    assert "step 1 produced [inf] (step 0 was [3e+38])" in err
    assert "unstable when fed their own predictions" in err
    assert "nothing was written (no generated.csv or generated.png in OUT)" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (cwd / "OUT" / "generated.csv").exists()
    assert (cwd / "OUT" / "generated.png").read_bytes() == b"an older figure"
