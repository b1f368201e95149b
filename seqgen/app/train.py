"""What `seqgen train` does: train a net on the data a plan feeds, in a run folder that
never loses a run. The driver knows no kind of data: the plan (seqgen.data) feeds
the net, tests it and says what identifies the data; the RunBook keeps the logs and the
record; endings.py says how a session ends.
"""
import os
import secrets
from dataclasses import dataclass, make_dataclass, replace

from ..data import PlanOptions, check_spec, on_off, plan_class, plan_options, resume_order
from ..errors import SeqgenError
from ..io.atomic import WriteFailed, remove_stale_temps
from ..io.outputs import check_output_folder
from ..io.solverstate import read_sidecar, sidecar_path
from ..runs.folder import RunLock, check_folder_free, new_run_dir, remember_run
from ..runs.record import RUN_FILE, RunRecord, RunSettings, absolute_data
from ..runs.set_aside import FLAG as SET_ASIDE
from ..runs.set_aside import check_not_older, set_aside
from ..solver.diagnosis import Diverged
from ..solver.solver import ACTIONS, SNAPSHOT, STOP, Solver, check_solver_param
from .caffe_log import run_log
from .endings import Ending, Interrupted  # noqa: F401  (Interrupted: part of the API)
from .progress import Progress
from .run_book import RunBook
from .signals import Abandoned, StopSignals
from .solver_file import resolve_solver


@dataclass
class DriverOptions:
    """The options of `seqgen train` that every run has; None means the default, or with
    `resume` the snapshot's run's setting."""
    iters: int | None = None
    weights: str | None = None
    data: str | None = None
    fork_compat: bool | None = None
    out: str | None = None
    resume: str | None = None
    seed: int | None = None
    sigint_effect: str = STOP
    sighup_effect: str = SNAPSHOT
    allow_changes: bool = False
    set_aside_newer: bool = False
    #: note the folder as the working directory's latest run (a sweep's runs are not noted)
    remember: bool = True


#: `seqgen train`'s options: the driver's and every data plan's (data.plan_options: --input,
#: --holdout, --split, ...), None where not given
TrainOptions = make_dataclass("TrainOptions", [(o.field, object, None) for o in plan_options()],
                              bases=(DriverOptions,))


@dataclass
class Trained:
    """Where a training run is (`folder`) and what to run next (`next`, a command)."""
    folder: str
    next: str


def train_sequence(path, log=print, **options):
    """Train a net (solver or net file) as `seqgen train` does; returns the run folder.
    Keyword options are TrainOptions' fields."""
    return train(path, TrainOptions(**options), log).folder


def recorded_settings(resume):
    """The settings of the run that wrote `resume`: from its sidecar, else from run.json in
    its folder; empty when neither exists."""
    side = sidecar_path(resume)
    if os.path.exists(side):
        return RunSettings.from_sidecar(read_sidecar(side)[0])
    folder = os.path.dirname(os.path.abspath(resume))
    if os.path.exists(os.path.join(folder, RUN_FILE)):
        try:
            return RunSettings.from_record(RunRecord.read(folder))
        except SeqgenError:
            pass
    return RunSettings()


def take_recorded(opts, param, log):
    """With --resume: fill the options not given from the snapshot's run, and refuse an
    --iters the snapshot has already reached. Returns the recorded fingerprint."""
    if not os.path.exists(opts.resume):
        raise SeqgenError(f"{opts.resume}: no such file")
    rec = recorded_settings(opts.resume)
    taken = []
    if opts.iters is None and rec.max_iter:
        opts.iters = int(rec.max_iter)
        if opts.iters != param.max_iter:
            taken.append(f"--iters {opts.iters}")
    if opts.data is None and rec.data is not None:
        opts.data = rec.data
        taken.append(f"--data {rec.data}")
    for option in resume_order(rec):
        value = option.recorded_value(rec)
        if value is None or getattr(opts, option.field) is not None:
            continue
        if option.resumes_if is not None and not option.resumes_if(opts):
            continue
        setattr(opts, option.field, value)
        if value != option.default:
            taken.append(option.said(value))
    if opts.fork_compat is None and rec.fork_compat:
        opts.fork_compat = True
        taken.append("--fork-compat")
    if taken:
        log(f"Resuming with the snapshot's run's settings: {' '.join(taken)}")
    if opts.out is None:
        folder = os.path.dirname(os.path.abspath(opts.resume))
        if os.path.exists(os.path.join(folder, RUN_FILE)):
            opts.out = os.path.relpath(folder)
            log(f"Continuing in the snapshot's run folder {opts.out}")
    return rec.fingerprint


