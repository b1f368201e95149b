"""Free-running generation: the net steps one time step at a time and, in mode "previous",
reads its own last prediction as the next input (after `prime` steps of true values).

Step i runs with clip = (i > 0), so the first step starts from a zero state and every
later one continues it — the fork's test loop.
"""
import numpy as np

from ..errors import SeqgenError, SeqgenRuntimeError
from ..kernels.generate import lstm_stack_generate, rnn_stack_generate
from .inputs import MODES, input_roles


class GenerationDiverged(SeqgenRuntimeError):
    """Free-running generation produced NaN or inf (exit code 1); `step` is the first bad
    step, `values` its output."""

    def __init__(self, message, step, values):
        super().__init__(message)
        self.step, self.values = step, values


def output_name(net):
    """The prediction blob of a TEST net: its single output."""
    outs = [n for n in net.outputs if n not in net.inputs]
    if len(outs) != 1:
        raise SeqgenError(f"{net.source}: cannot tell the prediction blob; the TEST net has "
                          f"outputs {', '.join(outs) or 'none'} (expected exactly one)")
    return outs[0]


def _recurrent_weights(layer):
    """("lstm" or "rnn", the layer's weights in the kernel's layout) for a layer the
    compiled generator can step; (None, None) for any other."""
    weights = layer.lstm_weights()
    if weights is not None:
        return "lstm", weights
    weights = layer.rnn_weights()
    return (None, None) if weights is None else ("rnn", weights)


def computing_layers(net):
    """(layer, bottoms, tops) for the layers of a TEST net that compute, in order: Input
    and Silence left out, and the tops of Splits and identity layers (Dropout at TEST)
    replaced by the blob they copy in every later layer's bottoms."""
    alias = {}
    for layer in net.layers:
        bottoms = [alias.get(b, b) for b in layer.param.bottom]
        tops = list(layer.param.top)
        if layer.type in ("Input", "Silence"):
            continue
        if layer.type == "Split" or (layer.is_identity() and len(bottoms) == 1):
            alias.update((t, bottoms[0]) for t in tops)
            continue
        yield layer, bottoms, tops


def stackable(layer, bottoms, tops, current, clip):
    """Whether a recurrent layer continues a compiled stack from blob `current`: it reads
    (current, clip), has one top and one stream."""
    return bottoms == [current, clip] and len(tops) == 1 and getattr(layer, "N", 1) == 1


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def _flat(arrays):
    return np.concatenate([np.ascontiguousarray(a, np.float32).ravel() for a in arrays])


def lstm_arrays(layers):
    """The flat kernel layout (I, H, wx, ox, wh, oh, b, ob) of LSTM layers given by their
    lstm_weights() (W_x (4H, I), W_h (4H, H), b (4H)); both matrices are stored transposed."""
    I = np.array([w[0].shape[1] for w in layers], np.int64)
    H = np.array([w[1].shape[1] for w in layers], np.int64)
    return (I, H, _flat(w[0].T for w in layers), _offsets(4 * H * I),
            _flat(w[1].T for w in layers), _offsets(4 * H * H),
            _flat(w[2] for w in layers), _offsets(4 * H))


def stack_plan(net, data, clip, out):
    """(kernel, arrays) for the compiled generator when the net is a chain of LSTM layers
    (or of RNN layers) fed by (data, clip) and one affine output layer producing `out`;
    None for any other net, which then runs step by step through Net.forward."""
    layers, kind, affine, current = [], None, None, data
    for layer, bottoms, tops in computing_layers(net):
        recurrent, weights = _recurrent_weights(layer)
        if affine is None and recurrent and kind in (None, recurrent) \
                and stackable(layer, bottoms, tops, current, clip):
            kind = recurrent
            layers.append(weights)
            current = tops[0]
        elif affine is None and layers and bottoms == [current] and tops == [out]:
            affine = layer.affine_weights()
            if affine is None:  # not an affine layer
                return None
        else:
            return None
    if affine is None:
        return None
    if kind == "lstm":
        return lstm_stack_generate, lstm_arrays(layers), affine
    # rnn: (W_xh (H, I), b_h, W_hh (H, H), W_ho (H, H), b_o)
    I = np.array([w[0].shape[1] for w in layers], np.int64)
    H = np.array([w[2].shape[0] for w in layers], np.int64)
    arrays = (I, H, _flat(w[0] for w in layers), _offsets(H * I),
              _flat(w[2].T for w in layers), _offsets(H * H), _flat(w[1] for w in layers),
              _offsets(H), _flat(w[3].T for w in layers), _flat(w[4] for w in layers))
    return rnn_stack_generate, arrays, affine


def generate(net, steps, mode="previous", true=None, prime=0, compiled=True):
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
    net.reshape_if_changed()
    true = None if true is None else np.asarray(true, np.float32).reshape(len(true), -1)
    if true is not None and true.shape[1] != D:
        raise SeqgenError(f"the true sequence has {true.shape[1]} column(s) per step, but the "
                          f"net's '{data}' input takes {D}")
    result = np.zeros((steps, D), np.float32)
    plan = stack_plan(net, data, clip, out) if compiled else None
    if plan is not None and plan[2][0].shape[0] == D == plan[1][0][0]:
        kernel, arrays, (W_out, b_out) = plan
        feed = np.zeros((1, D), np.float32) if true is None else true
        kernel(*arrays, W_out, b_out, steps, mode == "previous", feed, prime, result)
        _check_finite(result)
        return result
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
    _check_finite(result)
    return result


def _check_finite(result):
    bad = ~np.isfinite(result).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        values = result[i].tolist()
        shown = values if len(values) <= 8 else values[:8] + ["..."]
        before = f" (step {i - 1} was {_short(result[i - 1])})" if i else ""
        raise GenerationDiverged(
            f"generation diverged: step {i} produced {shown}{before}; the weights are "
            "unstable when fed their own predictions", i, values)


def _short(row):
    row = [float(v) for v in np.ravel(row)]
    text = ", ".join(f"{v:.4g}" for v in row[:8])
    return f"[{text}{', ...' if len(row) > 8 else ''}]"
