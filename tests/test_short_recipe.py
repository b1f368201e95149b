"""lstm_short's shipped recipe (`# seqgen: feedback_refresh 5` and `feedback_ramp
0.05` in prototxt/lstm_short.prototxt, issue 24; the sweeps in examples/results/recipe/): a
new run takes it and records it, its predictions are renewed every 5 iterations, a run
stopped between two renewals resumes bit for bit, and `--feedback-refresh 20
--feedback-ramp 0.1`, `--no-feedback` and `--input zero` train exactly what the net without
the recipe lines trains; its restart lines (`restart_flat 0.2`, `restart_limit 0.04`) are
recorded and `--restart-flat 0` turns them off."""
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import run, solver_file

import seqgen.app.train as experiment
import seqgen.data.feedback as feedback
from seqgen.app.progress import Progress
from seqgen.data import PlanOptions
from seqgen.data.feedback import FeedbackSchedule
from seqgen.data.feeder import SequenceFeeder, shifted
from seqgen.data.sequence import feedback_settings, net_recipe
from seqgen.data.sources import sinusoid
from seqgen.net import TEST, TRAIN, Net
from seqgen.sweep.run_specs import plan_runs
from seqgen.sweep.sweepfile import entries_of

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

ROOT = Path(__file__).parents[1]
SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
RECIPE = "# seqgen: feedback_refresh 5\n# seqgen: feedback_ramp 0.05\n"
N = 30  # iterations of the whole run
STOP = 17  # where a stopped run stops: between the renewals at 15 and 20


def write_solver(folder, recipe=True):
    """A fixed-seed solver for the shipped lstm_short, copied next to it (without its recipe
    lines when `recipe` is False: the net as it was before issue 24)."""
    folder.mkdir(exist_ok=True)
    path = solver_file(folder, "lstm_short", 'base_lr: 0.0001\nmomentum: 0.95\n'
                       f'lr_policy: "fixed"\ndisplay: 0\nmax_iter: {N}\nrandom_seed: 7\n')
    if not recipe:
        net = folder / "lstm_short.prototxt"
        text = net.read_text()
        assert RECIPE in text
        net.write_text(text.replace(RECIPE, ""))
    return path


def final_files(folder):
    base = folder / f"lstm_short_iter_{N}"
    return (base.with_suffix(".caffemodel").read_bytes(),
            base.with_suffix(".solverstate").read_bytes())


