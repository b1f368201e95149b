"""Solver: Caffe's training loop (Solver::Step) and update rules (SGDSolver and friends).

One iteration: test if due (test_interval), clear parameter diffs, run `iter_size`
forward/backward passes (the `before_forward` hook writes the inputs of each; the loss is
their mean), then ApplyUpdate in Caffe's order: rate = lr_policy(iter) -> clip_gradients
(global L2 norm over all learnable diffs) -> normalise by iter_size -> regularise
(weight_decay * decay_mult, L2 or L1) -> the type's update rule with local_rate = rate *
lr_mult -> W -= step; then iter += 1, a snapshot every `snapshot` iterations or when one
was requested, and a stop when one was requested (`request()`, used for signals).
`iter` counts completed updates.
"""
import math
import os

from collections import deque

import numpy as np

from . import fillers
from .errors import SeqgenError
from .net import TEST, TRAIN, Net
from .proto import caffe_pb2
from .schedules import check_policy, learning_rate
from .updates import UPDATES, check_solver_type, history_slots

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


class NetTester:
    """Caffe's Solver::Test for one TEST net: `iters` forward passes, each output element
    averaged over them. `before_forward(net)`, if given, writes the inputs of each pass;
    without it the net's own data layers read the data."""

    def __init__(self, net, iters, before_forward=None):
        self.net, self.iters, self.before_forward = net, iters, before_forward

    def __call__(self, solver):
        sums, names = None, []
        for _ in range(self.iters):
            if self.before_forward is not None:
                self.before_forward(self.net)
            outputs = self.net.forward()
            values = [np.asarray(v, np.float64).ravel() for v in outputs.values()]
            if sums is None:
                names = [n for n, v in zip(outputs, values) for _ in range(v.size)]
                sums = np.concatenate(values) if values else np.zeros(0)
            else:
                sums += np.concatenate(values)
        if sums is None:
            return []
        means = sums / max(1, self.iters)
        weights = self.net.blob_loss_weights
        return [(n, float(v), float(weights.get(n, 0.0))) for n, v in zip(names, means)]


