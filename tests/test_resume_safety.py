"""Resume safety: a run stopped and resumed from its .solverstate ends
bit for bit where the same run without the stop ends -- weights, history, loss log -- for
the shipped lstm_short and lstm_long (3 chunks of 320, the LSTM state carried across
chunks) in both input modes, including the 'previous' mode's feedback schedule (its
inputs and random generator); and a resume against a changed net, solver, data or
option is refused, naming what changed."""
import json
import os
import re
import shlex
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from helpers import run, solver_file

import seqgen.app.train as experiment
from seqgen.app.progress import Progress

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

ROOT = Path(__file__).parents[1]
N = 50  # iterations of the whole run
STOP = 25  # where the interrupted run stops: 25 % 3 == 1, inside lstm_long's pass


def write_solver(folder, net, extra="", name=None):
    """A solver for one of the shipped nets, copied next to it, with a fixed seed."""
    return solver_file(folder, net, 'base_lr: 0.0001\nmomentum: 0.95\nlr_policy: "fixed"\n'
                       f'display: 0\nmax_iter: {N}\nrandom_seed: 7\n', extra, name)


def stop_at(monkeypatch, iteration, sig=signal.SIGINT):
    """Send `sig` to ourselves right after `iteration` (None: never)."""

    class Stopping(Progress):
        def __call__(self, solver, loss):
            super().__call__(solver, loss)
            if solver.iter == iteration:
                os.kill(os.getpid(), sig)

    monkeypatch.setattr(experiment, "Progress", Stopping)


def resume_command(err):
    """The command the interruption message prints, as argv for main()."""
    m = re.search(r"resume with: (.*)$", err.strip())
    assert m, err
    argv = shlex.split(m.group(1))
    assert argv[:2] == ["seqgen", "train"]
    return argv[1:]


def files_of(folder, net, it):
    base = folder / f"{net}_iter_{it}"
    return (base.with_suffix(".caffemodel").read_bytes(),
            base.with_suffix(".solverstate").read_bytes())


@pytest.mark.parametrize("net, mode", [("lstm_short", "previous"), ("lstm_short", "zero"),
                                       ("lstm_long", "previous"), ("lstm_long", "zero")])
def test_stop_and_resume_is_bit_for_bit(cwd, capsys, monkeypatch, net, mode):
    solver = write_solver(cwd, net)
    stop_at(monkeypatch, None)
    code, _, err = run(capsys, "train", solver.name, "--input", mode, "--out", "straight")
    assert code == 0, err

    stop_at(monkeypatch, STOP)
    code, _, err = run(capsys, "train", solver.name, "--input", mode, "--out", "split")
    assert code == 130, err
    assert f"SIGINT at iteration {STOP}" in err
    side = cwd / "split" / f"{net}_iter_{STOP}.seqgen.npz"
    assert side.is_file()
    if net == "lstm_long":
        # the stop falls inside a pass over the sequence: the LSTM's carried state is not
        # zero, and it is in the sidecar
        with np.load(side) as z:
            meta = json.loads(str(z["meta"][()]))
            h = z[meta["arrays"]["state/lstm1/h"]]
        assert h.shape == (1, 50) and np.abs(h).max() > 0

    stop_at(monkeypatch, None)
    argv = resume_command(err)
    assert "--input" not in argv  # the snapshot's run's settings are the default
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert f"Resumed from split/{net}_iter_{STOP}.solverstate at iteration {STOP}" in out
    if mode == "zero":
        assert "--input zero" in out  # taken from the snapshot, and said so
    # bit for bit: weights (.caffemodel), momentum history and iteration (.solverstate)
    assert files_of(cwd / "split", net, N) == files_of(cwd / "straight", net, N)
    # and the whole loss curve, the part before the stop included
    assert (cwd / "split" / "loss.csv").read_text() == \
        (cwd / "straight" / "loss.csv").read_text()
    assert len((cwd / "split" / "loss.csv").read_text().splitlines()) == N + 1


def test_without_the_sidecar_the_carried_state_is_lost(cwd, capsys, monkeypatch):
    """What the sidecar is for: lstm_long resumed from the .solverstate alone starts its
    carried state from zero (with a warning) and ends elsewhere."""
    solver = write_solver(cwd, "lstm_long")
    stop_at(monkeypatch, None)
    assert run(capsys, "train", solver.name, "--input", "zero", "--out", "straight")[0] == 0
    stop_at(monkeypatch, STOP)
    code, _, err = run(capsys, "train", solver.name, "--input", "zero", "--out", "split")
    assert code == 130
    (cwd / "split" / f"lstm_long_iter_{STOP}.seqgen.npz").unlink()
    stop_at(monkeypatch, None)
    code, out, err = run(capsys, *resume_command(err))
    assert code == 0, err
    assert "has no lstm_long_iter_25.seqgen.npz beside it" in out
    assert "starts from zero" in out
    assert "--input zero" in out  # (the options then come from run.json)
    assert files_of(cwd / "split", "lstm_long", N)[0] != \
        files_of(cwd / "straight", "lstm_long", N)[0]


