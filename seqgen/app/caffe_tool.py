"""`seqgen caffe ACTION -flags`: Caffe's own command line (tools/caffe.cpp) over seqgen:
train, test, time and device_query with Caffe's flags, Caffe's semantics (snapshots at
snapshot_prefix from the working directory, data from the net's own layers, Input blobs
left as they are: zeros) and Caffe's log lines on stderr."""
import os
import sys
import time

import numpy as np

from ..errors import SeqgenError
from ..io.prototxt import read_solver
from ..net import TEST, TRAIN, Net
from ..proto import caffe_pb2
from ..solver.solver import ACTIONS, Solver
from ..solver.test_nets import list_test_nets
from ..solver.testing import NetTester
from .caffe_flags import USAGE, UsageRequested, parse_flags
from .caffe_log import (
    SEQGEN_TAG,
    TAGS,
    CaffeLog,
    log_net_setup,
    log_solver_setup,
    outputs_with_weights,
)
from .glog import Glog, cnum
from .signals import Abandoned, StopSignals


class Stopped(SeqgenError):
    """A second stop signal: stopped at once, without a snapshot (exit 128 + signal)."""


def use_cpu(glog, flags, tag, param=None):
    """One warning when a GPU was asked for (-gpu, or the solver's solver_mode: GPU,
    which Caffe obeys), then Caffe's "Use CPU."."""
    gpu_mode = param is not None and param.HasField("solver_mode") and \
        param.solver_mode == caffe_pb2.SolverParameter.GPU
    if flags.gpu or gpu_mode:
        what = f"-gpu {flags.gpu}" if flags.gpu else "solver_mode: GPU"
        glog.warning(SEQGEN_TAG, f"{what}: seqgen runs on the CPU, so it runs there")
    glog.info(tag, "Use CPU.")


def warn_inputs(glog, net, action):
    """Caffe feeds an Input layer's blobs nothing: they keep what they hold (zeros). Said
    once, since a net of Input layers trains on nothing under `caffe train`."""
    if net.inputs:
        glog.warning(SEQGEN_TAG, f"{net.source}: {', '.join(net.inputs)} come from Input "
                                 f"layers, which `caffe {action}` fills with nothing: they "
                                 "hold zeros, as in Caffe (`seqgen train` feeds them data)")


def copy_weights(glog, net, spec):
    """-weights / the solver's weights: .caffemodel files separated by ',', copied in
    order (later files win for the layers they hold), each logged as Caffe does."""
    for name in spec.split(","):
        name = name.strip()
        glog.info(TAGS["finetuning"], f"Finetuning from {name}")
        if not os.path.isfile(name):
            raise SeqgenError(f"{name}: no such file (given in -weights)")
        net.copy_from(name)


def net_loss(net):
    """The net's total loss after a forward pass (Caffe's Forward(&loss))."""
    loss = np.float32(0)
    for name, weight in net.blob_loss_weights.items():
        if weight:
            loss += np.float32(weight) * net.blobs[name].data.sum(dtype=np.float32)
    return float(loss)


def read_caffe_solver(path, glog):
    """The solver as Caffe's ReadSolverParamsFromTextFileOrDie leaves it: without
    snapshot_prefix, the solver's path without its extension; a folder, the folder plus
    the solver file's stem (upgrade_proto.cpp's UpgradeSnapshotPrefixProperty)."""
    if not os.path.isfile(path):
        raise SeqgenError(f"{path}: no such file (given in -solver)")
    param = read_solver(path)
    stem = os.path.splitext(path)[0]
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = stem
        glog.info(TAGS["snapshot_prefix"],
                  f"snapshot_prefix was not specified and is set to {stem}")
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, os.path.basename(stem))
        glog.info(TAGS["snapshot_prefix_dir"], "snapshot_prefix was a directory and is "
                                               f"replaced to {param.snapshot_prefix}")
    return param


def check_train_flags(flags):
    if not flags.solver:
        raise SeqgenError("caffe train: Need a solver definition to train (give -solver FILE)")
    if flags.snapshot and flags.weights:
        raise SeqgenError("caffe train: Give a snapshot to resume training or weights to "
                          "finetune but not both.")
    for name in ("sigint_effect", "sighup_effect"):
        value = getattr(flags, name)
        if value not in ACTIONS:
            raise SeqgenError(f'caffe: Invalid signal effect "{value}" was specified '
                              f"(-{name}: snapshot, stop or none)")


def check_snapshot_prefix(param):
    """Caffe's CheckSnapshotWritePermissions: with `snapshot`, the prefix's folder must
    take files."""
    folder = os.path.dirname(param.snapshot_prefix) or "."
    if param.snapshot and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
        raise SeqgenError(f"caffe train: Cannot write to snapshot prefix "
                          f"'{param.snapshot_prefix}'.  Make sure that the directory exists "
                          "and is writable.")


