"""Interrupted training, in real processes: Ctrl-C (SIGINT) and SIGTERM during
training finish the iteration, write a snapshot into the run folder, print where it is and
the command that resumes it, and exit 130 / 143; that command continues the run. And
`kill -9` at random moments never leaves a truncated file under a real name: every file is
written to a temporary name in the same folder and renamed into place."""
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import seqgen
from seqgen.app.replot import read_loss_csv
from seqgen.io.atomic import is_temp_name
from seqgen.io.solverstate import read_sidecar, sha256_file, sidecar_path
from seqgen.proto import caffe_pb2

ROOT = Path(__file__).parents[1]
PARAMS = {"lstm1": [(60, 1), (60, 15), (60,)], "ip1": [(1, 15), (1,)]}


class Training:
    """`python -m seqgen ARGS` in `cwd`, its stdout read line by line as it comes."""

    def __init__(self, cwd, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "seqgen", *map(str, args)],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines, self.out = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.out.append(line)
            if text in line:
                return line
        self.proc.kill()
        raise AssertionError(f"no {text!r} in the output: {''.join(self.out)}"
                             f"{self.proc.stderr.read()}")

    def finish(self, timeout=60):
        code = self.proc.wait(timeout=timeout)
        err = self.proc.stderr.read()
        while True:
            line = self.lines.get(timeout=5)
            if line is None:
                break
            self.out.append(line)
        return code, "".join(self.out), err


