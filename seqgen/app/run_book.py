"""The run's book-keeping as a solver callback: the loss and test-loss logs, progress, and
run.json kept pointing at the newest snapshot; and what a snapshot must keep of them."""
import os
import time

import numpy as np

from ..data.holdout import summed_test_loss
from ..runs.losslog import LossLog
from ..solver.callbacks import Callback

LOG_EVERY_SECONDS = 5.0  # loss.csv is rewritten at a snapshot at most this often


def finite_or_none(value):
    value = float(value)
    return value if np.isfinite(value) else None


class RunBook(Callback):
    """Keeps the losses and tests of this session, the record (run.json) and the logs of
    the run folder; `open(folder, start, progress)` once the run is about to train."""

    def __init__(self, record, settings, total):
        self.record, self.settings, self.total = record, settings, total
        self.losses = np.full(total, np.nan, np.float32)
        self.tests = []
        self.logs = {}  # "loss" / "test" -> LossLog, once the folder is in use
        self.carried = {}  # log rows a snapshot's sidecar brought back
        self.progress = None
        self.folder = None
        self.last_log_write = time.monotonic()

    def open(self, folder, start, progress):
        self.folder, self.progress = folder, progress
        self.logs["loss"] = LossLog(os.path.join(folder, "loss.csv"), start, np.float32,
                                    self._losses_between, self.carried.get("loss"))
        self.logs["test"] = LossLog(os.path.join(folder, "test_loss.csv"), start,
                                    np.float64, self._tests_between, self.carried.get("test"))

    def _losses_between(self, lo, hi):
        its = np.arange(max(lo, 0), min(hi, self.total), dtype=np.int64)
        vals = self.losses[its]
        keep = ~np.isnan(vals)
        return its[keep], vals[keep]

    def _tests_between(self, lo, hi):
        rows = [t for t in self.tests if lo <= t[0] < hi]
        return (np.array([t[0] for t in rows], np.int64),
                np.array([t[1] for t in rows], np.float64))

    # -- the callback ------------------------------------------------------------------
    def after_iteration(self, solver, loss):
        if solver.iter - 1 < self.total:
            self.losses[solver.iter - 1] = loss
        self.progress(solver, loss)

    def after_test(self, solver, results):
        if solver.testing_net == 0:  # test_loss.csv has one curve: test net #0's
            self.tests.append((solver.iter, summed_test_loss(results)))

    def after_snapshot(self, solver, model, state):
        self.record.iterations = solver.iter
        self.record.weights, self.record.solverstate = \
            os.path.abspath(model), os.path.abspath(state)
        self.record.write(self.folder)
        if time.monotonic() - self.last_log_write >= LOG_EVERY_SECONDS:
            self.write_logs(solver.iter)

    def snapshot_state(self, solver):
        return {"run": self.settings.to_sidecar()}, {}

    def snapshot_logs(self, solver):
        """The log rows not yet in loss.csv / test_loss.csv, up to the snapshot."""
        arrays = {}
        if self.logs:
            arrays["loss_its"], arrays["loss_vals"] = self.logs["loss"].tail(solver.iter)
            arrays["test_its"], arrays["test_vals"] = self.logs["test"].tail(solver.iter)
        return arrays

    def restore_state(self, solver, meta, arrays):
        for key in ("loss", "test"):
            if f"{key}_its" in arrays:
                self.carried[key] = (arrays[f"{key}_its"], arrays[f"{key}_vals"])

    # -- files -------------------------------------------------------------------------
    def write_logs(self, upto):
        """Rewrite loss.csv (and test_loss.csv when there are tests) with the rows below
        `upto`; returns (loss its, loss values, test its or None, test values or None)."""
        its, vals = self.logs["loss"].write(upto)
        test_its = test_vals = None
        if self.tests or self.logs["test"].wanted():
            test_its, test_vals = self.logs["test"].write(upto)
        self.last_log_write = time.monotonic()
        return its, vals, test_its, test_vals