def sidecar_meta(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"][()]))


def renewals(total, refresh, ramp=0.1, share=1.0):
    """The iterations at which the schedule generates new predictions, from its definition
    (docs/command-line.md): every `refresh` iterations, once the share p = share *
    min(1, i / (ramp * total)) is above 0."""
    return [i for i in range(total)
            if i % refresh == 0 and share * min(1.0, i / max(1.0, ramp * total)) > 0]


def test_the_shipped_net_asks_for_refresh_5():
    assert net_recipe(str(SHORT)) == {"refresh": 5, "ramp": 0.05}


def test_a_new_run_takes_the_recipe_and_records_it(cwd, capsys):
    solver = write_solver(cwd / "a")
    code, out, err = run(capsys, "train", solver, "--out", "run")
    assert code == 0, err
    assert ("Feedback schedule: share 1, ramp 0.05, refresh 5 (default share 1, ramp 0.1, "
            "refresh 20; lstm_short.prototxt asks for it)") in out
    record = json.loads((cwd / "run" / "run.json").read_text())
    assert record["feedback_schedule"] == {"share": 1.0, "ramp": 0.05, "refresh": 5}
    assert record["fingerprint"]["options"]["feedback schedule"] == \
        "share 1, ramp 0.05, refresh 5"
    meta = sidecar_meta(cwd / "run" / f"lstm_short_iter_{N}.seqgen.npz")
    assert (meta["extra"]["feedback"]["refresh"], meta["extra"]["feedback"]["ramp"]) == (5, 0.05)
    assert meta["fingerprint"]["options"]["feedback schedule"] == \
        "share 1, ramp 0.05, refresh 5"


def test_the_shipped_net_restarts_runs_still_far_off_and_records_it(cwd, capsys):
    """`# seqgen: restart_flat 0.2` and `restart_limit 0.04` (issue 24): recorded in run.json
    and the sidecar; `--restart-flat 0` trains the same weights without them (a 30-iteration
    run has no check: the checks themselves are tested in test_flat_restart.py)."""
    solver = write_solver(cwd / "a")
    code, out, err = run(capsys, "train", solver, "--out", "on")
    assert code == 0, err
    assert "Restart when flat (--restart-flat 0.2, --restart-limit 0.04): no check" in out
    record = json.loads((cwd / "on" / "run.json").read_text())
    assert (record["restart_flat"], record["restart_limit"]) == (0.2, 0.04)
    meta = sidecar_meta(cwd / "on" / f"lstm_short_iter_{N}.seqgen.npz")
    assert (meta["extra"]["run"]["restart_flat"], meta["extra"]["run"]["restart_limit"]) == \
        (0.2, 0.04)
    code, out, err = run(capsys, "train", solver, "--out", "off", "--restart-flat", "0")
    assert code == 0, err
    assert "Restart when flat" not in out
    record = json.loads((cwd / "off" / "run.json").read_text())
    assert "restart_flat" not in record and "restart_limit" not in record
    assert final_files(cwd / "on") == final_files(cwd / "off")


@pytest.mark.parametrize("flags, refresh", [((), 5), (("--feedback-refresh", "20"), 20)])
def test_predictions_are_renewed_at_the_recipes_iterations(cwd, capsys, monkeypatch, flags,
                                                          refresh):
    calls = []
    real = feedback.generate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(feedback, "generate", counting)
    solver = write_solver(cwd / "a")
    code, _, err = run(capsys, "train", solver, "--out", "run", *flags)
    assert code == 0, err
    assert len(calls) == len(renewals(N, refresh, ramp=0.05)) == {5: 5, 20: 1}[refresh]


def test_the_share_of_predicted_inputs_follows_the_recipes_ramp():
    """Over a run of 1000 iterations the recipe's ramp (0.05) reaches share 1 at iteration 50:
    p = min(1, i / 50) of the inputs are predictions after a renewal at i, none between."""
    settings = feedback_settings(PlanOptions(), str(SHORT))
    feeder = SequenceFeeder(Net(str(SHORT), TRAIN), sinusoid(320), "previous")
    schedule = FeedbackSchedule(feeder, Net(str(SHORT), TEST), 1000, settings, seed=3)
    for i, low, high in ((5, 0.03, 0.17), (25, 0.38, 0.62), (50, 1.0, 1.0)):
        feeder.set_inputs(feeder.sequence)  # all true again
        schedule.update(SimpleNamespace(iter=i, param=SimpleNamespace(iter_size=1)))
        predicted = ~np.all(feeder.inputs == shifted(feeder.sequence), axis=1)[1:]
        assert low <= predicted.mean() <= high, (i, predicted.mean())
        assert min(1.0, i / (0.05 * 1000)) == pytest.approx((low + high) / 2, abs=0.01)
    feeder.set_inputs(feeder.sequence)
    schedule.update(SimpleNamespace(iter=52, param=SimpleNamespace(iter_size=1)))
    assert np.array_equal(feeder.inputs, shifted(feeder.sequence))  # 52 % 5: no renewal


def stop_at(monkeypatch, iteration):
    """SIGINT to ourselves right after `iteration` (None: never)."""

    class Stopping(Progress):
        def __call__(self, solver, loss):
            super().__call__(solver, loss)
            if solver.iter == iteration:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(experiment, "Progress", Stopping)


def test_a_run_stopped_between_renewals_resumes_bit_for_bit(cwd, capsys, monkeypatch):
    solver = write_solver(cwd / "a")
    stop_at(monkeypatch, None)
    assert run(capsys, "train", solver, "--out", "straight")[0] == 0
    stop_at(monkeypatch, STOP)
    code, _, err = run(capsys, "train", solver, "--out", "split")
    assert code == 130, err
    meta = sidecar_meta(cwd / "split" / f"lstm_short_iter_{STOP}.seqgen.npz")
    assert meta["extra"]["feedback"]["refresh"] == 5
    stop_at(monkeypatch, None)
    code, out, err = run(capsys, "train", solver, "--resume",
                         f"split/lstm_short_iter_{STOP}.solverstate")
    assert code == 0, err
    assert "--feedback-refresh 5" in out and "--feedback-ramp 0.05" in out  # taken back
    assert final_files(cwd / "split") == final_files(cwd / "straight")
    assert (cwd / "split" / "loss.csv").read_text() == \
        (cwd / "straight" / "loss.csv").read_text()


OFF = ("--feedback-refresh", "20", "--feedback-ramp", "0.1")  # the defaults, given


@pytest.mark.parametrize("flags", [OFF, ("--no-feedback",), ("--input", "zero", "--no-feedback"),
                                   ("--input", "zero")])
def test_switched_off_it_trains_what_the_net_without_it_trains(cwd, capsys, flags):
    with_line = write_solver(cwd / "with")
    without = write_solver(cwd / "without", recipe=False)
    assert run(capsys, "train", with_line, "--out", "a", *flags)[0] == 0
    assert run(capsys, "train", without, "--out", "b", *(() if flags == OFF else flags))[0] == 0
    assert final_files(cwd / "a") == final_files(cwd / "b")
    records = [json.loads((cwd / d / "run.json").read_text()) for d in ("a", "b")]
    assert [r["fingerprint"]["options"] for r in records] == \
        [records[1]["fingerprint"]["options"]] * 2
    assert "feedback_schedule" not in records[1]


def test_a_sweeps_run_folder_keeps_the_recipe(tmp_path):
    (entry,) = entries_of(str(ROOT / "prototxt" / "lstm_short_solver.prototxt"), iters=20,
                          modes=["previous"])
    (spec,) = plan_runs([entry], str(tmp_path), log=lambda _: None)
    copy = tmp_path / "copy.prototxt"
    copy.write_text(dict(spec.files)["lstm_short.prototxt"])
    assert net_recipe(str(copy)) == {"refresh": 5, "ramp": 0.05}


def test_no_feedback_in_zero_mode_leaves_out_the_restart_lines(cwd, capsys):
    """`--input zero --no-feedback` is the fork's own training (issue 24): no schedule and
    none of the net file's restarts; `--input zero` alone keeps the restarts."""
    solver = write_solver(cwd / "a")
    code, out, err = run(capsys, "train", solver, "--out", "fork", "--input", "zero",
                         "--no-feedback")
    assert code == 0, err
    assert "Restart when flat" not in out
    record = json.loads((cwd / "fork" / "run.json").read_text())
    assert "restart_flat" not in record and "feedback_schedule" not in record
    code, out, err = run(capsys, "train", solver, "--out", "zero", "--input", "zero")
    assert code == 0, err
    assert json.loads((cwd / "zero" / "run.json").read_text())["restart_flat"] == 0.2
    # an explicit --restart-flat still counts with --no-feedback
    code, out, err = run(capsys, "train", solver, "--out", "both", "--input", "zero",
                         "--no-feedback", "--restart-flat", "0.3")
    assert code == 0, err
    assert json.loads((cwd / "both" / "run.json").read_text())["restart_flat"] == 0.3
