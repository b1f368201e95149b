"""--restart-flat (seqgen.data.flat_restart): a sequence run whose free-running output is
still flat at a check starts again from a new run's weights within its budget, says so,
resumes exactly, is recorded, and is off by default and with 0."""
import json

import numpy as np
import pytest
from helpers import ROOT

from seqgen import fillers
from seqgen.app.cli import main
from seqgen.data import flat_restart, free_running
from seqgen.data.flat_restart import FAR, FlatRestart, restart_seed
from seqgen.data.free_running import FreeRunningScore
from seqgen.data.sequence import FORK_FORGET_BIAS
from seqgen.data.sources import sinusoid
from seqgen.io.solverstate import read_sidecar, sidecar_path
from seqgen.net import TEST, TRAIN, Net
from seqgen.solver import Solver
from seqgen.sweep.run_specs import plan_runs
from seqgen.sweep.runner import run_one
from seqgen.sweep.sweepfile import entries_of

SHIPPED = ROOT / "prototxt" / "lstm_short.prototxt"
NET = SHIPPED  # the shipped net without its restart lines (plain_net)


@pytest.fixture(autouse=True, scope="module")
def plain_net(tmp_path_factory):
    """lstm_short as shipped but for its own restart lines, which these tests set."""
    global NET
    NET = tmp_path_factory.mktemp("net") / "lstm_short.prototxt"
    NET.write_text("".join(line for line in SHIPPED.read_text().splitlines(True)
                           if not line.startswith(("# seqgen: restart_", "# seqgen: keep_best"))))
    yield
    NET = SHIPPED


@pytest.fixture(autouse=True)
def early_checks(monkeypatch):
    """Checks from the first one on: these runs are a few hundred iterations long."""
    monkeypatch.setattr(flat_restart, "FIRST_CHECK", 1)


def solver_file(folder, snapshot=0, seed=3):
    path = folder / "solver.prototxt"
    path.write_text(f'net: "{NET}"\nbase_lr: 0.0001\nmomentum: 0.95\nlr_policy: "fixed"\n'
                    f'display: 0\nmax_iter: 400\nsnapshot: {snapshot}\n'
                    f'snapshot_prefix: "s"\nrandom_seed: {seed}\n')
    return str(path)


def weights(caffemodel):
    net = Net(str(NET), TEST, weights=str(caffemodel))
    return [b.data.copy() for blobs in net.params.values() for b in blobs]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(x, y)


def net_with_lines(folder, lines):
    """A copy of the net with `lines` appended, and a solver for it."""
    net = folder / "net.prototxt"
    net.write_text(NET.read_text() + lines)
    solver = folder / "solver.prototxt"
    solver.write_text(open(solver_file(folder)).read().replace(str(NET), str(net)))
    return net, str(solver)


def _restart(fraction, total, seq=None, prepare=None, **kwargs):
    """FlatRestart over `seq` (default the sinusoid) in 'zero' mode, with no test net."""
    score = FreeRunningScore(None, sinusoid(320) if seq is None else seq, "zero")
    return FlatRestart(fraction, total, score, str(NET), prepare, **kwargs)


def test_a_restart_fills_a_new_runs_weights_and_clears_the_history(tmp_path):
    solver = Solver(solver_file(tmp_path), out_dir=str(tmp_path), log=lambda *a: None)
    for blobs in solver.net.params.values():
        for b in blobs:
            b.data[...] = 7.0
    for h in solver.history:
        h[...] = 1.0
    solver.iter = 40
    def fork_bias(net):  # what the sequence plan gives a new run's net
        for layer in net.layers:
            layer.set_forget_bias(FORK_FORGET_BIAS)

    restart = _restart(0.1, 400, prepare=fork_bias, log=lambda line: None)
    restart._fill_again(solver, 12345)
    # what a new run with random_seed 12345 starts from: its fillers, then the fork's bias
    fillers.seed(12345)
    fresh = Net(str(NET), TRAIN)
    H = 15
    fresh.params["lstm1"][2].data[H:2 * H] = FORK_FORGET_BIAS  # b, in (i, f, o, g) order
    for name, blobs in fresh.params.items():
        for got, want in zip(solver.net.params[name], blobs):
            np.testing.assert_array_equal(got.data, want.data, err_msg=name)
    assert all(not h.any() for h in solver.history)


