"""The sequence experiment as API calls: train a net on a sequence, generate from a run.

`train_sequence` is what `seqgen train` does and `generate_from_run` what `seqgen
generate` does; the CLI only parses arguments and prints.
"""
import hashlib
import os
import re
import secrets
import shlex
import signal
import time

import numpy as np

from ..tasks.data import resolve_source
from ..errors import SeqgenError, SeqgenRuntimeError
from ..tasks.feeder import MODES, NpzFeeder, SequenceFeeder, input_roles, shifted
from ..tasks.generate import GenerationDiverged, generate, output_name
from ..kernels import compile_notice
from ..net import TEST, Net
from .plot import plot_generation, write_generated_csv
from ..io.atomic import atomic_write_text, format_cell, remove_stale_temps
from .progress import Progress
from ..io.prototxt import parse_solver_text, read_net, read_solver
from .replot import plot_run_losses, read_loss_csv
from ..tasks.runs import (latest_run, new_run_dir, read_run, remember_run, run_of_weights,
                   write_run)
from ..solver.solver import (ACTIONS, SNAPSHOT, STOP, Diverged, NonFinite, Solver,
                     check_solver_param)


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
    """(SolverParameter, net file, the solver's name for messages) for a solver file or a
    net file."""
    if not os.path.exists(path):
        raise SeqgenError(f"{path}: no such file")
    if _is_solver(path):
        param = read_solver(path)
        _default_prefix(param, path)
        return param, param.net or param.train_net, str(path)
    stem, _ = os.path.splitext(path)
    beside = stem + "_solver.prototxt"
    if os.path.exists(beside):
        log(f"Using the solver beside the net: {beside}")
        param = read_solver(beside)
        param.net = os.path.abspath(path)
        _default_prefix(param, beside)
        return param, path, beside
    log(f"No {os.path.basename(beside)} beside the net: using the caffe-lstm example's solver "
        "settings (SGD, base_lr 1e-4, momentum 0.95, max_iter 100000)")
    param = parse_solver_text(FORK_SOLVER, "<fork solver settings>")
    param.net = os.path.abspath(path)
    param.snapshot_prefix = os.path.basename(stem)
    return param, path, "<fork solver settings>"


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
                try:
                    own = generate(self.test_net, self.length, "previous")
                except SeqgenRuntimeError as e:
                    raise NonFinite(f"the net's free-running predictions, which the feedback "
                                    f"schedule feeds back as inputs, are not finite ({e})") \
                        from None
                keep_true = self.rng.random(self.length) >= p
                mixed = np.where(keep_true[:, None], self.feeder.sequence, own)
                self.feeder.set_inputs(mixed)
        self.feeder(solver)

    def get_state(self):
        """What a resumed run needs to continue the schedule exactly (JSON-able); the
        feeder's current inputs are saved with the feeder."""
        return {"rng": self.rng.bit_generator.state, "total": self.total,
                "share": self.share, "ramp": self.ramp, "refresh": self.refresh}

    def set_state(self, state):
        self.total, self.share = state["total"], state["share"]
        self.ramp, self.refresh = state["ramp"], state["refresh"]
        self.rng.bit_generator.state = state["rng"]


