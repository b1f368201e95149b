"""Signals while training, as `caffe train` handles them: SIGINT and SIGHUP do what
-sigint_effect / -sighup_effect say ("stop": finish the iteration, snapshot, stop;
"snapshot": snapshot and go on; "none"), SIGTERM always stops with a snapshot, and a second
stop signal abandons the iteration at once, without a snapshot."""
import signal
import threading

from ..solver.solver import STOP


class Abandoned(BaseException):
    """A second stop signal during an iteration: stop at once, without a snapshot."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """Context manager installing the handlers for one training session."""

    def __init__(self, solver, sigint_effect, sighup_effect):
        self.solver = solver
        self.effects = {signal.SIGINT: sigint_effect, signal.SIGTERM: STOP}
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = sighup_effect
        self.stopped_by = []
        self.training = True
        self.previous = {}

    def _on_signal(self, signum, frame):
        action = self.effects[signum]
        if action == STOP:
            if self.stopped_by and self.training:
                raise Abandoned(self.stopped_by[0])  # a second stop signal: no snapshot
            self.stopped_by.append(signum)
        if self.training:
            self.solver.request(action)

    def __enter__(self):
        # only the main thread may install handlers; a run in a worker thread (a Dask
        # worker of `seqgen sweep`) is stopped by its process ending, and resumes
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._on_signal) for s in self.effects}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def stopped(self):
        """Whether a stop signal ended training before max_iter."""
        s = self.solver
        return bool(self.stopped_by) and s.stop_requested and s.iter < s.param.max_iter

    def name(self):
        return signal.Signals(self.stopped_by[0]).name
