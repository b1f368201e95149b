"""Caffe's update rules (ComputeUpdateValue) and regularisation as compiled loops over the
packed float32 parameters, one pass each.

Every rule turns the regularised gradient g into the step in place (Caffe leaves it in the
diff; the solver subtracts it from the weights). The local rate `lr` and the local decay
(weight_decay * decay_mult, formed per element) are a float32 scalar, or one value per
element when the multipliers differ between parameters (`at`). No fastmath: each operation
rounds as the step-by-step float32 formulas do (caffe_cpu_axpby(a, x, b, y) is y * b + a * x),
so the weights are bit for bit those of Caffe's CPU code in that order.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

JIT = dict(cache=True, error_model="numpy", nogil=True)
f32 = np.float32


def at(a, i):
    """a[i] for a per-element multiplier, a itself for a scalar one."""
    return a[i] if np.ndim(a) else a


@overload(at)
def _at(a, i):
    if isinstance(a, types.Array):
        return lambda a, i: a[i]
    return lambda a, i: a


@njit(**JIT)
def regularize(g, w, weight_decay, decay_mult, l1):
    """g += local_decay * w (L2) or local_decay * sign(w) (L1, sign(0) = 0, NaN stays)."""
    one = f32(1)
    for i in range(g.size):
        d = weight_decay * at(decay_mult, i)
        x = w[i]
        if l1:
            if x > 0:
                x = one
            elif x < 0:
                x = -one
            elif x == 0:
                x = x - x  # +0, as np.sign(-0.0)
        g[i] += d * x


@njit(**JIT)
def sgd(g, v, lr, momentum):
    """V = momentum * V + lr * g; step = V."""
    for i in range(g.size):
        rate = at(lr, i)
        s = v[i] * momentum + rate * g[i]
        v[i] = s
        g[i] = s


@njit(**JIT)
def nesterov(g, v, lr, momentum):
    """V_old = V; V = momentum * V + lr * g; step = (1 + momentum) * V - momentum * V_old."""
    up, down = f32(1) + momentum, -momentum
    for i in range(g.size):
        rate = at(lr, i)
        old = v[i]
        new = old * momentum + rate * g[i]
        v[i] = new
        s = old * down + up * new
        g[i] = s


@njit(**JIT)
def adagrad(g, h, lr, delta):
    """H += g^2; step = lr * g / (sqrt(H) + delta)."""
    for i in range(g.size):
        rate = at(lr, i)
        x = g[i]
        hi = h[i] + x * x
        h[i] = hi
        s = x / (np.sqrt(hi) + delta) * rate
        g[i] = s


@njit(**JIT)
def rmsprop(g, h, lr, decay, delta):
    """H = decay * H + (1 - decay) * g^2; step = lr * g / (sqrt(H) + delta)."""
    rest = f32(1) - decay
    for i in range(g.size):
        rate = at(lr, i)
        x = g[i]
        hi = h[i] * decay + rest * (x * x)
        h[i] = hi
        s = x / (np.sqrt(hi) + delta) * rate
        g[i] = s


@njit(**JIT)
def adadelta(g, h1, h2, lr, rho, delta):
    """H1 = rho H1 + (1 - rho) g^2; u = g sqrt((H2 + delta) / (H1 + delta));
    H2 = rho H2 + (1 - rho) u^2 (before the rate); step = lr * u."""
    rest = f32(1) - rho
    for i in range(g.size):
        rate = at(lr, i)
        x = g[i]
        a = h1[i] * rho + rest * (x * x)
        h1[i] = a
        u = x * np.sqrt((h2[i] + delta) / (a + delta))
        h2[i] = h2[i] * rho + rest * (u * u)
        s = u * rate
        g[i] = s


@njit(**JIT)
def adam(g, m, v, lr, correction, beta1, beta2, delta):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; step = (lr * correction) * m /
    (sqrt(v) + delta), correction = sqrt(1 - b2^t) / (1 - b1^t) folded into the rate."""
    rest1, rest2 = f32(1) - beta1, f32(1) - beta2
    for i in range(g.size):
        rate = at(lr, i)
        x = g[i]
        mi = m[i] * beta1 + rest1 * x
        m[i] = mi
        vi = v[i] * beta2 + rest2 * (x * x)
        v[i] = vi
        s = mi / (np.sqrt(vi) + delta) * (rate * correction)
        g[i] = s