class HeldOutTest:
    """The solver's tester for sequence data: the TEST-phase loss on a held-out tail.

    The TEST net (weights shared with the training net) runs over the whole sequence in
    chunks of T, teacher-forced in the training input mode, its state carried from chunk to
    chunk as in training; the losses of the `test_chunks` chunks after the first
    `train_chunks` (the held-out part, which training never sees) are averaged. The loss is
    the TEST net's own loss output when it has one and a label input, else Caffe's
    EuclideanLoss of the net's prediction against the sequence: sum((y - x)^2) / (2 T).
    """

    def __init__(self, net, sequence, mode, T, train_chunks, test_chunks):
        self.net, self.T = net, T
        self.train_chunks, self.test_chunks = train_chunks, test_chunks
        n = (train_chunks + test_chunks) * T
        self.sequence = np.asarray(sequence[:n], np.float32)
        self.inputs = shifted(self.sequence) if mode == "previous" else \
            np.zeros_like(self.sequence)
        self.data, self.clip, self.label = input_roles(net)
        weights = net.blob_loss_weights
        self.loss_outputs = [o for o in net.outputs if weights.get(o)] if self.label else []
        self.prediction = None if self.loss_outputs else output_name(net)

    def __call__(self, solver):
        net, T = self.net, self.T
        saved = net.get_state()
        net.reset_state()
        blobs = net.blobs
        total, weighted = 0.0, []
        try:
            for k in range(self.train_chunks + self.test_chunks):
                sl = slice(k * T, (k + 1) * T)
                clip = np.ones(T, np.float32)
                clip[0] = 1.0 if k > 0 else 0.0
                blobs[self.data].data[...] = self.inputs[sl].reshape(blobs[self.data].shape)
                blobs[self.clip].data[...] = clip.reshape(blobs[self.clip].shape)
                if self.label:
                    blobs[self.label].data[...] = \
                        self.sequence[sl].reshape(blobs[self.label].shape)
                outputs = net.forward()
                if k < self.train_chunks:
                    continue
                if self.loss_outputs:
                    weighted.append([float(np.asarray(outputs[o]).ravel()[0])
                                     for o in self.loss_outputs])
                else:
                    y = np.asarray(outputs[self.prediction], np.float64).reshape(T, -1)
                    x = self.sequence[sl].astype(np.float64).reshape(T, -1)
                    total += float(np.sum((y - x) ** 2)) / (2 * T)
        finally:
            net.set_state(saved)
        if self.loss_outputs:
            means = np.mean(np.array(weighted), axis=0)
            return [(o, float(v), net.blob_loss_weights[o])
                    for o, v in zip(self.loss_outputs, means)]
        return [("loss", total / self.test_chunks, 0.0)]


def test_loss_of(results):
    """One number for test_loss.csv: the weighted sum of the loss outputs, else the first."""
    weighted = [(v, w) for _, v, w in results if w]
    if weighted:
        return sum(v * w for v, w in weighted)
    return results[0][1] if results else float("nan")


def is_npz_spec(spec):
    return spec is not None and str(spec).lower().endswith(".npz")


SIGNAL_EFFECT_DEFAULTS = {"sigint": STOP, "sighup": SNAPSHOT}  # caffe train's defaults


def _holdout_plan(param, holdout, T, length, source, log):
    """(training chunks, held-out chunks, chunks per test) of a sequence of `length` steps
    in chunks of T; the held-out tail is --holdout STEPS, or test_iter chunks when the
    solver asks for tests (test_interval, test_iter) and no --holdout is given."""
    chunks = length // T
    test_iter = param.test_iter[0] if len(param.test_iter) else 0
    if holdout is None:
        if not (param.test_interval and test_iter):
            return chunks, 0, 0
        if chunks < test_iter + 1:
            log(f"Note: the solver asks for tests (test_interval {param.test_interval}, "
                f"test_iter {test_iter}), but {source} has {length} steps, {chunks} chunk(s) of "
                f"{T}: nothing left to hold out; testing is off (use a longer --data)")
            return chunks, 0, 0
        return chunks - test_iter, test_iter, test_iter
    if holdout <= 0 or holdout % T:
        raise SeqgenError(f"--holdout {holdout}: must be a positive multiple of the net's "
                          f"chunk length {T}")
    held = holdout // T
    if chunks - held < 1:
        raise SeqgenError(f"--holdout {holdout}: {source} has {length} steps ({chunks} chunk(s) "
                          f"of {T}); at least one chunk must remain for training")
    if test_iter > held:
        raise SeqgenError(f"test_iter {test_iter} asks for more chunks than --holdout {holdout} "
                          f"holds out ({held} of {T} steps)")
    return chunks - held, held, test_iter or held


