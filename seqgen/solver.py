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
        n = history_slots(p.type)
        self.history = [np.zeros_like(lp.blob.data) for _ in range(n)
                        for lp in self.net.learnable_params]
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

    def apply_update(self):
        p = self.param
        rate = self.rate
        params = self.net.learnable_params
        if p.clip_gradients >= 0:
            norm = math.sqrt(sum(float(np.dot(lp.blob.diff.ravel(), lp.blob.diff.ravel()))
                                 for lp in params))
            if norm > p.clip_gradients:
                scale = np.float32(p.clip_gradients / norm)
                for lp in params:
                    lp.blob.diff *= scale
        update = UPDATES[p.type]
        n = len(params)
        iter_size = max(1, p.iter_size)
        for i, lp in enumerate(params):
            g = lp.blob.diff
            if iter_size > 1:
                g *= np.float32(1.0 / iter_size)
            decay = np.float32(p.weight_decay * lp.decay_mult)
            if decay:
                if p.regularization_type == "L2":
                    g += decay * lp.blob.data
                elif p.regularization_type == "L1":
                    g += decay * np.sign(lp.blob.data)
                else:
                    raise SeqgenError(f"{self.source}: unknown regularization_type "
                                      f"'{p.regularization_type}' (known: L2, L1)")
            local_rate = np.float32(rate * lp.lr_mult)
            update(p, g, self.history[i::n], local_rate, self.iter)
            lp.blob.data -= g

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


