"""The feedback schedule's settings (--feedback-share/-ramp/-refresh, sweep KEYs): they
change what the schedule does, are checked before anything runs, recorded, taken back on
resume and swept."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.data.feedback import FeedbackSchedule, FeedbackSettings
from seqgen.data.feeder import SequenceFeeder, shifted
from seqgen.data.sources import sinusoid
from seqgen.net import TEST, TRAIN, Net
from seqgen.sweep.run_specs import plan_runs
from seqgen.sweep.runner import run_one
from seqgen.sweep.sweepfile import entries_of

SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
SOLVER = str(ROOT / "prototxt" / "lstm_short_solver.prototxt")


def without_recipe():
    """The shipped lstm_short's text without its own feedback recipe (test_short_recipe.py)."""
    text = SHORT.read_text()
    for line in ("# seqgen: feedback_refresh 5\n", "# seqgen: feedback_ramp 0.05\n"):
        assert line in text
        text = text.replace(line, "")
    return text


def _schedule(settings, total=100):
    feeder = SequenceFeeder(Net(str(SHORT), TRAIN), sinusoid(320), "previous")
    return feeder, FeedbackSchedule(feeder, Net(str(SHORT), TEST), total, settings, seed=3)


def _update(schedule, iteration):
    schedule.update(SimpleNamespace(iter=iteration, param=SimpleNamespace(iter_size=1)))


def _predicted(feeder):
    """Which steps' inputs are not the true previous value (the net's own predictions);
    step 0's input is 0 either way."""
    return ~np.all(feeder.inputs == shifted(feeder.sequence), axis=1)[1:]


def test_refresh_sets_how_often_the_predictions_are_renewed():
    feeder, schedule = _schedule(FeedbackSettings(refresh=5))
    _update(schedule, 5)
    assert _predicted(feeder).any()  # a refresh at iteration 5
    feeder, schedule = _schedule(FeedbackSettings())
    _update(schedule, 5)
    assert not _predicted(feeder).any()  # the default refreshes at 20, 40, ...
    _update(schedule, 20)
    assert _predicted(feeder).any()


def test_share_and_ramp_set_the_share_of_predicted_inputs():
    # after the ramp (10 of 100 iterations) every input is predicted at share 1, about half
    # at share 0.5 (320 draws: 0.5 +- 0.15 is beyond 5 standard deviations)
    feeder, schedule = _schedule(FeedbackSettings(share=1.0, refresh=1))
    _update(schedule, 10)
    assert _predicted(feeder).all()
    feeder, schedule = _schedule(FeedbackSettings(share=0.5, refresh=1))
    _update(schedule, 10)
    assert 0.35 < _predicted(feeder).mean() < 0.65
    # with a ramp over the whole run, a tenth of the way in only about a tenth is predicted
    feeder, schedule = _schedule(FeedbackSettings(ramp=1.0, refresh=1))
    _update(schedule, 10)
    assert 0.02 < _predicted(feeder).mean() < 0.2