def test_nets_of(solver):
    """[(index, net, source)] of the solver's test nets, each given a tester that runs
    its own data layers test_iter times (Input blobs as they are), as Caffe's Test."""
    p = solver.param
    if not len(p.test_iter):
        return []
    generic = p.net_param if p.HasField("net_param") else p.net
    specs = list_test_nets(p, generic)
    solver.testers = [NetTester(net, spec.iters) if spec.iters > 0 else None
                      for net, spec in zip(solver.test_nets, specs)]
    named = []
    for spec, net in zip(specs, solver.test_nets):
        if isinstance(spec.source, str):
            source = ("net file: " if spec.source == p.net else "test_net file: ") + spec.source
        else:
            source = "test_net_param" if spec.index < len(p.test_net_param) else "net_param"
        named.append((spec.index, net, source))
    return named


def solver_log(glog):
    """The solver's own messages: its test and snapshot lines are CaffeLog's (with Caffe's
    tags); the rest are seqgen's notes."""
    def log(message):
        if not message.startswith(("Iteration ", "    Test net output", "Test loss:",
                                   "Snapshotting ")):
            glog.info(SEQGEN_TAG, message)
    return log


def train(flags, glog):
    """caffe.cpp's train(): the solver, finetuning or resuming, then Solver::Solve."""
    check_train_flags(flags)
    param = read_caffe_solver(flags.solver, glog)
    # caffe.cpp sets train_state's level from -level (0 when not given) and adds -stage
    param.train_state.level = flags.level
    param.train_state.stage.extend(flags.stages())
    use_cpu(glog, flags, TAGS["use_cpu"], param)
    if flags.snapshot:
        del param.weights[:]
    elif flags.weights:
        del param.weights[:]
        param.weights.append(flags.weights)
    weights = list(param.weights)
    del param.weights[:]  # (loaded below, logged as Caffe's InitTrainNet does)
    check_snapshot_prefix(param)
    solver = Solver(param, log=solver_log(glog), source=flags.solver)
    log_solver_setup(glog, solver, test_nets_of(solver))
    for spec in weights:
        copy_weights(glog, solver.net, spec)
    warn_inputs(glog, solver.net, "train")
    if flags.snapshot:
        glog.info(TAGS["resuming"], f"Resuming from {flags.snapshot}")
        solver.restore(flags.snapshot, allow_changes=True)  # Caffe resumes a changed solver
    glog.info(TAGS["starting"], "Starting Optimization")
    solve(solver, glog, flags)
    glog.info(TAGS["tool_done"], "Optimization Done.")
    return 0


def solve(solver, glog, flags):
    """Solver::Solve: Step to max_iter under the signal effects, the snapshot after
    training, and when display / test_interval fall on the last iteration, a last forward
    pass for the loss and a last test."""
    p = solver.param
    solver.add_callback(CaffeLog(glog)).start(solver)
    with StopSignals(solver, flags.sigint_effect, flags.sighup_effect):
        try:
            solver.step(p.max_iter - solver.iter)
        except Abandoned as e:
            err = Stopped(f"caffe train: a second stop signal at iteration {solver.iter}: "
                          "stopped at once, without a snapshot")
            err.exit_code = 128 + e.signum
            raise err from None
    if p.snapshot_after_train and (not p.snapshot or solver.iter % p.snapshot):
        solver.snapshot()
    if solver.stop_requested:
        glog.info(TAGS["stopped_early"], "Optimization stopped early.")
        return
    if p.display and solver.iter % p.display == 0:
        solver.net.forward()
        solver.smoothed.append(net_loss(solver.net))
        smoothed = sum(solver.smoothed) / len(solver.smoothed)
        glog.info(TAGS["final_loss"], f"Iteration {solver.iter}, loss = {cnum(smoothed)}")
    if p.test_interval and solver.iter % p.test_interval == 0:
        solver.test_all()
    glog.info(TAGS["solver_done"], "Optimization Done.")


def build_net(flags, glog, phase):
    net = Net(flags.model, phase=phase, level=flags.level, stages=flags.stages())
    log_net_setup(glog, net)
    return net


def test(flags, glog):
    """caffe.cpp's test(): -iterations forward passes of the TEST net, each output
    element logged per batch, then the loss and the outputs' means."""
    if not flags.model:
        raise SeqgenError("caffe test: Need a model definition to score (give -model FILE)")
    if not flags.weights:
        raise SeqgenError("caffe test: Need model weights to score (give -weights FILE)")
    if flags.iterations < 1:
        raise SeqgenError(f"caffe test: -iterations must be at least 1 (got "
                          f"{flags.iterations})")
    use_cpu(glog, flags, TAGS["test_use_cpu"])
    net = build_net(flags, glog, TEST)
    copy_weights(glog, net, flags.weights)
    warn_inputs(glog, net, "test")
    glog.info(TAGS["running_for"], f"Running for {flags.iterations} iterations.")
    sums, loss, rows = None, np.float32(0), []
    for i in range(flags.iterations):
        net.forward()
        loss += np.float32(net_loss(net))
        rows = outputs_with_weights(net)
        for name, value, _ in rows:
            glog.info(TAGS["batch"], f"Batch {i}, {name} = {cnum(value)}")
        values = np.array([v for _, v, _ in rows], np.float32)
        sums = values if sums is None else sums + values
    glog.info(TAGS["test_loss_tool"], f"Loss: {cnum(loss / np.float32(flags.iterations))}")
    for (name, _, weight), total in zip(rows, sums):
        mean = total / np.float32(flags.iterations)
        extra = f" (* {cnum(weight)} = {cnum(np.float32(weight) * mean)} loss)" if weight \
            else ""
        glog.info(TAGS["test_mean"], f"{name} = {cnum(mean)}{extra}")
    return 0


