"""A sweep survives real process deaths: a Dask worker SIGKILLed during a run (the run is
retried elsewhere and resumes from its snapshot), and the sweep client interrupted and
started again with the same command (finished runs skipped, the others resumed)."""
import csv
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from helpers import ROOT

from seqgen.runs.folder import LOCK_FILE, snapshot_of
from seqgen.runs.losslog import read_loss_csv

SOLVER = str(ROOT / "prototxt" / "lstm_short_solver.prototxt")
BIN = os.path.dirname(sys.executable)
ITERS, EVERY = 2000, 200


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def holder(folder):
    """The pid training in `folder` now (its lock is held), or None."""
    try:
        fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        return int(os.read(fd, 200).decode().split()[1])
    finally:
        os.close(fd)


def wait_for(what, timeout=120):
    """Poll `what()` until it returns something true; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what.__doc__}")


def training_with_snapshot(out):
    """(folder, pid, snapshot iteration) of a run mid-way with a snapshot, or None."""
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        folder = os.path.join(out, name)
        last = snapshot_of(folder)
        if last and EVERY <= last[0] <= ITERS - 4 * EVERY:
            pid = holder(folder)
            if pid:
                return folder, pid, last[0]
    return None


def sweep_command(out, *extra):
    return [os.path.join(BIN, "seqgen"), "sweep", SOLVER, "--iters", str(ITERS), "--set",
            f"snapshot={EVERY}", "--seeds", "3", "--out", str(out), *extra]


def assert_complete(out, resumed):
    """Every run ok in results.csv; `resumed`'s loss.csv has each iteration exactly once
    and its log says it resumed."""
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows), rows
    its = read_loss_csv(os.path.join(resumed, "loss.csv"))[:, 0]
    assert np.array_equal(its, np.arange(ITERS)), (len(its), its[:3], its[-3:])
    with open(os.path.join(resumed, "train.log")) as f:
        log = f.read()
    assert "Resumed from" in log, log
    return rows, log


def test_a_worker_killed_during_a_run_is_retried_and_resumes_from_its_snapshot(tmp_path):
    port, out = free_port(), tmp_path / "out"
    address = f"tcp://127.0.0.1:{port}"
    dask = os.path.join(BIN, "dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stderr=subprocess.DEVNULL)]
    try:
        procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                    "--host", "127.0.0.1", "--no-dashboard"],
                                   stderr=subprocess.DEVNULL) for _ in range(2)]
        client = subprocess.Popen(sweep_command(out, "--scheduler", address),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(client)
        folder, pid, at = wait_for(lambda: training_with_snapshot(out))
        assert pid in [p.pid for p in procs[1:3]]
        os.kill(pid, signal.SIGKILL)
        text = client.communicate(timeout=180)[0]
        assert client.returncode == 0, text
        rows, log = assert_complete(out, folder)
        resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
                   if line.startswith("Resumed from")]
        assert resumed and resumed[0] >= at, (resumed, at)
        assert f"resumed from iteration {resumed[0]}" in text, text
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_an_interrupted_sweep_started_again_skips_finished_runs_and_resumes_the_others(
        tmp_path):
    out = tmp_path / "out"
    command = sweep_command(out, "--workers", "2")
    # SIGINT as a shell leaves it (an ignored SIGINT of the test process would be inherited)
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, preexec_fn=default_sigint)
    try:
        def one_done_one_mid_way():
            """a finished run and one with a snapshot"""
            mid = training_with_snapshot(out)
            done = list(out.glob("*/scores.json"))
            return mid if mid and done else None
        folder, _, _ = wait_for(one_done_one_mid_way)
        client.send_signal(signal.SIGINT)  # the client kills its local workers itself
        text = client.communicate(timeout=60)[0]
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 130, text
    assert "Run the same command again to continue the sweep" in text, text
    wait_for(lambda: holder(folder) is None, timeout=30)  # the worker has gone
    again = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    skipped = int(again.stdout.split(" finished already")[0].rsplit(": ", 1)[1])
    assert 1 <= skipped <= 2, again.stdout
    assert_complete(out, folder)
