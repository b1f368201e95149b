"""loss.csv and test_loss.csv of a run folder: reading them, and keeping them up to date
while a run trains without losing rows when it is killed and resumed."""
import csv
import os

import numpy as np

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text, format_cells

LOSS_HEADER = "iteration,loss"


def read_loss_csv(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read ({e.strerror})") from None
    if not rows or [c.strip() for c in rows[0]] != ["iteration", "loss"]:
        raise SeqgenError(f"{path}: line 1: expected the header 'iteration,loss'")
    try:
        data = np.array([[float(c) for c in r] for r in rows[1:] if r], np.float64)
    except ValueError:
        raise SeqgenError(f"{path}: a row is not two numbers") from None
    return data.reshape(-1, 2)


class LossLog:
    """loss.csv (or test_loss.csv) of a run folder: the rows of earlier sessions before this
    one's first iteration, plus this session's, which `rows_between(lo, hi)` gives as
    (iterations, values) for lo <= iteration < hi. Rewritten atomically at the end and now
    and then at snapshots, formatting each row once. Rows not yet in the file travel in the
    snapshot sidecars (`tail`), so that a run killed between two writes and resumed keeps its
    whole curve."""

    def __init__(self, path, start, dtype, rows_between, carried=None):
        self.path, self.start, self.dtype = path, start, dtype
        self.rows_between = rows_between
        old = {}
        self.existed = os.path.exists(path)
        if self.existed:
            try:
                old = {int(i): v for i, v in read_loss_csv(path) if i < start}
            except SeqgenError:
                old = {}
        carried_its = []
        if carried is not None:
            carried_its = [int(i) for i in carried[0] if i < start]
            old.update({int(i): v for i, v in zip(*carried) if i < start})
        rows = sorted(old.items())
        self.old_its = np.array([r[0] for r in rows], np.int64)
        self.old_vals = np.array([r[1] for r in rows], dtype)
        self.text = [self._format(self.old_its, self.old_vals)]
        self.done = start  # this session's rows below it are formatted in self.text
        # rows from this iteration on are not in the file yet
        self.pending_from = min([start] + carried_its)

    def _format(self, its, vals):
        cells = format_cells(np.asarray(vals, self.dtype))  # the CSV writer's cell rules
        return "".join(f"{i},{c}\n" for i, c in zip(np.asarray(its).tolist(), cells))

    def wanted(self):
        """Whether the file is worth writing without new rows: earlier rows to keep, or a
        file to keep up to date."""
        return bool(len(self.old_its)) or self.existed

    def write(self, upto):
        its, vals = self.rows_between(self.done, upto)
        self.text.append(self._format(its, vals))
        self.done = max(self.done, upto)
        atomic_write_text(self.path, LOSS_HEADER + "\n" + "".join(self.text))
        self.pending_from = upto
        self.existed = True
        return self.rows()

    def rows(self):
        its, vals = self.rows_between(self.start, self.done)
        return (np.concatenate([self.old_its, np.asarray(its, np.int64)]),
                np.concatenate([self.old_vals, np.asarray(vals, self.dtype)]))

    def tail(self, upto):
        """(iterations, values) not yet in the file, up to `upto`."""
        keep = self.old_its >= self.pending_from
        its, vals = self.rows_between(max(self.pending_from, self.start), upto)
        return (np.concatenate([self.old_its[keep], np.asarray(its, np.int64)]),
                np.concatenate([self.old_vals[keep], np.asarray(vals, self.dtype)]))
