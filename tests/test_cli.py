"""The `seqgen` command line: train / generate / plot, and its error reporting.

Most commands run in-process (seqgen.app.cli.main) in a temporary working folder; exit codes
and "no traceback" are checked in a real subprocess. Numbers are checked against the
caffe-lstm recordings in tests/golden/caffe-lstm/e2e_short_2000.
"""
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run as run_main

from seqgen.app.cli import main
from seqgen.extras import DISTRIBUTION
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net

ROOT = Path(__file__).parents[1]
PROTO = ROOT / "prototxt"
SOLVER = PROTO / "lstm_short_solver.prototxt"
NET = PROTO / "lstm_short.prototxt"
E2E = Path(__file__).parent / "golden" / "caffe-lstm" / "e2e_short_2000"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def is_png(path):
    return Path(path).is_file() and Path(path).read_bytes()[:8] == PNG_MAGIC


def golden_losses():
    return np.loadtxt(E2E / "losses.txt")


# -- train -----------------------------------------------------------------------------------

def test_train_writes_run_folder_and_plot_redraws(cwd, capsys):
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 30, "--out", "RUN")
    assert code == 0, err
    run = cwd / "RUN"
    assert "RUN" in out
    for name in ("run.json", "lstm_short_iter_30.caffemodel", "lstm_short_iter_30.solverstate",
                 "loss.csv"):
        assert (run / name).is_file(), name
    assert is_png(run / "loss.png")
    info = json.loads((run / "run.json").read_text())
    assert Path(info["net"]).resolve() == NET.resolve()
    assert info["input"] == "previous"
    assert info["iterations"] == 30
    assert Path(info["weights"]).resolve() == (run / "lstm_short_iter_30.caffemodel").resolve()
    assert Path(info["solverstate"]).resolve() == \
        (run / "lstm_short_iter_30.solverstate").resolve()
    header, rows = read_csv(run / "loss.csv")
    assert header == ["iteration", "loss"]
    assert len(rows) == 30
    assert [int(r[0]) for r in rows] == list(range(30))
    losses = np.array([float(r[1]) for r in rows])
    assert np.all(np.isfinite(losses)) and np.all(losses > 0)

    # `plot RUN` redraws the figure from the CSV
    (run / "loss.png").unlink()
    code, out, err = run_main(capsys, "plot", "RUN")
    assert code == 0, err
    assert is_png(run / "loss.png")
    assert "loss.png" in err and out == ""  # "Wrote ..." is a note: on stderr


def test_train_then_generate_from_latest_run(cwd, capsys):
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 30)
    assert code == 0, err
    runs = [p for p in (cwd / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.startswith("lstm_short-")
    run = runs[0]

    code, out, err = run_main(capsys, "generate", "--steps", 50)
    assert code == 0, err
    header, rows = read_csv(run / "generated.csv")
    assert header == ["step", "true", "generated"]
    assert len(rows) == 50
    assert [int(r[0]) for r in rows] == list(range(50))
    true = np.array([float(r[1]) for r in rows], np.float32)
    generated = np.array([float(r[2]) for r in rows], np.float32)
    # the run's data is the fork's 320-step sinusoid, as recorded from the fork
    ref = np.loadtxt(E2E / "sequence.txt", dtype=np.float64).astype(np.float32)[:50]
    np.testing.assert_array_equal(true, ref)
    assert np.all(np.isfinite(generated))
    assert is_png(run / "generated.png")
    m = re.search(r"MSE ([0-9.eE+-]+)", out)
    assert m, out
    mse = np.mean((generated.astype(np.float64) - true.astype(np.float64)) ** 2)
    assert float(m.group(1)) == pytest.approx(mse, rel=1e-5)

    # `plot` (latest run) redraws both figures
    (run / "generated.png").unlink()
    (run / "loss.png").unlink()
    code, out, err = run_main(capsys, "plot")
    assert code == 0, err
    assert is_png(run / "generated.png") and is_png(run / "loss.png")


def test_fork_compat_zero_input_reproduces_caffe_losses(cwd, capsys):
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 30, "--out", "RUN",
                              "--weights", E2E / "initial.caffemodel",
                              "--input", "zero", "--fork-compat")
    assert code == 0, err
    info = json.loads((cwd / "RUN" / "run.json").read_text())
    assert info["input"] == "zero" and info["fork_compat"] is True
    _, rows = read_csv(cwd / "RUN" / "loss.csv")
    ours = np.array([float(r[1]) for r in rows])
    ref = golden_losses()[:30]
    assert [int(r[0]) for r in rows] == ref[:, 0].astype(int).tolist()
    np.testing.assert_allclose(ours, ref[:, 1], rtol=5e-6)


def test_zero_input_default_gradient_departs_from_the_fork(cwd, capsys):
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 30, "--out", "RUN",
                              "--weights", E2E / "initial.caffemodel", "--input", "zero")
    assert code == 0, err
    _, rows = read_csv(cwd / "RUN" / "loss.csv")
    ours = np.array([float(r[1]) for r in rows])
    ref = golden_losses()[:30, 1]
    # iteration 0 runs from the same weights and a zero state: same loss as Caffe
    assert ours[0] == pytest.approx(ref[0], rel=5e-6)
    # later the fork's extra dW_h term (carried h_0 at a restart) is left out
    assert np.max(np.abs(ours / ref - 1)) > 1e-4


