"""Figures: generated vs. true sequence, and the training loss curve.

Drawn with matplotlib's Agg canvas directly (no pyplot, no GUI, no global figure state) and saved
atomically: the PNG is rendered into a temporary file in the same folder with an explicit
``format="png"`` and renamed into place.  matplotlib is imported lazily so importing this module
is cheap.

``generated.csv`` (written by :func:`write_generated_csv`, read back by :func:`read_generated_csv`
so ``seqgen plot`` can redraw without recomputing) has the header ``step,true,generated``; the
``true`` cells are empty where there is no true value (no true sequence at all, or a true
sequence shorter than the generated one).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from seqgen.app.imports import matplotlib_figure
from seqgen.errors import SeqgenError
from seqgen.io.atomic import atomic_write, write_csv_atomic

__all__ = [
    "GENERATED_HEADER",
    "plot_generation",
    "plot_generated_csv",
    "plot_loss",
    "loss_title",
    "generation_title",
    "running_mean",
    "loss_window",
    "wants_log_scale",
    "write_generated_csv",
    "read_generated_csv",
]

GENERATED_HEADER = ("step", "true", "generated")


def _new_figure(nrows: int = 1, figsize=(10.0, 4.0)):
    Figure, FigureCanvasAgg = matplotlib_figure()

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, 1, k + 1) for k in range(nrows)]
    return fig, axes


def _lay_out(fig) -> None:
    """tight_layout, once. Since matplotlib 3.6 it leaves a placeholder layout engine on the
    figure, for which savefig draws the whole figure once more, unseen, before drawing it
    (40 of a generated.png's 150 ms); no engine (matplotlib's default) spares that."""
    fig.tight_layout()
    if hasattr(fig, "set_layout_engine"):  # (matplotlib 3.6 on)
        fig.set_layout_engine(None)


def _save_png(fig, path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    if a.ndim == 2:
        return a
    raise ValueError(f"plot_generation: {name} must be 1-D or 2-D (steps, dims), got shape "
                     f"{a.shape}")


def plot_generation(steps, generated, true=None, prime: int = 0, *, path, title=None):
    """Plot a generated sequence (line) against the true sequence (dots), as the fork's
    plot_result.m does, and save it as a PNG at ``path``.

    ``steps``: x values of the generated rows (None: 0, 1, 2, ...).  ``generated``: (L,) or (L, D)
    — one panel per dimension.  ``true``: optional, (T,) or (T, D) with T <= L, drawn at
    ``steps[:T]``.  ``prime``: number of leading steps that were primed with true data; when > 0 a
    vertical dashed line marks where free-running generation starts.  Returns the Figure.
    """
    gen = _as_2d("generated", generated)
    n, dims = gen.shape
    x = np.arange(n) if steps is None else np.asarray(steps).reshape(-1)
    if len(x) != n:
        raise ValueError(f"plot_generation: {len(x)} steps but {n} generated values")
    tru = None
    if true is not None:
        tru = _as_2d("true", true)
        if tru.shape[1] != dims:
            raise ValueError(
                f"plot_generation: true has {tru.shape[1]} dims but generated has {dims}"
            )
        if len(tru) > n:
            raise ValueError(f"plot_generation: {len(tru)} true values but only {n} steps")

    fig, axes = _new_figure(dims, figsize=(10.0, 4.0 if dims == 1 else 2.2 * dims + 1.0))
    for d, ax in enumerate(axes):
        if tru is not None and len(tru):
            ax.plot(x[: len(tru)], tru[:, d], ".", color="tab:red", markersize=3, label="true")
        ax.plot(x, gen[:, d], "-", color="tab:blue", linewidth=1.2, label="generated")
        if prime and prime > 0 and n:
            # The boundary between the last primed step and the first generated one.
            xb = x[prime - 1] + 0.5 if prime <= n else x[-1]
            ax.axvline(xb, color="0.4", linestyle="--", linewidth=1, label="end of priming")
        ax.set_ylabel("value" if dims == 1 else f"dim {d}")
        ax.grid(True, alpha=0.3)
        if d == 0:
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title)
    _lay_out(fig)
    _save_png(fig, path)
    return fig


def loss_title(name=None, diverged=False) -> str:
    """The loss figure's title, the same for training and `seqgen plot`: "NAME: loss"."""
    title = f"{name}: loss" if name else "loss"
    return title + " (diverged)" if diverged else title


def _mse_text(mse, max_abs_error, steps, mse_steps) -> str:
    """"MSE m, max abs error e", saying which steps it covers when not all of them."""
    text = f"MSE {mse:.4g}"
    if mse_steps is not None and steps is not None and mse_steps < steps:
        text += f" over the first {mse_steps} of {steps} steps"
    if max_abs_error is not None:
        text += f", max abs error {max_abs_error:.4g}"
    return text


