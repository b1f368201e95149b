"""Training progress: Caffe's display lines plus rate and ETA, and a live line on a terminal."""
import sys
import time


def _clock(seconds):
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Progress:
    """after_iteration hook: every `display` iterations prints
    `Iteration k (rate iter/s, ETA h:mm:ss), loss = smoothed`, Caffe's net-output line and
    its `Iteration k, lr = rate` line; on a terminal also a live line with the iteration,
    loss, learning rate, speed and ETA."""

    def __init__(self, total, display, log=print, stream=None):
        self.total = total
        self.display = display
        self.log = log
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.first_seconds = 0.0
        self.start_iter = None
        self.last_live = 0.0
        self.width = 0

    def rate(self, it):
        elapsed = time.perf_counter() - self.start
        done = it - self.start_iter
        return done / elapsed if elapsed > 0 else 0.0

    def __call__(self, solver, loss):
        it = solver.iter
        first = self.start_iter is None
        if first:
            # time from the end of the first iteration: it may include compiling kernels
            self.start_iter = it
            now = time.perf_counter()
            self.first_seconds = now - self.start
            self.start = now
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
            now = time.perf_counter()
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
        self._clear()
        elapsed = time.perf_counter() - self.start
        done = solver.iter - (self.start_iter if self.start_iter is not None else solver.iter)
        if self.start_iter is not None:
            elapsed, done = elapsed + self.first_seconds, done + 1
        self.log(f"Trained {done} iterations in {elapsed:.1f} s "
                 f"({done / elapsed if elapsed > 0 else 0:.0f} iter/s); final loss {solver.last_loss:.6g}")
        return elapsed
