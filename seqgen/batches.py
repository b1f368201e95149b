"""pycaffe's batch helpers (pycaffe.py's forward_all, forward_backward_all, _batch): run a
net over arrays longer than its batch, one batch along axis 0 at a time, the last one
padded with zeros and the padding cut from the results."""
from itertools import zip_longest

import numpy as np

from .errors import SeqgenError


def batches(net, arrays):
    """Yield {name: array} of the net's batch size (axis 0 of its first blob, as pycaffe
    takes it); the last batch is padded with zeros."""
    if not arrays:
        return
    num = len(next(iter(arrays.values())))
    size = next(iter(net.blobs.values())).shape[0]
    if size <= 0:
        raise SeqgenError("forward_all: the net's first blob has a batch of 0")
    for i in range(0, num - num % size, size):
        yield {name: a[i:i + size] for name, a in arrays.items()}
    rest = num % size
    if rest:
        yield {name: np.concatenate([a[-rest:], np.zeros((size - rest,) + a.shape[1:],
                                                          np.float32)])
               for name, a in arrays.items()}


def _as_arrays(kwargs):
    return {name: np.asarray(value, np.float32) for name, value in kwargs.items()}


def _unpad(collected, given):
    """Stack the collected rows and cut the padding of the last batch."""
    out = {name: np.asarray(rows) for name, rows in collected.items()}
    if given:
        n = len(next(iter(given.values())))
        out = {name: a[:n] for name, a in out.items()}
    return out


def forward_all(net, blobs=None, **kwargs):
    """{blob: array} over all the rows given: the outputs and `blobs`, batch by batch."""
    kwargs = _as_arrays(kwargs)
    collected = {name: [] for name in dict.fromkeys(net.outputs + list(blobs or []))}
    for batch in batches(net, kwargs):
        for name, data in net.forward(blobs=blobs, **batch).items():
            collected[name].extend(data.copy())
    return _unpad(collected, kwargs)


def forward_backward_all(net, blobs=None, diffs=None, **kwargs):
    """({blob: data}, {blob: diff}) over all the rows given: keyword arguments are inputs
    (for forward) and output diffs (for backward), batched alike."""
    kwargs = _as_arrays(kwargs)
    outs = {name: [] for name in dict.fromkeys(net.outputs + list(blobs or []))}
    grads = {name: [] for name in dict.fromkeys(net.inputs + list(diffs or []))}
    forward = batches(net, {k: v for k, v in kwargs.items() if k in net.inputs})
    backward = batches(net, {k: v for k, v in kwargs.items() if k in net.outputs})
    for fb, bb in zip_longest(forward, backward, fillvalue={}):
        for name, data in net.forward(blobs=blobs, **fb).items():
            outs[name].extend(data.copy())
        for name, diff in net.backward(diffs=diffs, **bb).items():
            grads[name].extend(diff.copy())
    return _unpad(outs, kwargs), _unpad(grads, kwargs)
