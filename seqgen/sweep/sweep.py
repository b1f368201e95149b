"""What `seqgen sweep` does: plan and check every run, lock the sweep folder, skip the runs
that finished, compile the kernels once in this process, run the rest on Dask, and write
the results table, the summary and the report."""
import os
import tempfile
from dataclasses import dataclass, field

from ..app.evaluate import evaluate_run
from ..app.train import TrainOptions, train
from ..errors import SeqgenError
from ..io.outputs import check_output_folder
from ..io.prototxt import parse_net_text
from ..runs.folder import SWEEP_LOCK_FILE, RunLock
from .engine import dask_client, run_tasks
from .grid import split_set
from .report import write_report
from .results import write_results
from .run_specs import plan_runs, write_copies
from .runner import finished
from .sweepfile import entries_of

SWEEPS_DIR = "sweeps"


class SweepLock(RunLock):
    """The lock a sweep holds on its folder DIR: a second sweep into it is refused."""
    file = SWEEP_LOCK_FILE
    doing = "sweeping into this folder"


@dataclass
class SweepOptions:
    """`seqgen sweep`'s options; None means the sweep file's value, or the default."""
    sets: list = field(default_factory=list)  # ["KEY=V1,V2", ...]
    seeds: int | None = None
    modes: list | None = None
    iters: int | None = None
    data: str | None = None
    out: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    #: threads of each run (--threads, $SEQGEN_THREADS); None: the cores shared by workers
    threads: int | None = None


@dataclass
class Swept:
    """Where a sweep wrote (`out`), its specs and {run name: result}."""
    out: str
    specs: list
    results: dict


def default_out(source):
    """sweeps/<name of the solver or sweep file>: the same command finds its sweep again."""
    stem = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(SWEEPS_DIR, stem.replace("_solver", ""))


def warm_up(specs, log):
    """Compile (or load) the kernels in this process for each distinct kind of net, with a
    2-iteration run and its scoring in a scratch folder: numba's on-disk cache is filled
    once, before worker processes read it (filling it from several at once is unsafe).
    A kind whose runs all fail here is left to its tasks, which report the error."""
    kinds = {}
    for spec in specs:
        net = dict(spec.files)[f"{spec.config}.prototxt"]
        types = tuple(layer.type for layer in parse_net_text(net, spec.name).layer)
        kinds.setdefault((types, spec.mode, spec.data), []).append(spec)
    log(f"Warming up the kernels in this process ({len(kinds)} kind(s) of run)")
    with tempfile.TemporaryDirectory(prefix="seqgen-warmup-") as scratch:
        for i, candidates in enumerate(kinds.values()):
            for j, spec in enumerate(candidates):
                if _try_run(spec, os.path.join(scratch, f"{i}-{j}")):
                    break


def _try_run(spec, folder):
    """Train `spec` for 2 iterations in `folder` and score it; False on a SeqgenError."""
    os.makedirs(folder)
    for name, text in spec.files:
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    lines = []
    try:
        train(os.path.join(folder, os.path.basename(spec.solver)),
              TrainOptions(iters=2, mode=spec.mode, data=spec.data,
                           out=os.path.join(folder, "run"), remember=False), lines.append)
        evaluate_run(os.path.join(folder, "run"), lines.append)
    except SeqgenError:
        return False
    return True


def sweep(source, opts, log=print):
    """Run the sweep of `source` (a solver, a net or a JSON sweep file); returns Swept."""
    entries = entries_of(source, [split_set(s) for s in opts.sets], opts.seeds, opts.modes,
                         opts.iters, opts.data)
    out = os.path.abspath(opts.out or default_out(source))
    check_output_folder(opts.out or out)
    specs = plan_runs(entries, out, log)
    os.makedirs(out, exist_ok=True)
    with SweepLock(out):
        results = {s.name: {**r, "skipped": True} for s in specs
                   for r in [finished(s)] if r is not None}
        todo = [s for s in specs if s.name not in results]
        log(f"Sweep of {len(specs)} run(s) into {out}: {len(results)} finished already "
            f"(skipped), {len(todo)} to run")
        for spec in todo:
            write_copies(spec)
        try:
            if todo:
                warm_up(todo, log)
                with dask_client(opts.workers, opts.scheduler, log, opts.threads) as client:
                    run_tasks(client, todo, results, len(specs), log)
        except KeyboardInterrupt:
            done = sum(finished(s) is not None for s in specs)
            log(f"Interrupted: {done} run(s) finished; the others keep their "
                "snapshots. Run the same command again to continue the sweep.")
            raise
        for path in write_results(out, specs, results) + write_report(out, specs, results):
            log(f"Wrote {path}")
    return Swept(out, specs, results)