@pytest.mark.parametrize("flags, says", [
    (["--feedback-share", "1.5"], "--feedback-share must be a number in (0, 1], not 1.5"),
    (["--feedback-share", "0"], "--feedback-share must be a number in (0, 1]"),
    (["--feedback-ramp", "-0.1"], "--feedback-ramp must be a number in [0, 1]"),
    (["--feedback-ramp", "0.5", "--input", "zero"],
     "--feedback-ramp: the feedback schedule is for input mode 'previous', not 'zero'"),
    (["--feedback-refresh", "5", "--no-feedback"],
     "--feedback-refresh sets the feedback schedule, which --no-feedback turns off"),
])
def test_bad_settings_are_one_line_errors_before_anything_runs(tmp_path, capsys, flags, says):
    out = tmp_path / "run"
    assert main(["train", SOLVER, "--iters", "20", "--out", str(out)] + flags) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_text_data_refuses_the_feedback_settings(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabcabc " * 200)
    net = ROOT / "prototxt" / "char_rnn.prototxt"
    code = main(["train", str(net), "--data", f"chars:{corpus}", "--iters", "2",
                 "--feedback-share", "0.5", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--feedback-share is for sequence data" in err, err


def test_settings_are_recorded_and_taken_back_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    # (--feedback-ramp 0.1 over the shipped lstm_short's own recipe: test_short_recipe.py)
    assert main(["train", SOLVER, "--iters", "40", "--feedback-refresh", "5",
                 "--feedback-share", "0.5", "--feedback-ramp", "0.1", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["feedback_schedule"] == {"share": 0.5, "ramp": 0.1, "refresh": 5}
    capsys.readouterr()
    assert main(["train", SOLVER, "--resume", str(out / "lstm_short_iter_40.solverstate"),
                 "--iters", "60"]) == 0
    said = capsys.readouterr().out
    assert "--feedback-refresh 5 --feedback-share 0.5" in said
    assert "Feedback schedule: share 0.5, ramp 0.1, refresh 5" in said
    # another value is a change of the run: refused unless allowed
    assert main(["train", SOLVER, "--resume", str(out / "lstm_short_iter_60.solverstate"),
                 "--iters", "80", "--feedback-share", "0.7"]) == 2
    assert "feedback schedule share 0.5, ramp 0.1, refresh 5 -> share 0.7" in \
        capsys.readouterr().err


def test_a_default_run_keeps_the_fingerprint_it_had_before_the_settings(tmp_path):
    # (the net without the recipe line the shipped lstm_short carries: test_short_recipe.py)
    net = tmp_path / "short.prototxt"
    net.write_text(without_recipe())
    out = tmp_path / "run"
    assert main(["train", str(net), "--iters", "20", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert "feedback_schedule" not in record  # (nor in the sidecar: test_run_compat.py)
    assert "feedback schedule" not in record["fingerprint"]["options"]


def test_a_sweep_key_reaches_the_run(tmp_path, capsys):
    (entry,) = entries_of(SOLVER, sets=[("feedback_refresh", ["5", "40"])], iters=20,
                          modes=["previous"])
    specs = plan_runs([entry], str(tmp_path), log=lambda _: None)
    assert [s.name for s in specs] == ["lstm_short-previous-feedback_refresh=5-seed1",
                                       "lstm_short-previous-feedback_refresh=40-seed1"]
    assert specs[0].options == (("feedback_refresh", 5),)
    solver_text = dict(specs[0].files)["lstm_short_solver.prototxt"]
    assert "feedback" not in solver_text.split("\n", 1)[1]  # (only the header names it)
    result = run_one(specs[0])
    assert result["status"] == "ok", result
    record = json.loads((tmp_path / specs[0].name / "run.json").read_text())
    assert record["feedback_schedule"]["refresh"] == 5
    # ... and the zero mode, which has no schedule, is refused before anything runs
    assert main(["sweep", SOLVER, "--set", "feedback_refresh=5", "--input", "previous,zero",
                 "--out", str(tmp_path / "z")]) == 2
    assert "for input mode previous only" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_a_net_file_carries_its_recipe_and_a_resume_keeps_the_runs_own(tmp_path, capsys):
    net = tmp_path / "short.prototxt"
    plain = without_recipe()
    net.write_text("# seqgen: feedback_refresh 5\n# seqgen: feedback_ramp 0.3\n" + plain)
    assert main(["train", str(net), "--iters", "20", "--out", str(tmp_path / "a")]) == 0
    assert "short.prototxt asks for it" in capsys.readouterr().out
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["feedback_schedule"] == {"share": 1.0, "ramp": 0.3, "refresh": 5}
    # a flag given wins over the file
    assert main(["train", str(net), "--iters", "20", "--feedback-refresh", "7", "--out",
                 str(tmp_path / "b")]) == 0
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert record["feedback_schedule"] == {"share": 1.0, "ramp": 0.3, "refresh": 7}
    # a run trained before the file had a recipe resumes with the schedule it had
    net.write_text(plain)
    assert main(["train", str(net), "--iters", "20", "--out", str(tmp_path / "c")]) == 0
    net.write_text("# seqgen: feedback_refresh 5\n" + plain)
    capsys.readouterr()
    assert main(["train", str(net), "--resume", str(tmp_path / "c" / "short_iter_20.solverstate"),
                 "--iters", "40"]) == 0
    assert "Feedback schedule" not in capsys.readouterr().out
    assert "feedback_schedule" not in json.loads((tmp_path / "c" / "run.json").read_text())


def test_a_bad_recipe_line_names_the_file_and_line(tmp_path, capsys):
    net = tmp_path / "short.prototxt"
    net.write_text("# a comment\n# seqgen: feedback_refresh 0\n" + SHORT.read_text())
    assert main(["train", str(net), "--iters", "20", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{net}:2: feedback_refresh must be a positive whole number, not '0'" in err, err
    assert not (tmp_path / "a").exists()
