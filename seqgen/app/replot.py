"""`seqgen plot`: redraw a run's figures from its CSV files, recomputing nothing.

loss.png shows the training loss (loss.csv) and, when the run tested its net
(test_interval / --holdout), the test loss (test_loss.csv) as a second curve; its title comes
from run.json as training drew it. generated.png takes its title and priming mark from
generated.json (seqgen.app.generation_record).
"""
import os

import numpy as np

from ..errors import SeqgenError
from ..runs.folder import RUN_FILE
from ..runs.losslog import read_loss_csv
from ..runs.pick import not_a_run, pick_run, runs_inside
from ..runs.record import RunRecord
from .generation_record import replot_generation
from .plot import loss_title, plot_loss


def plot_run_losses(iterations, losses, test_iterations, test_losses, path, title=None):
    """loss.png: the training loss, plus the test loss when there is one; returns the
    Figure."""
    no_tests = test_iterations is None or not len(test_iterations)
    return plot_loss(iterations, losses, path, title=title,
                     test_iterations=None if no_tests else test_iterations,
                     test_losses=test_losses)


def _plot_folder_losses(folder):
    data = read_loss_csv(os.path.join(folder, "loss.csv"))
    test_path = os.path.join(folder, "test_loss.csv")
    test = read_loss_csv(test_path) if os.path.exists(test_path) else np.zeros((0, 2))
    png = os.path.join(folder, "loss.png")
    plot_run_losses(data[:, 0], data[:, 1], test[:, 0], test[:, 1], png,
                    title=run_loss_title(folder))
    return png


def run_loss_title(folder):
    """loss.png's title as training drew it, from run.json's name and "diverged" key (no
    name: just "loss")."""
    try:
        run = RunRecord.read(folder)
    except SeqgenError:
        return loss_title(None)
    name = run.name if isinstance(run.name, str) else None
    return loss_title(name, diverged=run.get("diverged") is not None)


def replot(target=None, log=print):
    """Redraw generated.png (and loss.png for a run); returns the files written."""
    target = target or pick_run(say=log, command="plot").folder
    written = []
    if os.path.isdir(target):
        if not os.path.exists(os.path.join(target, RUN_FILE)) and not os.path.exists(
                os.path.join(target, "generated.csv")):
            if runs_inside(target):
                raise not_a_run(target, "plot")
            raise SeqgenError(f"{target}: neither a run folder nor a folder with generated.csv")
        gen = os.path.join(target, "generated.csv")
        loss = os.path.join(target, "loss.csv")
        if os.path.exists(gen):
            replot_generation(gen, os.path.join(target, "generated.png"))
            written.append(os.path.join(target, "generated.png"))
        if os.path.exists(loss):
            written.append(_plot_folder_losses(target))
        if not written:
            raise SeqgenError(f"{target}: nothing to plot yet (no generated.csv or loss.csv)")
        return written
    if not os.path.exists(target):
        raise SeqgenError(f"{target}: no such file or folder")
    png = os.path.splitext(target)[0] + ".png"
    if os.path.basename(target) == "loss.csv":
        return [_plot_folder_losses(os.path.dirname(target) or ".")]
    if os.path.basename(target).startswith(("loss", "test_loss")):
        data = read_loss_csv(target)
        plot_loss(data[:, 0], data[:, 1], png)
    else:
        replot_generation(target, png)
    return [png]
