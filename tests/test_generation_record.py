"""seqgen.app.generation_record and `seqgen plot`: generate's files (generated.csv,
generated.json, generated.png) and their redrawing with the same titles."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqgen.app import generation_record, replot
from seqgen.app.cli import main
from seqgen.app.generation_record import (
    read_generation_record,
    replot_generation,
    write_generation_figure,
)
from seqgen.app.plot import write_generated_csv
from seqgen.errors import SeqgenError

FIXTURES = Path(__file__).parent / "fixtures"


def _sequences(steps=50, known=30):
    gen = np.sin(np.arange(steps) / 5.0).astype(np.float32)
    true = (np.sin(np.arange(known) / 5.0) + 0.1).astype(np.float32)
    return gen, true


def test_write_generation_figure_writes_the_three_files_and_returns_the_errors(tmp_path):
    gen, true = _sequences()
    result = write_generation_figure(tmp_path, "lstm_short", gen, true, 10, "previous", 50,
                                     weights=tmp_path / "w.caffemodel")
    assert result["mse"] == pytest.approx(0.01, rel=1e-5)
    assert result["max_abs_error"] == pytest.approx(0.1, rel=1e-5)
    assert result["mse_steps"] == 30 and result["steps"] == 50
    record = json.loads((tmp_path / "generated.json").read_text())
    assert record == {"name": "lstm_short", "steps": 50, "mode": "previous", "prime": 10,
                      "mse": result["mse"], "max_abs_error": result["max_abs_error"],
                      "mse_steps": 30, "weights": str(tmp_path / "w.caffemodel")}
    assert (tmp_path / "generated.csv").read_text().splitlines()[0] == "step,true,generated"
    assert (tmp_path / "generated.png").read_bytes()[:4] == b"\x89PNG"
    title = result["figure"].axes[0].get_title()
    assert title == ("lstm_short: 50 steps, primed with 10 true steps, then free-running "
                     "(input mode 'previous')\n"
                     f"MSE {result['mse']:.4g} over the first 30 of 50 steps, "
                     f"max abs error {result['max_abs_error']:.4g}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generated.csv", "generated.json", "generated.png"]


def test_a_longer_true_sequence_is_cut_and_no_true_sequence_has_no_errors(tmp_path):
    gen, _ = _sequences()
    long_true = np.sin(np.arange(80) / 5.0)
    result = write_generation_figure(tmp_path, "n", gen, long_true, 0, "zero")
    assert result["mse_steps"] == 50 and result["mse"] < 1e-12
    assert result["figure"].axes[0].get_title() == (
        f"n: 50 steps free-running (input mode 'zero')\nMSE {result['mse']:.4g}, "
        f"max abs error {result['max_abs_error']:.4g}")
    bare = write_generation_figure(tmp_path / "..", "n", gen, None, 0, "zero")
    assert "mse" not in bare and bare["mse_steps"] == 0
    assert bare["figure"].axes[0].get_title() == "n: 50 steps free-running (input mode 'zero')"
    assert json.loads(Path(bare["json"]).read_text())["mse"] is None
    with pytest.raises(ValueError, match="steps=40"):
        write_generation_figure(tmp_path, "n", gen, None, 0, "zero", 40)


def test_seqgen_plot_redraws_the_figure_generate_drew(tmp_path, monkeypatch):
    gen, true = _sequences()
    drawn = write_generation_figure(tmp_path, "lstm_short", gen, true, 10, "previous", 50)
    first = (tmp_path / "generated.png").read_bytes()
    (tmp_path / "generated.png").unlink()
    titles = []
    original = generation_record.plot_generation

    def spy(*args, **kwargs):
        titles.append((args[3], kwargs["title"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(generation_record, "plot_generation", spy)
    assert main(["plot", str(tmp_path)]) == 0
    assert titles == [(10, drawn["figure"].axes[0].get_title())]
    assert (tmp_path / "generated.png").read_bytes() == first
    assert main(["plot", str(tmp_path / "generated.csv")]) == 0
    assert (tmp_path / "generated.png").read_bytes() == first


def test_a_csv_without_its_record_takes_the_name_from_run_json(tmp_path):
    gen, true = _sequences()
    write_generated_csv(tmp_path / "generated.csv", gen, true)
    (tmp_path / "run.json").write_text(json.dumps({"name": "lstm_long", "input": "zero"}))
    fig = replot_generation(str(tmp_path / "generated.csv"), tmp_path / "generated.png")
    title = fig.axes[0].get_title()
    assert title.startswith("lstm_long: 50 steps generated\nMSE 0.01 over the first 30 of 50 "
                            "steps, max abs error 0.1"), title
    (tmp_path / "run.json").unlink()
    fig = replot_generation(str(tmp_path / "generated.csv"), tmp_path / "generated.png")
    assert fig.axes[0].get_title().startswith("50 steps generated\nMSE ")


def test_a_broken_record_is_named(tmp_path):
    gen, true = _sequences()
    write_generation_figure(tmp_path, "n", gen, true, 0, "previous")
    (tmp_path / "generated.json").write_text("{not json")
    with pytest.raises(SeqgenError, match="generated.json"):
        replot_generation(str(tmp_path / "generated.csv"), tmp_path / "generated.png")
    (tmp_path / "generated.json").write_text("[1, 2]")
    with pytest.raises(SeqgenError, match="not a generation record"):
        read_generation_record(tmp_path / "generated.json")
    (tmp_path / "generated.json").write_text('{"name": 3, "prime": true, "steps": 50}')
    assert read_generation_record(tmp_path / "generated.json") == {"steps": 50}


def _loss_folder(folder, run):
    folder.mkdir()
    rows = "\n".join(f"{k},{0.3 * 0.99 ** k}" for k in range(200))
    (folder / "loss.csv").write_text("iteration,loss\n" + rows + "\n")
    (folder / "test_loss.csv").write_text("iteration,loss\n199,0.5\n")
    if run is not None:
        (folder / "run.json").write_text(json.dumps(run))


@pytest.mark.parametrize("run,title", [
    ({"name": "lstm_long"}, "lstm_long: loss"),
    ({"name": "lstm_long", "diverged": {"iteration": 150, "where": "loss"}},
     "lstm_long: loss (diverged)"),
    (None, "loss"),
])
def test_seqgen_plot_titles_the_loss_as_training_did(tmp_path, monkeypatch, run, title):
    _loss_folder(tmp_path / "RUN", run)
    figures = []
    original = replot.plot_run_losses
    monkeypatch.setattr(replot, "plot_run_losses",
                        lambda *a, **k: figures.append(original(*a, **k)))
    # a folder without run.json is not a run folder: its loss.csv is named instead
    replot.replot(str(tmp_path / "RUN" / ("loss.csv" if run is None else "")))
    (fig,) = figures
    assert fig.axes[0].get_title() == title
    assert fig.axes[0].get_yscale() == "log"
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "test loss (held out)" in labels


def test_a_0_1_0_run_folder_plots_with_its_name(tmp_path, monkeypatch):
    run = tmp_path / "short"
    shutil.copytree(FIXTURES / "main_run" / "runs" / "short", run)
    figures = []
    original = generation_record.plot_generation
    monkeypatch.setattr(generation_record, "plot_generation",
                        lambda *a, **k: figures.append(original(*a, **k)))
    replot.replot(str(run))
    assert figures[0].axes[0].get_title().startswith("lstm_short: 320 steps generated\nMSE ")
