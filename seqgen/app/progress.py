"""Training progress: Caffe's display lines plus rate and ETA, and a live line on a terminal.

The rate and ETA leave out the time numba spends compiling kernels (or loading them from its
cache): that happens at the first iteration, but also later (the feedback schedule's kernel,
the TEST net's at the first test), and counting it made the early rates and ETAs far off.
"""
import sys
import threading
import time

from numba.core import event


def _clock(seconds):
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class CompileTimer(event.Listener):
    """numba event listener totalling the seconds numba holds its compiler lock (compiling,
    or loading a cached kernel), nested or not, so rates can subtract them."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.depth = 0
        self.since = 0.0
        self.total = 0.0
        self.lock = threading.Lock()

    def on_start(self, evt=None):
        """The compiler lock is being taken: start counting unless already counting."""
        with self.lock:
            if self.depth == 0:
                self.since = self.clock()
            self.depth += 1

    def on_end(self, evt=None):
        """The compiler lock was released: stop counting when the outermost hold ends."""
        with self.lock:
            if self.depth == 0:
                return  # installed while the lock was held: nothing was counted
            self.depth -= 1
            if self.depth == 0:
                self.total += self.clock() - self.since

    def seconds(self):
        """Seconds counted so far, including a compilation that is still under way."""
        with self.lock:
            return self.total + (self.clock() - self.since if self.depth else 0.0)


_TIMER = None
_TIMER_LOCK = threading.Lock()

COMPILE_EVENT = "numba:compiler_lock"  # held while numba compiles or loads a cached kernel


def compile_seconds():
    """Seconds numba has spent compiling (or loading cached kernels) in this process since
    the first call, which installs the listener; a running total for rates to subtract."""
    global _TIMER
    with _TIMER_LOCK:
        if _TIMER is None:
            _TIMER = CompileTimer()
            event.register(COMPILE_EVENT, _TIMER)
    return _TIMER.seconds()



class Progress:
    """after_iteration hook: every `display` iterations prints
    `Iteration k (rate iter/s, ETA h:mm:ss), loss = smoothed`, Caffe's net-output line and
    its `Iteration k, lr = rate` line; on a terminal also a live line with the iteration,
    loss, learning rate, speed and ETA. Rate and ETA count from the end of the first
    iteration and leave out numba's compile time (`compile_clock`, cumulative seconds);
    `finish` reports the wall time of the whole run."""

    def __init__(self, total, display, log=print, stream=None, clock=time.perf_counter,
                 compile_clock=compile_seconds):
        self.total = total
        self.display = display
        self.log = log
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.clock = clock
        self.compile_clock = compile_clock
        self.start = clock()
        self.compiled_at_start = compile_clock()
        self.first_seconds = 0.0
        self.start_iter = None
        self.last_live = 0.0
        self.width = 0

    def busy_seconds(self):
        """Seconds since the end of the first iteration, less numba's compiling in them."""
        compiling = self.compile_clock() - self.compiled_at_start
        return max(0.0, self.clock() - self.start - compiling)

    def rate(self, it):
        """Iterations per second since the first one, compile time left out."""
        elapsed = self.busy_seconds()
        done = it - self.start_iter
        return done / elapsed if elapsed > 0 else 0.0

    def __call__(self, solver, loss):
        it = solver.iter
        first = self.start_iter is None
        if first:
            # rates count from the end of the first iteration, which sets everything up
            self.start_iter = it
            now = self.clock()
            self.first_seconds = now - self.start
            self.start = now
            self.compiled_at_start = self.compile_clock()
        if self.display and (it - 1) % self.display == 0:
            smoothed = sum(solver.smoothed) / len(solver.smoothed)
            self._clear()
            if first:
                self.log(f"Iteration {it - 1}, loss = {smoothed:.6g}")
            else:
                rate = self.rate(it)
                eta = (self.total - it) / rate if rate else 0
                self.log(f"Iteration {it - 1} ({rate:.1f} iter/s, ETA {_clock(eta)}), "
                         f"loss = {smoothed:.6g}")
            self.log(f"    Train net output #0: loss = {loss:.6g}")
            if solver.last_rate is not None:
                self.log(f"Iteration {it - 1}, lr = {float(solver.last_rate):.6g}")
        if self.live and it % 64 == 0:
            now = self.clock()
            if now - self.last_live > 0.25:
                self.last_live = now
                rate = self.rate(it)
                eta = (self.total - it) / rate if rate else 0
                lr = f", lr {float(solver.last_rate):.3g}" if solver.last_rate is not None else ""
                line = (f"  {it}/{self.total} iterations, loss {loss:.5g}{lr}, "
                        f"{rate:.0f} iter/s, ETA {_clock(eta)} ")
                self.width = max(self.width, len(line))
                self.stream.write("\r" + line)
                self.stream.flush()

    def _clear(self):
        if self.live and self.last_live:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

    def finish(self, solver):
        """Print `Trained N iterations in X s (R iter/s)`, X the wall time compiling
        included; returns X."""
        self._clear()
        elapsed = self.clock() - self.start
        done = solver.iter - (self.start_iter if self.start_iter is not None else solver.iter)
        if self.start_iter is not None:
            elapsed, done = elapsed + self.first_seconds, done + 1
        self.log(f"Trained {done} iterations in {elapsed:.1f} s "
                 f"({done / elapsed if elapsed > 0 else 0:.0f} iter/s); final loss "
                 f"{solver.last_loss:.6g}")
        return elapsed