def test_checks_at_each_fraction_up_to_half_the_run(monkeypatch):
    restart = _restart(0.1, 1000)
    assert [i for i in range(1, 1001) if restart.due(i)] == [100, 200, 300, 400, 500]
    assert restart.checks() == [100, 200, 300, 400, 500]
    monkeypatch.setattr(flat_restart, "FIRST_CHECK", 10000)  # the real first check
    assert _restart(0.1, 100000).checks() \
        == [10000, 20000, 30000, 40000, 50000]
    assert _restart(0.2, 100000).checks() \
        == [20000, 40000]
    short = _restart(0.2, 20000)
    assert short.checks() == [] and not any(short.due(i) for i in range(20001))


def test_an_output_that_moves_is_left_alone(tmp_path, monkeypatch):
    seq = sinusoid(320)
    lines = []
    restart = _restart(0.1, 1000, seq, log=lines.append)
    solver = Solver(solver_file(tmp_path), out_dir=str(tmp_path), log=lambda *a: None)
    before = [b.data.copy() for blobs in solver.net.params.values() for b in blobs]
    # the sequence scaled by (1 - sqrt(FAR / 2)): its MSE is FAR / 2 of the variance plus the
    # mean's share, below the limit for a sequence of mean near 0
    scale = 1 - np.sqrt(FAR / 2)
    monkeypatch.setattr(free_running, "generate",
                        lambda net, steps, mode: np.asarray(seq)[:steps] * scale)
    solver.iter = 100
    restart.check(solver)
    target = np.asarray(seq, np.float64)
    share = np.mean((target * scale - target) ** 2) / target.var()
    assert share < FAR
    assert restart.restarts == [] and lines == [
        f"Free-running check at iteration 100: MSE {np.mean((target * scale - target) ** 2):.4g} "
        f"({share:.3g} of the sequence's variance)"]
    after = [b.data for blobs in solver.net.params.values() for b in blobs]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def _train(out, solver, *flags, resume=None, iters=400):
    argv = ["train", solver, "--input", "zero", "--iters", str(iters), "--out", str(out),
            *flags]
    if resume:
        argv += ["--resume", str(resume)]
    assert main(argv) == 0


def test_a_flat_run_starts_again_says_so_and_resumes_exactly(tmp_path, capsys):
    solver = solver_file(tmp_path, snapshot=100)
    _train(tmp_path / "whole", solver, "--restart-flat", "0.25")
    said = capsys.readouterr().out
    # zero mode from a new run's weights: after 100 iterations the output still sits near
    # the net's fixed point (flat); the second start's weights had left it by 200
    assert said.count("Restarting at iteration 100 of 400") == 1, said
    assert f"new weights from seed {restart_seed(3, 1)}" in said
    assert "Free-running check at iteration 200" in said or "Restarting at iteration 200" in said
    meta, _ = read_sidecar(sidecar_path(str(tmp_path / "whole" / "s_iter_400.solverstate")))
    restarts = meta["extra"]["flat_restart"]["restarts"]
    assert restarts[0]["iteration"] == 100 and restarts[0]["seed"] == restart_seed(3, 1)
    assert meta["extra"]["run"]["restart_flat"] == 0.25
    record = json.loads((tmp_path / "whole" / "run.json").read_text())
    assert record["restart_flat"] == 0.25
    # resumed from the snapshot at a check's iteration (100) and after the first restart
    for at in (100, 200):
        out = tmp_path / f"from{at}"
        _train(out, solver, resume=tmp_path / "whole" / f"s_iter_{at}.solverstate")
        said = capsys.readouterr().out
        assert "--restart-flat 0.25" in said  # taken back from the snapshot's run
        assert_same_weights(out / "s_iter_400.caffemodel",
                        tmp_path / "whole" / "s_iter_400.caffemodel")
        meta, _ = read_sidecar(sidecar_path(str(out / "s_iter_400.solverstate")))
        assert meta["extra"]["flat_restart"]["restarts"] == restarts