def copy_examples(cwd):
    (cwd / "prototxt").mkdir()
    for name in ("lstm_short.prototxt", "lstm_short_solver.prototxt"):
        shutil.copy(ROOT / "prototxt" / name, cwd / "prototxt" / name)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_snapshots_and_the_printed_command_resumes(tmp_path, sig, code):
    copy_examples(tmp_path)
    run = Training(tmp_path, "train", "prototxt/lstm_short_solver.prototxt",
                   "--iters", 100000, "--out", "RUN")
    run.wait_for("Iteration 200 ")
    run.proc.send_signal(sig)
    got, out, err = run.finish()
    assert got == code, err
    name = signal.Signals(sig).name
    m = re.fullmatch(rf"seqgen: error: {name} at iteration (\d+): snapshot written to "
                     r"(RUN/lstm_short_iter_\1\.caffemodel); resume with: (.*)\n", err)
    assert m, err
    it, model, command = int(m.group(1)), tmp_path / m.group(2), m.group(3)
    assert it > 200
    assert command == ("seqgen train prototxt/lstm_short_solver.prototxt --resume "
                       f"RUN/lstm_short_iter_{it}.solverstate --out RUN")
    # the snapshot is whole and loads
    state = tmp_path / "RUN" / f"lstm_short_iter_{it}.solverstate"
    assert model.is_file() and state.is_file()
    net = seqgen.Net(str(tmp_path / "prototxt" / "lstm_short.prototxt"), str(model),
                     seqgen.TEST)
    assert np.isfinite(net.params["ip1"][0].data).all()
    assert caffe_pb2.SolverState.FromString(state.read_bytes()).iter == it
    assert sidecar_path(state).endswith(f"lstm_short_iter_{it}.seqgen.npz")
    assert read_sidecar(sidecar_path(state))[0]["iter"] == it
    assert len(read_loss_csv(tmp_path / "RUN" / "loss.csv")) == it
    info = json.loads((tmp_path / "RUN" / "run.json").read_text())
    assert info["iterations"] == it and info["weights"] == str(model)

    # the printed command, a few more iterations
    argv = shlex.split(command)[1:] + ["--iters", str(it + 30)]
    proc = subprocess.run([sys.executable, "-m", "seqgen", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"Resumed from RUN/lstm_short_iter_{it}.solverstate at iteration {it}" in proc.stdout
    assert "30 iterations; run folder RUN" in proc.stdout
    assert (tmp_path / "RUN" / f"lstm_short_iter_{it + 30}.caffemodel").is_file()
    rows = read_loss_csv(tmp_path / "RUN" / "loss.csv")
    assert [int(r[0]) for r in rows] == list(range(it + 30))


def test_second_signal_stops_at_once_without_a_snapshot(tmp_path, monkeypatch, capsys):
    """Two Ctrl-C: the first asks for the end of the iteration and a snapshot, the second
    abandons the iteration; the message names the last snapshot there is. (In process, to
    place the second signal inside an iteration: in a real process two signals sent
    together often arrive as one.)"""
    import seqgen.app.train as experiment
    from seqgen.app.cli import main
    from seqgen.app.progress import Progress

    class Twice(Progress):
        def __call__(self, solver, loss):
            super().__call__(solver, loss)
            if solver.iter == 130:
                os.kill(os.getpid(), signal.SIGINT)  # handled here: stop after this one
                os.kill(os.getpid(), signal.SIGINT)  # and this one abandons it

    monkeypatch.setattr(experiment, "Progress", Twice)
    monkeypatch.chdir(tmp_path)
    copy_examples(tmp_path)
    solver = tmp_path / "prototxt" / "lstm_short_solver.prototxt"
    solver.write_text(solver.read_text().replace("snapshot: 20000", "snapshot: 100"))
    code = main(["train", "prototxt/lstm_short_solver.prototxt", "--out", "RUN"])
    _, err = capsys.readouterr()
    assert code == 130
    assert err == ("seqgen: error: SIGINT twice at iteration 130: stopped at once, without a "
                   "snapshot (a single SIGINT finishes the iteration and writes one); the last "
                   "snapshot is RUN/lstm_short_iter_100.caffemodel (iteration 100); resume "
                   "with: seqgen train prototxt/lstm_short_solver.prototxt --resume "
                   "RUN/lstm_short_iter_100.solverstate --out RUN\n")
    assert sorted(p.name for p in (tmp_path / "RUN").glob("*.solverstate")) == [
        "lstm_short_iter_100.solverstate"]
    # the finished iterations are in the log
    assert len(read_loss_csv(tmp_path / "RUN" / "loss.csv")) == 130


# -- kill -9 -----------------------------------------------------------------------------------

def is_png(data):
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-4] == b"\x00\x00\x00\x00IEND"


def check_run_folder(folder, net_file):
    """Every file under a real name is whole; temporary files cannot pass for real ones."""
    real = {}
    for p in folder.iterdir():
        if is_temp_name(p.name):
            assert p.name.startswith(".") and ".tmp-" in p.name
            assert not p.name.endswith((".caffemodel", ".solverstate", ".npz", ".csv",
                                        ".json", ".png")), p.name
            continue
        real[p.name] = p
    for name, p in real.items():
        data = p.read_bytes()
        if name.endswith(".caffemodel"):
            model = caffe_pb2.NetParameter.FromString(data)
            blobs = {lp.name: [tuple(b.shape.dim) for b in lp.blobs] for lp in model.layer
                     if len(lp.blobs)}
            assert blobs == {k: [tuple(s) for s in v] for k, v in PARAMS.items()}, name
            for lp in model.layer:
                for b in lp.blobs:
                    assert len(b.data) == int(np.prod(b.shape.dim)), name
            seqgen.Net(str(net_file), str(p), seqgen.TEST)  # and it loads
        elif name.endswith(".solverstate"):
            state = caffe_pb2.SolverState.FromString(data)
            assert f"_iter_{state.iter}." in name
            sizes = [len(h.data) for h in state.history]
            assert sizes == [60, 900, 60, 15, 1], name
            assert (folder / state.learned_net).is_file()  # written before the state
            meta, _ = read_sidecar(sidecar_path(p))  # and so was the sidecar
            assert meta["solverstate_sha256"] == sha256_file(p)
            assert meta["model_sha256"] == sha256_file(folder / state.learned_net)
        elif name.endswith(".seqgen.npz"):
            meta, arrays = read_sidecar(p)
            assert f"_iter_{meta['iter']}." in name and "state/lstm1/h" in meta["arrays"]
            assert (folder / meta["model"]).is_file()
        elif name.endswith(".csv"):
            read_loss_csv(p)
        elif name == "run.json":
            json.loads(data)
        elif name == ".seqgen.lock":  # the run's lock on its folder: names the process
            assert data.startswith(b"pid ") or data == b"", data
        elif name.endswith(".png"):
            assert is_png(data), name
        elif name == "caffe.log":  # Caffe's log, appended and flushed line by line
            assert data.startswith(b"Log file created at: "), name
        else:
            raise AssertionError(f"unexpected file {name}")
    return real


def latest_state(folder):
    states = sorted(folder.glob("*.solverstate"),
                    key=lambda p: int(p.name.split("_iter_")[1].split(".")[0]))
    return states[-1] if states else None


def test_kill_9_never_leaves_a_truncated_file(tmp_path):
    shutil.copy(ROOT / "prototxt" / "lstm_short.prototxt", tmp_path / "lstm_short.prototxt")
    (tmp_path / "k_solver.prototxt").write_text(
        'net: "lstm_short.prototxt"\nbase_lr: 0.0001\nmomentum: 0.95\nlr_policy: "fixed"\n'
        'display: 100\nmax_iter: 100000\nsnapshot: 50\nsnapshot_prefix: "lstm_short"\n')
    folder = tmp_path / "RUN"
    rng = random.Random(6)
    temps = 0  # (how many temporary files the kills left, all told: for the report)
    for attempt in range(4):
        args = ["train", "k_solver.prototxt", "--out", "RUN"]
        state = latest_state(folder) if folder.exists() else None
        if state is not None:
            args += ["--resume", state.relative_to(tmp_path)]
        run = Training(tmp_path, *args)
        run.wait_for("run folder RUN")
        if attempt == 3:  # on a loaded machine the others may all come before a snapshot
            run.wait_for("Snapshotting solver state")
        time.sleep(rng.uniform(0.05, 0.8))  # snapshots every 50 iterations: many writes
        run.proc.send_signal(signal.SIGKILL)
        got, out, err = run.finish()
        assert got == -signal.SIGKILL, (got, err)
        check_run_folder(folder, tmp_path / "lstm_short.prototxt")
        temps += sum(1 for p in folder.iterdir() if is_temp_name(p.name))
        last_run = (tmp_path / ".seqgen_last_run").read_text()
        assert last_run.strip() == str(folder)
    # the run goes on from its latest snapshot; the leftovers of killed runs are removed
    state = latest_state(folder)
    assert state is not None, "no kill came late enough for a snapshot"
    it = int(state.name.split("_iter_")[1].split(".")[0])
    left = [p.name for p in folder.iterdir() if is_temp_name(p.name)]
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", "k_solver.prototxt",
                           "--out", "RUN", "--resume", str(state.relative_to(tmp_path)),
                           "--iters", str(it + 20)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"at iteration {it}" in proc.stdout
    check_run_folder(folder, tmp_path / "lstm_short.prototxt")
    assert not [p for p in folder.iterdir() if is_temp_name(p.name)]
    if left:
        assert f"Removed {len(left)} temporary file(s) a killed run left" in proc.stdout
    # the whole loss curve, though no killed run lived to write loss.csv: the rows not yet
    # in it travel in the snapshots' sidecars
    rows = read_loss_csv(folder / "loss.csv")
    assert [int(r[0]) for r in rows] == list(range(it + 20))
