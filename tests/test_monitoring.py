"""Monitoring: tests on a held-out tail (test_interval / test_iter / --holdout), Caffe's log
lines, test_loss.csv, `seqgen plot` with the test curve, the progress line, and the
signals (SIGINT, SIGHUP, SIGTERM) with caffe's -sigint_effect / -sighup_effect."""
import csv
import json
import os
import signal

import numpy as np
import pytest

import seqgen.app.replot as replot
import seqgen.app.train as experiment
from seqgen.app.cli import main
from seqgen.app.progress import Progress
from seqgen.app.train import train_sequence
from seqgen.data.holdout import HeldOutTest
from seqgen.data.sources import resolve_source
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TEST, Net

T = 20
NET = f"""
name: "mon"
input: "data" input_shape {{ dim: {T} dim: 1 }}
input: "clip" input_shape {{ dim: {T} dim: 1 }}
input: "label" input_shape {{ dim: {T} dim: 1 }}
layer {{ name: "Silence" type: "Silence" bottom: "label" include {{ phase: TEST }} }}
layer {{ name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
  lstm_param {{ num_output: 6 clipping_threshold: 0.1
    weight_filler {{ type: "gaussian" std: 0.2 }} bias_filler {{ type: "constant" }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
  inner_product_param {{ num_output: 1 weight_filler {{ type: "gaussian" std: 0.2 }}
                        bias_filler {{ type: "constant" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss"
  include {{ phase: TRAIN }} }}
"""
SOLVER = """net: "mon.prototxt"
base_lr: 0.05
momentum: 0.9
lr_policy: "fixed"
display: 10
average_loss: 5
max_iter: 30
random_seed: 3
snapshot_prefix: "mon"
"""


@pytest.fixture
def cwd(cwd):
    """conftest's working directory, with the net in it."""
    (cwd / "mon.prototxt").write_text(NET)
    return cwd


def write_solver(folder, extra="", name="mon_solver.prototxt"):
    path = folder / name
    path.write_text(SOLVER + extra)
    return path


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["iteration", "loss"]
    return [(int(r[0]), float(r[1])) for r in rows[1:]]


def manual_test_loss(weights, train_chunks, test_chunks):
    """The held-out loss recomputed here: the TEST net teacher-forced over the sequence,
    Caffe's EuclideanLoss sum((y - x)^2) / (2 T) averaged over the held-out chunks."""
    _, seq = resolve_source("sinusoid:100")
    seq = seq.reshape(-1).astype(np.float32)
    net = Net(parse_net_text(NET, "mon"), weights, TEST)
    losses = []
    for k in range(train_chunks + test_chunks):
        chunk = seq[k * T:(k + 1) * T]
        data = np.concatenate([[0.0] if k == 0 else [seq[k * T - 1]], chunk[:-1]])
        clip = np.ones(T, np.float32)
        clip[0] = float(k > 0)
        out = net.forward(data=data[:, None], clip=clip[:, None])["ip1"].ravel()
        if k >= train_chunks:
            losses.append(np.sum((out.astype(np.float64) - chunk) ** 2) / (2 * T))
    return float(np.mean(losses))


