"""Caffe's training log: the messages Caffe logs for what seqgen does too (the nets' setup,
"Solving", display lines, train and test outputs with their loss weights, lr, snapshots,
"Optimization Done."), as glog lines with Caffe's file:line tags. `seqgen train` writes
them to caffe.log in the run folder; `seqgen caffe train` to stderr, as Caffe does. The
solver knows nothing of it: CaffeLog is a solver callback.
"""
import contextlib
import os
import time

from google.protobuf import text_format

from ..errors import SeqgenError
from ..solver.callbacks import Callback
from ..solver.diagnosis import Diverged
from .glog import Glog, cnum, open_log_file
from .info import SEQGEN_ONLY, net_init_events

LOG_FILE = "caffe.log"

#: file:line of each message in BVLC Caffe master (9b891540), the tags its log shows
TAGS = {
    "use_cpu": "caffe.cpp:197", "resuming": "caffe.cpp:235", "starting": "caffe.cpp:239",
    "tool_done": "caffe.cpp:250", "device_query": "caffe.cpp:138",
    "test_use_cpu": "caffe.cpp:275", "running_for": "caffe.cpp:281",
    "batch": "caffe.cpp:304", "test_loss_tool": "caffe.cpp:309", "test_mean": "caffe.cpp:321",
    "time_use_cpu": "caffe.cpp:343", "performing_forward": "caffe.cpp:351",
    "initial_loss": "caffe.cpp:356", "performing_backward": "caffe.cpp:357",
    "benchmark_begins": "caffe.cpp:365", "testing_for": "caffe.cpp:366",
    "time_iteration": "caffe.cpp:394", "per_layer": "caffe.cpp:397",
    "layer_forward": "caffe.cpp:400", "layer_backward": "caffe.cpp:403",
    "avg_forward": "caffe.cpp:408", "avg_backward": "caffe.cpp:410",
    "avg_forward_backward": "caffe.cpp:412", "total_time": "caffe.cpp:414",
    "benchmark_ends": "caffe.cpp:415",
    "solver_init": "solver.cpp:45", "scaffolding": "solver.cpp:57",
    "finetuning": "solver.cpp:72", "train_net_file": "solver.cpp:102",
    "train_net_param": "solver.cpp:97", "test_net": "solver.cpp:190",
    "display": "solver.cpp:239", "train_output": "solver.cpp:258",
    "solving": "solver.cpp:289", "lr_policy": "solver.cpp:290",
    "stopped_early": "solver.cpp:311", "final_loss": "solver.cpp:327",
    "solver_done": "solver.cpp:332", "testing": "solver.cpp:347",
    "test_loss": "solver.cpp:401", "test_output": "solver.cpp:414",
    "snapshot_model": "solver.cpp:464", "snapshot_prefix": "upgrade_proto.cpp:1108",
    "snapshot_prefix_dir": "upgrade_proto.cpp:1113",
    "lr": "sgd_solver.cpp:112", "snapshot_state": "sgd_solver.cpp:284",
    "net_init": "net.cpp:53",
    # Net::Init's lines, by net_init_events' kinds
    "layer": "net.cpp:86", "bottom": "net.cpp:408", "top": "net.cpp:382",
    "in_place": "net.cpp:369", "setup": "net.cpp:124", "shape": "net.cpp:131",
    "loss_weight": "net.cpp:134", "memory": "net.cpp:139", "backward": "net.cpp:200",
    "no_backward": "net.cpp:202", "output": "net.cpp:244", "done": "net.cpp:257",
}
#: seqgen's own messages (notes, warnings) carry this tag: no Caffe line says them
SEQGEN_TAG = "seqgen.py:0"


def log_net_setup(glog, net):
    """Net::Init's log of a built net: its parameters, then each layer's lines."""
    text = text_format.MessageToString(net.param).rstrip("\n")
    glog.info(TAGS["net_init"], "Initializing net from parameters: \n" + text)
    for kind, line, _ in net_init_events(net):
        if kind not in SEQGEN_ONLY:
            glog.info(TAGS[kind], line)


def log_solver_setup(glog, solver, test_nets=()):
    """What Caffe's Solver::Init logs: the solver's parameters, the training net's setup,
    each test net's (`test_nets`: [(index, net, where it comes from)]), "scaffolding done"."""
    text = text_format.MessageToString(solver.param).rstrip("\n")
    glog.info(TAGS["solver_init"], "Initializing solver from parameters: \n" + text)
    if solver.net.source.startswith("<"):
        glog.info(TAGS["train_net_param"], "Creating training net specified in net_param.")
    else:
        glog.info(TAGS["train_net_file"],
                  f"Creating training net from net file: {solver.net.source}")
    log_net_setup(glog, solver.net)
    for index, net, source in test_nets:
        glog.info(TAGS["test_net"], f"Creating test net (#{index}) specified by {source}")
        log_net_setup(glog, net)
    glog.info(TAGS["scaffolding"], "Solver scaffolding done.")


