"""Run folders never lose a run: a folder holding another run is refused, a run holds a lock
on its folder, a failed write ends in one line naming the file and the last complete
snapshot (which still resumes), and a resume that would train nothing changes nothing.
Also the hints and defaults that fit the run (next: line, generate's length, warnings)."""
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from helpers import run

import seqgen.solver.snapshots as snapshots
from seqgen.io.atomic import WriteFailed
from seqgen.runs.record import RunRecord

ROOT = Path(__file__).parents[1]
PROTO = ROOT / "prototxt"


def solver_file(folder, net="lstm_short", extra="", max_iter=60, snapshot=20):
    return helpers.solver_file(folder, net, 'base_lr: 0.0001\nmomentum: 0.95\nlr_policy: '
                               f'"fixed"\ndisplay: 0\nmax_iter: {max_iter}\nsnapshot: '
                               f'{snapshot}\nrandom_seed: 3\n', extra)


def digests(folder):
    """{file name: sha256} of a folder's files (the lock file left out)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir()) if p.name != ".seqgen.lock"}


# -- folder reuse ------------------------------------------------------------------------

def test_training_into_a_folder_holding_another_run_is_refused(cwd, capsys):
    short = solver_file(cwd)
    code, _, err = run(capsys, "train", short, "--out", "a")
    assert code == 0, err
    before = digests(cwd / "a")
    long = solver_file(cwd, "lstm_long")
    code, _, err = run(capsys, "train", long, "--out", "a")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "a: the folder holds the run lstm_short at iteration 60" in line
    assert "--resume a/lstm_short_iter_60.solverstate" in line and "another --out" in line
    assert digests(cwd / "a") == before  # nothing of the first run changed


def test_a_folder_with_only_snapshots_is_refused_too(cwd, capsys):
    (cwd / "b").mkdir()
    shutil.copy(ROOT / "tests/fixtures/main_run/runs/short/lstm_short_iter_200.solverstate",
                cwd / "b")
    code, _, err = run(capsys, "train", solver_file(cwd), "--out", "b")
    assert code == 2 and "holds snapshots up to iteration 200" in err


def test_an_empty_folder_may_be_used(cwd, capsys):
    (cwd / "empty").mkdir()
    code, _, err = run(capsys, "train", solver_file(cwd), "--out", "empty")
    assert code == 0, err


# -- a second process --------------------------------------------------------------------

def test_a_second_training_into_a_locked_folder_is_refused_naming_the_process(cwd):
    solver = solver_file(cwd, max_iter=10 ** 7, snapshot=0)
    first = subprocess.Popen([sys.executable, "-m", "seqgen", "train", str(solver), "--out",
                              "c"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        lock = cwd / "c" / ".seqgen.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock.read_text().startswith(f"pid {first.pid} ")
        second = subprocess.run([sys.executable, "-m", "seqgen", "train", str(solver),
                                 "--out", "c"], cwd=cwd, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2
        assert f"another seqgen is training in this folder (pid {first.pid} " in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGINT)  # it snapshots and stops
        first.communicate(timeout=120)
    assert first.returncode == 130


# -- failing writes ----------------------------------------------------------------------

def test_a_failed_snapshot_write_names_the_file_and_the_last_snapshot(cwd, capsys, monkeypatch):
    solver = solver_file(cwd)
    real = snapshots.atomic_files
    calls = []

    def disk_full(contents, **kw):
        calls.append(contents[0][0])
        if len(calls) == 2:  # the second snapshot: the disk is full
            raise WriteFailed(contents[0][0], OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(contents, **kw)

    monkeypatch.setattr(snapshots, "atomic_files", disk_full)
    code, _, err = run(capsys, "train", solver, "--out", "d")
    assert code == 1
    line = err.strip()
    assert "\n" not in line
    assert "cannot write d/lstm_short_iter_40.caffemodel: No space left on device" in line
    assert "the last complete snapshot is d/lstm_short_iter_20.solverstate (iteration 20)" in line
    names = {p.name for p in (cwd / "d").iterdir()}
    assert not any("_iter_40" in n for n in names)  # no part of the failed snapshot
    assert not any(".tmp-" in n for n in names)
    assert RunRecord.read(cwd / "d").solverstate.endswith("lstm_short_iter_20.solverstate")
    monkeypatch.setattr(snapshots, "atomic_files", real)
    code, _, err = run(capsys, "train", solver, "--resume", "d/lstm_short_iter_20.solverstate")
    assert code == 0, err
    assert (cwd / "d" / "lstm_short_iter_60.solverstate").is_file()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs the right to mount, as root has on this project's machines)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_ends_in_one_line_and_the_last_snapshot_resumes(cwd, small_disk):
    solver = solver_file(cwd, max_iter=400, snapshot=100)
    out = small_disk / "run"
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", str(solver), "--out",
                           str(out)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert "the last complete snapshot is" in lines[0] and "Traceback" not in proc.stderr
    last = lines[0].split("the last complete snapshot is ")[1].split(" ")[0]
    assert last.endswith(".solverstate") and Path(last).is_file()
    names = [p.name for p in out.iterdir()]
    for name in names:  # every snapshot on the disk is whole: its three files
        if name.endswith(".caffemodel"):
            stem = name[:-len(".caffemodel")]
            assert f"{stem}.solverstate" in names and f"{stem}.seqgen.npz" in names, names
    moved = cwd / "moved"
    shutil.copytree(out, moved)
    resumed = subprocess.run([sys.executable, "-m", "seqgen", "train", str(solver), "--resume",
                              str(moved / Path(last).name), "--out", str(moved)], cwd=cwd,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (moved / "lstm_short_iter_400.solverstate").is_file()


# -- resume that would train nothing -----------------------------------------------------

@pytest.mark.parametrize("iters", ["20", "10"])
def test_resume_with_iters_at_or_below_the_snapshot_changes_nothing(cwd, capsys, iters):
    solver = solver_file(cwd)
    assert run(capsys, "train", solver, "--iters", "40", "--out", "e")[0] == 0
    (cwd / "e" / "lstm_short_iter_40.solverstate").unlink()  # resume from iteration 20
    before = digests(cwd / "e")
    code, out, err = run(capsys, "train", solver, "--resume", "e/lstm_short_iter_20.solverstate",
                         "--iters", iters)
    assert code == 2
    assert (f"e/lstm_short_iter_20.solverstate: the snapshot is at iteration 20, so --iters "
            f"{iters} leaves nothing to train") in err.strip().splitlines()[-1]
    assert digests(cwd / "e") == before
    assert RunRecord.read(cwd / "e").max_iter == 40


def test_resume_without_out_continues_in_the_snapshots_folder(cwd, capsys):
    solver = solver_file(cwd)
    assert run(capsys, "train", solver, "--iters", "20", "--out", "f")[0] == 0
    code, out, err = run(capsys, "train", solver, "--resume", "f/lstm_short_iter_20.solverstate",
                         "--iters", "40")
    assert code == 0, err
    assert "Continuing in the snapshot's run folder f" in out
    assert (cwd / "f" / "lstm_short_iter_40.solverstate").is_file()
    assert not (cwd / "runs").exists()


# -- hints and defaults that fit the run -------------------------------------------------

def test_next_hint_and_generate_default_length_fit_a_960_step_run(cwd, capsys):
    solver = solver_file(cwd, "lstm_long", max_iter=6, snapshot=0)
    code, out, err = run(capsys, "train", solver, "--out", "g")
    assert code == 0, err
    assert out.strip().endswith("Run folder: g (next: seqgen generate --steps 960)")
    code, out, err = run(capsys, "generate")
    assert code == 0, err
    assert "Generated 960 steps: MSE" in out and "over the first" not in out
    code, out, err = run(capsys, "generate", "--steps", "1000")
    assert code == 0, err
    assert "Generated 1000 steps: MSE" in out
    assert "over the first 960 steps (the true sequence's length)" in out


def test_next_hint_for_npz_data_points_at_python(cwd, capsys):
    import numpy as np

    np.savez(cwd / "arrays.npz", data=np.zeros((640, 1)), label=np.zeros((640, 1)))
    code, out, err = run(capsys, "train", solver_file(cwd, max_iter=4, snapshot=0), "--data",
                         "arrays.npz", "--out", "h")
    assert code == 0, err
    assert "(next: run the trained net from Python: seqgen.Net(NET, WEIGHTS, seqgen.TEST)" in out


def test_prime_at_or_above_steps_warns(cwd, capsys):
    assert run(capsys, "train", solver_file(cwd, max_iter=4, snapshot=0), "--out", "i")[0] == 0
    code, out, err = run(capsys, "generate", "--prime", "100", "--steps", "100")
    assert code == 0, err
    assert "Warning: --prime 100 is not below --steps 100" in err  # (a note: stderr)


def test_fork_compat_without_the_forks_layer_warns(cwd, capsys):
    solver = solver_file(cwd, "bvlc_lstm_short", max_iter=2, snapshot=0)
    code, out, err = run(capsys, "train", solver, "--fork-compat", "--out", "j")
    assert code == 0, err
    assert "Warning: --fork-compat has no effect: the net has no caffe-lstm Lstm layer" in out
    code, out, err = run(capsys, "train", solver_file(cwd, max_iter=2, snapshot=0),
                         "--fork-compat", "--out", "k")
    assert code == 0 and "--fork-compat has no effect" not in out


def test_seed_repeats_a_run(cwd, capsys):
    net = solver_file(cwd, max_iter=30, snapshot=0).read_text().replace("random_seed: 3\n", "")
    (cwd / "noseed_solver.prototxt").write_text(net)
    for out in ("s1", "s2"):
        assert run(capsys, "train", "noseed_solver.prototxt", "--seed", "1234", "--out",
                   out)[0] == 0
    assert RunRecord.read(cwd / "s1").random_seed == 1234
    assert (cwd / "s1" / "loss.csv").read_bytes() == (cwd / "s2" / "loss.csv").read_bytes()
    assert run(capsys, "train", "noseed_solver.prototxt", "--seed", "99", "--out", "s3")[0] == 0
    assert (cwd / "s1" / "loss.csv").read_bytes() != (cwd / "s3" / "loss.csv").read_bytes()
