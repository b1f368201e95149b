"""Caffe's update rules (ComputeUpdateValue), one function per solver type.

Each takes the regularised gradient `g` (float32, modified in place to become the step
that is subtracted from the weights), the parameter's history blobs, the local rate
(rate * lr_mult) and the iteration number.
"""
import numpy as np


def sgd(p, g, hist, lr, it):
    v, = hist
    v *= np.float32(p.momentum)
    v += lr * g
    g[...] = v


def nesterov(p, g, hist, lr, it):
    v, = hist
    m = np.float32(p.momentum)
    old = v.copy()
    v *= m
    v += lr * g
    g[...] = (1 + m) * v - m * old


def adagrad(p, g, hist, lr, it):
    h, = hist
    h += g * g
    g[...] = lr * g / (np.sqrt(h) + np.float32(p.delta))


def rmsprop(p, g, hist, lr, it):
    h, = hist
    d = np.float32(p.rms_decay)
    h *= d
    h += (1 - d) * (g * g)
    g[...] = lr * g / (np.sqrt(h) + np.float32(p.delta))


def adadelta(p, g, hist, lr, it):
    h1, h2 = hist
    rho, delta = np.float32(p.momentum), np.float32(p.delta)
    h1 *= rho
    h1 += (1 - rho) * (g * g)
    u = g * np.sqrt((h2 + delta) / (h1 + delta))
    h2 *= rho
    h2 += (1 - rho) * (u * u)
    g[...] = lr * u


def adam(p, g, hist, lr, it):
    m, v = hist
    b1, b2 = np.float32(p.momentum), np.float32(p.momentum2)
    t = it + 1
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    correction = np.float32(np.sqrt(1 - float(b2) ** t) / (1 - float(b1) ** t))
    g[...] = (lr * correction) * m / (np.sqrt(v) + np.float32(p.delta))


UPDATES = {"SGD": sgd, "Nesterov": nesterov, "AdaGrad": adagrad, "RMSProp": rmsprop,
           "AdaDelta": adadelta, "Adam": adam}


def history_slots(kind):
    """History blobs per parameter: two for AdaDelta and Adam, one otherwise."""
    return 2 if kind in ("AdaDelta", "Adam") else 1