class Solver:
    """Trains `self.net` (phase TRAIN) as the SolverParameter says."""

    def __init__(self, solver, options=None, out_dir=None, net=None, log=print, source=None):
        """`solver`: a solver file or a SolverParameter (then `source`, if given, names it
        in messages and snapshot names)."""
        from .prototxt import read_solver

        if isinstance(solver, caffe_pb2.SolverParameter):
            self.param, self.source = solver, source or "<SolverParameter>"
        else:
            self.param, self.source = read_solver(solver), str(solver)
        p = self.param
        check_solver_param(p, self.source)
        if p.HasField("random_seed") and p.random_seed >= 0:
            fillers.seed(p.random_seed)  # before the net is built: its fillers draw from it
        self.log = log
        self.out_dir = out_dir
        self.options = options
        self.net = net if net is not None else Net(self._net_param(), TRAIN, options=options)
        if p.HasField("snapshot_format") and p.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            log(f"{self.source}: snapshot_format HDF5 is not supported; writing binary proto "
                "snapshots (Caffe's default) instead")
        self.iter = 0
        self.current_step = 0
        self.net.pack_params()
        params = self.net.learnable_params
        # one flat history buffer per slot; `history` holds Caffe's per-parameter views
        # (all params of slot 0, then all of slot 1), the order of a .solverstate
        self._flat_history = [np.zeros_like(self.net.flat_data)
                              for _ in range(history_slots(p.type))]
        self.history = []
        for flat in self._flat_history:
            offset = 0
            for lp in params:
                self.history.append(flat[offset:offset + lp.blob.count].reshape(lp.blob.shape))
                offset += lp.blob.count
        self._lr_mults = self._per_element([lp.lr_mult for lp in params])
        self._decay_mults = self._per_element([lp.decay_mult for lp in params])
        self.before_forward = None  # hook(solver) that writes the inputs of the next pass
        self.after_iteration = None  # hook(solver, loss) for progress display and logs
        self.after_test = None  # hook(solver, results) after each test
        self.tester = None  # callable(solver) -> [(output name, mean value, loss weight)]
        self.test_results = []  # [(iter, results)]
        self._test_net = None
        self.smoothed = deque(maxlen=p.average_loss)
        self.last_loss = float("nan")
        self.last_rate = None
        self.last_snapshot = None  # (iter, model path, state path)
        self.stop_requested = False
        self._requests = []
        if p.test_interval and len(p.test_iter) and p.test_iter[0] > 0:
            test_net = self.test_net()
            if test_net is not None and not test_net.inputs:
                # a TEST net that reads its own data (e.g. HDF5Data): Caffe's Test()
                self.tester = NetTester(test_net, p.test_iter[0])

    def _net_param(self):
        """The training net: an inline NetParameter, or the net file's path (so that the
        Net's error messages name the file)."""
        p = self.param
        if p.HasField("net_param"):
            return p.net_param
        if p.net:
            return p.net
        if p.HasField("train_net_param"):
            return p.train_net_param
        if p.train_net:
            return p.train_net
        raise SeqgenError(f"{self.source}: the solver names no net (set `net: \"file\"`)")

    def test_net(self):
        """The TEST-phase net (test_net_param, test_net, or the net filtered for TEST), its
        weights shared with the training net; built on first use. None if the solver names
        only a train_net."""
        if self._test_net is None:
            p = self.param
            if len(p.test_net_param):
                source = p.test_net_param[0]
            elif len(p.test_net):
                source = p.test_net[0]
            elif p.HasField("net_param") or p.net:
                source = self._net_param()
            else:
                return None
            self._test_net = Net(source, TEST, options=self.options)
            self._test_net.share_weights(self.net)
        return self._test_net

    @property
    def test_nets(self):
        """pycaffe's solver.test_nets: [the TEST net] (sharing the training weights), or []."""
        net = self.test_net()
        return [net] if net is not None else []

    # -- the loop --------------------------------------------------------------------------
    @property
    def rate(self):
        """The learning rate the next update will use (no side effects)."""
        return float(learning_rate(self.param, self.iter, self.current_step)[0])

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
        return (self.tester is not None and p.test_interval > 0
                and self.iter % p.test_interval == 0
                and (self.iter > 0 or p.test_initialization))

    def step(self, iters):
        """Run `iters` iterations (fewer if a stop was requested); returns the last loss."""
        p = self.param
        net = self.net
        iter_size = p.iter_size
        stop_at = self.iter + iters
        self.stop_requested = False
        self.smoothed.clear()  # Caffe smooths over the losses of this Step call
        while self.iter < stop_at:
            if self.test_due():
                self.test_all()
            net.clear_param_diffs()
            loss = 0.0
            for _ in range(iter_size):
                if self.before_forward is not None:
                    self.before_forward(self)
                loss += net.forward_backward()
            loss /= iter_size
            self.smoothed.append(loss)
            self.last_loss = loss
            self.apply_update()
            self.iter += 1
            if self.after_iteration is not None:
                self.after_iteration(self, loss)
            requests, self._requests = self._requests, []
            if (p.snapshot and self.iter % p.snapshot == 0) or SNAPSHOT in requests:
                self.snapshot()
            if STOP in requests or self.stop_requested:
                self.stop_requested = True
                break
        return self.last_loss

    def solve(self, resume=None):
        """Train up to max_iter (Caffe's Solve): then the snapshot_after_train snapshot
        (unless the last iteration already wrote one) and, when due, a last test. Returns
        the (caffemodel, solverstate) written at the last iteration, or None."""
        p = self.param
        if resume:
            self.restore(resume)
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and not self._snapshot_is_current():
            self.snapshot()
        if not self.stop_requested and self.test_due():
            self.test_all()
        return self.last_snapshot[1:] if self._snapshot_is_current() else None

    def _snapshot_is_current(self):
        return self.last_snapshot is not None and self.last_snapshot[0] == self.iter

    def test_all(self):
        """Run the tester and log its outputs as Caffe does; returns them."""
        self.log(f"Iteration {self.iter}, Testing net (#0)")
        results = self.tester(self)
        for i, (name, value, weight) in enumerate(results):
            extra = f" (* {weight:g} = {weight * value:.6g} loss)" if weight else ""
            self.log(f"    Test net output #{i}: {name} = {value:.6g}{extra}")
        self.test_results.append((self.iter, results))
        if self.after_test is not None:
            self.after_test(self, results)
        return results

    def _per_element(self, mults):
        """A multiplier per parameter as a scalar when all agree, else one per element."""
        if len(set(mults)) <= 1:
            return mults[0] if mults else 1.0
        return np.concatenate([np.full(lp.blob.count, m, np.float64)
                               for lp, m in zip(self.net.learnable_params, mults)])

    def apply_update(self):
        """Caffe's SGDSolver::ApplyUpdate on the packed parameters (float32 throughout)."""
        p = self.param
        net = self.net
        rate, self.current_step = learning_rate(p, self.iter, self.current_step)
        self.last_rate = rate
        g, w = net.flat_diff, net.flat_data
        if p.clip_gradients >= 0:
            norm = np.float32(math.sqrt(float(np.dot(g.astype(np.float64), g))))
            clip = np.float32(p.clip_gradients)
            if norm > clip:
                g *= clip / norm
        if p.iter_size > 1:
            g *= np.float32(1) / np.float32(p.iter_size)
        if p.weight_decay:
            # local_decay = weight_decay * decay_mult in float32 (Caffe's Dtype)
            decay = np.float32(p.weight_decay) * np.asarray(self._decay_mults, np.float32)
            if p.regularization_type == "L2":
                g += decay * w
            else:  # "L1" (check_solver_param refused anything else)
                g += decay * np.sign(w)
        # local_rate = rate * lr_mult in float32
        local_rate = rate * np.asarray(self._lr_mults, np.float32)
        UPDATES[p.type](p, g, self._flat_history, local_rate, self.iter)
        w -= g

    # -- snapshots -------------------------------------------------------------------------
    def _stem(self):
        if self.source.startswith("<"):
            return self.net.name or "seqgen"
        return os.path.splitext(os.path.basename(self.source))[0].replace("_solver", "")

    def snapshot_prefix(self):
        """snapshot_prefix (a folder prefix gets the solver's name, as Caffe does), else the
        solver file's name without `_solver`; `out_dir` replaces the folder."""
        prefix = self.param.snapshot_prefix
        if not prefix:
            prefix = self._stem()
        elif prefix.endswith(("/", os.sep)) or os.path.isdir(prefix):
            prefix = os.path.join(prefix, self._stem())
        if self.out_dir is not None:
            prefix = os.path.join(self.out_dir, os.path.basename(prefix))
        return prefix

    def snapshot(self):
        """Write <prefix>_iter_<n>.caffemodel and .solverstate; returns both paths."""
        from .solverstate import write_solverstate

        base = f"{self.snapshot_prefix()}_iter_{self.iter}"
        folder = os.path.dirname(base)
        if folder:
            os.makedirs(folder, exist_ok=True)
        model, state = base + ".caffemodel", base + ".solverstate"
        self.log(f"Snapshotting to binary proto file {model}")
        self.net.save(model)
        self.log(f"Snapshotting solver state to binary proto file {state}")
        write_solverstate(self, state, model)
        self.last_snapshot = (self.iter, model, state)
        return model, state

    def restore(self, path):
        """Continue from a .solverstate: iter, current_step, history and the weights of the
        .caffemodel it names (looked for beside the state file when not found as written)."""
        from .solverstate import read_solverstate

        read_solverstate(self, path)
