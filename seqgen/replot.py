"""`seqgen plot`: redraw a run's figures from its CSV files, recomputing nothing."""
import csv
import os

import numpy as np

from .errors import SeqgenError
from .plot import plot_generated_csv, plot_loss
from .runs import RUN_FILE, latest_run


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


def replot(target=None):
    """Redraw generated.png (and loss.png for a run); returns the files written."""
    target = target or latest_run()
    written = []
    if os.path.isdir(target):
        if not os.path.exists(os.path.join(target, RUN_FILE)) and not os.path.exists(
                os.path.join(target, "generated.csv")):
            raise SeqgenError(f"{target}: neither a run folder nor a folder with generated.csv")
        gen = os.path.join(target, "generated.csv")
        loss = os.path.join(target, "loss.csv")
        if os.path.exists(gen):
            plot_generated_csv(gen, os.path.join(target, "generated.png"))
            written.append(os.path.join(target, "generated.png"))
        if os.path.exists(loss):
            data = read_loss_csv(loss)
            plot_loss(data[:, 0], data[:, 1], os.path.join(target, "loss.png"))
            written.append(os.path.join(target, "loss.png"))
        if not written:
            raise SeqgenError(f"{target}: nothing to plot yet (no generated.csv or loss.csv)")
        return written
    if not os.path.exists(target):
        raise SeqgenError(f"{target}: no such file or folder")
    png = os.path.splitext(target)[0] + ".png"
    if os.path.basename(target).startswith("loss"):
        data = read_loss_csv(target)
        plot_loss(data[:, 0], data[:, 1], png)
    else:
        plot_generated_csv(target, png)
    return [png]