class _Abandoned(BaseException):
    """A second stop signal during an iteration: stop at once, without a snapshot."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _quote_command(*args):
    return " ".join(shlex.quote(str(a)) for a in args)


def _fingerprint_value(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    return "(none)" if value is None else str(value)


def _recorded_run(resume):
    """What the run that wrote `resume` was (its options, fingerprint, data position...):
    from the snapshot's sidecar, else from run.json in its folder; {} when neither exists."""
    from ..io.solverstate import read_sidecar, sidecar_path

    side = sidecar_path(resume)
    if os.path.exists(side):
        meta, _ = read_sidecar(side)
        record = dict((meta.get("extra") or {}).get("run") or {})
        record["fingerprint"] = meta.get("fingerprint")
        return record
    folder = os.path.dirname(os.path.abspath(resume))
    if os.path.exists(os.path.join(folder, "run.json")):
        try:
            info = read_run(folder)
        except SeqgenError:
            return {}
        data = info.get("data")
        return {"max_iter": info.get("max_iter"), "input": info.get("input"),
                "data": info.get("data_abs", data), "holdout": info.get("holdout_steps"),
                "feedback": info.get("feedback"), "fork_compat": info.get("fork_compat"),
                "fingerprint": info.get("fingerprint")}
    return {}


class _LossLog:
    """loss.csv (or test_loss.csv) of a run folder: the rows of earlier sessions before this
    one's first iteration, plus this session's, which `rows_between(lo, hi)` gives as
    (iterations, values) for lo <= iteration < hi. Rewritten atomically at the end and now
    and then at snapshots, formatting each row once. Rows not yet in the file travel in the
    snapshot sidecars (`tail`), so that a run killed between two writes and resumed keeps its
    whole curve."""

    def __init__(self, path, start, dtype, rows_between, carried=None):
        self.path, self.start, self.dtype = path, start, dtype
        self.rows_between = rows_between
        old = {}
        self.existed = os.path.exists(path)
        if self.existed:
            try:
                old = {int(i): v for i, v in read_loss_csv(path) if i < start}
            except SeqgenError:
                old = {}
        carried_its = []
        if carried is not None:
            carried_its = [int(i) for i in carried[0] if i < start]
            old.update({int(i): v for i, v in zip(*carried) if i < start})
        rows = sorted(old.items())
        self.old_its = np.array([r[0] for r in rows], np.int64)
        self.old_vals = np.array([r[1] for r in rows], dtype)
        self.text = [self._format(self.old_its, self.old_vals)]
        self.done = start  # this session's rows below it are formatted in self.text
        # rows from this iteration on are not in the file yet
        self.pending_from = min([start] + carried_its)

    def _format(self, its, vals):
        cells = map(format_cell, np.asarray(vals, self.dtype))  # the CSV writer's cell rules
        return "".join(f"{i},{c}\n" for i, c in zip(np.asarray(its).tolist(), cells))

    def wanted(self):
        """Whether the file is worth writing without new rows: earlier rows to keep, or a
        file to keep up to date."""
        return bool(len(self.old_its)) or self.existed

    def write(self, upto):
        its, vals = self.rows_between(self.done, upto)
        self.text.append(self._format(its, vals))
        self.done = max(self.done, upto)
        atomic_write_text(self.path, "iteration,loss\n" + "".join(self.text))
        self.pending_from = upto
        self.existed = True
        return self.rows()

    def rows(self):
        its, vals = self.rows_between(self.start, self.done)
        return (np.concatenate([self.old_its, np.asarray(its, np.int64)]),
                np.concatenate([self.old_vals, np.asarray(vals, self.dtype)]))

    def tail(self, upto):
        """(iterations, values) not yet in the file, up to `upto`."""
        keep = self.old_its >= self.pending_from
        its, vals = self.rows_between(max(self.pending_from, self.start), upto)
        return (np.concatenate([self.old_its[keep], np.asarray(its, np.int64)]),
                np.concatenate([self.old_vals[keep], np.asarray(vals, self.dtype)]))


