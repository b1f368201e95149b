"""Solver callbacks (Caffe's Solver::Callback): objects whose methods the solver calls at
fixed points of its loop. Every method has a no-op default, so a callback overrides only
what it needs; `Solver.add_callback` registers one.

The order of a sidecar's contents follows the order the callbacks were added in.
"""


class Callback:
    """No-op hooks of the training loop; override the ones you need."""

    def on_start(self, solver):
        """At the start of an iteration, before its forward passes (Caffe's on_start)."""

    def before_forward(self, solver):
        """Write the inputs of the next forward pass (called iter_size times an iteration)."""

    def on_gradients_ready(self, solver):
        """After the iteration's backward passes, before the update (Caffe's
        on_gradients_ready): the parameter diffs hold the gradient."""

    def after_iteration(self, solver, loss):
        """After the update of iteration solver.iter - 1 (loss: its mean over iter_size)."""

    def after_test(self, solver, results):
        """After a test: results = [(output name, mean value, loss weight)]."""

    def after_snapshot(self, solver, model, state):
        """After a snapshot's files are all in place."""

    def snapshot_state(self, solver):
        """(meta, arrays) this callback needs to continue exactly after a resume: small
        things, gathered before every iteration while the run has no snapshot yet, and kept
        as returned (not copied): return new objects, or ones never changed afterwards.
        meta is JSON-able and goes into the sidecar's `extra`; arrays as `extra/<key>`."""
        return {}, {}

    def snapshot_logs(self, solver):
        """{key: array} gathered only when a sidecar is written (costly things, such as log
        rows not yet on disk)."""
        return {}

    def restore_state(self, solver, meta, arrays):
        """Take back what snapshot_state/snapshot_logs saved (`extra` meta and arrays);
        called by Solver.restore when the snapshot has a sidecar."""


class FunctionCallback(Callback):
    """pycaffe's add_callback(on_start, on_gradients_ready): two functions of no arguments."""

    def __init__(self, on_start, on_gradients_ready):
        for f in (on_start, on_gradients_ready):
            if not callable(f):
                raise TypeError(f"add_callback(on_start, on_gradients_ready) takes two "
                                f"functions; {f!r} is not callable")
        self._start, self._ready = on_start, on_gradients_ready

    def on_start(self, solver):
        self._start()

    def on_gradients_ready(self, solver):
        self._ready()


def overriding(callbacks, method):
    """The callbacks whose `method` is not Callback's no-op (so the loop skips the rest)."""
    base = getattr(Callback, method)
    return [cb for cb in callbacks if getattr(type(cb), method) is not base]