def warn_no_record(resume, folder, log):
    """A resume whose snapshot sits in a folder without run.json trains in a new folder:
    say so, and how to continue in the snapshot's folder instead."""
    there = os.path.relpath(os.path.dirname(os.path.abspath(resume)))
    log(f"Warning: {there} has no {RUN_FILE} (not a run folder, or its record was deleted), "
        f"so this session trains in a new run folder {folder}; give --out {there} to continue "
        "in the snapshot's folder")


def open_plan(opts, net_path, log, has_inputs):
    plan_opts = PlanOptions(data=opts.data, resuming=opts.resume or False,
                            **{o.field: getattr(opts, o.field) for o in plan_options()})
    check_spec(opts.data, net_path)
    cls = plan_class(opts.data, has_inputs)
    cls.check_options(plan_opts)
    return cls(plan_opts, net_path, log)


def adapt_net(plan, param, net_path, folder):
    """The net file the run trains: the plan's copy in the run folder when it adapts the
    net (a text run's --fit-vocab), else `net_path`; the solver then builds the copy."""
    adapted = plan.adapted_net(net_path, folder) if plan is not None else None
    if adapted is None:
        return net_path
    net_param, copy = adapted
    param.ClearField("net")
    param.ClearField("train_net")
    param.net_param.CopyFrom(net_param)
    return copy


def new_record(opts, plan, param, net_path, solver_path, name):
    data = plan.spec()
    record = RunRecord(net=os.path.abspath(net_path), name=name, data=data,
                       data_kind=plan.kind, fork_compat=bool(opts.fork_compat),
                       solver=os.path.abspath(solver_path), max_iter=param.max_iter,
                       random_seed=param.random_seed, feedback=opts.feedback is not False)
    for key, value in plan.record().items():
        if value is not None:
            setattr(record, key, value)
    if absolute_data(data) is not None:
        record.data_abs = absolute_data(data)
    return record


def build(path, opts, log):
    """Everything before the first file is written: the solver with its net, the plan,
    the record and the book; refuses bad input with SeqgenError."""
    for flag, effect in (("--sigint-effect", opts.sigint_effect),
                         ("--sighup-effect", opts.sighup_effect)):
        if effect not in ACTIONS:
            raise SeqgenError(f"{flag} must be one of {', '.join(ACTIONS)}, not '{effect}'")
    param, net_path, solver_name = resolve_solver(path, log)
    check_solver_param(param, solver_name)  # before any data is read or net built
    recorded = take_recorded(opts, param, log) if opts.resume else None
    if opts.iters is not None:
        param.max_iter = opts.iters
    if opts.seed is not None:
        param.random_seed = opts.seed
    plan = open_plan(opts, net_path, log, None) if opts.data is not None else None
    name = os.path.splitext(os.path.basename(net_path))[0]
    folder = opts.out or new_run_dir(name)
    check_output_folder(folder)
    if opts.resume and not opts.out:
        warn_no_record(opts.resume, folder, log)
    check_folder_free(folder, opts.resume)
    net_path = adapt_net(plan, param, net_path, folder)
    if not param.HasField("random_seed") or param.random_seed < 0:
        # Caffe would draw from /dev/urandom; we draw too, but record the seed so that any
        # run can be repeated with --seed or `random_seed: <seed>` in the solver
        param.random_seed = secrets.randbelow(2 ** 31)
    options = {"fork_compat": bool(opts.fork_compat)}
    solver = Solver(param, options=options, out_dir=folder, log=log, source=solver_name)
    net = solver.net
    if plan is None:
        plan = open_plan(opts, net_path, log, bool(net.inputs))
    solver.add_callback(plan.bind(solver))
    solver.tester = plan.tester or solver.tester
    if opts.weights:
        net.copy_from(opts.weights)
        log(f"Loaded weights from {opts.weights}")
    plan.prepare(net, bool(opts.weights), bool(opts.resume))
    if opts.fork_compat and not any("fork_compat" in layer.reads_options
                                    for layer in net.layers):
        log("Warning: --fork-compat has no effect: the net has no caffe-lstm Lstm layer")
    record = new_record(opts, plan, param, net_path, path, name)
    settings = replace(RunSettings.from_record(record), fingerprint=None,
                       data=record.get("data_abs", record.data) if opts.data is not None
                       else None)
    book = solver.add_callback(RunBook(record, settings, param.max_iter))
    solver.fingerprint_options = {
        "data": plan.identity(), "_data": str(plan.spec() or "its own data layers"),
        **plan.fingerprint_options(), "--fork-compat": on_off(bool(opts.fork_compat))}
    solver.data_inputs = plan.data_inputs(net)
    return solver, plan, book, folder, name, recorded


