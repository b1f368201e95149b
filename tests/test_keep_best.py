"""--keep-best F (seqgen.data.keep_best): the checked snapshots, the best of them as the run's
result, training unchanged, exact resumes, the ways to turn it off, and the commands that
use the result."""
import json
import re

import numpy as np
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.data import free_running, keep_best
from seqgen.data.free_running import FreeRunningScore
from seqgen.data.keep_best import KeepBest
from seqgen.data.sources import sinusoid
from seqgen.net import TEST, Net
from seqgen.runs.record import RunRecord

SHIPPED = ROOT / "prototxt" / "lstm_short.prototxt"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """lstm_short as shipped but for its recipe lines, which these tests set themselves."""
    path = tmp_path_factory.mktemp("net") / "lstm_short.prototxt"
    path.write_text("".join(line for line in SHIPPED.read_text().splitlines(True)
                            if not line.startswith("# seqgen: ")
                            or "sequence_length" in line))
    return path


@pytest.fixture(autouse=True)
def early_checks(monkeypatch):
    """Checks from the first iteration on: these runs are a few hundred iterations long."""
    monkeypatch.setattr(keep_best, "FIRST_CHECK", 1)


def solver_file(folder, net, lr=0.003, iters=1200, snapshot=0):
    """A solver whose rate (30x the fork's) makes the free-running output move up and down
    within a short run."""
    path = folder / "solver.prototxt"
    path.write_text(f'net: "{net}"\nbase_lr: {lr}\nmomentum: 0.95\nlr_policy: "fixed"\n'
                    f'display: 0\nmax_iter: {iters}\nsnapshot: {snapshot}\nsnapshot_prefix: "s"\n'
                    'random_seed: 5\n')
    return str(path)


def train(out, solver, *flags, resume=None):
    argv = ["train", solver, "--out", str(out), *flags]
    if resume:
        argv += ["--resume", str(resume)]
    assert main(argv) == 0
    return json.loads((out / "run.json").read_text())


def free_running_mse(net, weights):
    """The snapshot's free-running MSE over the sinusoid: numpy's, over the steps `seqgen
    generate` writes (its own path to the net, apart from the checks')."""
    out = weights.parent / "check"
    out.mkdir(exist_ok=True)
    assert main(["generate", str(weights), "--out", str(out)]) == 0
    rows = np.loadtxt(out / "generated.csv", delimiter=",", skiprows=1)
    (out / "generated.csv").unlink()
    (out / "generated.json").unlink()
    (out / "generated.png").unlink()
    return float(np.mean((rows[:, 1] - rows[:, 2]) ** 2))


def test_checks_fall_on_each_fraction_before_the_end(monkeypatch):
    keep = KeepBest(0.25, 1000, FreeRunningScore(None, sinusoid(320), "zero"))
    assert keep.checks() == [250, 500, 750]
    assert [i for i in range(0, 1001) if keep.due(i)] == [250, 500, 750]
    assert KeepBest(1.0, 1000, None).checks() == []  # at the end only
    monkeypatch.setattr(keep_best, "FIRST_CHECK", 10000)  # as shipped
    assert KeepBest(0.2, 100000, None).checks() == [20000, 40000, 60000, 80000]
    assert KeepBest(0.02, 100000, None).checks()[:2] == [10000, 12000]
    assert KeepBest(0.2, 20000, None).checks() == [12000, 16000]
    short = KeepBest(0.2, 5000, None)
    assert short.checks() == [] and not any(short.due(i) for i in range(5001))


def test_the_result_is_the_best_checked_snapshot(tmp_path, net, capsys):
    record = train(tmp_path / "run", solver_file(tmp_path, net), "--keep-best", "0.25")
    said = capsys.readouterr().out
    assert record["keep_best"] == 0.25
    logged = {i: float(re.search(rf"Keep-best check at iteration {i}: free-running MSE "
                                 r"(\S+);", said).group(1)) for i in (300, 600, 900)}
    # a check's snapshot is written when it beats every check before it (snapshot: 0 in
    # the solver); the last iteration's always is
    kept = [i for i in logged if logged[i] < min([logged[j] for j in logged if j < i],
                                                 default=np.inf)]
    snapshots = sorted(int(p.stem.split("_")[-1]) for p in (tmp_path / "run").glob("*.caffemodel"))
    assert snapshots == kept + [1200]
    scores = {i: free_running_mse(net, tmp_path / "run" / f"s_iter_{i}.caffemodel")
              for i in snapshots}
    for i in kept:
        assert scores[i] == pytest.approx(logged[i], rel=1e-3)  # (the log's 4 digits)
    best = min(scores, key=scores.get)
    assert record["best"]["iteration"] == best
    assert record["best"]["weights"] == str(tmp_path / "run" / f"s_iter_{best}.caffemodel")
    assert record["best"]["mse"] == pytest.approx(scores[best], rel=1e-6)
    assert record["weights"] == str(tmp_path / "run" / "s_iter_1200.caffemodel")
    assert ("Best checked weights" in said) == (best != 1200)


