"""`seqgen sweep`: grids checked before anything runs, run folders that describe
themselves, and a LocalCluster sweep whose bad and diverging runs do not stop the others."""
import csv
import json
import os

import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import read_net, read_solver
from seqgen.sweep.engine import THREAD_VARIABLES
from seqgen.sweep.grid import resolve_key, run_name, typed_values
from seqgen.sweep.sweep import SweepLock, SweepOptions, sweep
from seqgen.sweep.sweepfile import read_sweep_file

SOLVER = str(ROOT / "prototxt" / "lstm_short_solver.prototxt")


@pytest.mark.parametrize("setting, says", [
    ("base_lrr=1e-4", "the solver has no field 'base_lrr'"),
    ("lstm9.num_output=3", "the net has no layer 'lstm9'"),
    ("lstm1.num_outputs=3", "has no field 'num_outputs' in lstm_param"),
    ("lstm1.num_output=1.5", "'1.5' is not a valid value (lstm1.num_output is a whole number)"),
    ("base_lr=fast", "'fast' is not a valid value (base_lr is a number)"),
    ("base_lr=", "base_lr: the grid is empty"),
    ("solver_mode=TPU", "is not a valid value (solver_mode is one of CPU, GPU)"),
    ("random_seed=1,2", "give --seeds instead"),
    ("lstm1.weight_filler=1", "is a message; name one of its fields"),
    ("base_lr=1e-4,0.0001", "given twice"),
])
def test_bad_keys_and_values_are_one_line_errors_before_anything_runs(
        tmp_path, capsys, setting, says):
    out = tmp_path / "sweep"
    assert main(["sweep", SOLVER, "--set", setting, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_keys_reach_solver_and_net_fields_with_their_types():
    solver, net = read_solver(SOLVER), read_net(ROOT / "prototxt" / "lstm_short.prototxt")
    width = resolve_key("lstm1.num_output", solver, net)
    assert width.path == ("lstm_param", "num_output")
    assert typed_values(width, ["30", 45]) == [30, 45]
    std = resolve_key("lstm1.weight_filler.std", solver, net)
    assert typed_values(std, ["0.05"]) == [0.05]
    mode = resolve_key("solver_mode", solver, net)
    assert typed_values(mode, ["CPU"]) == ["CPU"]
    assert run_name("lstm_short", "zero", [(width, 30)], 2) == \
        "lstm_short-zero-lstm1.num_output=30-seed2"


def test_sweep_files_are_checked(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"solvers": [{"solver": SOLVER, "sets": {}}]}))
    with pytest.raises(SeqgenError, match=r"unknown key\(s\) sets"):
        read_sweep_file(str(path))
    path.write_text(json.dumps({"seeds": 0, "solvers": [{"solver": SOLVER}]}))
    with pytest.raises(SeqgenError, match="must be a positive whole number"):
        read_sweep_file(str(path))
    path.write_text("{\"solvers\": [\n")
    with pytest.raises(SeqgenError, match="not JSON"):
        read_sweep_file(str(path))


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path):
    with SweepLock(str(tmp_path)):
        with pytest.raises(SeqgenError, match="another seqgen is sweeping into this folder"):
            sweep(SOLVER, SweepOptions(iters=20, out=str(tmp_path)), log=lambda _: None)


def test_a_local_sweep_reports_failed_and_diverged_runs_and_finishes_the_others(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"iters": 60, "solvers": [{
        "solver": SOLVER, "seeds": 1, "input": ["previous"],
        "set": {"base_lr": [1e-4, 10], "lstm1.num_output": [15, 0], "snapshot": 20}}]}))
    lines = []
    threads = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    swept = sweep(str(path), SweepOptions(out=str(tmp_path / "out"), workers=2), lines.append)
    # the workers' thread budget does not outlive the cluster (numba would refuse to compile)
    assert {var: os.environ.get(var) for var in THREAD_VARIABLES} == threads
    status = {name: r["status"] for name, r in swept.results.items()}
    assert status == {
        "lstm_short-previous-base_lr=0.0001-lstm1.num_output=15-snapshot=20-seed1": "ok",
        "lstm_short-previous-base_lr=0.0001-lstm1.num_output=0-snapshot=20-seed1": "failed",
        "lstm_short-previous-base_lr=10.0-lstm1.num_output=15-snapshot=20-seed1": "diverged",
        "lstm_short-previous-base_lr=10.0-lstm1.num_output=0-snapshot=20-seed1": "failed"}
    failed = swept.results["lstm_short-previous-base_lr=0.0001-lstm1.num_output=0-snapshot"
                           "=20-seed1"]
    assert "num_output must be > 0" in failed["error"] and "\n" not in failed["error"]
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok", "failed", "diverged"}
    ok = next(r for r in rows if r["status"] == "ok")
    assert float(ok["mse"]) > 0 and ok["iterations"] == "60" and ok["lstm1.num_output"] == "15"
    run = tmp_path / "out" / ok["run"]
    assert "num_output: 15" in (run / "lstm_short.prototxt").read_text()
    assert "# seqgen: sequence_length 320" in (run / "lstm_short.prototxt").read_text()
    solver = (run / "lstm_short_solver.prototxt").read_text()
    assert "max_iter: 60" in solver and "random_seed: 1" in solver and "snapshot: 20" in solver
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| lstm_short previous base_lr=0.0001 lstm1.num_output=15 snapshot=20 | 1/1 |" \
        in summary and "diverged" in summary
    html = (tmp_path / "out" / "index.html").read_text()
    assert "data:image/png;base64," in html and ok["run"] in html
    assert any(line.startswith("sweep: 4/4 done, 0 running, 3 failed or diverged")
               for line in lines), lines