def time_net(flags, glog, clock=time.perf_counter):
    """caffe.cpp's time(): a forward and backward pass to set up, then -iterations
    passes timing each layer's forward and backward."""
    if not flags.model:
        raise SeqgenError("caffe time: Need a model definition to time (give -model FILE)")
    if flags.phase not in ("", "TRAIN", "TEST"):
        raise SeqgenError(f'caffe time: phase must be "TRAIN" or "TEST" (got -phase '
                          f'{flags.phase})')
    if flags.iterations < 1:
        raise SeqgenError(f"caffe time: -iterations must be at least 1 (got "
                          f"{flags.iterations})")
    use_cpu(glog, flags, TAGS["time_use_cpu"])
    net = build_net(flags, glog, TEST if flags.phase == "TEST" else TRAIN)
    warn_inputs(glog, net, "time")
    glog.info(TAGS["performing_forward"], "Performing Forward")
    net.forward()
    glog.info(TAGS["initial_loss"], f"Initial loss: {cnum(net_loss(net))}")
    glog.info(TAGS["performing_backward"], "Performing Backward")
    net.backward()
    glog.info(TAGS["benchmark_begins"], "*** Benchmark begins ***")
    glog.info(TAGS["testing_for"], f"Testing for {flags.iterations} iterations.")
    forward, backward, totals = benchmark(net, flags.iterations, glog, clock)
    report_times(glog, net.layer_names, forward, backward, totals, flags.iterations)
    return 0


def benchmark(net, iterations, glog, clock):
    """Seconds per layer forward and backward, summed over the iterations, and the
    (forward, backward, whole) totals. Each layer runs alone (pycaffe's start/end)."""
    names = net.layer_names
    forward, backward = [0.0] * len(names), [0.0] * len(names)
    forward_time = backward_time = 0.0
    start = clock()
    for j in range(iterations):
        began = clock()
        for i, name in enumerate(names):
            t = clock()
            net.forward(start=name, end=name)
            forward[i] += clock() - t
        mid = clock()
        forward_time += mid - began
        for i in range(len(names) - 1, -1, -1):
            t = clock()
            net.backward(start=names[i], end=names[i])
            backward[i] += clock() - t
        backward_time += clock() - mid
        glog.info(TAGS["time_iteration"], f"Iteration: {j + 1} forward-backward time: "
                                          f"{cnum((clock() - began) * 1000)} ms.")
    return forward, backward, (forward_time, backward_time, clock() - start)


def report_times(glog, names, forward, backward, totals, iterations):
    """caffe.cpp's averages, in its wording: names right-aligned in 10 columns."""
    glog.info(TAGS["per_layer"], "Average time per layer: ")
    for name, f, b in zip(names, forward, backward):
        glog.info(TAGS["layer_forward"],
                  f"{name:>10}\tforward: {cnum(f * 1000 / iterations)} ms.")
        glog.info(TAGS["layer_backward"],
                  f"{name:>10}\tbackward: {cnum(b * 1000 / iterations)} ms.")
    forward_time, backward_time, total = totals
    glog.info(TAGS["avg_forward"],
              f"Average Forward pass: {cnum(forward_time * 1000 / iterations)} ms.")
    glog.info(TAGS["avg_backward"],
              f"Average Backward pass: {cnum(backward_time * 1000 / iterations)} ms.")
    glog.info(TAGS["avg_forward_backward"],
              f"Average Forward-Backward: {cnum(total * 1000 / iterations)} ms.")
    glog.info(TAGS["total_time"], f"Total Time: {cnum(total * 1000)} ms.")
    glog.info(TAGS["benchmark_ends"], "*** Benchmark ends ***")


def device_query(flags, glog):
    """caffe.cpp's device_query(): there is no GPU to query; exit 1 when one was named."""
    glog.info(TAGS["device_query"], f"Querying GPUs {flags.gpu}")
    glog.info(SEQGEN_TAG, "No GPU: seqgen runs on the CPU only")
    return 1 if flags.gpu else 0


#: caffe.cpp's RegisterBrewFunction
BREW = {"train": train, "test": test, "time": time_net, "device_query": device_query}


def caffe_main(argv, stream=None):
    """Run `seqgen caffe` with its arguments; returns the exit code. Log lines go to
    `stream` (default stderr), as Caffe's go to stderr."""
    try:
        flags = parse_flags(argv)
    except UsageRequested:
        print(USAGE, end="")
        return 0
    return BREW[flags.action](flags, Glog(stream if stream is not None else sys.stderr))
