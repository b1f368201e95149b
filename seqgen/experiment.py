"""The sequence experiment as API calls: train a net on a sequence, generate from a run.

`train_sequence` is what `seqgen train` does and `generate_from_run` what `seqgen
generate` does; the CLI only parses arguments and prints.
"""
import os
import re
import secrets
import signal

import numpy as np

from .data import resolve_source
from .errors import SeqgenError
from .feeder import MODES, NpzFeeder, SequenceFeeder
from .generate import generate
from .kernels import compile_notice
from .net import TEST, Net
from .plot import plot_generation, plot_loss, write_generated_csv
from .fileio import write_csv_atomic
from .progress import Progress
from .proto import caffe_pb2
from .prototxt import parse_solver_text, read_net, read_solver
from .runs import (latest_run, new_run_dir, read_run, remember_run, run_of_weights,
                   write_run)
from .solver import Solver


class Interrupted(SeqgenError):
    """Training stopped by a signal after a snapshot was written (exit 128 + signal)."""


# The fork's examples/lstm_sequence solver settings, used when a net comes without a solver.
FORK_SOLVER = """
base_lr: 0.0001
momentum: 0.95
lr_policy: "fixed"
display: 200
average_loss: 200
max_iter: 100000
"""


def _is_solver(path):
    """A solver file names a net or sets solver fields; a net file does neither."""
    try:
        read_net(path)
        return False
    except SeqgenError as net_error:
        try:
            param = read_solver(path)
        except SeqgenError:
            raise net_error from None
        return bool(param.net or param.HasField("net_param") or param.train_net
                    or param.HasField("train_net_param"))


def _default_prefix(param, solver_path):
    """Snapshots of a solver without snapshot_prefix are named after its file (as the
    Solver does when it reads the file itself), not after '<SolverParameter>'."""
    if not param.snapshot_prefix:
        stem = os.path.splitext(os.path.basename(solver_path))[0]
        param.snapshot_prefix = stem.replace("_solver", "")


def resolve_solver(path, log=print):
    """(SolverParameter, net file) for a solver file or a net file."""
    if not os.path.exists(path):
        raise SeqgenError(f"{path}: no such file")
    if _is_solver(path):
        param = read_solver(path)
        _default_prefix(param, path)
        return param, param.net or param.train_net
    stem, _ = os.path.splitext(path)
    beside = stem + "_solver.prototxt"
    if os.path.exists(beside):
        log(f"Using the solver beside the net: {beside}")
        param = read_solver(beside)
        param.net = os.path.abspath(path)
        _default_prefix(param, beside)
        return param, path
    log(f"No {os.path.basename(beside)} beside the net: using the caffe-lstm example's solver "
        "settings (SGD, base_lr 1e-4, momentum 0.95, max_iter 100000)")
    param = parse_solver_text(FORK_SOLVER, "<fork solver settings>")
    param.net = os.path.abspath(path)
    param.snapshot_prefix = os.path.basename(stem)
    return param, path


_LENGTH_DIRECTIVE = re.compile(r"^#\s*seqgen:\s*sequence_length\s+(\d+)\s*$", re.M)
_KNOWN_LENGTHS = {"lstm_long": 960, "deep_lstm_long": 960}


def default_data_spec(net_path):
    """The built-in sinusoid at the length the net's file asks for (a `# seqgen:
    sequence_length N` comment, or the fork's own long configurations by name), else 320."""
    try:
        with open(net_path, encoding="utf-8", errors="replace") as f:
            match = _LENGTH_DIRECTIVE.search(f.read())
    except OSError:
        match = None
    if match:
        return f"sinusoid:{int(match.group(1))}"
    name = os.path.splitext(os.path.basename(net_path))[0]
    return f"sinusoid:{_KNOWN_LENGTHS.get(name, 320)}"


class FeedbackSchedule:
    """Trains on the net's own free-running predictions for a growing share of the steps.

    Every `refresh` iterations the current weights generate the whole sequence free-running;
    each step's input is then that generated value with probability p (else the true one),
    p rising linearly from 0 to `share` over the first `ramp` of the run. Teacher forcing
    alone never shows the net its own errors, and its free-running output drifts.
    """

    def __init__(self, feeder, test_net, total, share=1.0, ramp=0.1, refresh=20, seed=0):
        self.feeder, self.test_net = feeder, test_net
        self.total, self.share, self.ramp, self.refresh = total, share, ramp, refresh
        self.rng = np.random.default_rng(seed)
        self.length = len(feeder.sequence)

    def __call__(self, solver):
        if solver.iter % self.refresh == 0 and self.feeder.passes % max(1, solver.param.iter_size) == 0:
            p = self.share * min(1.0, solver.iter / max(1.0, self.ramp * self.total))
            if p > 0:
                own = generate(self.test_net, self.length, "previous")
                keep_true = self.rng.random(self.length) >= p
                mixed = np.where(keep_true[:, None], self.feeder.sequence, own)
                self.feeder.set_inputs(mixed)
        self.feeder(solver)


