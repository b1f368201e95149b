"""One generation's files: generated.csv, generated.json and generated.png, written together.

``generated.json`` (the sidecar of ``generated.csv``) keeps what the figure's title says and
the CSV cannot: the net's name, the input mode, how many true steps primed the net, and the
errors, so that ``seqgen plot`` redraws the title ``seqgen generate`` drew.  It holds
``name``, ``steps``, ``mode``, ``prime``, ``mse``, ``max_abs_error`` and ``mse_steps`` (the
leading steps that had a true value to compare with; ``mse`` and ``max_abs_error`` are null
when there were none), and ``weights`` when known.
"""
import json
import os

import numpy as np

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from ..runs.record import RunRecord
from .plot import generation_title, plot_generation, read_generated_csv, write_generated_csv

CSV_FILE = "generated.csv"
RECORD_FILE = "generated.json"
PNG_FILE = "generated.png"


def generation_errors(generated, true):
    """(mse, max_abs_error, steps compared) over the leading steps that have a true value;
    (None, None, 0) without any. Computed in float64, as `seqgen generate` prints them."""
    n = 0 if true is None else min(len(true), len(generated))
    if n == 0:
        return None, None, 0
    gen = np.asarray(generated[:n], np.float64)
    err = gen - np.asarray(true[:n], np.float64).reshape(gen.shape)
    return float(np.mean(err ** 2)), float(np.abs(err).max()), n


def write_generation_figure(out_dir, name, generated, true, prime, mode, steps=None,
                            weights=None):
    """Write generated.csv, generated.json and generated.png into `out_dir` for a generated
    sequence (L,) or (L, D) and the true one (longer, shorter or None; cut to L). Returns
    {"csv", "json", "png", "generated", "steps", "mse_steps", "figure"} plus "mse" and
    "max_abs_error" when some steps had a true value."""
    steps = len(generated) if steps is None else steps
    if steps != len(generated):
        raise ValueError(f"write_generation_figure: steps={steps} but {len(generated)} "
                         "generated values")
    true_part = None if true is None else np.asarray(true)[:steps]
    mse, max_err, compared = generation_errors(generated, true_part)
    record = {"name": name, "steps": int(steps), "mode": mode, "prime": int(prime or 0),
              "mse": mse, "max_abs_error": max_err, "mse_steps": compared}
    if weights is not None:
        record["weights"] = os.path.abspath(weights)
    paths = {key: os.path.join(out_dir, f) for key, f in
             (("csv", CSV_FILE), ("json", RECORD_FILE), ("png", PNG_FILE))}
    write_generated_csv(paths["csv"], generated, true_part if compared else None)
    atomic_write_text(paths["json"], json.dumps(record, indent=2) + "\n")
    figure = plot_generation(np.arange(steps), generated, true_part if compared else None,
                             record["prime"], path=paths["png"], title=record_title(record))
    result = dict(paths, generated=generated, steps=steps, mse_steps=compared, figure=figure)
    if compared:
        result.update(mse=mse, max_abs_error=max_err)
    return result


def record_title(record):
    """The generation title for a generated.json record (missing fields: not stated)."""
    return generation_title(record.get("name"), record.get("steps"), record.get("mode"),
                            record.get("prime"), record.get("mse"),
                            record.get("max_abs_error"), record.get("mse_steps"))


def record_path(csv_path):
    """The sidecar of a generated CSV: the same name with .json (generated.json)."""
    return os.path.splitext(csv_path)[0] + ".json"


_FIELDS = {"name": str, "mode": str, "steps": int, "prime": int, "mse_steps": int,
           "mse": (int, float), "max_abs_error": (int, float)}


def read_generation_record(path):
    """The fields of a generated.json with the expected types (others dropped), or None
    when there is no such file; a file that is not a JSON object is an error."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SeqgenError(f"{path}: cannot read the generation record ({e}); delete it to "
                          "redraw without it") from None
    if not isinstance(record, dict):
        raise SeqgenError(f"{path}: not a generation record (expected a JSON object)")
    return {k: v for k, v in record.items() if k in _FIELDS and isinstance(v, _FIELDS[k])
            and not isinstance(v, bool)}


def run_name(folder):
    """The name in a run folder's record; None when there is no readable one."""
    try:
        return RunRecord.read(folder).name
    except SeqgenError:
        return None


def replot_record(csv_path, data):
    """What redrawing a generated CSV needs: its generated.json, or for a CSV without one
    (seqgen 0.1.0's) the run's name and the errors recomputed from the CSV, priming unknown."""
    record = read_generation_record(record_path(csv_path))
    if record is None:
        mse, max_err, compared = generation_errors(data["generated"], data["true"])
        record = {"name": run_name(os.path.dirname(csv_path) or "."), "prime": None,
                  "mse": mse, "max_abs_error": max_err, "mse_steps": compared}
    record.setdefault("steps", len(data["generated"]))
    return record


def replot_generation(csv_path, png_path):
    """Redraw generated.png from generated.csv with the title and priming mark generate
    drew; returns the Figure."""
    data = read_generated_csv(csv_path)
    record = replot_record(csv_path, data)
    return plot_generation(data["step"], data["generated"], data["true"],
                           record.get("prime") or 0, path=png_path, title=record_title(record))