def train_sequence(path, iters=None, weights=None, mode=None, data=None,
                   fork_compat=None, out=None, resume=None, feedback=None, holdout=None,
                   sigint_effect=STOP, sighup_effect=SNAPSHOT, allow_changes=False, log=print):
    """Train a net (solver or net file); returns the run folder.

    What feeds the net's inputs, by `data`:
    - a sequence (sinusoid[:N], .csv, .txt, .npy; default: the net's sinusoid) walked
      as the fork's lstm_sequence driver does, with input `mode` "previous" (default) or
      "zero" (SequenceFeeder);
    - an .npz file with one array per input blob (NpzFeeder);
    - nothing, when `data` is None and the net has no Input blobs: its own data layers
      (HDF5Data) read the data.

    Testing (Caffe's test_interval / test_iter): on sequence data the TEST net's loss on a
    held-out tail (`holdout` steps, or test_iter chunks), logged to test_loss.csv; on a
    net with its own data layers, the TEST net's outputs over test_iter batches.

    Signals: SIGINT and SIGHUP do what `sigint_effect` / `sighup_effect` say ("stop":
    finish the iteration, snapshot, stop; "snapshot": snapshot and go on; "none"), as
    `caffe train -sigint_effect/-sighup_effect` do; SIGTERM always stops with a snapshot.
    A second stop signal abandons the iteration at once, without a snapshot. A stopped run
    raises Interrupted (exit code 128 + signal number).

    Resuming (`resume`: a .solverstate): the weights, history and iteration come from it,
    and from its sidecar (<prefix>_iter_<n>.seqgen.npz) the recurrent layers' carried
    state, the data position and the feedback schedule's inputs and generator, so that the
    run continues exactly as if it had not stopped. Options left as None (iters, mode,
    data, holdout, feedback, fork_compat) are the snapshot's run's; a net, solver or option
    that differs from the snapshot's is refused unless `allow_changes`.

    A NaN or inf in the loss, a gradient or the weights stops training with Diverged
    (exit code 1), naming the iteration, the first layer/blob where it appeared and the
    last good snapshot.
    """
    if mode is not None and mode not in MODES:
        raise SeqgenError(f"--input must be one of {', '.join(MODES)}, not '{mode}'")
    for flag, effect in (("--sigint-effect", sigint_effect), ("--sighup-effect", sighup_effect)):
        if effect not in ACTIONS:
            raise SeqgenError(f"{flag} must be one of {', '.join(ACTIONS)}, not '{effect}'")
    compile_notice(log)
    param, net_path, solver_name = resolve_solver(path, log)
    check_solver_param(param, solver_name)  # before any data is read or net built
    record = {}
    if resume:
        if not os.path.exists(resume):
            raise SeqgenError(f"{resume}: no such file")
        record = _recorded_run(resume)
        taken = []
        if iters is None and record.get("max_iter"):
            iters = int(record["max_iter"])
            if iters != param.max_iter:
                taken.append(f"--iters {iters}")
        if data is None and record.get("data") is not None:
            data = record["data"]
            taken.append(f"--data {data}")
        if mode is None and record.get("input") and not is_npz_spec(data):
            mode = record["input"]
            if mode != "previous":
                taken.append(f"--input {mode}")
        if holdout is None and record.get("holdout"):
            holdout = int(record["holdout"])
            taken.append(f"--holdout {holdout}")
        if feedback is None and record.get("feedback") is False:
            feedback = False
            taken.append("--no-feedback")
        if fork_compat is None and record.get("fork_compat"):
            fork_compat = True
            taken.append("--fork-compat")
        if taken:
            log(f"Resuming with the snapshot's run's settings: {' '.join(taken)}")
    feedback = True if feedback is None else bool(feedback)
    fork_compat = bool(fork_compat)
    if iters is not None:
        if iters <= 0:
            raise SeqgenError(f"--iters must be positive, got {iters}")
        param.max_iter = iters
    npz = is_npz_spec(data)
    if npz and mode is not None:
        raise SeqgenError(f"--input {mode} is for sequence data; {data} gives every input "
                          "blob its values as they are")
    if holdout is not None and npz:
        raise SeqgenError(f"--holdout is for sequence data, not for {data}")
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
    solver = Solver(param, options=options, out_dir=folder, log=log, source=solver_name)
    net = solver.net
    held_out = None
    if npz:
        kind, spec = "npz", str(data)
        feeder = NpzFeeder(net, data)
        what = f"{data} ({feeder.describe()})"
    elif data is None and not net.inputs:
        if mode is not None:
            raise SeqgenError(f"--input {mode}: the net has no Input blobs; its own data "
                              "layers feed it")
        if holdout is not None:
            raise SeqgenError("--holdout is for sequence data; this net's own data layers "
                              "feed it (its TEST phase tests it)")
        kind, spec, feeder = "own", None, None
        readers = sorted({layer.type for layer in net.layers if not layer.param.bottom
                          and layer.param.top}) or ["none"]
        what = f"the data its own layers read ({', '.join(readers)})"
    else:
        kind, spec = "sequence", data or default_data_spec(net_path)
        if sequence is None:
            source, sequence = resolve_source(spec)
        mode = mode or "previous"
        _, clip_name, _ = input_roles(net)
        T = net.blobs[clip_name].count
        train_chunks, held_chunks, test_chunks = _holdout_plan(
            param, holdout, T, len(sequence), source, log)
        train_part = sequence[: train_chunks * T] if held_chunks else sequence
        feeder = SequenceFeeder(net, train_part, mode, source)
        what = (f"{source} ({len(feeder.sequence)} steps in chunks of {feeder.T}), "
                f"input mode '{mode}'")
        if held_chunks:
            held_out = (train_chunks, held_chunks, test_chunks)
            what += (f"; steps {train_chunks * T}-{(train_chunks + held_chunks) * T - 1} held "
                     f"out for testing")
    if weights:
        net.copy_from(weights)
        log(f"Loaded weights from {weights}")
    elif not resume and kind == "sequence":
        for layer in net.layers:
            if hasattr(layer, "set_forget_bias"):
                layer.set_forget_bias(5.0)  # what the fork's driver does after building the net
    hook = feeder
    if kind == "sequence":
        test_net = Net(net_path, TEST, options=options)
        test_net.share_weights(net)
        if mode == "previous" and feedback:
            hook = FeedbackSchedule(feeder, test_net, param.max_iter, seed=param.random_seed)
        if held_out:
            evaluator = Net(net_path, TEST, options=options)
            evaluator.share_weights(net)
            solver.tester = HeldOutTest(evaluator, sequence, mode, T, held_out[0], held_out[2])
    elif kind == "npz" and param.test_interval and len(param.test_iter):
        log("Note: test_interval is ignored with .npz data (no held-out part to test on)")

    # what defines this run beyond the net and the solver: a resume must match it
    if kind == "sequence":
        data_hash = hashlib.sha256(np.ascontiguousarray(sequence, np.float32).tobytes())
        data_id = data_hash.hexdigest()[:16]
    elif kind == "npz":
        from ..io.solverstate import sha256_file
        data_id = sha256_file(data)[:16]
    else:
        data_id = "its own data layers"
    data_abs = spec if spec is None or not os.path.exists(str(spec)) \
        else os.path.abspath(str(spec))
    fingerprint_options = {
        "data": data_id, "_data": str(spec if spec is not None else "its own data layers"),
        "--input": _fingerprint_value(mode), "--holdout": _fingerprint_value(
            held_out[1] * T if held_out else None),
        "feedback (--no-feedback)": _fingerprint_value(isinstance(hook, FeedbackSchedule)),
        "--fork-compat": _fingerprint_value(fork_compat)}
    run_record = {"max_iter": param.max_iter, "data": data_abs if data is not None else None,
                  "input": mode,
                  "holdout": held_out[1] * T if held_out else None,
                  "feedback": feedback, "fork_compat": fork_compat}
    solver.sidecar = True
    solver.fingerprint_options = fingerprint_options
    if kind == "sequence":
        solver.data_inputs = [feeder.label]  # (the data input may hold the net's predictions)
    total = param.max_iter
    losses = np.full(total, np.nan, np.float32)
    tests = []
    logs = {}  # "loss" / "test" -> _LossLog, once the folder is known to be used

    def snapshot_extra(s):
        meta = {"run": run_record}
        arrays = {}
        if feeder is not None:
            meta["passes"] = int(feeder.passes)
        if kind == "sequence":
            arrays["inputs"] = feeder.inputs
        if isinstance(hook, FeedbackSchedule):
            meta["feedback"] = hook.get_state()
        return meta, arrays

    def snapshot_logs(s):
        """The log rows not yet in loss.csv / test_loss.csv, up to the snapshot."""
        arrays = {}
        if logs:
            arrays["loss_its"], arrays["loss_vals"] = logs["loss"].tail(s.iter)
            arrays["test_its"], arrays["test_vals"] = logs["test"].tail(s.iter)
        return arrays

    solver.snapshot_extra = snapshot_extra
    solver.snapshot_logs = snapshot_logs
    carried = {}
    if resume:
        fallback = record.get("fingerprint")
        extra = solver.restore(resume, allow_changes=allow_changes, recorded=fallback)
        if extra is not None:
            meta, arrays = extra
            if feeder is not None and "passes" in meta:
                feeder.passes = int(meta["passes"])
            if kind == "sequence" and "inputs" in arrays:
                inputs = np.asarray(arrays["inputs"], np.float32)
                if inputs.shape != feeder.inputs.shape:
                    raise SeqgenError(f"{resume}: the saved inputs have shape {inputs.shape}, "
                                      f"the data {feeder.inputs.shape}")
                feeder.inputs = inputs
            if isinstance(hook, FeedbackSchedule) and meta.get("feedback"):
                hook.set_state(meta["feedback"])
            for key in ("loss", "test"):
                if f"{key}_its" in arrays:
                    carried[key] = (arrays[f"{key}_its"], arrays[f"{key}_vals"])
        else:
            if feeder is not None:
                feeder.passes = solver.iter * max(1, param.iter_size)
            if isinstance(hook, FeedbackSchedule) and solver.iter:
                log("Note: without the sidecar the feedback schedule's inputs are the true "
                    "sequence until its next refresh")
        if kind == "own":
            log("Note: the net's own data layers start again from the beginning of their "
                "files")
        log(f"Resumed from {resume} at iteration {solver.iter}")
    os.makedirs(folder, exist_ok=True)  # only now: a run that cannot start leaves nothing
    stale = remove_stale_temps(folder)
    if stale:
        log(f"Removed {len(stale)} temporary file(s) a killed run left in {folder}")
    solver.before_forward = hook
    start = solver.iter
    def losses_between(lo, hi):
        its = np.arange(max(lo, 0), min(hi, total), dtype=np.int64)
        vals = losses[its]
        keep = ~np.isnan(vals)
        return its[keep], vals[keep]

    def tests_between(lo, hi):
        rows = [t for t in tests if lo <= t[0] < hi]
        return (np.array([t[0] for t in rows], np.int64),
                np.array([t[1] for t in rows], np.float64))

    logs["loss"] = _LossLog(os.path.join(folder, "loss.csv"), start, np.float32,
                            losses_between, carried.get("loss"))
    logs["test"] = _LossLog(os.path.join(folder, "test_loss.csv"), start, np.float64,
                            tests_between, carried.get("test"))
    progress = Progress(total, param.display, log)

    def after(s, loss):
        if s.iter - 1 < total:
            losses[s.iter - 1] = loss
        progress(s, loss)

    def after_test(s, results):
        tests.append((s.iter, test_loss_of(results)))

    last_log_write = [time.monotonic()]

    def write_logs(upto):
        its, vals = logs["loss"].write(upto)
        test_its = test_vals = None
        if tests or logs["test"].wanted():
            test_its, test_vals = logs["test"].write(upto)
        last_log_write[0] = time.monotonic()
        return its, vals, test_its, test_vals

    def after_snapshot(s, model, state):
        info.update({"iterations": s.iter, "weights": os.path.abspath(model),
                     "solverstate": os.path.abspath(state)})
        write_run(folder, info)
        if time.monotonic() - last_log_write[0] >= LOG_EVERY_SECONDS:
            write_logs(s.iter)

    solver.after_iteration = after
    solver.after_test = after_test
    solver.after_snapshot = after_snapshot
    info = {"net": os.path.abspath(net_path), "name": name, "data": spec, "data_kind": kind,
            "input": mode, "fork_compat": fork_compat, "solver": os.path.abspath(path),
            "max_iter": total, "random_seed": param.random_seed, "feedback": feedback}
    if data_abs != spec:
        info["data_abs"] = data_abs
    if held_out:
        info["holdout_steps"] = held_out[1] * T
    if resume:
        info.update({"resumed_from": os.path.abspath(resume), "iterations": solver.iter,
                     "weights": os.path.abspath(solver.restored[1]) if solver.restored[1]
                     else None, "solverstate": os.path.abspath(resume)})
    info["fingerprint"] = solver.fingerprint()
    write_run(folder, info)
    remember_run(folder)
    log(f"Training {name} on {what}, {total - solver.iter} iterations; run folder {folder}")
    if kind == "sequence" and len(sequence) > (len(feeder.sequence) + (
            held_out[1] * T if held_out else 0)):
        unused = len(sequence) - len(feeder.sequence) - (held_out[1] * T if held_out else 0)
        log(f"Note: the last {unused} steps of {source} do not fill a chunk and are not used")

    resume_hint = lambda state: _quote_command("seqgen", "train", path, "--resume", state,
                                               "--out", folder)
    effects = {signal.SIGINT: sigint_effect, signal.SIGTERM: STOP}
    if hasattr(signal, "SIGHUP"):
        effects[signal.SIGHUP] = sighup_effect
    stopped_by = []
    training = [True]

    def on_signal(signum, frame):
        action = effects[signum]
        if action == STOP:
            if stopped_by and training[0]:
                # a second stop signal: abandon the iteration, no snapshot
                raise _Abandoned(stopped_by[0])
            stopped_by.append(signum)
        if training[0]:
            solver.request(action)

    previous = {s: signal.signal(s, on_signal) for s in effects}
    diverged = abandoned = None
    try:
        try:
            solver.step(total - solver.iter)
        except Diverged as e:
            diverged = e
        except _Abandoned as e:
            abandoned = e.signum
        training[0] = False  # from here on a signal only marks the run as stopped
        if abandoned is not None:
            _finish_abandoned(solver, abandoned, write_logs, info, folder, resume_hint)
        elapsed = progress.finish(solver)
        if diverged is not None:
            _finish_diverged(solver, diverged, losses, write_logs, info, folder, name,
                             resume_hint, elapsed)
        stopped = bool(stopped_by) and solver.stop_requested and solver.iter < total
        current = solver.last_snapshot is not None and solver.last_snapshot[0] == solver.iter
        if not current and (stopped or param.snapshot_after_train):
            solver.snapshot()  # a stop always snapshots, so that the run can be resumed
        elif not current:
            log("snapshot_after_train is false: no snapshot of the final weights")
        if not stopped and solver.tester is not None and not (
                solver.test_results and solver.test_results[-1][0] == solver.iter):
            # Caffe's Solve tests after the last iteration when it falls on test_interval;
            # with a held-out part seqgen always tests the final weights
            if held_out or solver.test_due():
                solver.test_all()
        loss_its, loss_vals, test_its, test_vals = write_logs(solver.iter + 1)
        info.update({"iterations": solver.iter, "train_seconds": round(elapsed, 2),
                     "final_loss": _finite_or_none(solver.last_loss)})
        if solver.last_snapshot is not None:
            model, state = solver.last_snapshot[1:]
            info.update({"weights": os.path.abspath(model),
                         "solverstate": os.path.abspath(state)})
        if tests:
            info["final_test_loss"] = _finite_or_none(tests[-1][1])
        write_run(folder, info)
        if len(loss_its):
            plot_run_losses(loss_its, loss_vals, test_its, test_vals,
                            os.path.join(folder, "loss.png"), title=f"{name}: loss")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopped:
        signame = signal.Signals(stopped_by[0]).name
        model, state = solver.last_snapshot[1:]
        err = Interrupted(f"{signame} at iteration {solver.iter}: snapshot written to {model}; "
                          f"resume with: {resume_hint(state)}")
        err.exit_code = 128 + stopped_by[0]
        raise err
    return folder