def test_test_interval_tests_on_the_held_out_tail(cwd):
    solver = write_solver(cwd, "test_interval: 10\ntest_iter: 2\n")
    lines = []
    folder = train_sequence(str(solver), data="sinusoid:100", out="RUN", log=lines.append)
    text = "\n".join(lines)
    # the last test_iter = 2 chunks of 20 steps are held out; training uses steps 0-59
    assert "sinusoid:100 (60 steps in chunks of 20)" in text
    assert "steps 60-99 held out for testing" in text
    # Caffe's lines, at the start of iterations 0, 10, 20 and after the last one
    tested = [int(line.split()[1].rstrip(",")) for line in lines if "Testing net (#0)" in line]
    assert tested == [0, 10, 20, 30]
    outputs = [line for line in lines if line.startswith("    Test net output #0: loss = ")]
    assert len(outputs) == 4
    rows = read_rows(cwd / "RUN" / "test_loss.csv")
    assert [r[0] for r in rows] == [0, 10, 20, 30]
    assert [f"{r[1]:.6g}" for r in rows] == [line.split(" = ")[1] for line in outputs]
    # the last value is the loss of the final weights on steps 60-99, recomputed here
    final = cwd / "RUN" / "mon_iter_30.caffemodel"
    assert rows[-1][1] == pytest.approx(manual_test_loss(str(final), 3, 2), rel=1e-6)
    # and the display lines with average_loss and the rate
    assert "Iteration 0, lr = 0.05" in text
    assert any(line.startswith("Iteration 10 (") and "loss = " in line for line in lines)
    info = json.loads((cwd / "RUN" / "run.json").read_text())
    assert info["holdout_steps"] == 40 and info["final_test_loss"] == rows[-1][1]
    assert folder == "RUN"


def test_holdout_option_and_test_iter(cwd):
    # --holdout 40 without tests in the solver: one test of the final weights
    lines = []
    train_sequence(str(write_solver(cwd)), data="sinusoid:100", out="RUN", holdout=40,
                   log=lines.append)
    rows = read_rows(cwd / "RUN" / "test_loss.csv")
    assert [r[0] for r in rows] == [30]
    assert rows[0][1] == pytest.approx(
        manual_test_loss(str(cwd / "RUN" / "mon_iter_30.caffemodel"), 3, 2), rel=1e-6)
    # with test_iter 1: the first held-out chunk only, every 15 iterations
    solver = write_solver(cwd, "test_interval: 15\ntest_iter: 1\ntest_initialization: false\n",
                          "b_solver.prototxt")
    train_sequence(str(solver), data="sinusoid:100", out="RUN2", holdout=40, log=lines.append)
    rows = read_rows(cwd / "RUN2" / "test_loss.csv")
    assert [r[0] for r in rows] == [15, 30]
    assert rows[-1][1] == pytest.approx(
        manual_test_loss(str(cwd / "RUN2" / "mon_iter_30.caffemodel"), 3, 1), rel=1e-6)


@pytest.mark.parametrize("holdout, message", [
    (30, "--holdout 30: must be a positive multiple of the net's chunk length 20"),
    (100, "at least one chunk must remain for training"),
])
def test_bad_holdout(cwd, holdout, message):
    with pytest.raises(SeqgenError, match=message):
        train_sequence(str(write_solver(cwd)), data="sinusoid:100", out="RUN",
                       holdout=holdout, log=lambda *a: None)
    assert not (cwd / "RUN").exists()


def test_test_net_with_its_own_loss_gives_the_same_number(cwd):
    """A TEST net with a loss layer is tested through it (Caffe's '(* 1 = x loss)')."""
    _, seq = resolve_source("sinusoid:100")
    with_loss = Net(parse_net_text(NET.replace("include { phase: TRAIN }", ""), "a"), TEST)
    plain = Net(parse_net_text(NET, "b"), TEST)
    plain.share_weights(with_loss)
    a = HeldOutTest(with_loss, seq, "previous", T, 3, 2)(None)
    b = HeldOutTest(plain, seq, "previous", T, 3, 2)(None)
    assert a[0][0] == "loss" and a[0][2] == 1.0 and b == [("loss", b[0][1], 0.0)]
    assert a[0][1] == pytest.approx(b[0][1], rel=1e-6)


