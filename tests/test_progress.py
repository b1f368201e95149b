"""seqgen.app.progress: rate and ETA leave out numba's compile time; the final line is wall
time."""
import re
import time

import numba
import pytest
from numba.core import event

from seqgen.app.progress import COMPILE_EVENT, CompileTimer, Progress, compile_seconds


class FakeSolver:
    smoothed = [0.5]
    last_rate = None
    last_loss = 0.5
    iter = 0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _rates(lines):
    """{iteration: displayed iter/s} from the display lines."""
    found = (re.match(r"Iteration (\d+) \(([\d.]+) iter/s, ETA (\S+)\)", line) for line in lines)
    return {int(m[1]): (float(m[2]), m[3]) for m in found if m}


def test_a_compile_in_the_middle_of_the_run_does_not_lower_the_rate():
    """numba's compiler-lock event around a 1 s pause at iteration 20 (as when the feedback
    kernel compiles there): the rate after it is the rate before it."""
    lines = []
    progress = Progress(60, 10, log=lines.append)
    solver = FakeSolver()
    for it in range(1, 61):
        time.sleep(0.004)
        if it == 20:
            event.start_event(COMPILE_EVENT)
            time.sleep(1.0)
            event.end_event(COMPILE_EVENT)
        solver.iter = it
        progress(solver, 0.25)
    rates = _rates(lines)
    before, after = rates[10][0], rates[50][0]
    assert after > 0.6 * before, (before, after, lines)
    assert "Trained 60 iterations in 1." in progress_finish_line(progress, solver)


def progress_finish_line(progress, solver):
    lines = []
    progress.log = lines.append
    progress.finish(solver)
    return lines[-1]


def test_rate_and_eta_exclude_compile_time_and_finish_reports_wall_time():
    clock, compiled = FakeClock(), FakeClock()
    compiled.now = 0.0
    lines = []
    progress = Progress(11, 2, log=lines.append, clock=clock, compile_clock=compiled)
    solver = FakeSolver()
    for it in range(1, 12):
        clock.now += 1.0
        if it in (1, 6):  # compiling at the first iteration and again at the sixth
            clock.now += 100.0
            compiled.now += 100.0
        solver.iter = it
        progress(solver, 0.25)
    rates = _rates(lines)
    assert rates[2] == (1.0, "0:00:08") and rates[6] == (1.0, "0:00:04"), lines
    assert rates[8] == (1.0, "0:00:02")
    assert progress_finish_line(progress, solver).startswith(
        "Trained 11 iterations in 211.0 s (0 iter/s)")


def test_compile_timer_counts_nested_holds_once():
    clock = FakeClock()
    timer = CompileTimer(clock)
    timer.on_end()  # an end without its start (installed mid-compile): ignored
    timer.on_start()
    clock.now += 2.0
    timer.on_start()
    clock.now += 3.0
    timer.on_end()
    assert timer.seconds() == 5.0  # still compiling: the part so far counts
    clock.now += 1.0
    timer.on_end()
    clock.now += 50.0
    assert timer.seconds() == 6.0


def test_compile_seconds_sees_a_real_numba_compilation():
    before = compile_seconds()

    @numba.njit
    def add_one(x):
        return x + 1

    assert add_one(1) == 2
    assert compile_seconds() - before > 0.0


def test_an_injected_compile_clock_is_read_from_the_first_iteration_on():
    clock, compiled = FakeClock(), FakeClock()
    compiled.now = 7.0  # compiling before training started does not count
    progress = Progress(10, 0, log=lambda *a: None, clock=clock, compile_clock=compiled)
    solver = FakeSolver()
    solver.iter = 1
    progress(solver, 0.1)
    clock.now += 4.0
    assert progress.busy_seconds() == pytest.approx(4.0)
    compiled.now += 1.5
    assert progress.busy_seconds() == pytest.approx(2.5)
    assert progress.rate(5) == pytest.approx(4 / 2.5)
