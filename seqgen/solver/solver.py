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

Snapshots write, besides Caffe's .caffemodel and .solverstate, a sidecar
`<prefix>_iter_<n>.seqgen.npz` with what Caffe's SolverState has no room for (see
solverstate.py); `restore` reads it when present.
"""
import contextlib
import math
import os

from collections import deque

import numpy as np

from .. import fillers
from ..errors import SeqgenError, SeqgenRuntimeError
from ..io.atomic import atomic_write_bytes, signals_deferred
from ..net import TEST, TRAIN, Net
from ..proto import caffe_pb2
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


class Diverged(SeqgenRuntimeError):
    """Training met a NaN or inf (exit code 1). Attributes: `iteration`, `where` (the first
    layer/blob holding a non-finite value), `last_good` ((iter, model, state) or None),
    `loss`."""

    def __init__(self, message, iteration=None, where=None, last_good=None, loss=None):
        super().__init__(message)
        self.iteration, self.where, self.last_good, self.loss = \
            iteration, where, last_good, loss


class NonFinite(SeqgenRuntimeError):
    """Raised by a solver hook that finds non-finite values outside the net (such as the
    feedback schedule's free-running inputs); the solver reports it as a divergence."""


def _describe_bad(array):
    """'holds nan (3 of 320 values are not finite; the first at index (12, 0))'."""
    a = np.asarray(array)
    bad = ~np.isfinite(a)
    n = int(bad.sum())
    first = np.unravel_index(int(np.argmax(bad)), a.shape) if a.ndim else ()
    value = a[first] if a.ndim else a[()]
    index = "(" + ", ".join(str(int(i)) for i in first) + ")" if a.ndim else ""
    where = f"; the first at index {index}" if index else ""
    return f"holds {value} ({n} of {a.size} values are not finite{where})"


def _bad(array):
    return array.size and not np.isfinite(array).all()


def _magnitude(array):
    a = np.asarray(array)
    return f"{float(np.abs(a).max()):.3g}" if a.size else "empty"


def locate_nonfinite(net):
    """Where the first non-finite value of the last forward/backward pass is: the layers in
    order, each one's parameters then its tops (forward); then, if all of that is finite,
    the layers in backward order, each one's parameter gradients then its bottoms'
    gradients. Returns a sentence, or None when every blob is finite."""
    names, layers = net.layer_names, net.layers
    params = net.params
    for name, layer in zip(names, layers):
        for i, blob in enumerate(params.get(name, [])):
            if _bad(blob.data):
                return (f"parameter blob {i} of layer '{name}' ({layer.type}) "
                        f"{_describe_bad(blob.data)}: the weights themselves are not finite")
        for top in layer.param.top:
            blob = net.blobs[top]
            if _bad(blob.data):
                inputs = [f"bottom '{b}' {_magnitude(net.blobs[b].data)}"
                          for b in layer.param.bottom if b != top]
                inputs += [f"parameter {i} {_magnitude(b.data)}"
                           for i, b in enumerate(params.get(name, []))]
                writers = [n for n, l in zip(names, layers)
                           if top in l.param.top and top in l.param.bottom]
                in_place = (f" (blob '{top}' is also computed in place by layer(s) "
                            + ", ".join(f"'{w}'" for w in writers) + ")") \
                    if writers and name not in writers else ""
                return (f"top '{top}' of layer '{name}' ({layer.type}), forward pass: it "
                        f"{_describe_bad(blob.data)}{in_place}; its inputs are finite "
                        f"(largest magnitudes: {', '.join(inputs) or 'none'})")
    for name, layer in reversed(list(zip(names, layers))):
        if not net.layer_needs_backward(name):
            continue
        for i, blob in enumerate(params.get(name, [])):
            if _bad(blob.diff):
                return (f"the gradient of parameter blob {i} of layer '{name}' ({layer.type}), "
                        f"backward pass: it {_describe_bad(blob.diff)}; the forward pass was "
                        "finite")
        for b in layer.param.bottom:
            if b in layer.param.top:
                continue
            if _bad(net.blobs[b].diff):
                return (f"the gradient that layer '{name}' ({layer.type}) passes to its bottom "
                        f"'{b}', backward pass: it {_describe_bad(net.blobs[b].diff)}; the "
                        "forward pass was finite")
    return None


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
        from ..io.prototxt import read_solver

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
        if not self.net._loss_tops:
            raise SeqgenError(f"{self.net.source}: the TRAIN net has no loss (no loss layer and "
                              "no loss_weight), so there is nothing to train")
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
        self.check_finite = True  # stop with Diverged on a NaN/inf loss, gradient or weight
        # write the resume sidecar <prefix>_iter_<n>.seqgen.npz with each snapshot (seqgen
        # train does; off by default so that the API writes Caffe's two files only)
        self.sidecar = False
        self.snapshot_extra = None  # hook(solver) -> (meta, {name: array}) for the sidecar
        # hook(solver) -> {name: array}, called when a sidecar is written (not when the state
        # before an iteration is kept): what is costly to gather, such as log rows
        self.snapshot_logs = None
        self.after_snapshot = None  # hook(solver, model path, state path)
        self.fingerprint_options = {}  # what else defines the run (recorded in sidecars)
        # the inputs that hold the user's data, to point out badly scaled data (None: all)
        self.data_inputs = None
        self.restored = None  # (iter, model path, state path) that restore() read
        self.restored_extra = None  # (meta, arrays) of the snapshot_extra it had saved
        self._net_fingerprint = None
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
        for name in (p.net, p.train_net if not p.HasField("train_net_param") else ""):
            if name:
                if not os.path.exists(name):
                    raise SeqgenError(f"{name}: no such file (the net named by {self.source})")
                return name
        if p.HasField("train_net_param"):
            return p.train_net_param
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
        """Run `iters` iterations (fewer if a stop was requested); returns the last loss.
        Raises Diverged when a loss, gradient or weight stops being finite."""
        stop_at = self.iter + iters
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
        while self.iter < stop_at:
            check = self.check_finite
            # while the run has no snapshot to fall back on, keep what a snapshot of the
            # weights before this iteration's update needs (cheap: a few small copies)
            start = self.resume_state() if check and self.sidecar \
                and self.last_snapshot is None and self.restored is None else None
            if self.test_due():
                self.test_all()
            net.clear_param_diffs()
            loss = 0.0
            for _ in range(iter_size):
                if self.before_forward is not None:
                    try:
                        self.before_forward(self)
                    except NonFinite as e:
                        self._diverged(str(e), start, where="")
                one = net.forward_backward()
                if check and not (math.isfinite(one) and np.isfinite(net.flat_diff).all()):
                    what = f"the loss is {one}" if not math.isfinite(one) else \
                        f"the loss is finite ({one:.6g}) but the gradient is not"
                    self._diverged(what, start, loss=one)
                loss += one
            loss /= iter_size
            self.smoothed.append(loss)
            self.last_loss = loss
            self.apply_update()
            if check and not np.isfinite(net.flat_data).all():
                self._diverged(f"the update (learning rate {float(self.last_rate):.6g}) made "
                               "weights non-finite", None, loss=loss, pre_update=False)
            self.iter += 1
            if self.after_iteration is not None:
                self.after_iteration(self, loss)
            requests, self._requests = self._requests, []
            if (p.snapshot and self.iter % p.snapshot == 0) or SNAPSHOT in requests:
                self.snapshot()
            if STOP in requests or self.stop_requested:
                self.stop_requested = True
                break

    # -- numerical trouble -----------------------------------------------------------------
    def remedies(self):
        """The usual cures for a diverging run, for this net and solver."""
        from ..io.solverstate import float32_text as f32

        p = self.param
        items = []
        lstm = [l for l in self.net.layers if l.type == "Lstm"]
        unclipped = [l.param.name for l in lstm if not l.param.lstm_param.clipping_threshold > 0]
        if unclipped:
            items.append("clipping_threshold: 0.1 in the lstm_param of Lstm layer(s) "
                         + ", ".join(f"'{n}'" for n in unclipped))
        elif lstm:
            items.append("a lower clipping_threshold in the Lstm layers (now " + ", ".join(
                f32(l.param.lstm_param.clipping_threshold) for l in lstm) + ")")
        if p.clip_gradients < 0:
            items.append("clip_gradients: 10 in the solver")
        else:
            items.append(f"a lower clip_gradients (now {f32(p.clip_gradients)})")
        lr = f"a lower base_lr (now {f32(p.base_lr)}"
        rate = self.last_rate if self.last_rate is not None else self.rate
        if float(rate) > float(np.float32(p.base_lr)) * 1.0001:
            lr += (f"; lr_policy '{p.lr_policy}' has raised the rate to {float(rate):.6g}: "
                   "choose one that does not grow")
        items.append(lr + ")")
        large = []
        for name in (self.data_inputs if self.data_inputs is not None else self.net.inputs):
            data = self.net.blobs[name].data
            if data.size and np.isfinite(data).all() and np.abs(data).max() > 1e4:
                large.append(f"'{name}' reaches {float(np.abs(data).max()):.3g}")
        if large:
            items.insert(0, "data scaled to about [-1, 1] (input " + ", ".join(large) + ")")
        return items

    def _diverged(self, what, start, loss=None, where=None, pre_update=True):
        """Stop on a non-finite value: find it, keep (or write) the last good snapshot, and
        raise Diverged saying all of it."""
        k = self.iter
        if where is None:
            where = locate_nonfinite(self.net) or (
                "every blob is finite: the loss outputs overflow when summed"
                if loss is not None and not math.isfinite(loss) else
                "no single blob: the non-finite values appear in the summed gradient")
        weights_ok = bool(np.isfinite(self.net.flat_data).all())
        written = False
        if pre_update and weights_ok and self.last_snapshot is None \
                and self.restored is None and (start is not None or not self.sidecar):
            self.log(f"Iteration {k}: not finite; snapshotting the weights before its update")
            self.snapshot(start_state=start)
            written = True
        last_good = self.last_snapshot or self.restored
        lines = [f"training diverged at iteration {k}: {what}"]
        if where:
            lines.append(f"  where: {where}")
        if written:
            lines.append(f"  last good snapshot: {last_good[1]} (iteration {k}: the weights "
                         "before the update that failed; written now, as the run had none)")
        elif last_good is not None:
            how = "" if self.last_snapshot else ", the one this run resumed from"
            lines.append(f"  last good snapshot: {last_good[1]} (iteration {last_good[0]}"
                         f"{how}); the diverged weights were not saved")
        else:
            lines.append("  no good snapshot: the weights were not finite any more and the "
                         "run had written none")
        lines.append("  usual remedies: " + "; ".join(self.remedies()))
        raise Diverged("\n".join(lines), iteration=k, where=where, last_good=last_good,
                       loss=loss)

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

    def fingerprint(self):
        """What the net, the solver and (`fingerprint_options`) the run are; recorded in
        each snapshot's sidecar and compared on restore."""
        from ..io.solverstate import net_fingerprint, solver_fingerprint

        if self._net_fingerprint is None:
            self._net_fingerprint = net_fingerprint(self.net)
        return {"net": self._net_fingerprint, "solver": solver_fingerprint(self.param),
                "options": dict(self.fingerprint_options)}

    def resume_state(self):
        """(meta, arrays): what continuing from this point needs beyond weights and history:
        the state every recurrent layer carries, the shared random generator, and what the
        `snapshot_extra` hook adds (data position, ...)."""
        meta = {"iter": self.iter, "layer_states": [],
                "fillers_rng": fillers.generator().bit_generator.state}
        arrays = {}
        for layer, state in self.net.get_state().items():
            items = state.items() if isinstance(state, dict) else [("", state)]
            for key, value in items:
                name = f"state/{layer}/{key}"
                arrays[name] = np.asarray(value)  # (get_state returns copies)
                meta["layer_states"].append([layer, key, name])
        if self.snapshot_extra is not None:
            extra, extra_arrays = self.snapshot_extra(self)
            meta["extra"] = extra
            for key, value in extra_arrays.items():
                arrays[f"extra/{key}"] = value
        return meta, arrays

    def snapshot(self, start_state=None):
        """Write <prefix>_iter_<n>.caffemodel, .seqgen.npz (the sidecar, when `sidecar` is
        on) and .solverstate, in that order, each atomically and with signals held back;
        returns (model, state).
        `start_state`: the resume_state() to record, when not the current one."""
        from ..io.solverstate import sha256_bytes, sha256_file, sidecar_path, \
            solverstate_bytes, write_sidecar

        base = f"{self.snapshot_prefix()}_iter_{self.iter}"
        folder = os.path.dirname(base)
        if folder:
            os.makedirs(folder, exist_ok=True)
        model, state = base + ".caffemodel", base + ".solverstate"
        with signals_deferred():
            self.log(f"Snapshotting to binary proto file {model}")
            self.net.save(model)
            self.log(f"Snapshotting solver state to binary proto file {state}")
            data = solverstate_bytes(self, model)
            if self.sidecar:
                meta, arrays = start_state if start_state is not None else self.resume_state()
                if self.snapshot_logs is not None:
                    arrays = dict(arrays)
                    arrays.update({f"extra/{k}": v for k, v in self.snapshot_logs(self).items()})
                meta = dict(meta, iter=self.iter, model=os.path.basename(model),
                            model_sha256=sha256_file(model),
                            solverstate=os.path.basename(state),
                            solverstate_sha256=sha256_bytes(data),
                            fingerprint=self.fingerprint())
                write_sidecar(sidecar_path(state), meta, arrays)
            atomic_write_bytes(state, data)  # last: a .solverstate means a whole snapshot
        self.last_snapshot = (self.iter, model, state)
        if self.after_snapshot is not None:
            self.after_snapshot(self, model, state)
        return model, state

    def restore(self, path, allow_changes=False, recorded=None):
        """Continue from a .solverstate: iter, current_step, history and the weights of the
        .caffemodel it names (looked for beside the state file when not found as written),
        and from its sidecar (if any) the recurrent layers' carried state and the random
        generator. Refused when the net, the solver or the recorded options differ from
        the snapshot's (its sidecar's fingerprint, else `recorded`), unless
        `allow_changes`. Returns the sidecar's (extra meta, extra arrays), or None."""
        from ..io.solverstate import (apply_solverstate, load_solverstate, read_sidecar,
                                  sidecar_path)

        path = os.fspath(path)
        state, model = load_solverstate(self, path)
        side = sidecar_path(path)
        meta = arrays = None
        if os.path.exists(side):
            meta, arrays = read_sidecar(side)
            self._check_sidecar(meta, state, path, model, side)
            recorded = meta.get("fingerprint")
        if recorded and not allow_changes:
            self._check_fingerprint(recorded, path)
        apply_solverstate(self, state, model)
        if meta is not None:
            self._apply_resume_state(meta, arrays, side)
        elif self.net.get_state():
            self.log(f"Warning: {path} has no {os.path.basename(side)} beside it (not written "
                     "by this seqgen): the recurrent state carried from chunk to chunk starts "
                     "from zero, so the continuation is close to, not exactly, the original run")
        self.restored = (self.iter, model, path)
        self.restored_extra = None
        if meta is not None and "extra" in meta:
            self.restored_extra = (meta["extra"], {k[len("extra/"):]: v for k, v in
                                                   arrays.items() if k.startswith("extra/")})
        return self.restored_extra

    def _check_sidecar(self, meta, state, path, model, side):
        from ..io.solverstate import sha256_file

        if meta.get("iter") != state.iter:
            raise SeqgenError(f"{side}: it is for iteration {meta.get('iter')}, but {path} is "
                              f"at iteration {state.iter}; the files do not belong together")
        for what, file, key in (("the state", path, "solverstate_sha256"),
                                ("the weights", model, "model_sha256")):
            if file is not None and meta.get(key) and sha256_file(file) != meta[key]:
                raise SeqgenError(
                    f"{path}: {what} file {file} is not the one this snapshot wrote (its SHA-256 "
                    f"differs from the one in {os.path.basename(side)}): it was overwritten "
                    "by another run, or a write was cut short; resume from another snapshot")

    def _check_fingerprint(self, recorded, path):
        from ..io.solverstate import net_changes, solver_changes, summarize

        current = self.fingerprint()
        parts = []
        if recorded.get("net"):
            changes = net_changes(recorded["net"], current["net"])
            if changes:
                parts.append("the net changed: " + summarize(changes))
        if recorded.get("solver"):
            changes = solver_changes(recorded["solver"], current["solver"])
            if changes:
                parts.append("the solver changed: " + summarize(changes))
        old, new = recorded.get("options") or {}, current.get("options") or {}
        if old and new:
            changes = []
            for k in sorted(set(old) | set(new)):
                if k.startswith("_") or old.get(k) == new.get(k):
                    continue
                a, b = old.get(k, "(unset)"), new.get(k, "(unset)")
                if f"_{k}" in old or f"_{k}" in new:  # shown by name, compared by content
                    a, b = old.get(f"_{k}", a), new.get(f"_{k}", b)
                    if a == b:
                        a, b = f"{a} (as it was)", f"{b} (other values now)"
                changes.append(f"{k} {a} -> {b}")
            if changes:
                parts.append("the training options changed: " + summarize(changes))
        if parts:
            raise SeqgenError(f"{path}: cannot resume: " + "; ".join(parts)
                              + " (since that snapshot; to continue anyway, knowing the run "
                              "will not be the one that wrote it, add --allow-changes)")

    def _apply_resume_state(self, meta, arrays, side):
        states = {}
        for layer, key, name in meta.get("layer_states", []):
            if name not in arrays:
                raise SeqgenError(f"{side}: the state '{key}' of layer '{layer}' is missing")
            if key == "":
                states[layer] = arrays[name]
            else:
                states.setdefault(layer, {})[key] = arrays[name]
        try:
            self.net.set_state(states)
        except SeqgenError as e:
            raise SeqgenError(f"{side}: {e}") from None
        rng = meta.get("fillers_rng")
        if rng:
            try:
                fillers.generator().bit_generator.state = rng
            except (TypeError, ValueError, KeyError) as e:
                raise SeqgenError(f"{side}: cannot restore the random generator ({e})") \
                    from None
