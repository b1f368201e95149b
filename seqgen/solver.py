"""Solver: Caffe's training loop (Solver::Step) and update rules (SGDSolver and friends).

One iteration: clear parameter diffs, run `iter_size` forward/backward passes (the
`before_forward` hook writes the inputs of each), then ApplyUpdate in Caffe's order:
clip_gradients -> normalise by iter_size -> regularise -> the type's update rule with
local_rate = rate * lr_mult -> W -= step. `iter` counts completed updates.
"""
import math
import os

from collections import deque

import numpy as np

from . import fillers
from .errors import SeqgenError
from .net import TRAIN, Net
from .proto import caffe_pb2
from .schedules import learning_rate
from .updates import UPDATES, history_slots


class Solver:
    """Trains `self.net` (phase TRAIN) as the SolverParameter says."""

    def __init__(self, solver, options=None, out_dir=None, net=None, log=print):
        from .prototxt import read_solver

        if isinstance(solver, caffe_pb2.SolverParameter):
            self.param, self.source = solver, "<SolverParameter>"
        else:
            self.param, self.source = read_solver(solver), str(solver)
        p = self.param
        if p.type not in UPDATES:
            raise SeqgenError(f"{self.source}: unknown solver type '{p.type}' "
                              f"(known: {', '.join(UPDATES)})")
        if p.base_lr < 0:
            raise SeqgenError(f"{self.source}: base_lr must not be negative ({p.base_lr})")
        if p.HasField("random_seed") and p.random_seed >= 0:
            fillers.seed(p.random_seed)
        self.log = log
        self.out_dir = out_dir
        self.net = net if net is not None else Net(self._net_param(), TRAIN, options=options)
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
        self.smoothed = deque(maxlen=max(1, p.average_loss))
        self.last_loss = float("nan")
        self.stop_requested = False

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

    # -- the loop --------------------------------------------------------------------------
    @property
    def rate(self):
        return learning_rate(self.param, self.iter, self)

    def step(self, iters):
        """Run `iters` iterations (fewer if a stop was requested); returns the last loss."""
        p = self.param
        net = self.net
        iter_size = max(1, p.iter_size)
        stop_at = self.iter + iters
        while self.iter < stop_at and not self.stop_requested:
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
            if p.snapshot and self.iter % p.snapshot == 0 and self.iter < stop_at:
                self.snapshot()
        return self.last_loss

    def solve(self):
        """Train up to max_iter, then snapshot (Caffe's snapshot_after_train)."""
        self.step(self.param.max_iter - self.iter)
        if self.param.snapshot_after_train:
            return self.snapshot()
        return None

    def _per_element(self, mults):
        """A multiplier per parameter as a scalar when all agree, else one per element."""
        if len(set(mults)) <= 1:
            return mults[0] if mults else 1.0
        return np.concatenate([np.full(lp.blob.count, m, np.float64)
                               for lp, m in zip(self.net.learnable_params, mults)])

    def apply_update(self):
        p = self.param
        net = self.net
        g, w = net.flat_diff, net.flat_data
        if p.clip_gradients >= 0:
            norm = math.sqrt(float(np.dot(g, g)))
            if norm > p.clip_gradients:
                g *= np.float32(p.clip_gradients / norm)
        iter_size = max(1, p.iter_size)
        if iter_size > 1:
            g *= np.float32(1.0 / iter_size)
        decay = np.float32(p.weight_decay) * np.asarray(self._decay_mults, np.float32) \
            if p.weight_decay else None
        if decay is not None:
            if p.regularization_type == "L2":
                g += decay * w
            elif p.regularization_type == "L1":
                g += decay * np.sign(w)
            else:
                raise SeqgenError(f"{self.source}: unknown regularization_type "
                                  f"'{p.regularization_type}' (known: L2, L1)")
        # local_rate = rate * lr_mult in float32 (Caffe's Dtype arithmetic)
        local_rate = np.float32(self.rate) * np.asarray(self._lr_mults, np.float32)
        UPDATES[p.type](p, g, self._flat_history, local_rate, self.iter)
        w -= g

    # -- snapshots -------------------------------------------------------------------------
    def snapshot_prefix(self):
        prefix = self.param.snapshot_prefix or os.path.splitext(
            os.path.basename(self.source))[0].replace("_solver", "")
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
        self.net.save(model)
        write_solverstate(self, state, model)
        self.log(f"Snapshotting to binary proto file {model}")
        self.log(f"Snapshotting solver state to binary proto file {state}")
        return model, state

    def restore(self, path):
        from .solverstate import read_solverstate

        read_solverstate(self, path)