def train(path, opts, log=print):
    """Train as `seqgen train` does (see the module docstring); returns Trained."""
    solver, plan, book, folder, name, recorded = build(path, opts, log)
    record = book.record
    newer = None
    if opts.set_aside_newer and not opts.resume:
        raise SeqgenError(f"{SET_ASIDE} goes with --resume (of a snapshot older than its "
                          "folder's newest)")
    if opts.resume:
        plan.check_resume(os.path.dirname(os.path.abspath(opts.resume)))
        if solver.restore(opts.resume, allow_changes=opts.allow_changes,
                          recorded=recorded) is None:
            plan.restore_without_sidecar(solver)
        if solver.param.max_iter <= solver.iter:  # (nothing is written yet)
            raise SeqgenError(f"{opts.resume}: the snapshot is at iteration {solver.iter}, so "
                              f"--iters {solver.param.max_iter} leaves nothing to train; give "
                              f"--iters above {solver.iter} to train further")
        newer = check_not_older(opts.resume, folder, solver.iter, opts.set_aside_newer)
        for line in plan.notes_on_resume():
            log(line)
        log(f"Resumed from {opts.resume} at iteration {solver.iter}")
        record.resumed_from, record.iterations = os.path.abspath(opts.resume), solver.iter
        record.weights = os.path.abspath(solver.restored[1]) if solver.restored[1] else None
        record.solverstate = os.path.abspath(opts.resume)
    os.makedirs(folder, exist_ok=True)  # only now: a run that cannot start leaves nothing
    with RunLock(folder):
        check_folder_free(folder, opts.resume, locked=True)  # again, now no one else can start
        if opts.resume and newer:
            set_aside(folder, solver.iter, log)
        plan.prepare_folder(folder)
        stale = remove_stale_temps(folder)
        if stale:
            log(f"Removed {len(stale)} temporary file(s) a killed run left in {folder}")
        book.open(folder, solver.iter, Progress(solver.param.max_iter, solver.param.display,
                                                log))
        record.fingerprint = solver.fingerprint()
        ending = Ending(solver, book, plan, folder, name, path, log)
        try:
            record.write(folder)
            if opts.remember:
                remember_run(folder)
            log(f"Training {name} on {plan.describe()}, {solver.param.max_iter - solver.iter} "
                f"iterations; run folder {folder}")
            for line in plan.notes():
                log(line)
            with run_log(folder, solver):  # caffe.log, Caffe's log of the session
                run_session(solver, book, ending, opts)
        except WriteFailed as e:
            ending.write_failed(e)
    return Trained(folder, plan.next_hint(folder))


def run_session(solver, book, ending, opts):
    """Train to max_iter under the signal handlers, then end as the session ended."""
    with StopSignals(solver, opts.sigint_effect, opts.sighup_effect) as signals:
        diverged = abandoned = None
        try:
            solver.step(solver.param.max_iter - solver.iter)
        except Diverged as e:
            diverged = e
        except Abandoned as e:
            abandoned = e.signum
        signals.training = False  # from here on a signal only marks the run as stopped
        if abandoned is not None:
            ending.abandoned(abandoned)
        elapsed = book.progress.finish(solver)
        if diverged is not None:
            ending.diverged(diverged, elapsed)
        ending.normal(signals, elapsed)
