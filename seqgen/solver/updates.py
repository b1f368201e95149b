"""Caffe's update rules (ComputeUpdateValue), one function per solver type.

Each takes the SolverParameter, the regularised gradient `g` (float32, modified in place
to become the step that is subtracted from the weights), the history buffers of its type
(one flat buffer per history slot, covering every learnable parameter), the local rate
(rate * lr_mult: a float32 scalar, or one value per element when lr_mult differs between
parameters) and the iteration number (completed updates).

The operations follow Caffe's CPU code step by step in float32 so that the roundings are
the same: caffe_cpu_axpby(a, x, b, y) is `y *= b; y += a * x`, and the adaptive rules
form the normalised gradient first and scale it by the rate last.
"""
import numpy as np

from ..errors import SeqgenError

f32 = np.float32


def sgd(p, g, hist, lr, it):
    v, = hist
    v *= f32(p.momentum)
    v += lr * g
    g[...] = v


def nesterov(p, g, hist, lr, it):
    v, = hist
    m = f32(p.momentum)
    old = v.copy()
    v *= m
    v += lr * g
    # caffe_cpu_axpby(1 + m, V, -m, V_old): V_old *= -m; V_old += (1 + m) * V
    old *= -m
    old += (f32(1) + m) * v
    g[...] = old


def adagrad(p, g, hist, lr, it):
    h, = hist
    h += g * g
    denom = np.sqrt(h)
    denom += f32(p.delta)
    g /= denom
    g *= lr


def rmsprop(p, g, hist, lr, it):
    h, = hist
    d = f32(p.rms_decay)
    h *= d
    h += (f32(1) - d) * (g * g)
    denom = np.sqrt(h)
    denom += f32(p.delta)
    g /= denom
    g *= lr


def adadelta(p, g, hist, lr, it):
    h1, h2 = hist
    rho, delta = f32(p.momentum), f32(p.delta)
    h1 *= rho
    h1 += (f32(1) - rho) * (g * g)
    ratio = h2 + delta
    ratio /= h1 + delta
    g *= np.sqrt(ratio)          # the unscaled update u
    h2 *= rho
    h2 += (f32(1) - rho) * (g * g)  # squared-update history, before the rate is applied
    g *= lr


def adam(p, g, hist, lr, it):
    m, v = hist
    b1, b2 = f32(p.momentum), f32(p.momentum2)
    t = it + 1
    # Caffe: Dtype correction = sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)), pow in double
    correction = f32(np.sqrt(1.0 - np.float64(b2) ** t) / (1.0 - np.float64(b1) ** t))
    m *= b1
    m += (f32(1) - b1) * g
    v *= b2
    v += (f32(1) - b2) * (g * g)
    denom = np.sqrt(v)
    denom += f32(p.delta)
    np.divide(m, denom, out=g)
    g *= lr * correction


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