def is_npz_spec(spec):
    return spec is not None and str(spec).lower().endswith(".npz")


def train_sequence(path, iters=None, weights=None, mode=None, data=None,
                   fork_compat=False, out=None, resume=None, feedback=True, log=print):
    """Train a net (solver or net file); returns the run folder.

    What feeds the net's inputs, by `data`:
    - a sequence (sinusoid[:N], .csv, .txt, .npy; default: the net's sinusoid) walked
      as the fork's lstm_sequence driver does, with input `mode` "previous" (default) or
      "zero" (SequenceFeeder);
    - an .npz file with one array per input blob (NpzFeeder);
    - nothing, when `data` is None and the net has no Input blobs: its own data layers
      (HDF5Data) read the data.
    """
    if mode is not None and mode not in MODES:
        raise SeqgenError(f"--input must be one of {', '.join(MODES)}, not '{mode}'")
    compile_notice(log)
    param, net_path = resolve_solver(path, log)
    if iters is not None:
        if iters <= 0:
            raise SeqgenError(f"--iters must be positive, got {iters}")
        param.max_iter = iters
    npz = is_npz_spec(data)
    if npz and mode is not None:
        raise SeqgenError(f"--input {mode} is for sequence data; {data} gives every input "
                          "blob its values as they are")
    source = sequence = None
    if data is not None and not npz:
        source, sequence = resolve_source(data)
    name = os.path.splitext(os.path.basename(net_path))[0]
    folder = out or new_run_dir(name)
    if not param.HasField("random_seed") or param.random_seed < 0:
        # Caffe would draw from /dev/urandom; we draw too, but record the seed so that any
        # run can be repeated by putting `random_seed: <seed>` into the solver
        param.random_seed = secrets.randbelow(2 ** 31)
    options = {"fork_compat": fork_compat}
    solver = Solver(param, options=options, out_dir=folder, log=log)
    net = solver.net
    if npz:
        kind, spec = "npz", str(data)
        feeder = NpzFeeder(net, data)
        what = f"{data} ({feeder.describe()})"
    elif data is None and not net.inputs:
        if mode is not None:
            raise SeqgenError(f"--input {mode}: the net has no Input blobs; its own data "
                              "layers feed it")
        kind, spec, feeder = "own", None, None
        readers = sorted({layer.type for layer in net.layers if not layer.param.bottom
                          and layer.param.top}) or ["none"]
        what = f"the data its own layers read ({', '.join(readers)})"
    else:
        kind, spec = "sequence", data or default_data_spec(net_path)
        if sequence is None:
            source, sequence = resolve_source(spec)
        mode = mode or "previous"
        feeder = SequenceFeeder(net, sequence, mode, source)
        what = (f"{source} ({len(feeder.sequence)} steps in chunks of {feeder.T}), "
                f"input mode '{mode}'")
    if weights:
        net.copy_from(weights)
        log(f"Loaded weights from {weights}")
    elif not resume and kind == "sequence":
        for layer in net.layers:
            if hasattr(layer, "set_forget_bias"):
                layer.set_forget_bias(5.0)  # what the fork's driver does after building the net
    if resume:
        solver.restore(resume)
        if feeder is not None:
            feeder.passes = solver.iter * max(1, param.iter_size)
        log(f"Resumed from {resume} at iteration {solver.iter}")
    hook = feeder
    if kind == "sequence":
        test_net = Net(net_path, TEST, options=options)
        test_net.share_weights(net)
        if mode == "previous" and feedback:
            hook = FeedbackSchedule(feeder, test_net, param.max_iter, seed=param.random_seed)
    os.makedirs(folder, exist_ok=True)  # only now: a run that cannot start leaves nothing
    solver.before_forward = hook
    total = param.max_iter
    losses = np.full(total, np.nan, np.float32)
    progress = Progress(total, param.display, log)

    def after(s, loss):
        losses[s.iter - 1] = loss
        progress(s, loss)

    solver.after_iteration = after
    info = {"net": os.path.abspath(net_path), "name": name, "data": spec, "data_kind": kind,
            "input": mode, "fork_compat": fork_compat, "solver": os.path.abspath(path),
            "max_iter": total, "random_seed": param.random_seed}
    write_run(folder, info)
    remember_run(folder)
    log(f"Training {name} on {what}, {total - solver.iter} iterations; run folder {folder}")
    if kind == "sequence" and len(sequence) > len(feeder.sequence):
        log(f"Note: the last {len(sequence) - len(feeder.sequence)} steps of {source} do not "
            "fill a chunk and are not used")

    caught = []

    def on_signal(signum, frame):
        if caught:  # a second signal: stop now
            raise KeyboardInterrupt
        caught.append(signum)
        solver.stop_requested = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        solver.step(total - solver.iter)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    elapsed = progress.finish(solver)
    model, state = solver.snapshot()
    done = ~np.isnan(losses)
    write_csv_atomic(os.path.join(folder, "loss.csv"), ["iteration", "loss"],
                     [np.nonzero(done)[0], losses[done]])
    info.update({"iterations": solver.iter, "weights": os.path.abspath(model),
                 "solverstate": os.path.abspath(state), "train_seconds": round(elapsed, 2),
                 "final_loss": float(solver.last_loss)})
    write_run(folder, info)
    if done.any():
        plot_loss(np.nonzero(done)[0], losses[done], os.path.join(folder, "loss.png"),
                  title=f"{name}: training loss")
    if caught:
        signame = signal.Signals(caught[0]).name
        err = Interrupted(f"{signame} at iteration {solver.iter}: snapshot written to {model}; "
                          f"resume with: seqgen train {path} --resume {state} --out {folder}")
        err.exit_code = 128 + caught[0]
        raise err
    return folder