def test_generate_with_caffe_weights_matches_caffe(cwd, capsys):
    code, out, err = run_main(capsys, "generate", "--weights", E2E / "iter2000.caffemodel",
                              "--net", NET, "--input", "zero", "--steps", 320, "--out", "GEN")
    assert code == 0, err
    header, rows = read_csv(cwd / "GEN" / "generated.csv")
    assert header == ["step", "true", "generated"]
    assert len(rows) == 320
    ours = np.array([[float(r[1]), float(r[2])] for r in rows])
    ref = np.loadtxt(E2E / "generated.txt")
    np.testing.assert_array_equal(ours[:, 0].astype(np.float32), ref[:, 0].astype(np.float32))
    np.testing.assert_allclose(ours[:, 1], ref[:, 1], rtol=0, atol=1e-5)
    m = re.search(r"MSE ([0-9.eE+-]+)", out)
    assert m, out
    assert float(m.group(1)) == pytest.approx(np.mean((ref[:, 1] - ref[:, 0]) ** 2), rel=1e-3)
    assert is_png(cwd / "GEN" / "generated.png")


def test_net_file_uses_the_solver_beside_it(cwd, capsys):
    code, out, err = run_main(capsys, "train", NET, "--iters", 5, "--out", "RUN")
    assert code == 0, err
    assert "solver beside" in out and "lstm_short_solver.prototxt" in out
    assert (cwd / "RUN" / "lstm_short_iter_5.caffemodel").is_file()
    _, rows = read_csv(cwd / "RUN" / "loss.csv")
    assert len(rows) == 5


def test_net_without_solver_uses_fork_settings(cwd, capsys):
    shutil.copy(NET, cwd / "mynet.prototxt")
    code, out, err = run_main(capsys, "train", "mynet.prototxt", "--iters", 5, "--out", "RUN")
    assert code == 0, err
    assert "No mynet_solver.prototxt" in out
    assert "caffe-lstm example's solver settings" in out
    assert (cwd / "RUN" / "mynet_iter_5.caffemodel").is_file()


def test_resume_via_cli(cwd, capsys):
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 5, "--out", "RUN",
                              "--weights", E2E / "initial.caffemodel", "--input", "zero")
    assert code == 0, err
    code, out, err = run_main(capsys, "train", SOLVER, "--iters", 8, "--out", "RUN",
                              "--resume", cwd / "RUN" / "lstm_short_iter_5.solverstate",
                              "--input", "zero")
    assert code == 0, err
    assert (cwd / "RUN" / "lstm_short_iter_8.caffemodel").is_file()
    assert json.loads((cwd / "RUN" / "run.json").read_text())["iterations"] == 8


# -- errors: exit code 2, one line, no traceback ---------------------------------------------

def _net_with(old, new):
    text = NET.read_text()
    assert old in text
    return text.replace(old, new)


