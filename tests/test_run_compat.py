"""Compatibility with what seqgen 0.1.0 wrote (tests/fixtures/README.md): a fixed-seed run
today writes the same log, record and sidecars, and a run folder that version left still
resumes, plots and generates after its project tree has moved.

The recordings were made on one machine; these tests run on any x86-64 machine, whose
float32 results differ in the last bits (numba compiles for the CPU it runs on). So the
structure of every file (columns, iterations, keys, random generator states, shapes) is
compared exactly and the numbers to a tolerance (docs/testing.md says which is which)."""
import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqgen.app.cli import main
from seqgen.io.weights import read_net_binary

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "compat_long" / "recorded"

# run.json keys that hold times, file system paths or the end of a float32 trajectory
_RUN_SKIP = {"train_seconds", "net", "solver", "weights", "solverstate", "data_abs",
             "resumed_from", "final_loss", "final_test_loss"}

_SNAPSHOT_DIGESTS = ("model_sha256", "solverstate_sha256")
_LOG_TAIL = ("extra/loss_its", "extra/loss_vals", "extra/test_its", "extra/test_vals")
# lstm_long's trajectory is chaotic: the per-iteration losses of one seed on an AVX2, an
# AVX-512 and a generic (no AVX) build part by 3e-7, 3e-5 and 0.4 relative at iterations
# 0, 5 and 10 (the fixture's run under seqgen 0.1.0 and today's, 2026-12-06). The first
# iterations are compared; the rest must be there, in order, and finite.
_SAME_LOSS_ITERATIONS = 3
_LOSS_RTOL = 1e-5
# lstm_short from iteration 200 to 400, and its 320 free-running steps, are not chaotic:
# across those three builds the weights differ by at most 6e-8 and the outputs by 2e-8.
_SCALE_TOL = 1e-5


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def within_scale(got, want, tol=_SCALE_TOL):
    """Element-wise agreement to tol of the array's largest magnitude (as the golden tests)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    return float(np.abs(got - want).max(initial=0.0)) <= tol * scale


def check_loss_log(path, recorded, same=_SAME_LOSS_ITERATIONS):
    header, rows = read_csv(path)
    want_header, want_rows = read_csv(recorded)
    assert header == want_header
    assert [r[0] for r in rows] == [r[0] for r in want_rows], "iterations differ"
    for (_, got), (it, want) in zip(rows[:same], want_rows[:same]):
        assert float(got) == pytest.approx(float(want), rel=_LOSS_RTOL), f"iteration {it}"
    assert all(math.isfinite(float(r[1])) for r in rows)


def run_record(folder):
    with open(Path(folder) / "run.json") as f:
        info = json.load(f)
    return {k: v for k, v in info.items() if k not in _RUN_SKIP}


def sidecar(path):
    """The sidecar's meta and its arrays by key."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        arrays = {key: z[name] for key, name in meta["arrays"].items()}
    return meta, arrays


def check_sidecar(path, recorded, upto, loss_log):
    meta, arrays = sidecar(path)
    want_meta, want_arrays = sidecar(recorded)
    for key in _SNAPSHOT_DIGESTS:  # the digests of the snapshot's float32 files
        assert len(meta.pop(key)) == len(want_meta.pop(key)) == 64, key
    # every other field, the random generators' states among them, is machine-independent
    assert meta == want_meta
    assert arrays.keys() == want_arrays.keys()
    for key, want in want_arrays.items():
        if key in _LOG_TAIL:
            continue
        got = arrays[key]
        assert (got.dtype, got.shape) == (want.dtype, want.shape), key
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            assert np.isfinite(got).all(), key
    check_log_tail(arrays, upto, loss_log)


def check_log_tail(arrays, upto, loss_log):
    """The loss rows not yet in loss.csv when the snapshot was taken: how many depends on
    the clock (the log is written every LOG_EVERY_SECONDS), so they are checked against
    the run's own loss.csv, which holds every row in the end."""
    its, vals = arrays["extra/loss_its"], arrays["extra/loss_vals"]
    np.testing.assert_array_equal(its, np.arange(upto - len(its), upto))
    _, rows = read_csv(loss_log)
    logged = np.array([float(r[1]) for r in rows], np.float32)
    np.testing.assert_allclose(vals, logged[its], rtol=1e-8)  # the csv's 9 digits