def test_plot_draws_the_test_curve(cwd, capsys, monkeypatch):
    write_solver(cwd, "test_interval: 10\ntest_iter: 2\n")
    assert main(["train", "mon_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN"]) == 0
    capsys.readouterr()
    drawn = []
    original = replot.plot_run_losses

    def spy(*args, **kwargs):
        drawn.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(replot, "plot_run_losses", spy)
    (cwd / "RUN" / "loss.png").unlink()
    assert main(["plot", "RUN"]) == 0
    assert "loss.png" in capsys.readouterr().err  # ("Wrote ..." is a note: on stderr)
    png = (cwd / "RUN" / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (its, losses, test_its, test_losses, path), = drawn
    assert list(its) == list(range(30)) and list(test_its) == [0, 10, 20, 30]
    # without test_loss.csv the figure is the training curve alone, a different image
    (cwd / "RUN" / "test_loss.csv").unlink()
    assert main(["plot", "RUN"]) == 0
    assert (cwd / "RUN" / "loss.png").read_bytes() != png


def test_progress_line_shows_iteration_loss_rate_and_eta():
    class Stream:
        text = ""

        def isatty(self):
            return True

        def write(self, s):
            Stream.text += s

        def flush(self):
            pass

    class FakeSolver:
        smoothed = [0.5]
        last_rate = np.float32(0.01)
        last_loss = 0.5
        iter = 0

    progress = Progress(1000, 0, log=lambda *a: None, stream=Stream())
    solver = FakeSolver()
    for it in range(1, 129):
        solver.iter = it
        progress(solver, 0.25)
    assert "64/1000 iterations, loss 0.25, lr 0.01, " in Stream.text
    assert "iter/s, ETA 0:" in Stream.text


# -- signals -----------------------------------------------------------------------------------

def signal_at(monkeypatch, schedule):
    """Send signals from inside training: {iteration: signal} after that iteration."""

    class Signalling(Progress):
        def __call__(self, solver, loss):
            super().__call__(solver, loss)
            if solver.iter in schedule:
                os.kill(os.getpid(), schedule[solver.iter])

    monkeypatch.setattr(experiment, "Progress", Signalling)


def snapshots(folder):
    return sorted(int(p.name.split("_iter_")[1].split(".")[0])
                  for p in folder.glob("*.solverstate"))


def test_sigint_snapshots_and_stops_sighup_snapshots_and_goes_on(cwd, capsys, monkeypatch):
    write_solver(cwd)
    signal_at(monkeypatch, {5: signal.SIGHUP, 12: signal.SIGINT})
    code = main(["train", "mon_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN"])
    out, err = capsys.readouterr()
    assert code == 130
    assert err.count("\n") == 1 and "SIGINT at iteration 12" in err and "--resume" in err
    assert snapshots(cwd / "RUN") == [5, 12]
    assert [r[0] for r in read_rows(cwd / "RUN" / "loss.csv")] == list(range(12))
    # resume to the end: the loss log keeps the first 12 iterations
    signal_at(monkeypatch, {})
    code = main(["train", "mon_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN",
                 "--resume", "RUN/mon_iter_12.solverstate"])
    assert code == 0
    assert snapshots(cwd / "RUN") == [5, 12, 30]
    assert [r[0] for r in read_rows(cwd / "RUN" / "loss.csv")] == list(range(30))


@pytest.mark.parametrize("flags, sig, code, expected", [
    (["--sigint-effect", "snapshot"], signal.SIGINT, 0, [4, 30]),
    (["--sigint-effect", "none"], signal.SIGINT, 0, [30]),
    (["--sighup-effect", "stop"], signal.SIGHUP, 129, [4]),
    (["--sighup-effect", "none"], signal.SIGHUP, 0, [30]),
    ([], signal.SIGTERM, 143, [4]),
])
def test_signal_effects(cwd, capsys, monkeypatch, flags, sig, code, expected):
    write_solver(cwd)
    signal_at(monkeypatch, {4: sig})
    got = main(["train", "mon_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN",
                *flags])
    capsys.readouterr()
    assert got == code
    assert snapshots(cwd / "RUN") == expected


def test_snapshot_interval_and_snapshot_after_train(cwd, capsys):
    write_solver(cwd, "snapshot: 10\n")
    assert main(["train", "mon_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN"]) == 0
    # every 10 iterations, including the last one (no second snapshot at 30)
    assert snapshots(cwd / "RUN") == [10, 20, 30]
    write_solver(cwd, "snapshot: 7\nsnapshot_after_train: false\n", "c_solver.prototxt")
    assert main(["train", "c_solver.prototxt", "--data", "sinusoid:100", "--out", "RUN2"]) == 0
    assert snapshots(cwd / "RUN2") == [7, 14, 21, 28]
    assert "no snapshot of the final weights" in capsys.readouterr().out
    info = json.loads((cwd / "RUN2" / "run.json").read_text())
    assert info["weights"].endswith("mon_iter_28.caffemodel")


# -- a net that reads its own data: Caffe's Test() over test_iter batches --------------------

H5_NET = """
name: "h5"
layer { name: "data" type: "HDF5Data" top: "x" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 4 } }
layer { name: "data" type: "HDF5Data" top: "x" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "label" top: "loss" }
"""


def test_own_data_net_is_tested_on_its_test_phase_data(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    w = np.array([0.5, -1.0, 0.25], np.float32)
    for name, rows in (("train", 12), ("test", 4)):
        x = rng.standard_normal((rows, 3)).astype(np.float32)
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["x"], f["label"] = x, (x @ w)[:, None]
        (tmp_path / f"{name}.txt").write_text(f"{name}.h5\n")
    (tmp_path / "h5.prototxt").write_text(H5_NET)
    (tmp_path / "h5_solver.prototxt").write_text(
        'net: "h5.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 20\n'
        'random_seed: 2\ntest_interval: 10\ntest_iter: 2\n')
    lines = []
    train_sequence("h5_solver.prototxt", out="RUN", log=lines.append)
    tests = [line for line in lines if "Test net output #0" in line]
    # iterations 0, 10 and (Caffe's Solve) 20; the loss output with its weight
    assert len(tests) == 3 and all(" loss = " in t and "(* 1 = " in t for t in tests)
    rows = read_rows(tmp_path / "RUN" / "test_loss.csv")
    assert [r[0] for r in rows] == [0, 10, 20] and rows[-1][1] < rows[0][1]
    # the last value: the mean loss over the 2 test batches (all 4 test rows), recomputed
    net = Net("h5.prototxt", str(tmp_path / "RUN" / "h5_iter_20.caffemodel"), TEST)
    values = [float(net.forward()["loss"]) for _ in range(2)]
    assert rows[-1][1] == pytest.approx(np.mean(values), rel=1e-6)


def test_the_same_seed_repeats_the_whole_run(cwd):
    for out in ("A", "B"):
        train_sequence(str(write_solver(cwd)), data="sinusoid:100", out=out,
                       log=lambda *a: None)
    assert (cwd / "A" / "mon_iter_30.caffemodel").read_bytes() == \
        (cwd / "B" / "mon_iter_30.caffemodel").read_bytes()
    assert (cwd / "A" / "loss.csv").read_text() == (cwd / "B" / "loss.csv").read_text()


def test_a_net_given_the_solver_weights_sees_them_trained(cwd):
    import seqgen

    solver = seqgen.get_solver(str(write_solver(cwd)), log=lambda *a: None)
    assert solver.test_nets == []  # no test_iter: none, as in pycaffe
    test = seqgen.Net(solver.net.source, TEST)
    solver.share_weights(test)  # pycaffe's way to test by hand
    assert test.phase == TEST and "loss" not in test.blobs
    assert test.params["ip1"][0].data is solver.net.params["ip1"][0].data
    before = test.forward(data=np.ones((T, 1)), clip=np.ones((T, 1)))["ip1"].copy()
    solver.net.blobs["label"].data[...] = 1
    solver.step(3)
    test.reset_state()
    after = test.forward(data=np.ones((T, 1)), clip=np.ones((T, 1)))["ip1"]
    assert not np.array_equal(before, after)  # it sees the trained weights
