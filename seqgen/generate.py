"""Free-running generation: the net steps one time step at a time and, in mode "previous",
reads its own last prediction as the next input (after `prime` steps of true values).

Step i runs with clip = (i > 0), so the first step starts from a zero state and every
later one continues it — the fork's test loop.
"""
import numpy as np

from .errors import SeqgenError, SeqgenRuntimeError
from .feeder import MODES, input_roles


def output_name(net):
    """The prediction blob of a TEST net: its single output."""
    outs = [n for n in net.outputs if n not in net.inputs]
    if len(outs) != 1:
        raise SeqgenError(f"{net.source}: cannot tell the prediction blob; the TEST net has "
                          f"outputs {', '.join(outs) or 'none'} (expected exactly one)")
    return outs[0]


def generate(net, steps, mode="previous", true=None, prime=0):
    """Run `net` (phase TEST) for `steps` single steps; returns predictions (steps, D)."""
    if mode not in MODES:
        raise SeqgenError(f"unknown input mode '{mode}' (known: {', '.join(MODES)})")
    if steps <= 0:
        raise SeqgenError(f"--steps must be positive, got {steps}")
    data, clip, _ = input_roles(net)
    if prime < 0:
        raise SeqgenError(f"--prime must be >= 0, got {prime}")
    if prime and (true is None or len(true) < prime):
        have = 0 if true is None else len(true)
        raise SeqgenError(f"--prime {prime} needs {prime} true values, only {have} available")
    out = output_name(net)
    D = net.blobs[data].count // max(net.blobs[data].num, 1)
    net.blobs[data].reshape((1,) + net.blobs[data].shape[1:])
    net.blobs[clip].reshape((1,) + net.blobs[clip].shape[1:])
    net.reshape()
    true = None if true is None else np.asarray(true, np.float32).reshape(len(true), -1)
    result = np.zeros((steps, D), np.float32)
    x = np.zeros(D, np.float32)
    xb, cb, ob = net.blobs[data], net.blobs[clip], net.blobs[out]
    net.reset_state()
    for i in range(steps):
        if mode == "previous" and i > 0:
            x = true[i - 1] if i - 1 < prime else result[i - 1]
        xb.data[...] = x.reshape(xb.shape)
        cb.data[...] = 1.0 if i > 0 else 0.0
        net.forward()
        result[i] = ob.data.reshape(-1)[:D]
        if not np.all(np.isfinite(result[i])):
            raise SeqgenRuntimeError(f"generation diverged: step {i} produced {result[i].tolist()}; "
                              "the trained weights are unstable when fed their own predictions")
    return result