LOG_EVERY_SECONDS = 5.0  # loss.csv is rewritten at a snapshot at most this often


def _finite_or_none(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _finish_abandoned(solver, signum, write_logs, info, folder, resume_hint):
    """A second stop signal: keep the logs of the finished iterations, no snapshot."""
    write_logs(solver.iter)
    info.update({"iterations": solver.iter, "final_loss": _finite_or_none(solver.last_loss)})
    write_run(folder, info)
    signame = signal.Signals(signum).name
    last = solver.last_snapshot or solver.restored
    if last is not None:
        where = (f"the last snapshot is {last[1]} (iteration {last[0]}); resume with: "
                 f"{resume_hint(last[2])}")
    else:
        where = "the run has no snapshot to resume from"
    err = Interrupted(f"{signame} twice at iteration {solver.iter}: stopped at once, without a "
                      f"snapshot (a single {signame} finishes the iteration and writes one); "
                      f"{where}")
    err.exit_code = 128 + signum
    raise err


def _finish_diverged(solver, err, losses, write_logs, info, folder, name, resume_hint,
                     elapsed):
    """Training met a NaN/inf: log the bad loss, point run.json at the last good snapshot,
    draw the curve and raise the solver's message with the command to continue."""
    k = err.iteration
    if err.loss is not None and k is not None and k < len(losses):
        losses[k] = err.loss  # the curve shows where it went wrong
    loss_its, loss_vals, test_its, test_vals = write_logs(k + 1)
    info.update({"iterations": k, "train_seconds": round(elapsed, 2),
                 "diverged": {"iteration": k, "where": err.where}})
    info.pop("final_loss", None)
    if err.last_good is not None:
        info.update({"weights": os.path.abspath(err.last_good[1]),
                     "solverstate": os.path.abspath(err.last_good[2])})
    else:
        info.pop("weights", None)
        info.pop("solverstate", None)
    write_run(folder, info)
    if len(loss_its):
        plot_run_losses(loss_its, loss_vals, test_its, test_vals,
                        os.path.join(folder, "loss.png"), title=f"{name}: loss (diverged)")
    message = str(err)
    if err.last_good is not None:
        message += ("\n  after a change, continue from the last good snapshot with: "
                    f"{resume_hint(err.last_good[2])} --allow-changes")
    raise Diverged(message, iteration=k, where=err.where, last_good=err.last_good,
                   loss=err.loss) from None


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
    try:
        generated = generate(test, steps, mode, true, prime)
    except GenerationDiverged as e:
        target = out or folder or "."
        raise GenerationDiverged(
            f"{e} ({weights}, input mode '{mode}'{f', primed with {prime} steps' if prime else ''});"
            f" nothing was written (no generated.csv or generated.png in {target}); try the "
            "weights of an earlier snapshot", e.step, e.values) from None
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
        err = generated[:n].astype(np.float64) - true_part.astype(np.float64)
        result["mse"] = float(np.mean(err ** 2))
        result["max_abs_error"] = float(np.abs(err).max())
    return result
