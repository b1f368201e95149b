"""Solver callbacks (Caffe's Solver::Callback): objects whose methods the solver calls at
fixed points of its loop. Every method has a no-op default, so a callback overrides only
what it needs; `Solver.add_callback` registers one.

The order of a sidecar's contents follows the order the callbacks were added in.
"""


class Callback:
    """No-op hooks of the training loop; override the ones you need."""

    def before_forward(self, solver):
        """Write the inputs of the next forward pass (called iter_size times an iteration)."""

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


class FunctionHooks(Callback):
    """The assignable hooks of earlier versions (`solver.before_forward = f`, ...), kept so
    that existing scripts work: each is a plain function or None."""

    NAMES = ("before_forward", "after_iteration", "after_test", "after_snapshot",
             "snapshot_extra", "snapshot_logs_hook")

    def __init__(self):
        for name in self.NAMES:
            object.__setattr__(self, "_" + name, None)

    def get(self, name):
        return getattr(self, "_" + name)

    def set(self, name, function):
        setattr(self, "_" + name, function)

    def before_forward(self, solver):
        if self._before_forward is not None:
            self._before_forward(solver)

    def after_iteration(self, solver, loss):
        if self._after_iteration is not None:
            self._after_iteration(solver, loss)

    def after_test(self, solver, results):
        if self._after_test is not None:
            self._after_test(solver, results)

    def after_snapshot(self, solver, model, state):
        if self._after_snapshot is not None:
            self._after_snapshot(solver, model, state)

    def snapshot_state(self, solver):
        if self._snapshot_extra is None:
            return {}, {}
        return self._snapshot_extra(solver)

    def snapshot_logs(self, solver):
        return {} if self._snapshot_logs_hook is None else self._snapshot_logs_hook(solver)


def overriding(callbacks, method):
    """The callbacks whose `method` is not Callback's no-op (so the loop skips the rest)."""
    base = getattr(Callback, method)
    return [cb for cb in callbacks if getattr(type(cb), method) is not base]