def test_off_by_default_and_with_zero(tmp_path, capsys):
    solver = solver_file(tmp_path)
    _train(tmp_path / "default", solver, iters=120)
    _train(tmp_path / "zero", solver, "--restart-flat", "0", iters=120)
    said = capsys.readouterr().out
    assert "Restarting" not in said and "Free-running check" not in said
    assert_same_weights(tmp_path / "default" / "s_iter_120.caffemodel",
                        tmp_path / "zero" / "s_iter_120.caffemodel")
    assert "restart_flat" not in json.loads((tmp_path / "default" / "run.json").read_text())


def test_a_net_file_line_turns_it_on_and_a_bad_one_names_its_line(tmp_path, capsys):
    net, solver = net_with_lines(tmp_path, "# seqgen: restart_flat 0.25\n")
    _train(tmp_path / "run", solver, iters=120)
    assert "Restarting at iteration 30" in capsys.readouterr().out
    net.write_text(NET.read_text() + "# seqgen: restart_flat 0.9\n")
    assert main(["train", solver, "--input", "zero", "--iters", "10",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    line = len(NET.read_text().splitlines()) + 1
    assert err.endswith(f"{net}:{line}: restart_flat must be a number in [0, 0.5] (0: off), "
                        "not '0.9'") and "\n" not in err


@pytest.mark.parametrize("value", ["0.7", "-0.1"])
def test_bad_values_are_refused_in_one_line(tmp_path, capsys, value):
    assert main(["train", solver_file(tmp_path), "--restart-flat", value, "--iters", "10",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--restart-flat" in err and "\n" not in err


def test_a_sweep_key_reaches_runs_of_either_mode(tmp_path):
    (entry,) = entries_of(solver_file(tmp_path), sets=[("restart_flat", ["0.25"])], iters=120,
                          modes=["previous", "zero"])
    specs = plan_runs([entry], str(tmp_path / "sweep"), log=lambda _: None)
    assert [s.options for s in specs] == [(("restart_flat", 0.25),)] * 2
    result = run_one(specs[1])  # the zero run
    assert result["status"] == "ok", result
    assert "Restarting at iteration 30" in (tmp_path / "sweep" / specs[1].name /
                                             "train.log").read_text()


def test_a_short_run_is_not_judged(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flat_restart, "FIRST_CHECK", 10000)  # (as shipped)
    _train(tmp_path / "run", solver_file(tmp_path), "--restart-flat", "0.25", iters=120)
    said = capsys.readouterr().out
    assert "Restart when flat (--restart-flat 0.25, --restart-limit 0.25): no check in this " \
           "run (none before iteration 10000)" in said
    assert "Restarting" not in said and "Free-running check" not in said


def test_the_limit_decides_and_a_check_below_it_leaves_training_alone(tmp_path, capsys):
    """--restart-limit: this seed's run is at 0.596 and 0.425 of the variance at iterations
    100 and 200 (previous mode), so the default limit restarts it and 0.7 does not; checks
    that do not restart leave the training bit for bit as without them."""
    solver = solver_file(tmp_path, snapshot=100)
    base = ["--input", "previous"]
    _train(tmp_path / "default", solver, *base, "--restart-flat", "0.25")
    assert "Restarting at iteration 100" in capsys.readouterr().out
    _train(tmp_path / "high", solver, *base, "--restart-flat", "0.25", "--restart-limit", "0.7")
    said = capsys.readouterr().out
    assert "--restart-limit 0.7" in said and "Restarting" not in said
    assert said.count("Free-running check at iteration") == 2
    _train(tmp_path / "off", solver, *base, "--restart-flat", "0")
    assert_same_weights(tmp_path / "high" / "s_iter_400.caffemodel",
                        tmp_path / "off" / "s_iter_400.caffemodel")
    record = json.loads((tmp_path / "high" / "run.json").read_text())
    assert (record["restart_flat"], record["restart_limit"]) == (0.25, 0.7)
    meta, _ = read_sidecar(sidecar_path(str(tmp_path / "high" / "s_iter_100.solverstate")))
    assert meta["extra"]["run"]["restart_limit"] == 0.7
    # a resume from iteration 100 takes the limit back: with the default it would restart
    # at 200 (0.425 > 0.25)
    _train(tmp_path / "resumed", solver, *base,
           resume=tmp_path / "high" / "s_iter_100.solverstate")
    said = capsys.readouterr().out
    assert "Restarting" not in said
    assert_same_weights(tmp_path / "resumed" / "s_iter_400.caffemodel",
                        tmp_path / "high" / "s_iter_400.caffemodel")
    assert "restart_limit" not in json.loads((tmp_path / "off" / "run.json").read_text())


def test_a_limit_line_in_the_net_file_and_a_bad_one(tmp_path, capsys):
    net, solver = net_with_lines(tmp_path, "# seqgen: restart_flat 0.25\n"
                                 "# seqgen: restart_limit 0.7\n")
    _train(tmp_path / "run", solver, "--input", "previous")
    said = capsys.readouterr().out
    assert "--restart-limit 0.7" in said and "Restarting" not in said
    net.write_text(NET.read_text() + "# seqgen: restart_limit 0\n")
    assert main(["train", solver, "--iters", "10", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    line = len(NET.read_text().splitlines()) + 1
    assert err.endswith(f"{net}:{line}: restart_limit must be a number in (0, 1], not '0'")
    assert main(["train", solver_file(tmp_path), "--restart-limit", "1.5", "--iters", "10",
                 "--out", str(tmp_path / "bad2")]) == 2
    assert "--restart-limit must be a number in (0, 1], not 1.5" in capsys.readouterr().err


def test_a_limit_below_the_share_says_the_run_is_far_off(tmp_path, monkeypatch):
    seq = sinusoid(320)
    lines = []
    restart = _restart(0.1, 1000, seq, lambda net: None, log=lines.append, limit=0.05)
    solver = Solver(solver_file(tmp_path), out_dir=str(tmp_path), log=lambda *a: None)
    monkeypatch.setattr(free_running, "generate",
                        lambda net, steps, mode: np.asarray(seq)[:steps] * 0.7)
    solver.iter = 100
    restart.check(solver)
    assert [r["iteration"] for r in restart.restarts] == [100]
    assert "still far off" in lines[0] and "above 0.05;" in lines[0]


def test_a_limit_without_restarts_is_refused(tmp_path, capsys):
    assert main(["train", solver_file(tmp_path), "--restart-limit", "0.1", "--iters", "10",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--restart-limit" in err and "--restart-flat F" in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_a_resume_may_turn_the_restarts_off(tmp_path, capsys):
    solver = solver_file(tmp_path, snapshot=100)
    _train(tmp_path / "run", solver, "--restart-flat", "0.25", "--restart-limit", "0.7",
           iters=200)
    _train(tmp_path / "off", solver, "--restart-flat", "0", "--allow-changes",
           resume=tmp_path / "run" / "s_iter_100.solverstate", iters=200)
    said = capsys.readouterr().out
    assert "Free-running check at iteration 200" not in said.split("Resuming")[-1]
    record = json.loads((tmp_path / "off" / "run.json").read_text())
    assert "restart_limit" not in record and "restart_flat" not in record


@pytest.mark.parametrize("name", ["lstm_short", "lstm_long", "deep_lstm_short",
                                  "deep_lstm_long"])
def test_every_shipped_net_trains_as_the_fork_with_zero_and_no_feedback(tmp_path, name):
    """Each shipped net has restart and keep-best lines (issue 24); `--input zero
    --no-feedback` leaves them and the feedback recipe out, and `--input zero` alone keeps
    them."""
    solver = str(ROOT / "prototxt" / f"{name}_solver.prototxt")
    for flags, out in ((("--no-feedback",), "fork"), ((), "zero")):
        assert main(["train", solver, "--input", "zero", *flags, "--iters", "2",
                     "--out", str(tmp_path / out)]) == 0
    fork = json.loads((tmp_path / "fork" / "run.json").read_text())
    assert not {"restart_flat", "feedback_schedule", "keep_best", "best"} & set(fork)
    zero = json.loads((tmp_path / "zero" / "run.json").read_text())
    line = next(line for line in (ROOT / "prototxt" / f"{name}.prototxt").read_text()
                .splitlines() if line.startswith("# seqgen: keep_best "))
    assert zero["restart_flat"] == 0.2 and zero["keep_best"] == float(line.split()[-1])
