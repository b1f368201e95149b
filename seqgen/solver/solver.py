"""Solver: Caffe's training loop (Solver::Step) and update rules (SGDSolver and friends).

One iteration: test if due (test_interval), clear parameter diffs, run `iter_size`
forward/backward passes (the `before_forward` hook writes the inputs of each; the loss is
their mean), then ApplyUpdate in Caffe's order: rate = lr_policy(iter) -> clip_gradients
(global L2 norm over all learnable diffs) -> normalise by iter_size -> regularise
(weight_decay * decay_mult, L2 or L1) -> the type's update rule with local_rate = rate *
lr_mult -> W -= step; then iter += 1, a snapshot every `snapshot` iterations or when one
was requested, and a stop when one was requested (`request()`, used for signals).
`iter` counts completed updates.

Every iteration checks that the loss and the gradient are finite (one np.isfinite over
the packed gradient, one over the packed weights after the update); a NaN or inf stops
training with `Diverged`, which names the iteration and the first layer/blob holding a
non-finite value, the last good snapshot (written from the weights before the failing
update when the run has none) and the usual remedies.

Callbacks (callbacks.py, Caffe's Solver::Callback) write the inputs, log, and keep what a
snapshot must hold; snapshots.py writes and restores snapshots (with the resume sidecar),
diagnosis.py says where a divergence started and fingerprint.py what a run was.
"""
import contextlib
import math
import numbers
import os
from collections import deque

import numpy as np

from .. import fillers
from ..errors import SeqgenError
from ..io.prototxt import read_solver
from ..kernels.reduce import all_finite, sum_squares
from ..net import TEST, TRAIN, Net
from ..proto import caffe_pb2
from . import snapshots
from .callbacks import Callback, FunctionCallback, overriding
from .diagnosis import Diverged, NonFinite, divergence_message, remedies, where_nonfinite
from .fingerprint import net_fingerprint, solver_fingerprint
from .schedules import check_policy, learning_rate
from .test_nets import check_test_net_counts, list_test_nets
from .testing import NetTester, weighted_loss
from .updates import UPDATES, check_solver_type, history_slots, regularize

# What a signal asks for (Caffe's SolverAction), named as caffe's -sigint_effect flags are.
STOP, SNAPSHOT, NONE = "stop", "snapshot", "none"
ACTIONS = (STOP, SNAPSHOT, NONE)


def check_solver_param(p, where="solver"):
    """Refuse settings Caffe refuses (its CHECKs and LOG(FATAL)s), before any net is built."""
    check_solver_type(p, where)
    if p.base_lr < 0:
        raise SeqgenError(f"{where}: base_lr must not be negative (got {p.base_lr:g})")
    check_policy(p, where)
    if p.regularization_type not in ("L2", "L1"):
        raise SeqgenError(f"{where}: unknown regularization_type '{p.regularization_type}' "
                          "(known: L2, L1)")
    if p.iter_size < 1:
        raise SeqgenError(f"{where}: iter_size must be at least 1 (got {p.iter_size})")
    if p.average_loss < 1:
        raise SeqgenError(f"{where}: average_loss must be at least 1 (got {p.average_loss})")
    for field in ("snapshot", "display", "test_interval", "max_iter"):
        if getattr(p, field) < 0:
            raise SeqgenError(f"{where}: {field} must not be negative "
                              f"(got {getattr(p, field)})")
    if any(n < 0 for n in p.test_iter):
        raise SeqgenError(f"{where}: test_iter must not be negative")
    check_test_net_counts(p, where)