def generation_title(name, steps, mode=None, prime=0, mse=None, max_abs_error=None,
                     mse_steps=None) -> str:
    """The generation figure's title, the same for `seqgen generate` and `seqgen plot`:
    what ran (primed or not; prime None: not known), then the errors on a second line."""
    if prime is None:
        how = f"{steps} steps generated"
    elif prime > 0:
        how = f"{steps} steps, primed with {prime} true steps, then free-running"
    else:
        how = f"{steps} steps free-running"
    title = f"{name}: {how}" if name else how
    if mode:
        title += f" (input mode '{mode}')"
    if mse is not None:
        title += "\n" + _mse_text(mse, max_abs_error, steps, mse_steps)
    return title


LOG_SPAN = 10.0  # a loss axis is logarithmic when its positive values span more than this


def wants_log_scale(*values) -> bool:
    """Whether losses span more than a decade (max/min of the positive finite values),
    where a linear axis would flatten all but the first iterations."""
    finite = [v[np.isfinite(v) & (v > 0)] for v in map(_flat, values) if v is not None]
    positive = np.concatenate(finite) if finite else np.zeros(0)
    return len(positive) > 1 and positive.max() > LOG_SPAN * positive.min()


def _flat(values):
    return None if values is None else np.asarray(values, np.float64).reshape(-1)


def loss_window(count: int) -> int:
    """Running-mean window for a loss curve of `count` points: about 1.5% of the run, so
    chunk-to-chunk jitter averages out while the shape of the descent stays."""
    return max(1, int(round(count * 0.015)))