def test_fixed_seed_holdout_run_writes_what_0_1_0_wrote(tmp_path, monkeypatch):
    (tmp_path / "prototxt").mkdir()
    # (the net as 0.1.0 shipped it: today's carries a feedback recipe of its own)
    shutil.copy(FIXTURES / "compat_long" / "lstm_long.prototxt", tmp_path / "prototxt")
    shutil.copy(FIXTURES / "compat_long" / "lstm_long_solver.prototxt", tmp_path / "prototxt")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "prototxt/lstm_long_solver.prototxt", "--holdout", "320",
                 "--out", "runs/long"]) == 0
    run = tmp_path / "runs" / "long"
    check_loss_log(run / "loss.csv", RECORDED / "loss.csv")
    check_loss_log(run / "test_loss.csv", RECORDED / "test_loss.csv", same=0)
    assert run_record(run) == run_record(RECORDED)
    for k in (100, 200, 300):
        name = f"lstm_long_iter_{k}.seqgen.npz"
        check_sidecar(run / name, RECORDED / name, k, run / "loss.csv")


def test_the_compat_checks_can_fail(tmp_path):
    """A loss changed in its fourth digit, or a generator state changed, is caught."""
    header, rows = read_csv(RECORDED / "loss.csv")
    rows[1][1] = repr(float(rows[1][1]) * 1.0001)
    bad = tmp_path / "loss.csv"
    with open(bad, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    with pytest.raises(AssertionError):
        check_loss_log(bad, RECORDED / "loss.csv")
    recorded = RECORDED / "lstm_long_iter_100.seqgen.npz"
    check_sidecar(recorded, recorded, 100, RECORDED / "loss.csv")  # the control
    meta, arrays = sidecar(recorded)
    meta["extra"]["feedback"]["rng"]["state"]["state"] += 1
    names = meta["arrays"]
    np.savez(tmp_path / "bad.npz", meta=np.array(json.dumps(meta)),
             **{names[k]: a for k, a in arrays.items()})
    with pytest.raises(AssertionError):
        check_sidecar(tmp_path / "bad.npz", recorded, 100, RECORDED / "loss.csv")
    assert not within_scale([1.0, 2.0 + 1e-4], [1.0, 2.0])


@pytest.fixture
def moved_run(tmp_path, monkeypatch):
    """The 0.1.0 project tree, copied to a new place (its run.json names /tmp/fxs)."""
    tree = tmp_path / "project"
    shutil.copytree(FIXTURES / "main_run", tree)
    monkeypatch.chdir(tree)
    return tree


def caffemodel_blobs(path):
    return {(layer.name, i): np.asarray(b.data, np.float32)
            for layer in read_net_binary(str(path)).layer for i, b in enumerate(layer.blobs)}


def test_a_0_1_0_run_folder_resumes(moved_run):
    run = moved_run / "runs" / "short"
    original = moved_run / "original_400.caffemodel"
    shutil.move(run / "lstm_short_iter_400.caffemodel", original)
    for suffix in (".solverstate", ".seqgen.npz"):
        (run / f"lstm_short_iter_400{suffix}").unlink()
    assert main(["train", "prototxt/lstm_short_solver.prototxt", "--resume",
                 "runs/short/lstm_short_iter_200.solverstate", "--out", "runs/short"]) == 0
    got = caffemodel_blobs(run / "lstm_short_iter_400.caffemodel")
    want = caffemodel_blobs(original)
    assert got.keys() == want.keys()
    for key in want:
        assert within_scale(got[key], want[key]), key


def test_a_0_1_0_run_folder_plots(moved_run, capsys):
    run = moved_run / "runs" / "short"
    for png in ("loss.png", "generated.png"):
        (run / png).unlink()
    assert main(["plot", "runs/short"]) == 0
    assert (run / "loss.png").stat().st_size > 0
    assert (run / "generated.png").stat().st_size > 0


def test_a_0_1_0_run_folder_generates(moved_run, capsys):
    run = moved_run / "runs" / "short"
    want_header, want = read_csv(run / "generated.csv")
    (run / "generated.csv").unlink()
    assert main(["generate", "--weights", "runs/short/lstm_short_iter_400.caffemodel"]) == 0
    header, got = read_csv(run / "generated.csv")
    assert header == want_header
    assert [r[:2] for r in got] == [r[:2] for r in want]  # steps and the true sequence
    assert within_scale([float(r[2]) for r in got], [float(r[2]) for r in want])
    out = capsys.readouterr().out
    mse = float(out.split("Generated 320 steps: MSE ")[1].split()[0].rstrip(","))
    assert mse == pytest.approx(0.148744, rel=1e-4)  # 0.1.0 printed 0.148744