class Solver:
    """Trains `self.net` (phase TRAIN) as the SolverParameter says."""

    def __init__(self, solver, options=None, out_dir=None, net=None, log=print, source=None,
                 pycaffe=None):
        """`solver`: a solver file or a SolverParameter (then `source`, if given, names it
        in messages and snapshot names). `pycaffe` (default: True for a file, as pycaffe's
        get_solver and *Solver(path) take it; False for a SolverParameter, as the `seqgen`
        command builds it) chooses Caffe's default snapshot_prefix and makes `restore` of
        a snapshot of a changed net or solver warn instead of refusing."""
        if isinstance(solver, caffe_pb2.SolverParameter):
            self.param, self.source = solver, source or "<SolverParameter>"
        else:
            self.param, self.source = read_solver(solver), str(solver)
        self.pycaffe = not isinstance(solver, caffe_pb2.SolverParameter) if pycaffe is None \
            else bool(pycaffe)
        p = self.param
        check_solver_param(p, self.source)
        if p.HasField("random_seed") and p.random_seed >= 0:
            fillers.seed(p.random_seed)  # before the net is built: its fillers draw from it
        self.log = log
        self.out_dir = out_dir
        self.options = options
        # Caffe's InitTrainNet: phase TRAIN, the net's own state, then train_state
        self.net = net if net is not None else Net(self._net_param(), TRAIN, options=options,
                                                   state=p.train_state)
        if not self.net._loss_tops:
            raise SeqgenError(f"{self.net.source}: the TRAIN net has no loss (no loss layer and "
                              "no loss_weight), so there is nothing to train")
        if p.HasField("snapshot_format") and p.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            log(f"{self.source}: snapshot_format HDF5 is not supported; writing binary proto "
                "snapshots (Caffe's default) instead")
        self.iter = 0
        self.current_step = 0
        self._init_history()
        self.callbacks = []
        self._dispatch = {}
        # per test net (Caffe's numbering): callable(solver) -> [(output name, mean value,
        # loss weight)], or None for a net nothing tests
        self.testers = []
        self.testing_net = 0  # the test net being tested (for after_test callbacks)
        self.test_results = []  # [(iter, results)], one entry per test net tested
        self._test_nets = None
        self.smoothed = deque(maxlen=p.average_loss)
        self.last_loss = float("nan")
        self.last_rate = None
        self.last_snapshot = None  # (iter, model path, state path)
        self.stop_requested = False
        self._requests = []
        self.check_finite = True  # stop with Diverged on a NaN/inf loss, gradient or weight
        self.fingerprint_options = {}  # what else defines the run (recorded in sidecars)
        # the inputs that hold the user's data, to point out badly scaled data (None: all)
        self.data_inputs = None
        self.restored = None  # (iter, model path, state path) that restore() read
        self.restored_extra = None  # (meta, arrays) the callbacks had saved
        self._net_fingerprint = None
        if p.test_interval and any(n > 0 for n in p.test_iter):
            # a TEST net that reads its own data (e.g. HDF5Data) is tested as Caffe's Test()
            # does; one with Input blobs waits for a tester from its data (the driver's plan)
            self.testers = [NetTester(net, n) if n > 0 and not net.inputs else None
                            for net, n in zip(self.test_nets, p.test_iter)]

    def clear_history(self):
        """Zero the update history (momentum, squared gradients): a run that starts again
        from new weights (seqgen.data.flat_restart) must not carry the old ones' steps."""
        for flat in self._flat_history:
            flat[...] = 0

    def _init_history(self):
        """One flat history buffer per slot; `history` holds Caffe's per-parameter views
        (all params of slot 0, then all of slot 1), the order of a .solverstate."""
        self.net.pack_params()
        params = self.net.learnable_params
        self._flat_history = [np.zeros_like(self.net.flat_data)
                              for _ in range(history_slots(self.param.type))]
        self.history = []
        for flat in self._flat_history:
            offset = 0
            for lp in params:
                self.history.append(flat[offset:offset + lp.blob.count].reshape(lp.blob.shape))
                offset += lp.blob.count
        self._lr_mults = self._per_element([lp.lr_mult for lp in params])
        self._decay_mults = self._per_element([lp.decay_mult for lp in params])
        self._local_rate = np.zeros_like(self._lr_mults) if np.ndim(self._lr_mults) else None

    # -- callbacks -------------------------------------------------------------------------
    def add_callback(self, callback, on_gradients_ready=None):
        """Register a Callback (called after those added before it); returns it. pycaffe's
        form `add_callback(on_start, on_gradients_ready)` takes two functions of no
        arguments, called at the start of each iteration and before each update."""
        if on_gradients_ready is not None or callable(callback) and \
                not isinstance(callback, Callback):
            callback = FunctionCallback(callback, on_gradients_ready)
        if not isinstance(callback, Callback):
            raise TypeError(f"add_callback takes a seqgen.solver.callbacks.Callback or "
                            f"pycaffe's two functions (on_start, on_gradients_ready), not "
                            f"{type(callback).__name__}")
        self.callbacks.append(callback)
        self._dispatch.clear()
        return callback

    def dispatch(self, method):
        """The bound `method`s of the callbacks that implement it, in order (cached)."""
        bound = self._dispatch.get(method)
        if bound is None:
            bound = [getattr(cb, method) for cb in overriding(self.callbacks, method)]
            self._dispatch[method] = bound
        return bound

    def _net_param(self):
        """The training net: an inline NetParameter, or the net file's path (so that the
        Net's error messages name the file)."""
        p = self.param
        if p.HasField("net_param"):
            return p.net_param
        for name in (p.net, p.train_net if not p.HasField("train_net_param") else ""):
            if name:
                if not os.path.exists(name):
                    raise SeqgenError(f"{name}: no such file (the net named by {self.source})")
                return name
        if p.HasField("train_net_param"):
            return p.train_net_param
        raise SeqgenError(f"{self.source}: the solver names no net (set `net: \"file\"`)")

    def test_net(self):
        """Test net #0 (see test_nets), or None if the solver has none."""
        nets = self.test_nets
        return nets[0] if nets else None

    @property
    def test_nets(self):
        """pycaffe's solver.test_nets: the TEST nets as Caffe's InitTestNets makes them
        (test_net_param, test_net, then the net once per remaining test_iter, each in its
        test_state), their weights shared with the training net; built on first use. A
        solver without test_iter has none, as in pycaffe (build one with
        `Net(path, TEST)` and `solver.share_weights(net)`)."""
        if self._test_nets is None:
            p = self.param
            generic = self._net_param() if p.HasField("net_param") or p.net else None
            self._test_nets = []
            for spec in list_test_nets(p, generic):
                net = Net(spec.source, TEST, options=self.options, state=spec.state)
                net.share_weights(self.net)
                self._test_nets.append(net)
        return self._test_nets

    def share_weights(self, net):
        """pycaffe's solver.share_weights(net): `net` uses the training net's parameter
        arrays (Caffe's ShareTrainedLayersWith), so it sees every update."""
        net.share_weights(self.net)

    @property
    def tester(self):
        """Test net #0's tester (the driver sets it for sequence data), or None."""
        return self.testers[0] if self.testers else None

    @tester.setter
    def tester(self, tester):
        if self.testers:
            self.testers[0] = tester
        else:
            self.testers.append(tester)

    @property
    def can_test(self):
        """Whether any test net has a tester."""
        return any(t is not None for t in self.testers)

    # -- the loop --------------------------------------------------------------------------
    @property
    def rate(self):
        """The learning rate the next update will use (no side effects)."""
        return float(learning_rate(self.param, self.iter, self.current_step)[0])

    @property
    def lr(self):
        """pycaffe's SGDSolver.lr (Caffe's GetLearningRate): the rate at the current
        iteration."""
        return self.rate

    def request(self, action):
        """Ask for a snapshot ("snapshot") or a snapshot-and-stop ("stop") at the end of the
        current iteration, as Caffe's signal handling does; "none" does nothing."""
        if action not in ACTIONS:
            raise SeqgenError(f"unknown solver action '{action}' (known: {', '.join(ACTIONS)})")
        if action != NONE:
            self._requests.append(action)

    def test_due(self):
        """Caffe's rule: a tester, test_interval, iter on it (iter 0 only with
        test_initialization)."""
        p = self.param
        return (self.can_test and p.test_interval > 0
                and self.iter % p.test_interval == 0
                and (self.iter > 0 or p.test_initialization))

    def step(self, iters):
        """Run `iters` iterations (fewer if a stop was requested); returns the last loss.
        Raises Diverged when a loss, gradient or weight stops being finite."""
        if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
            raise SeqgenError(f"solver.step({iters!r}): the number of iterations must be a "
                              "whole number >= 0")
        stop_at = self.iter + int(iters)
        self.stop_requested = False
        self.smoothed.clear()  # Caffe smooths over the losses of this Step call
        # numpy's overflow warnings say less than the check below does
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore") \
            if self.check_finite else contextlib.nullcontext()
        with quiet:
            self._step(stop_at)
        return self.last_loss

    def _step(self, stop_at):
        p = self.param
        net = self.net
        iter_size = p.iter_size
        feeders = self.dispatch("before_forward")
        after = self.dispatch("after_iteration")
        starts, ready = self.dispatch("on_start"), self.dispatch("on_gradients_ready")
        while self.iter < stop_at:
            check = self.check_finite
            # while the run has no snapshot to fall back on, keep what a snapshot of the
            # weights before this iteration's update needs (a few small copies)
            start = snapshots.capture(self) if check and self.last_snapshot is None \
                and self.restored is None else None
            if self.test_due():
                self.test_all()
            net.clear_param_diffs()
            for callback in starts:
                callback(self)
            loss = 0.0
            for _ in range(iter_size):
                for feed in feeders:
                    try:
                        feed(self)
                    except NonFinite as e:
                        self._diverged(str(e), start, where="")
                one = net.forward_backward()
                if check and not (math.isfinite(one) and all_finite(net.flat_diff)):
                    what = f"the loss is {one}" if not math.isfinite(one) else \
                        f"the loss is finite ({one:.6g}) but the gradient is not"
                    self._diverged(what, start, loss=one)
                loss += one
            loss /= iter_size
            self.smoothed.append(loss)
            self.last_loss = loss
            for callback in ready:
                callback(self)
            self.apply_update()
            if check and not all_finite(net.flat_data):
                self._diverged(f"the update (learning rate {float(self.last_rate):.6g}) made "
                               "weights non-finite", None, loss=loss, pre_update=False)
            self.iter += 1
            for callback in after:
                callback(self, loss)
            requests, self._requests = self._requests, []
            if (p.snapshot and self.iter % p.snapshot == 0) or SNAPSHOT in requests:
                self.snapshot()
            if STOP in requests or self.stop_requested:
                self.stop_requested = True
                break

    # -- numerical trouble -----------------------------------------------------------------
    def remedies(self):
        """The usual cures for a diverging run, for this net and solver."""
        return remedies(self)

    def _diverged(self, what, start, loss=None, where=None, pre_update=True):
        """Stop on a non-finite value: find it, keep (or write) the last good snapshot, and
        raise Diverged saying all of it."""
        k = self.iter
        if where is None:
            where = where_nonfinite(self.net, loss)
        weights_ok = bool(np.isfinite(self.net.flat_data).all())
        written = False
        if pre_update and weights_ok and self.last_snapshot is None \
                and self.restored is None and start is not None:
            self.log(f"Iteration {k}: not finite; snapshotting the weights before its update")
            self.snapshot(start_state=snapshots.assemble(start))
            written = True
        last_good = self.last_snapshot or self.restored
        raise Diverged(divergence_message(self, k, what, where, written, last_good),
                       iteration=k, where=where, last_good=last_good, loss=loss)

    def solve(self, resume=None):
        """Train up to max_iter (Caffe's Solve): then the snapshot_after_train snapshot
        (unless the last iteration already wrote one) and, when due, a last test. Returns
        the (caffemodel, solverstate) written at the last iteration, or None."""
        p = self.param
        if resume:
            self.restore(resume)
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and not self.snapshot_is_current():
            self.snapshot()
        if not self.stop_requested and self.test_due():
            self.test_all()
        return self.last_snapshot[1:] if self.snapshot_is_current() else None

    def snapshot_is_current(self):
        """Whether the last snapshot holds the current iteration."""
        return self.last_snapshot is not None and self.last_snapshot[0] == self.iter

    def test_all(self):
        """Caffe's TestAll: test each test net that has a tester, in Caffe's order, logging
        as Caffe does; returns the results of the first one tested."""
        tested = [self.test_one(i) for i, tester in enumerate(self.testers)
                  if tester is not None]
        return tested[0] if tested else []

    def test_one(self, index):
        """Caffe's Test(index): run test net #index's tester and log its outputs, numbered
        per net; after_test callbacks see `solver.testing_net == index`."""
        self.log(f"Iteration {self.iter}, Testing net (#{index})")
        results = self.testers[index](self)
        if self.param.test_compute_loss:
            self.log(f"Test loss: {weighted_loss(results):.6g}")
        for i, (name, value, weight) in enumerate(results):
            extra = f" (* {weight:g} = {weight * value:.6g} loss)" if weight else ""
            self.log(f"    Test net output #{i}: {name} = {value:.6g}{extra}")
        self.test_results.append((self.iter, results))
        self.testing_net = index
        for callback in self.dispatch("after_test"):
            callback(self, results)
        self.testing_net = 0
        return results

    def _per_element(self, mults):
        """A multiplier per parameter as a float32 scalar when all agree, else one per
        element (float32)."""
        if len(set(mults)) <= 1:
            return np.float32(mults[0] if mults else 1.0)
        return np.concatenate([np.full(lp.blob.count, np.float32(m), np.float32)
                               for lp, m in zip(self.net.learnable_params, mults)])

    def apply_update(self):
        """Caffe's SGDSolver::ApplyUpdate on the packed parameters (float32 throughout)."""
        p = self.param
        net = self.net
        rate, self.current_step = learning_rate(p, self.iter, self.current_step)
        self.last_rate = rate
        g, w = net.flat_diff, net.flat_data
        if p.clip_gradients >= 0:
            norm = np.float32(math.sqrt(sum_squares(g)))
            clip = np.float32(p.clip_gradients)
            if norm > clip:
                g *= clip / norm
        if p.iter_size > 1:
            g *= np.float32(1) / np.float32(p.iter_size)
        if p.weight_decay:
            regularize(p, g, w, self._decay_mults)
        # local_rate = rate * lr_mult in float32, into a kept buffer when one per element
        if np.ndim(self._lr_mults):
            local_rate = np.multiply(rate, self._lr_mults, out=self._local_rate)
        else:
            local_rate = rate * self._lr_mults
        UPDATES[p.type](p, g, self._flat_history, local_rate, self.iter)
        w -= g

    # -- snapshots -------------------------------------------------------------------------
    def _stem(self):
        if self.source.startswith("<"):
            return self.net.name or "seqgen"
        return os.path.splitext(os.path.basename(self.source))[0].replace("_solver", "")

    def snapshot_prefix(self):
        """snapshot_prefix (a folder prefix gets the solver's name, as Caffe does); without
        one, Caffe's rule for the pycaffe API (UpgradeSnapshotPrefixProperty: the solver
        file's path without its extension) and for the `seqgen` command the solver file's
        name without `_solver`, in the working folder. `out_dir` replaces the folder."""
        prefix = self.param.snapshot_prefix
        caffe_rule = self.pycaffe and not self.source.startswith("<")
        stem = os.path.splitext(os.path.basename(self.source))[0] if caffe_rule \
            else self._stem()
        if not prefix:
            prefix = os.path.splitext(self.source)[0] if caffe_rule else stem
        elif prefix.endswith(("/", os.sep)) or os.path.isdir(prefix):
            prefix = os.path.join(prefix, stem)
        if self.out_dir is not None:
            prefix = os.path.join(self.out_dir, os.path.basename(prefix))
        return prefix

    def fingerprint(self):
        """What the net, the solver and (`fingerprint_options`) the run are; recorded in
        each snapshot's sidecar and compared on restore."""
        if self._net_fingerprint is None:
            self._net_fingerprint = net_fingerprint(self.net)
        return {"net": self._net_fingerprint, "solver": solver_fingerprint(self.param),
                "options": dict(self.fingerprint_options)}

    def resume_state(self):
        """(meta, arrays) a sidecar records to continue exactly from this point."""
        return snapshots.resume_state(self)

    def snapshot(self, start_state=None):
        """Write <prefix>_iter_<n>.caffemodel, .seqgen.npz (the resume sidecar) and
        .solverstate as one group (none is visible before all are complete); returns
        (model, state). `start_state`: the resume_state() to record, when not the current
        one."""
        model, state = snapshots.write_snapshot(self, start_state)
        self.last_snapshot = (self.iter, model, state)
        for callback in self.dispatch("after_snapshot"):
            callback(self, model, state)
        return model, state

    def restore(self, path, allow_changes=None, recorded=None):
        """Continue from a .solverstate: iter, current_step, history and the weights of the
        .caffemodel it names (looked for beside the state file when not found as written),
        and from its sidecar (if any) the recurrent layers' carried state, the random
        generator and what the callbacks saved (their restore_state is called). When the
        net, the solver or the recorded options differ from the snapshot's (its sidecar's
        fingerprint, else `recorded`): refused, unless `allow_changes`; through the pycaffe
        API (`self.pycaffe`, the default for allow_changes=None) a one-line warning, since
        Caffe resumes such a snapshot. Returns the sidecar's (extra meta, extra arrays), or
        None."""
        if not isinstance(path, (str, os.PathLike)):
            raise SeqgenError(f"solver.restore({path!r}): give the path of a .solverstate file")
        if allow_changes is None:
            allow_changes = snapshots.WARN if self.pycaffe else False
        self.restored, self.restored_extra, _ = snapshots.restore(
            self, path, allow_changes, recorded)
        return self.restored_extra