def running_mean(values, window: int) -> np.ndarray:
    """Trailing mean over the last `window` finite values (fewer at the start, as Caffe's
    average_loss smoothing); NaN where none of them is finite."""
    v = _flat(values)
    ok = np.isfinite(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    lo = np.maximum(np.arange(1, len(v) + 1) - window, 0)
    hi = np.arange(1, len(v) + 1)
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def _drawable(its, vals, log):
    """Mask of the points an axis can show: finite, and positive on a log axis."""
    ok = np.isfinite(vals) & np.isfinite(its)
    return ok & (vals > 0) if log else ok


def _draw_train(ax, it, loss, log, label, window):
    """The raw training loss as a thin light line, with its running mean bold on top."""
    ok = _drawable(it, loss, log)
    if not ok.any():
        return False
    if window < 2:
        ax.plot(it[ok], loss[ok], "-", color="tab:blue", linewidth=1.2, label=label, zorder=2)
        return True
    ax.plot(it[ok], loss[ok], "-", color="tab:blue", linewidth=0.7, alpha=0.35,
            label=f"{label} (each iteration)", zorder=1)
    mean = running_mean(loss, window)
    ok = _drawable(it, mean, log)
    ax.plot(it[ok], mean[ok], "-", color="tab:blue", linewidth=2.0,
            label=f"{label}, running mean of {window}", zorder=2)
    return True


def _draw_test(ax, its, vals, log):
    """The held-out test loss: large edged markers above the training curves."""
    ok = _drawable(its, vals, log)
    if not ok.any():
        return False
    ax.plot(its[ok], vals[ok], "o-", color="tab:orange", linewidth=1.5, markersize=7,
            markeredgecolor="black", markeredgewidth=0.8, label="test loss (held out)",
            zorder=4)
    return True


def plot_loss(iterations, losses, path, title=None, test_iterations=None,
              test_losses=None, window=None):
    """The training loss curve (raw and its running mean), plus the held-out test loss
    (markers, drawn on top) when given; a log y axis when the values span more than a
    decade (non-positive values are then left out), linear otherwise. The legend sits
    outside the axes so it covers no data. Saves a PNG at `path`; returns the Figure."""
    it, loss = _flat(iterations), _flat(losses)
    if len(it) != len(loss):
        raise ValueError(f"plot_loss: {len(it)} iterations but {len(loss)} losses")
    tests = test_iterations is not None and len(test_iterations)
    t_it, t_loss = (_flat(test_iterations), _flat(test_losses)) if tests else (None, None)
    log = wants_log_scale(loss, t_loss)
    fig, (ax,) = _new_figure(1, figsize=(10.0, 4.5))
    window = loss_window(len(loss)) if window is None else window
    drawn = _draw_train(ax, it, loss, log, "train loss" if tests else "loss", window)
    if tests:
        drawn = _draw_test(ax, t_it, t_loss, log) or drawn
    if drawn:
        ax.set_yscale("log" if log else "linear")
        if len(ax.get_lines()) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                      fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finite loss values to draw", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    _lay_out(fig)
    _save_png(fig, path)
    return fig


def generated_header(dims: int) -> tuple:
    """``step,true,generated`` for one dimension; ``step,true_1..D,generated_1..D`` for D."""
    if dims == 1:
        return GENERATED_HEADER
    return ("step",) + tuple(f"true_{d + 1}" for d in range(dims)) + tuple(
        f"generated_{d + 1}" for d in range(dims))


def write_generated_csv(path, generated, true=None, steps=None) -> None:
    """Write the generated sequence (L,) or (L, D), and the true one where it exists,
    atomically; ``true`` may be None or shorter than ``generated`` (cells left empty)."""
    gen = np.asarray(generated)
    gen = gen.reshape(len(gen), -1)
    dims = gen.shape[1]
    st = np.arange(len(gen)) if steps is None else np.asarray(steps).reshape(-1)
    if len(st) != len(gen):
        raise ValueError(f"write_generated_csv: {len(st)} steps but {len(gen)} generated values")
    tru = None if true is None else np.asarray(true).reshape(len(true), -1)
    if tru is not None and (len(tru) > len(gen) or tru.shape[1] != dims):
        raise ValueError(f"write_generated_csv: true values {tru.shape} do not fit {gen.shape}")
    true_cols = [None if tru is None else tru[:, d] for d in range(dims)]
    write_csv_atomic(path, generated_header(dims),
                     [st] + true_cols + [gen[:, d] for d in range(dims)])


def read_generated_csv(path) -> dict:
    """Read a generated CSV into ``{"step": int64, "true": float32 or None, "generated":
    float32}`` (1-D arrays for one dimension, (L, D) for several). ``true`` holds the leading
    rows that have true values (empty cells are allowed only after the last one); it is None
    when those columns are empty throughout. NaN/inf are accepted (a diverged run still gets
    plotted)."""
    path = Path(path)
    if not path.is_file():
        raise SeqgenError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise SeqgenError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read: {e.strerror or e}") from None
    if not lines or not lines[0].strip():
        raise SeqgenError(f"{path}: file is empty; expected the header 'step,true,generated'")
    header = tuple(c.strip() for c in next(csv.reader([lines[0]])))
    dims = (len(header) - 1) // 2
    if dims < 1 or header != generated_header(dims):
        raise SeqgenError(f"{path}: line 1: header is {','.join(header)!r}, expected "
                          "'step,true,generated' (or step,true_1..D,generated_1..D)")
    steps, trues, gens = [], [], []
    true_ended_at = None  # line of the first row without true values
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != len(header):
            raise SeqgenError(f"{path}: line {lineno}: expected {len(header)} columns, "
                              f"found {len(cells)}")
        try:
            step = int(cells[0])
        except ValueError:
            raise SeqgenError(f"{path}: line {lineno}, column 1: step {cells[0]!r} is not an "
                              "integer") from None
        row = []
        for col in range(1 + dims, 1 + 2 * dims):
            g = cells[col]
            try:
                row.append(float(g))
            except ValueError:
                what = "empty" if g == "" else f"{g!r} is not a number"
                raise SeqgenError(f"{path}: line {lineno}, column {col + 1}: generated value "
                                  f"{what}") from None
        true_cells = cells[1:1 + dims]
        if all(t == "" for t in true_cells):
            if true_ended_at is None:
                true_ended_at = lineno
        else:
            if true_ended_at is not None:
                raise SeqgenError(
                    f"{path}: line {lineno}, column 2: true value after the empty cell on line "
                    f"{true_ended_at} (true values must be a leading run of rows)")
            values = []
            for col, t in enumerate(true_cells, start=2):
                try:
                    values.append(float(t))
                except ValueError:
                    raise SeqgenError(f"{path}: line {lineno}, column {col}: true value {t!r} "
                                      "is not a number") from None
            trues.append(values)
        steps.append(step)
        gens.append(row)
    if not steps:
        raise SeqgenError(f"{path}: no data rows after the header")
    with np.errstate(over="ignore"):
        gen = np.array(gens, dtype=np.float32)
        tru = np.array(trues, dtype=np.float32) if trues else None
    if dims == 1:
        gen = gen[:, 0]
        tru = None if tru is None else tru[:, 0]
    return {"step": np.array(steps, dtype=np.int64), "true": tru, "generated": gen}


def plot_generated_csv(csv_path, png_path, prime: int = 0, title=None) -> dict:
    """Redraw the generation figure from a saved ``generated.csv``; returns the data read
    (with the Figure under "figure")."""
    data = read_generated_csv(csv_path)
    data["figure"] = plot_generation(data["step"], data["generated"], data["true"], prime or 0,
                                     path=png_path, title=title)
    return data
