"""What a sweep is made of: one Entry per solver with its own grid, read from a solver on
the command line or from a JSON sweep file that lists several (the whole experiment in one
file; JSON because the stdlib reads it on every Python seqgen supports, 3.10 included).

    {"seeds": 5, "input": ["previous", "zero"],
     "solvers": [{"solver": "../prototxt/lstm_short_solver.prototxt",
                  "set": {"base_lr": [1e-4, 3e-4]}, "seeds": 3}]}

Top-level "seeds", "input", "data", "iters" and "set" apply to every solver unless the
solver's entry gives its own; paths are relative to the sweep file; "comment" is ignored.
"""
import json
import os
from dataclasses import dataclass, field, replace

from ..errors import SeqgenError
from ..generation.inputs import MODES
from ..limits import INT32_MAX

_SHARED = {"seeds", "input", "data", "iters", "set", "comment"}


@dataclass
class Entry:
    """One solver (or net) of a sweep with its grid {KEY: [raw values]} and run options."""
    solver: str
    grid: dict = field(default_factory=dict)
    seeds: int = 1
    modes: tuple = (None,)  # None: train's default input mode (not in the run's name)
    data: str | None = None
    iters: int | None = None


def _positive(where, name, value):
    """A positive whole number that fits the int32 it ends in (max_iter; seeds are run
    numbers, random_seed 1..seeds)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT32_MAX:
        raise SeqgenError(f"{where}: \"{name}\" must be a positive whole number (at most "
                          f"{INT32_MAX}), not {value!r}")
    return value


def check_modes(where, modes):
    """The input modes as a tuple, each one of MODES."""
    modes = [modes] if isinstance(modes, str) else modes
    if not isinstance(modes, list) or not modes:
        raise SeqgenError(f"{where}: input modes must be a non-empty list of "
                          f"{' and '.join(MODES)}")
    for mode in modes:
        if mode not in MODES:
            raise SeqgenError(f"{where}: input mode '{mode}' is not one of {', '.join(MODES)}")
    return tuple(modes)


def _options(where, obj, base, folder):
    """Entry fields from a JSON object's seeds/input/data/iters/set, over `base`'s."""
    out = dict(base)
    if "seeds" in obj:
        out["seeds"] = _positive(where, "seeds", obj["seeds"])
    if "iters" in obj:
        out["iters"] = _positive(where, "iters", obj["iters"])
    if "input" in obj:
        out["modes"] = check_modes(where, obj["input"])
    if "data" in obj:
        data = obj["data"]
        out["data"] = data if data.startswith("sinusoid") else os.path.join(folder, data)
    if "set" in obj:
        grid = obj["set"]
        if not isinstance(grid, dict):
            raise SeqgenError(f"{where}: \"set\" must map KEYs to lists of values")
        out["grid"] = {**out.get("grid", {}),
                       **{k: v if isinstance(v, list) else [v] for k, v in grid.items()}}
    return out


def read_sweep_file(path):
    """The Entries of a JSON sweep file; SeqgenError naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise SeqgenError(f"{path}: line {e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("solvers"), list) \
            or not doc["solvers"]:
        raise SeqgenError(f"{path}: expected an object with a non-empty \"solvers\" list")
    unknown = set(doc) - _SHARED - {"solvers"}
    if unknown:
        raise SeqgenError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    folder = os.path.dirname(os.path.abspath(path))
    shared = _options(path, doc, {}, folder)
    entries = []
    for i, item in enumerate(doc["solvers"]):
        where = f"{path}: solvers[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("solver"), str):
            raise SeqgenError(f"{where}: expected an object with a \"solver\" file")
        unknown = set(item) - _SHARED - {"solver"}
        if unknown:
            raise SeqgenError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        entries.append(Entry(os.path.join(folder, item["solver"]),
                             **_options(where, item, shared, folder)))
    return entries


def entries_of(source, sets=(), seeds=None, modes=None, iters=None, data=None):
    """The sweep's Entries: a sweep file's, or one for a solver/net, with the command
    line's --set grids and options over them."""
    entries = read_sweep_file(source) if source.endswith(".json") else [Entry(source)]
    given = {k: v for k, v in (("seeds", seeds), ("iters", iters), ("data", data))
             if v is not None}
    if modes is not None:
        given["modes"] = check_modes("--input", list(modes))
    return [replace(e, grid={**e.grid, **dict(sets)}, **given) for e in entries]
