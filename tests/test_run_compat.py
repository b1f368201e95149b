"""Compatibility with what seqgen 0.1.0 wrote (tests/fixtures/README.md): a fixed-seed run
today writes the same log, record and sidecars, and a run folder that version left still
resumes, plots and generates after its project tree has moved."""
import filecmp
import shutil
from pathlib import Path

import pytest
from run_digest import file_digest, run_json_digest, sidecar_digest

from seqgen.app.cli import main

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"

# Recorded with seqgen 0.1.0 (commit 50201f6) from
# `seqgen train lstm_long_solver.prototxt --holdout 320 --out runs/long`.
MAIN_LOSS_CSV = "b51fcaa6da322fdc12a04e0c36f675dca05f09a9e5eadf47028adf8ddda9c373"
MAIN_TEST_LOSS_CSV = "f6eca9004293bef96ed8ffa2eeadf8ee0353d7f772eb0b1c29a9a59062653a81"
MAIN_RUN_JSON = "1cf0642a62aadd4e94a395a59a7566d1c86c2aee2496221af4c313a62a0f9d2b"
MAIN_SIDECARS = {
    100: "aa4b16ea3d00c3a0078d776f30a18504e74bc6c664370f28f445802902035f98",
    200: "42bdad172a82dbfc7b016b0f432fa39d5c481f092471f5578b219934f6c44c6a",
    300: "c5092d0c520066a90b1e19a8fd0ccbe5debfbc8d5ae6ac0d3162f952f4b6714d",
}


def test_fixed_seed_holdout_run_writes_what_0_1_0_wrote(tmp_path, monkeypatch):
    (tmp_path / "prototxt").mkdir()
    # (the net as 0.1.0 shipped it: today's carries a feedback recipe of its own)
    shutil.copy(FIXTURES / "compat_long" / "lstm_long.prototxt", tmp_path / "prototxt")
    shutil.copy(FIXTURES / "compat_long" / "lstm_long_solver.prototxt", tmp_path / "prototxt")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "prototxt/lstm_long_solver.prototxt", "--holdout", "320",
                 "--out", "runs/long"]) == 0
    run = tmp_path / "runs" / "long"
    assert file_digest(run / "loss.csv") == MAIN_LOSS_CSV
    assert file_digest(run / "test_loss.csv") == MAIN_TEST_LOSS_CSV
    assert run_json_digest(run) == MAIN_RUN_JSON
    for k, digest in MAIN_SIDECARS.items():
        assert sidecar_digest(run / f"lstm_long_iter_{k}.seqgen.npz") == digest, k


@pytest.fixture
def moved_run(tmp_path, monkeypatch):
    """The 0.1.0 project tree, copied to a new place (its run.json names /tmp/fxs)."""
    tree = tmp_path / "project"
    shutil.copytree(FIXTURES / "main_run", tree)
    monkeypatch.chdir(tree)
    return tree


def test_a_0_1_0_run_folder_resumes_exactly(moved_run):
    run = moved_run / "runs" / "short"
    original = moved_run / "original_400.caffemodel"
    shutil.move(run / "lstm_short_iter_400.caffemodel", original)
    for suffix in (".solverstate", ".seqgen.npz"):
        (run / f"lstm_short_iter_400{suffix}").unlink()
    assert main(["train", "prototxt/lstm_short_solver.prototxt", "--resume",
                 "runs/short/lstm_short_iter_200.solverstate", "--out", "runs/short"]) == 0
    assert filecmp.cmp(run / "lstm_short_iter_400.caffemodel", original, shallow=False)


def test_a_0_1_0_run_folder_plots(moved_run, capsys):
    run = moved_run / "runs" / "short"
    for png in ("loss.png", "generated.png"):
        (run / png).unlink()
    assert main(["plot", "runs/short"]) == 0
    assert (run / "loss.png").stat().st_size > 0
    assert (run / "generated.png").stat().st_size > 0


def test_a_0_1_0_run_folder_generates(moved_run, capsys):
    run = moved_run / "runs" / "short"
    recorded = (run / "generated.csv").read_text()
    (run / "generated.csv").unlink()
    assert main(["generate", "--weights", "runs/short/lstm_short_iter_400.caffemodel"]) == 0
    assert (run / "generated.csv").read_text() == recorded
    assert "Generated 320 steps: MSE 0.148744" in capsys.readouterr().out