def _case_unknown_type(d):
    (d / "net.prototxt").write_text(_net_with('type: "Lstm"', 'type: "Lstmm"'))
    # the message lists the known types: Lstm (as a whole word) and InnerProduct among them
    return (["train", "net.prototxt", "--iters", "1"],
            ["Lstmm", re.compile(r"\bLstm\b"), "InnerProduct"])


def _case_missing_bottom(d):
    (d / "net.prototxt").write_text(_net_with('bottom: "lstm1"', 'bottom: "lstm9"'))
    return ["train", "net.prototxt", "--iters", "1"], ["net.prototxt", "'ip1'", "'lstm9'"]


def _case_malformed(d):
    lines = NET.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if 'name: "ip1"' in line)
    lines[i] = '  name "ip1"'  # missing colon
    (d / "net.prototxt").write_text("\n".join(lines) + "\n")
    return ["train", "net.prototxt", "--iters", "1"], [f"net.prototxt:{i + 1}:"]


def _case_weights_do_not_fit(d):
    small = Net(parse_net_text(NET.read_text().replace("num_output: 15", "num_output: 7"),
                               "h7"), TRAIN)
    small.save(str(d / "h7.caffemodel"))
    return (["train", str(SOLVER), "--iters", "1", "--out", "RUN", "--weights", "h7.caffemodel"],
            ["h7.caffemodel", "'lstm1'", "(28, 1)", "(60, 1)"])


def _case_nonexistent(d):
    return ["train", "nope_solver.prototxt", "--iters", "1"], ["nope_solver.prototxt"]


def _case_nonexistent_weights(d):
    return (["generate", "--weights", "nope.caffemodel", "--net", str(NET), "--steps", "5"],
            ["nope.caffemodel"])


def _case_nan_data(d):
    (d / "bad.csv").write_text("value\n0.1\n0.2\nnan\n0.3\n")
    return (["train", str(SOLVER), "--iters", "1", "--out", "RUN", "--data", "bad.csv"],
            ["bad.csv", "line 4"])


def _case_fork_compat_batch2(d):
    (d / "net2.prototxt").write_text(
        _net_with("num_output: 15", "num_output: 15\n    batch_size: 2"))
    return (["train", "net2.prototxt", "--iters", "1", "--fork-compat", "--out", "RUN"],
            ["batch_size"])


CASES = {
    "unknown_type": _case_unknown_type,
    "missing_bottom": _case_missing_bottom,
    "malformed": _case_malformed,
    "weights_do_not_fit": _case_weights_do_not_fit,
    "nonexistent": _case_nonexistent,
    "nonexistent_weights": _case_nonexistent_weights,
    "nan_data": _case_nan_data,
    "fork_compat_batch2": _case_fork_compat_batch2,
}


def run_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "seqgen", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2(case, tmp_path):
    args, expected = CASES[case](tmp_path)
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("seqgen: error:"), lines[0]
    for text in expected:
        if isinstance(text, re.Pattern):
            assert text.search(lines[0]), (text, lines[0])
        else:
            assert text in lines[0], (text, lines[0])


def test_bad_input_in_process(cwd, capsys):
    args, expected = _case_weights_do_not_fit(cwd)
    code, out, err = run_main(capsys, *args)
    assert code == 2
    assert err.startswith("seqgen: error:") and err.count("\n") == 1
    for text in expected:
        assert text in err


def test_debug_shows_the_traceback(tmp_path):
    args, expected = _case_unknown_type(tmp_path)
    proc = run_cli(["--debug", *args], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "SeqgenError" in proc.stderr
    assert "Lstmm" in proc.stderr


def test_module_has_main_guard():
    text = (ROOT / "seqgen" / "app" / "cli.py").read_text()
    assert 'if __name__ == "__main__":' in text


def test_version_prints_the_package_version_and_exits_0(capsys, tmp_path):
    import importlib.metadata

    import seqgen

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"seqgen {seqgen.__version__}\n"
    assert seqgen.__version__ == importlib.metadata.version(DISTRIBUTION)
    proc = run_cli(["--version"], tmp_path)
    assert proc.returncode == 0 and re.fullmatch(r"seqgen \d+\.\d+\.\d+\S*\n", proc.stdout)