def generate_from_run(weights=None, net=None, steps=320, prime=0, out=None, mode=None,
                      data=None, log=print):
    """Generate `steps` free-running steps; writes generated.csv and generated.png."""
    compile_notice(log)
    run = None
    if weights is None:
        folder = latest_run()
        run = read_run(folder)
        if "weights" not in run:
            raise SeqgenError(f"{folder}: the run has no snapshot yet")
        weights = run["weights"]
        log(f"Using {weights} (most recent run)")
    else:
        folder = run_of_weights(weights)
        run = read_run(folder) if folder else None
    if net is None:
        if run is None:
            raise SeqgenError(f"{weights}: not inside a seqgen run folder; say which net it "
                              "belongs to with --net NET.prototxt")
        net = run["net"]
    kind = (run or {}).get("data_kind", "sequence")
    if kind != "sequence" and not data:
        trained_on = run.get("data") or "its own data layers"
        raise SeqgenError(
            f"{folder}: this run was trained on {trained_on}, not on a sequence; seqgen "
            "generate only runs sequence nets fed the fork's way (sinusoid, .csv, .txt, .npy). "
            "Use its weights from Python instead: net = seqgen.Net(NET, WEIGHTS, seqgen.TEST), "
            "then net.forward(...)")
    if is_npz_spec(data):
        raise SeqgenError(f"--data {data}: seqgen generate compares with a sequence (sinusoid, "
                          ".csv, .txt, .npy), not with an .npz of input arrays; to run a net on "
                          "those, use seqgen.Net(NET, WEIGHTS, seqgen.TEST).forward(**arrays)")
    mode = mode or (run or {}).get("input") or "previous"
    spec = data or (run or {}).get("data") or default_data_spec(net)
    _, true = resolve_source(spec)
    options = {"fork_compat": bool((run or {}).get("fork_compat"))}
    test = Net(net, weights, TEST, options=options)
    generated = generate(test, steps, mode, true, prime)
    out = out or folder or "."
    os.makedirs(out, exist_ok=True)
    n = min(steps, len(true))
    true_part = true[:n]
    csv_path = os.path.join(out, "generated.csv")
    png_path = os.path.join(out, "generated.png")
    write_generated_csv(csv_path, generated, true_part)
    name = os.path.splitext(os.path.basename(net))[0]
    plot_generation(np.arange(steps), generated, true_part, prime, path=png_path,
                    title=f"{name}: {steps} steps free-running (input mode '{mode}')")
    result = {"csv": csv_path, "png": png_path, "generated": generated}
    if n:
        err = generated[:n] - true_part
        result["mse"] = float(np.mean(err ** 2))
        result["max_abs_error"] = float(np.abs(err).max())
    return result
