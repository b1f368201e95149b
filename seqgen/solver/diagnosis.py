"""Divergence diagnosis: what went non-finite, where it first appeared, and what usually
helps. The solver only detects the NaN/inf (one np.isfinite over the packed gradient and
weights per iteration); the walk over layers here runs only after a failure."""
import math

import numpy as np

from ..errors import SeqgenRuntimeError
from .fingerprint import float32_text as f32


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


def remedies(solver):
    """The usual cures for a diverging run, for this net and solver."""
    p = solver.param
    items = []
    lstm = [l for l in solver.net.layers if l.type == "Lstm"]
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
    rate = solver.last_rate if solver.last_rate is not None else solver.rate
    if float(rate) > float(np.float32(p.base_lr)) * 1.0001:
        lr += (f"; lr_policy '{p.lr_policy}' has raised the rate to {float(rate):.6g}: "
               "choose one that does not grow")
    items.append(lr + ")")
    large = []
    for name in (solver.data_inputs if solver.data_inputs is not None else solver.net.inputs):
        data = solver.net.blobs[name].data
        if data.size and np.isfinite(data).all() and np.abs(data).max() > 1e4:
            large.append(f"'{name}' reaches {float(np.abs(data).max()):.3g}")
    if large:
        items.insert(0, "data scaled to about [-1, 1] (input " + ", ".join(large) + ")")
    return items


def divergence_message(solver, k, what, where, written, last_good):
    """The lines of a Diverged error: summary, where, the last good snapshot, remedies."""
    lines = [f"training diverged at iteration {k}: {what}"]
    if where:
        lines.append(f"  where: {where}")
    if written:
        lines.append(f"  last good snapshot: {last_good[1]} (iteration {k}: the weights "
                     "before the update that failed; written now, as the run had none)")
    elif last_good is not None:
        how = "" if solver.last_snapshot else ", the one this run resumed from"
        lines.append(f"  last good snapshot: {last_good[1]} (iteration {last_good[0]}"
                     f"{how}); the diverged weights were not saved")
    else:
        lines.append("  no good snapshot: the weights were not finite any more and the "
                     "run had written none")
    lines.append("  usual remedies: " + "; ".join(remedies(solver)))
    return "\n".join(lines)


def where_nonfinite(net, loss):
    """locate_nonfinite, or why no single blob is to blame."""
    return locate_nonfinite(net) or (
        "every blob is finite: the loss outputs overflow when summed"
        if loss is not None and not math.isfinite(loss) else
        "no single blob: the non-finite values appear in the summed gradient")