@pytest.fixture
def stopped_run(cwd, capsys, monkeypatch):
    """lstm_long stopped at iteration 25: (solver file, state file)."""
    solver = write_solver(cwd, "lstm_long")
    stop_at(monkeypatch, STOP)
    code, _, err = run(capsys, "train", solver.name, "--out", "RUN")
    assert code == 130, err
    stop_at(monkeypatch, None)
    return solver, f"RUN/lstm_long_iter_{STOP}.solverstate"


def refused(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, err)
    assert err.startswith("seqgen: error: ") and err.count("\n") == 1, err
    assert "cannot resume" in err and "--allow-changes" in err
    return err


def test_changed_net_is_refused(cwd, capsys, stopped_run):
    _, state = stopped_run
    text = (cwd / "lstm_long.prototxt").read_text()
    assert "clipping_threshold: 0.1" in text
    (cwd / "changed.prototxt").write_text(text.replace("clipping_threshold: 0.1",
                                                       "clipping_threshold: 0.2"))
    solver = write_solver(cwd, "lstm_long", name="changed_solver.prototxt")
    solver.write_text(solver.read_text().replace('"lstm_long.prototxt"', '"changed.prototxt"'))
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN")
    assert "the net changed: layer 'lstm1' (Lstm): lstm_param.clipping_threshold 0.1 -> 0.2" \
        in err
    assert "the solver changed" not in err
    # nothing was written by the refused attempt
    assert sorted(p.name for p in (cwd / "RUN").glob("*_iter_*.caffemodel")) == [
        f"lstm_long_iter_{STOP}.caffemodel"]
    # and a deliberate change goes through
    code, out, err = run(capsys, "train", solver.name, "--resume", state, "--out", "RUN",
                         "--allow-changes")
    assert code == 0, err
    assert (cwd / "RUN" / f"lstm_long_iter_{N}.caffemodel").is_file()


def test_changed_solver_is_refused(cwd, capsys, stopped_run):
    solver, state = stopped_run
    solver.write_text(solver.read_text().replace("base_lr: 0.0001", "base_lr: 0.001")
                      .replace("momentum: 0.95", "momentum: 0.9\ntype: 'Nesterov'"))
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN")
    assert "the solver changed: " in err
    assert "base_lr 0.0001 -> 0.001" in err and "momentum 0.95 -> 0.9" in err
    assert 'type "SGD" -> "Nesterov"' in err
    assert "the net changed" not in err


def test_settings_that_do_not_change_updates_are_not_changes(cwd, capsys, stopped_run):
    """display, snapshot, max_iter (--iters to extend a run), random_seed: allowed."""
    solver, state = stopped_run
    solver.write_text(solver.read_text().replace("display: 0", "display: 10\nsnapshot: 30")
                      .replace("random_seed: 7", "random_seed: 8"))
    code, _, err = run(capsys, "train", solver.name, "--resume", state, "--out", "RUN",
                       "--iters", 60)
    assert code == 0, err
    assert {p.name for p in (cwd / "RUN").glob("*.caffemodel")} == {
        f"lstm_long_iter_{i}.caffemodel" for i in (STOP, 30, 60)}


def test_changed_options_and_data_are_refused(cwd, capsys, stopped_run):
    solver, state = stopped_run
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN",
                  "--input", "zero")
    assert "the training options changed: --input previous -> zero" in err
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN",
                  "--no-feedback")
    assert "feedback (--no-feedback) on -> off" in err
    # other values under another name
    values = np.sin(np.arange(960) / 10.0)
    np.savetxt(cwd / "other.csv", values)
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN",
                  "--data", "other.csv")
    assert "data sinusoid:960 -> other.csv" in err
    # the same values under another name are the same data
    from seqgen.data.sources import sinusoid
    np.savetxt(cwd / "same.csv", sinusoid(960), fmt="%.9g")
    code, _, err = run(capsys, "train", solver.name, "--resume", state, "--out", "RUN2",
                       "--data", "same.csv")
    assert code == 0, err


def test_without_sidecar_run_json_still_guards(cwd, capsys, stopped_run):
    solver, state = stopped_run
    Path(state).with_suffix("").with_suffix(".seqgen.npz").unlink()
    solver.write_text(solver.read_text().replace("base_lr: 0.0001", "base_lr: 0.01"))
    err = refused(capsys, "train", solver.name, "--resume", state, "--out", "RUN")
    assert "base_lr 0.0001 -> 0.01" in err


def test_snapshot_files_from_different_writes_are_refused(cwd, capsys, monkeypatch):
    """A .caffemodel overwritten by another run (or a cut-short rewrite) next to the
    .solverstate and sidecar of the first: recognised by the sidecar's SHA-256."""
    solver = write_solver(cwd, "lstm_short", "snapshot: 10\n")
    stop_at(monkeypatch, None)
    assert run(capsys, "train", solver.name, "--out", "RUN", "--iters", 20)[0] == 0
    shutil.copy(cwd / "RUN" / "lstm_short_iter_20.caffemodel",
                cwd / "RUN" / "lstm_short_iter_10.caffemodel")
    code, _, err = run(capsys, "train", solver.name, "--out", "RUN",
                       "--resume", "RUN/lstm_short_iter_10.solverstate")
    assert code == 2
    assert "lstm_short_iter_10.caffemodel is not the one this snapshot wrote" in err
    assert "resume from another snapshot" in err
