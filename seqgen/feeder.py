"""Feeding a sequence to a net the way the fork's lstm_sequence driver does.

The sequence is walked in chunks of the net's T (one chunk per forward pass, cycling);
clip is 1 everywhere except clip[0] = (chunk index > 0), so state carries across the
chunks of one pass over the sequence and restarts at its beginning. The `data` input is
either left at 0 (mode "zero", the fork's autonomous generator) or holds the previous
value of the sequence (mode "previous": data[t] = sequence[t-1], 0 at t = 0).
"""
import numpy as np

from .errors import SeqgenError

MODES = ("previous", "zero")
CLIP_NAMES = ("clip", "cont")


def input_roles(net):
    """(data, clip, label) input blob names of a sequence net; label is None for a TEST net."""
    names = list(net.inputs)
    clip = next((n for n in names if n in CLIP_NAMES), None)
    label = "label" if "label" in names else None
    rest = [n for n in names if n not in (clip, label)]
    if clip is None:
        raise SeqgenError(f"{net.source}: the net has no 'clip' (or 'cont') input; sequence "
                          f"training needs one (inputs: {', '.join(names) or 'none'})")
    if len(rest) != 1:
        raise SeqgenError(f"{net.source}: expected exactly one data input besides "
                          f"'{clip}'{' and label' if label else ''}, found: {', '.join(rest) or 'none'}")
    return rest[0], clip, label


def shifted(sequence):
    """Teacher-forcing input: the previous value at every step, 0 before the first."""
    prev = np.zeros_like(sequence)
    prev[1:] = sequence[:-1]
    return prev


class SequenceFeeder:
    """Solver hook writing the inputs of chunk k = pass index mod number of chunks."""

    def __init__(self, net, sequence, mode="previous", source="sequence"):
        if mode not in MODES:
            raise SeqgenError(f"unknown input mode '{mode}' (known: {', '.join(MODES)})")
        self.data, self.clip, self.label = input_roles(net)
        if self.label is None:
            raise SeqgenError(f"{net.source}: the TRAIN net has no 'label' input to train on")
        self.net = net
        self.mode = mode
        seq = np.asarray(sequence, np.float32)
        seq = seq.reshape(len(seq), -1)
        T = net.blobs[self.clip].count
        dims = net.blobs[self.label].count // max(net.blobs[self.label].num, 1)
        if seq.shape[1] != dims:
            raise SeqgenError(f"{source}: {seq.shape[1]} column(s) per step, but the net's "
                              f"'{self.label}' input takes {dims}")
        if len(seq) < T:
            raise SeqgenError(f"{source}: the sequence has {len(seq)} steps, shorter than one "
                              f"chunk of the net ({T} steps)")
        self.T = T
        self.chunks = len(seq) // T
        self.sequence = seq[: self.chunks * T]
        self.inputs = shifted(self.sequence) if mode == "previous" else np.zeros_like(self.sequence)
        self.passes = 0

    def set_inputs(self, values):
        """Feed `values` (L, D) shifted by one step instead of the true sequence."""
        self.inputs = shifted(np.asarray(values, np.float32).reshape(self.sequence.shape))

    def chunk(self, k):
        """(data, clip, label) arrays of chunk k."""
        T = self.T
        clip = np.ones(T, np.float32)
        clip[0] = 1.0 if k > 0 else 0.0
        sl = slice(k * T, (k + 1) * T)
        return self.inputs[sl], clip, self.sequence[sl]

    def __call__(self, solver):
        data, clip, label = self.chunk(self.passes % self.chunks)
        self.passes += 1
        blobs = self.net.blobs
        blobs[self.data].data[...] = data.reshape(blobs[self.data].shape)
        blobs[self.clip].data[...] = clip.reshape(blobs[self.clip].shape)
        blobs[self.label].data[...] = label.reshape(blobs[self.label].shape)