def test_a_run_whose_best_is_not_its_last_says_so_and_generate_uses_it(tmp_path, net,
                                                                         capsys, monkeypatch):
    """Scores fixed by iteration (the MSE path is tested above): the best is 600's."""
    fixed = {300: 0.5, 600: 0.1, 900: 0.2, 1200: 0.3}
    monkeypatch.setattr(FreeRunningScore, "at", lambda self, iteration: fixed[iteration])
    record = train(tmp_path / "run", solver_file(tmp_path, net), "--keep-best", "0.25")
    said = capsys.readouterr().out
    assert record["best"] == {"iteration": 600, "mse": 0.1,
                              "weights": str(tmp_path / "run" / "s_iter_600.caffemodel")}
    assert "Best checked weights: iteration 600, free-running MSE 0.1; the last weights " \
           "(iteration 1200) score 0.3" in said
    assert [(tmp_path / "run" / f"s_iter_{i}.caffemodel").exists()
            for i in (300, 600, 900, 1200)] == [True, True, False, True]
    monkeypatch.undo()
    assert main(["generate", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "best checked weights, s_iter_600.caffemodel" in err
    generated = json.loads((tmp_path / "run" / "generated.json").read_text())
    assert generated["weights"].endswith("s_iter_600.caffemodel")
    # a named snapshot is used as named
    assert main(["generate", str(tmp_path / "run" / "s_iter_1200.caffemodel"), "--out",
                 str(tmp_path / "last")]) == 0
    assert "best checked" not in capsys.readouterr().err
    # a moved run folder finds its best snapshot in its new place
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    assert RunRecord.read(str(moved)).result_weights() == str(moved / "s_iter_600.caffemodel")


def test_training_is_unchanged_and_off_means_no_record(tmp_path, net):
    solver = solver_file(tmp_path, net)
    kept = train(tmp_path / "kept", solver, "--keep-best", "0.25")
    plain = train(tmp_path / "plain", solver)
    assert "best" not in plain and "keep_best" not in plain
    a, b = (Net(str(net), TEST, weights=r["weights"]) for r in (kept, plain))
    for name, blobs in a.params.items():
        for x, y in zip(blobs, b.params[name]):
            np.testing.assert_array_equal(x.data, y.data)
    losses = [(tmp_path / d / "loss.csv").read_text() for d in ("kept", "plain")]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("scores", ["generated", "first best"])
def test_a_resume_from_any_snapshot_ends_with_the_same_best(tmp_path, net, scores,
                                                            monkeypatch):
    if scores == "first best":  # (a best from before the resume, in the first run's folder)
        monkeypatch.setattr(FreeRunningScore, "at", lambda self, iteration: iteration / 1e4)
    solver = solver_file(tmp_path, net, snapshot=500)
    whole = train(tmp_path / "whole", solver, "--keep-best", "0.25")
    for at in (300, 500):  # a check's snapshot, and one between checks
        out = tmp_path / f"from{at}"
        resumed = train(out, solver, resume=tmp_path / "whole" / f"s_iter_{at}.solverstate")
        assert resumed["keep_best"] == 0.25  # taken back
        best, want = resumed["best"], whole["best"]
        assert (best["iteration"], best["mse"]) == (want["iteration"], want["mse"])
        # the best snapshot: the resumed run's own (a check at `at` is checked again), or
        # the whole run's from before the resume
        folder = out if best["iteration"] >= at else tmp_path / "whole"
        assert best["weights"] == str(folder / f"s_iter_{best['iteration']}.caffemodel")


def test_net_file_lines_no_feedback_and_bad_values(tmp_path, net, capsys):
    with_line = tmp_path / "net.prototxt"
    with_line.write_text(net.read_text() + "# seqgen: keep_best 0.5\n")
    solver = solver_file(tmp_path, with_line, iters=200)
    assert train(tmp_path / "line", solver)["keep_best"] == 0.5
    assert "keep_best" not in train(tmp_path / "fork", solver, "--input", "zero",
                                     "--no-feedback")
    assert "keep_best" not in train(tmp_path / "off", solver, "--keep-best", "0")
    assert train(tmp_path / "given", solver, "--no-feedback", "--keep-best",
                 "0.25")["keep_best"] == 0.25
    capsys.readouterr()
    assert main(["train", solver, "--keep-best", "1.5", "--out", str(tmp_path / "b")]) == 2
    assert "--keep-best must be a number in [0, 1] (0: off), not 1.5" in \
        capsys.readouterr().err
    with_line.write_text(net.read_text() + "# seqgen: keep_best often\n")
    assert main(["train", solver, "--out", str(tmp_path / "b2")]) == 2
    line = len(net.read_text().splitlines()) + 1
    assert capsys.readouterr().err.strip().endswith(
        f"{with_line}:{line}: keep_best must be a number in [0, 1] (0: off), not 'often'")


def test_a_sweep_scores_the_best_checked_snapshot(tmp_path, net, monkeypatch):
    from seqgen.sweep.run_specs import plan_runs  # lazy: only this test sweeps
    from seqgen.sweep.runner import run_one
    from seqgen.sweep.sweepfile import entries_of

    (entry,) = entries_of(solver_file(tmp_path, net), sets=[("keep_best", ["0.25"])],
                          iters=400, modes=["zero"])
    (spec,) = plan_runs([entry], str(tmp_path / "sweep"), log=lambda _: None)
    fixed = {100: 0.3, 200: 0.01, 300: 0.2, 400: 0.4}
    monkeypatch.setattr(free_running.FreeRunningScore, "at",
                        lambda self, iteration: fixed[iteration])
    result = run_one(spec)
    monkeypatch.undo()
    assert result["status"] == "ok", result
    folder = tmp_path / "sweep" / spec.name
    record = json.loads((folder / "run.json").read_text())
    assert record["best"]["iteration"] == 200
    generated = json.loads((folder / "generated.json").read_text())
    assert generated["weights"].endswith("_iter_200.caffemodel")
    assert result["mse"] == pytest.approx(free_running_mse(net, folder / "s_iter_200.caffemodel"),
                                          rel=1e-6)
