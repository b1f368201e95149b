"""Caffe's update rules (ComputeUpdateValue), one function per solver type.

Each takes the SolverParameter, the regularised gradient `g` (float32, modified in place
to become the step that is subtracted from the weights), the history buffers of its type
(one flat buffer per history slot, covering every learnable parameter), the local rate
(rate * lr_mult: a float32 scalar, or one value per element when lr_mult differs between
parameters) and the iteration number (completed updates).

The compiled loops of kernels/update.py follow Caffe's CPU code step by step in float32 so
that the roundings are the same: caffe_cpu_axpby(a, x, b, y) is `y * b + a * x`, and the
adaptive rules form the normalised gradient first and scale it by the rate last.
"""
import numpy as np

from ..errors import SeqgenError
from ..kernels import update as k

f32 = np.float32


def sgd(p, g, hist, lr, it):
    k.sgd(g, hist[0], lr, f32(p.momentum))


def nesterov(p, g, hist, lr, it):
    k.nesterov(g, hist[0], lr, f32(p.momentum))


def adagrad(p, g, hist, lr, it):
    k.adagrad(g, hist[0], lr, f32(p.delta))


def rmsprop(p, g, hist, lr, it):
    k.rmsprop(g, hist[0], lr, f32(p.rms_decay), f32(p.delta))


def adadelta(p, g, hist, lr, it):
    k.adadelta(g, hist[0], hist[1], lr, f32(p.momentum), f32(p.delta))


def adam(p, g, hist, lr, it):
    b1, b2 = f32(p.momentum), f32(p.momentum2)
    t = it + 1
    # Caffe: Dtype correction = sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)), pow in double
    correction = f32(np.sqrt(1.0 - np.float64(b2) ** t) / (1.0 - np.float64(b1) ** t))
    k.adam(g, hist[0], hist[1], lr, correction, b1, b2, f32(p.delta))


def regularize(p, g, w, decay_mult):
    """g += local_decay * w (L2) or * sign(w) (L1), local_decay = weight_decay * decay_mult."""
    k.regularize(g, w, f32(p.weight_decay), decay_mult, p.regularization_type == "L1")


UPDATES = {"SGD": sgd, "Nesterov": nesterov, "AdaGrad": adagrad, "RMSProp": rmsprop,
           "AdaDelta": adadelta, "Adam": adam}


def history_slots(kind):
    """History blobs per parameter: two for AdaDelta and Adam, one otherwise."""
    return 2 if kind in ("AdaDelta", "Adam") else 1


def check_solver_type(p, where="solver"):
    """The solver type is known, and Caffe's constructor CHECKs for it hold."""
    kind = p.type
    if kind not in UPDATES:
        raise SeqgenError(f"{where}: unknown solver type '{kind}' (known: {', '.join(UPDATES)})")
    if kind in ("AdaGrad", "RMSProp") and p.momentum != 0:
        raise SeqgenError(f"{where}: momentum must be 0 for {kind} (got {p.momentum:g}); "
                          "Caffe refuses it too")
    if kind == "RMSProp" and not 0 <= p.rms_decay < 1:
        raise SeqgenError(f"{where}: RMSProp needs 0 <= rms_decay < 1 (got {p.rms_decay:g})")
    if kind == "Adam" and not (0 <= p.momentum < 1 and 0 <= p.momentum2 < 1):
        raise SeqgenError(f"{where}: Adam needs 0 <= momentum < 1 and 0 <= momentum2 < 1 "
                          f"(got momentum {p.momentum:g}, momentum2 {p.momentum2:g})")
    if kind == "AdaDelta" and not 0 <= p.momentum <= 1:
        raise SeqgenError(f"{where}: AdaDelta uses momentum as its decay rate and needs "
                          f"0 <= momentum <= 1 (got {p.momentum:g})")