def outputs_with_weights(net):
    """[(output name, value, loss weight)], one per element of each output blob, in
    Caffe's order of outputs."""
    rows = []
    for name in net.outputs:
        weight = float(net.blob_loss_weights.get(name, 0.0))
        rows.extend((name, float(v), weight) for v in net.blobs[name].data.ravel())
    return rows


def output_line(kind, i, name, value, weight):
    """Caffe's `    Train net output #i: name = v (* w = w*v loss)` (and Test's)."""
    extra = f" (* {cnum(weight)} = {cnum(weight * value)} loss)" if weight else ""
    return f"    {kind} net output #{i}: {name} = {cnum(value)}{extra}"


class CaffeLog(Callback):
    """Writes Caffe's messages for the solver's display, test and snapshot events."""

    def __init__(self, glog, clock=time.perf_counter):
        self.glog = glog
        self.clock = clock
        self.timer = clock()
        self.iterations_last = 0

    def start(self, solver):
        """Solver::Solve's first lines; the display timer starts here (Step's start)."""
        self.glog.info(TAGS["solving"], f"Solving {solver.net.name}")
        self.glog.info(TAGS["lr_policy"], f"Learning Rate Policy: {solver.param.lr_policy}")
        self.timer = self.clock()
        # (Caffe leaves iterations_last_ unset; counting from the first iteration of this
        # session gives its first display's rate, 0, also after a resume)
        self.iterations_last = solver.iter

    def after_iteration(self, solver, loss):
        display = solver.param.display
        it = solver.iter - 1  # Caffe displays before the update, with iter_ not yet raised
        if not display or it % display:
            return
        lapse = self.clock() - self.timer
        per_s = (it - self.iterations_last) / (lapse or 1)
        smoothed = sum(solver.smoothed) / len(solver.smoothed)
        self.glog.info(TAGS["display"], f"Iteration {it} ({cnum(per_s)} iter/s, {cnum(lapse)}s/"
                                        f"{display} iters), loss = {cnum(smoothed)}")
        self.timer, self.iterations_last = self.clock(), it
        for i, row in enumerate(outputs_with_weights(solver.net)):
            self.glog.info(TAGS["train_output"], output_line("Train", i, *row))
        if solver.last_rate is not None:
            self.glog.info(TAGS["lr"], f"Iteration {it}, lr = {cnum(solver.last_rate)}")

    def after_test(self, solver, results):
        self.glog.info(TAGS["testing"],
                       f"Iteration {solver.iter}, Testing net (#{solver.testing_net})")
        if solver.param.test_compute_loss:
            loss = sum(value * weight for _, value, weight in results)
            self.glog.info(TAGS["test_loss"], f"Test loss: {cnum(loss)}")
        for i, row in enumerate(results):
            self.glog.info(TAGS["test_output"], output_line("Test", i, *row))

    def after_snapshot(self, solver, model, state):
        self.glog.info(TAGS["snapshot_model"], f"Snapshotting to binary proto file {model}")
        self.glog.info(TAGS["snapshot_state"],
                       f"Snapshotting solver state to binary proto file {state}")


@contextlib.contextmanager
def run_log(folder, solver):
    """caffe.log in a run folder while a `seqgen train` session trains: the solver's and
    the training net's setup, then the session's events, then how it ended ("Optimization
    Done.", "Optimization stopped early.", or the divergence). A resumed run appends."""
    with open_log_file(os.path.join(folder, LOG_FILE)) as f:
        glog = Glog(f)
        log_solver_setup(glog, solver)
        if solver.restored is not None:
            glog.info(TAGS["resuming"], f"Resuming from {solver.restored[2]}")
        caffe_log = solver.add_callback(CaffeLog(glog))
        caffe_log.start(solver)
        try:
            yield caffe_log
        except Diverged as e:
            glog.error(SEQGEN_TAG, str(e).splitlines()[0])
            raise
        except SeqgenError as e:
            if e.exit_code > 128:  # stopped by a signal, after a snapshot
                glog.info(TAGS["stopped_early"], "Optimization stopped early.")
            raise
        else:
            glog.info(TAGS["solver_done"], "Optimization Done.")
        finally:
            glog.streams.clear()  # the solver may outlive the file: it writes no more
