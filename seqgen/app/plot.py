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

from seqgen.errors import SeqgenError
from seqgen.io.atomic import atomic_write, write_csv_atomic

__all__ = [
    "GENERATED_HEADER",
    "plot_generation",
    "plot_generated_csv",
    "plot_loss",
    "write_generated_csv",
    "read_generated_csv",
]

GENERATED_HEADER = ("step", "true", "generated")


def _new_figure(nrows: int = 1, figsize=(10.0, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, 1, k + 1) for k in range(nrows)]
    return fig, axes


def _save_png(fig, path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    if a.ndim == 2:
        return a
    raise ValueError(f"plot_generation: {name} must be 1-D or 2-D (steps, dims), got shape {a.shape}")


def plot_generation(steps, generated, true=None, prime: int = 0, *, path, title=None) -> None:
    """Plot a generated sequence (line) against the true sequence (dots), as the fork's
    plot_result.m does, and save it as a PNG at ``path``.

    ``steps``: x values of the generated rows (None: 0, 1, 2, ...).  ``generated``: (L,) or (L, D)
    — one panel per dimension.  ``true``: optional, (T,) or (T, D) with T <= L, drawn at
    ``steps[:T]``.  ``prime``: number of leading steps that were primed with true data; when > 0 a
    vertical dashed line marks where free-running generation starts.
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
    fig.tight_layout()
    _save_png(fig, path)


def plot_loss(iterations, losses, path, title=None, test_iterations=None,
              test_losses=None) -> None:
    """The training loss curve on a log y axis, plus the held-out test loss (markers) when
    given. Non-positive or non-finite losses cannot be shown on a log axis and are left out;
    if none remain the axis is linear."""
    it = np.asarray(iterations, dtype=np.float64).reshape(-1)
    loss = np.asarray(losses, dtype=np.float64).reshape(-1)
    if len(it) != len(loss):
        raise ValueError(f"plot_loss: {len(it)} iterations but {len(loss)} losses")
    curves = [(it, loss, "-", "tab:blue", "train loss" if test_iterations is not None else "loss")]
    if test_iterations is not None and len(test_iterations):
        curves.append((np.asarray(test_iterations, np.float64).reshape(-1),
                       np.asarray(test_losses, np.float64).reshape(-1), "o-", "tab:orange",
                       "test loss (held out)"))
    fig, (ax,) = _new_figure(1, figsize=(8.0, 4.5))
    drawn = False
    for its, vals, style, color, label in curves:
        ok = np.isfinite(vals) & (vals > 0) & np.isfinite(its)
        if ok.any():
            ax.plot(its[ok], vals[ok], style, color=color, linewidth=1, markersize=3,
                    label=label)
            drawn = True
    if drawn:
        ax.set_yscale("log")
        if len(curves) > 1:
            ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no positive finite loss values", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_png(fig, path)


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
    write_csv_atomic(path, generated_header(dims), [st] + true_cols + [gen[:, d] for d in range(dims)])


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
        with open(path, "r", encoding="utf-8-sig", newline="") as fh:
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
    """Redraw the generation figure from a saved ``generated.csv``; returns the data read."""
    data = read_generated_csv(csv_path)
    plot_generation(data["step"], data["generated"], data["true"], prime, path=png_path, title=title)
    return data
