"""seqgen.sweep.cores: runs of different sweeps share the machine's cores, never holding more
slots than it has; a run waits, and says so, while other runs hold them."""
import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

from helpers import ROOT

from seqgen.sweep import cores
from seqgen.sweep.cores import core_slots

SOLVER = str(ROOT / "prototxt" / "lstm_short_solver.prototxt")


def _hold(folder, need, out, seconds):
    with core_slots(need, log=lambda line: None, cores=2, folder=folder):
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    with open(out, "w") as f:
        json.dump([start, end, need], f)


def most_at_once(intervals):
    """The largest sum of slots held at one moment, from (start, end, slots) intervals."""
    events = sorted([(s, n) for s, _, n in intervals] + [(e, -n) for _, e, n in intervals],
                    key=lambda x: (x[0], x[1]))  # at a tie, a release counts first
    held = most = 0
    for _, change in events:
        held += change
        most = max(most, held)
    return most


def test_runs_of_different_sweeps_never_hold_more_cores_than_the_machine(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # as unrelated processes are
    needs = [1, 1, 2, 1, 1]
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), n, str(tmp_path / f"{i}.json"), 0.4))
             for i, n in enumerate(needs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    intervals = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(len(needs))]
    assert most_at_once(intervals) <= 2
    # and they did share: the five took less than one after the other would (2.4 s)
    span = max(e for _, e, _ in intervals) - min(s for s, _, _ in intervals)
    assert span < 0.4 * len(needs)


def test_a_run_waits_for_its_slots_and_says_so(tmp_path):
    other = open(tmp_path / "core-1.lock", "a")  # slot 1 held by another run
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lines, sleeps = [], []

    def sleep(seconds):  # the other run ends while we wait
        sleeps.append(seconds)
        other.close()

    with core_slots(2, log=lines.append, cores=2, folder=str(tmp_path), sleep=sleep) as got:
        assert got == 2
        assert _taken(tmp_path, 2) == [True, True]
    assert _taken(tmp_path, 2) == [False, False]
    assert lines[0].startswith("Waiting for 2 of this machine's 2 core(s)")
    assert lines[1].startswith("Got 2 core(s) after")
    assert sleeps == [cores.POLL_SECONDS]


def _taken(folder, n):
    """Which slots are locked, seen from a descriptor of our own."""
    taken = []
    for slot in range(n):
        with open(folder / f"core-{slot}.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken.append(False)
            except OSError:
                taken.append(True)
    return taken


def test_a_killed_run_leaves_no_slot_behind(tmp_path):
    code = ("import sys, time; from seqgen.sweep.cores import core_slots\n"
            f"with core_slots(2, cores=2, folder={str(tmp_path)!r}):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    lines = []
    waited = []
    with core_slots(1, log=lines.append, cores=2, folder=str(tmp_path),
                    sleep=lambda s: (waited.append(s), os.kill(child.pid, signal.SIGKILL),
                                     child.wait())):
        pass
    assert waited and lines[0].startswith("Waiting for 1 of this machine's 2 core(s)")


def test_a_sweep_run_waits_while_another_sweep_holds_the_cores(tmp_path, monkeypatch):
    folder = tmp_path / "slots"
    monkeypatch.setenv("SEQGEN_CORE_LOCKS", str(folder))
    n = os.cpu_count() or 1
    code = ("import sys; from seqgen.sweep.cores import core_slots\n"
            f"with core_slots({n}):\n    print('held', flush=True); sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "seqgen", "sweep", SOLVER, "--seeds", "1",
                              "--set", "max_iter=20", "--workers", "1", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any("Waiting for" in p.read_text() for p in out.glob("*/train.log")):
        assert sweep.poll() is None and time.monotonic() < deadline, "the run did not wait"
        time.sleep(0.2)
    assert not list(out.glob("*/*.caffemodel"))  # nothing trained while it waited
    holder.communicate("go\n")  # the other sweep ends
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, stderr
    log = next(out.glob("*/train.log")).read_text()
    # one worker has all the cores as its thread budget (engine.dask_client), so all slots
    assert f"Waiting for {n} of this machine's {n} core(s)" in log
    assert f"Got {n} core(s) after" in log and "== ok" in log


def test_a_sweep_given_one_thread_per_run_takes_one_slot(tmp_path, monkeypatch):
    """--workers 1 --threads 1: the run holds one slot, so it trains while another sweep
    holds all the others (without --threads it would wait for all of them)."""
    folder = tmp_path / "slots"
    monkeypatch.setenv("SEQGEN_CORE_LOCKS", str(folder))
    others = (os.cpu_count() or 1) - 1
    code = ("import sys; from seqgen.sweep.cores import core_slots\n"
            f"with core_slots({max(others, 1)}):\n"
            "    print('held', flush=True); sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) if others else None
    try:
        assert holder is None or holder.stdout.readline().strip() == "held"
        done = subprocess.run([sys.executable, "-m", "seqgen", "sweep", SOLVER, "--seeds", "1",
                               "--set", "max_iter=20", "--workers", "1", "--threads", "1",
                               "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=300)
    finally:
        if holder is not None:
            holder.communicate("go\n")
    assert done.returncode == 0, done.stderr
    assert "1 worker process(es), 1 thread(s) each" in done.stdout
    log = next((tmp_path / "out").glob("*/train.log")).read_text()
    assert "Waiting for" not in log and "== ok" in log
