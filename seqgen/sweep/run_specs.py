"""A sweep's runs, planned and checked before anything runs: for every entry, combination,
input mode and seed, a RunSpec naming its run folder and holding the texts of the modified
net and solver copies the folder gets (so that it describes itself and resumes alone)."""
import os
from dataclasses import dataclass

from google.protobuf import text_format

from ..app.solver_file import resolve_solver
from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from ..io.prototxt import read_net
from ..limits import MEMORY_LIMIT, check_memory
from ..solver.solver import check_solver_param
from .grid import TRAIN_OPTION_KEYS, combinations, resolve_key, run_name, typed_values


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: what the Dask task needs, all of it picklable."""
    name: str
    config: str
    mode: str | None
    seed: int
    settings: tuple  # ((KEY, value), ...)
    folder: str  # absolute
    solver: str  # the solver copy in `folder`
    files: tuple  # ((file name, text), ...): the net and solver copies
    data: str | None
    max_iter: int
    options: tuple = ()  # ((TrainOptions field, value), ...): the train-option KEYs


def _header(net_path):
    """The net file's leading comment lines (they carry `# seqgen: sequence_length N`)."""
    lines = []
    with open(net_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line.rstrip("\n"))
    return lines


def _abs_data(data):
    return data if data is None or data.startswith("sinusoid") else os.path.abspath(data)


def _entry_runs(entry, out, log):
    param, net_path, solver_name = resolve_solver(entry.solver, log)
    check_solver_param(param, solver_name)
    if not net_path:
        raise SeqgenError(f"{solver_name}: a sweep needs the net in its own file (net: ...)")
    net = read_net(net_path)
    config = os.path.splitext(os.path.basename(net_path))[0]
    grid = {}
    for text, raws in entry.grid.items():
        key = resolve_key(text, param, net)
        grid[key] = typed_values(key, raws)
        only = TRAIN_OPTION_KEYS[key.option].only_mode if key.option is not None else None
        if only and any(m not in (None, only) for m in entry.modes):
            raise SeqgenError(f"{text}: the feedback schedule is for input mode {only} "
                              f"only; give {solver_name} \"input\": [\"{only}\"] (or "
                              f"--input {only})")
    header = _header(net_path)
    combos = combinations(grid)
    _check_count(entry, len(combos), _spec(entry, out, param, net, config, header, combos[0],
                                           entry.modes[0], 1))
    for settings in combos:
        for mode in entry.modes:
            for seed in range(1, entry.seeds + 1):
                yield _spec(entry, out, param, net, config, header, settings, mode, seed)


#: what a planned run holds besides its net and solver texts: the RunSpec, its name and
#: folder, its entry in the results (about 2 KiB)
RUN_OVERHEAD = 2048


def _check_count(entry, combos, first):
    """Refuse a sweep whose planned runs (their net and solver copies are held until
    written) would not fit in memory, before any is made."""
    runs = combos * len(entry.modes) * entry.seeds
    each = sum(len(text) for _, text in first.files) + RUN_OVERHEAD
    fits = MEMORY_LIMIT // (each * combos * len(entry.modes))
    check_memory(f"--seeds {entry.seeds}: the sweep's {runs} runs ({entry.seeds} seed(s) x "
                 f"{combos} setting(s) x {len(entry.modes)} input mode(s), {each} bytes each)",
                 runs * each, f"give --seeds (or \"seeds\") {fits} or fewer")


def _spec(entry, out, param, net, config, header, settings, mode, seed):
    solver, copy = type(param)(), type(net)()
    solver.CopyFrom(param)
    copy.CopyFrom(net)
    for key, value in settings:
        key.apply(solver, copy, value)
    name = run_name(config, mode, settings, seed)
    solver.net, solver.random_seed = f"{config}.prototxt", seed
    if entry.iters is not None:
        solver.max_iter = entry.iters
    check_solver_param(solver, name)
    said = ", ".join(f"{k.text}={v}" for k, v in settings) or "as given"
    net_text = "\n".join(header + [f"# seqgen sweep: {name} ({said})",
                                   text_format.MessageToString(copy)])
    solver_text = (f"# seqgen sweep: {name}; the net is {config}.prototxt beside it\n"
                   + text_format.MessageToString(solver))
    folder = os.path.abspath(os.path.join(out, name))
    return RunSpec(name, config, mode, seed, tuple((k.text, v) for k, v in settings), folder,
                   os.path.join(folder, f"{config}_solver.prototxt"),
                   ((f"{config}.prototxt", net_text), (f"{config}_solver.prototxt",
                                                       solver_text)),
                   _abs_data(entry.data), solver.max_iter,
                   tuple((k.option, v) for k, v in settings if k.option is not None))


def plan_runs(entries, out, log=print):
    """Every run of the sweep as a RunSpec; SeqgenError for a bad KEY, value or file
    before any run folder is written."""
    specs = [spec for entry in entries for spec in _entry_runs(entry, out, log)]
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise SeqgenError(f"two runs of the sweep would both be {spec.name}; give each "
                              "solver its own net file or its own settings")
        seen.add(spec.name)
    return specs


def write_copies(spec):
    """The run folder with its net and solver copies; refuses a folder whose copies say
    other settings (another sweep's run of the same name)."""
    os.makedirs(spec.folder, exist_ok=True)
    for name, text in spec.files:
        path = os.path.join(spec.folder, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    raise SeqgenError(f"{path}: the run folder holds another sweep's {name}; "
                                      "choose another --out")
            continue
        atomic_write_text(path, text)
