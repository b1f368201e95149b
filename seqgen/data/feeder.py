"""Feeding a sequence to a net the way the fork's lstm_sequence driver does.

The sequence is walked in chunks of the net's T (one chunk per forward pass, cycling);
clip is 1 everywhere except clip[0] = (chunk index > 0), so state carries across the
chunks of one pass over the sequence and restarts at its beginning. The `data` input is
either left at 0 (mode "zero", the fork's autonomous generator) or holds the previous
value of the sequence (mode "previous": data[t] = sequence[t-1], 0 at t = 0).

`NpzFeeder` feeds any net from an .npz file whose arrays are named after the net's input
blobs (`seqgen train --data FILE.npz`); see its docstring for the rules.
"""
import zipfile

import numpy as np

from ..errors import SeqgenError
from ..generation.inputs import CLIP_NAMES, MODES, input_roles
from ..solver.callbacks import Callback


def shifted(sequence):
    """Teacher-forcing input: the previous value at every step, 0 before the first."""
    prev = np.zeros_like(sequence)
    prev[1:] = sequence[:-1]
    return prev


class SequenceFeeder(Callback):
    """Solver callback writing the inputs of chunk k = pass index mod number of chunks
    (`solver.add_callback(feeder)`, or call it). `need_label=False` feeds a TEST net, which
    may have no label input."""

    def __init__(self, net, sequence, mode="previous", source="sequence", need_label=True):
        if mode not in MODES:
            raise SeqgenError(f"unknown input mode '{mode}' (known: {', '.join(MODES)})")
        self.data, self.clip, self.label = input_roles(net)
        if self.label is None and need_label:
            raise SeqgenError(f"{net.source}: the TRAIN net has no 'label' input to train on")
        self.net = net
        self.mode = mode
        seq = np.asarray(sequence, np.float32)
        seq = seq.reshape(len(seq), -1)
        T = net.blobs[self.clip].count
        target = self.label or self.data
        dims = net.blobs[target].count // max(net.blobs[target].num, 1)
        if seq.shape[1] != dims:
            raise SeqgenError(f"{source}: {seq.shape[1]} column(s) per step, but the net's "
                              f"'{target}' input takes {dims}")
        if len(seq) < T:
            raise SeqgenError(f"{source}: the sequence has {len(seq)} steps, shorter than one "
                              f"chunk of the net ({T} steps)")
        self.T = T
        self.chunks = len(seq) // T
        self.sequence = seq[: self.chunks * T]
        self.inputs = (shifted(self.sequence) if mode == "previous"
                       else np.zeros_like(self.sequence))
        self.passes = 0
        self._clips = (self.chunk(0)[1], self.chunk(1)[1])  # (first chunk, any other)

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

    def write(self, k):
        """Write chunk k into the net's input blobs."""
        T = self.T
        sl = slice(k * T, (k + 1) * T)
        # (chunk's arrays without making them: this runs every iteration)
        data, clip, label = self.inputs[sl], self._clips[k > 0], self.sequence[sl]
        blobs = self.net.blobs
        blobs[self.data].data[...] = data.reshape(blobs[self.data].shape)
        blobs[self.clip].data[...] = clip.reshape(blobs[self.clip].shape)
        if self.label is not None:
            blobs[self.label].data[...] = label.reshape(blobs[self.label].shape)

    def __call__(self, solver):
        self.write(self.passes % self.chunks)
        self.passes += 1

    def before_forward(self, solver):
        self(solver)


def _rows_per_step(net, cont):
    """How many rows along axis 0 of the cont blob make one time step: the fork's `Lstm`
    takes T*N rows (row t*N + n) with one marker per row; BVLC's LSTM/RNN take (T, N)."""
    blob = net.blobs[cont]
    if any(d != 1 for d in blob.shape[1:]):
        return 1
    for layer in net.layers:
        if layer.type == "Lstm" and cont in layer.param.bottom[1:]:
            return int(getattr(layer, "N", 1))
    return 1


class NpzFeeder(Callback):
    """Solver callback feeding the arrays of an .npz file to the input blobs named like them.

    Rules (each violation raises SeqgenError naming the file and the array):
    - every array must be named after an input blob, and every input needs an array,
      except the cont/clip input, which is made up when the file has none: 0 on the first
      time step of the file, 1 everywhere else (the file is one sequence per stream);
      a file array named 'cont' feeds a net input named 'clip' and vice versa;
    - an array of exactly the input's shape is fed whole at every iteration;
    - an array longer along axis 0 (the time axis, T = the input's axis-0 size) is walked
      in chunks of T, one per forward pass, cycling; its length must be a multiple of T and
      its other axes must equal the input's (axes of size 1 may be left out or added);
    - all walked arrays must give the same number of chunks.
    With chunks, the state of recurrent layers carries from one chunk to the next, and the
    made-up cont restarts it when the walk wraps around to the first chunk.
    """

    def __init__(self, net, path):
        self.net = net
        self.path = str(path)
        arrays = _read_npz(self.path)
        inputs = list(net.inputs)
        if not inputs:
            raise SeqgenError(f"{net.source}: the net has no Input blobs for {self.path} to "
                              "feed (it reads its own data)")
        cont = next((n for n in inputs if n in CLIP_NAMES), None)
        for name in list(arrays):
            if name in inputs:
                continue
            if name in CLIP_NAMES and cont is not None and cont not in arrays:
                arrays[cont] = arrays.pop(name)  # 'cont' in the file, 'clip' in the net
                continue
            raise SeqgenError(f"{self.path}: array '{name}' is not an input of the net "
                              f"{net.source} (inputs: {', '.join(inputs)})")
        missing = [n for n in inputs if n not in arrays and n != cont]
        if missing:
            raise SeqgenError(f"{self.path}: no array for the net's input(s) "
                              f"{', '.join(repr(n) for n in missing)} (the file has "
                              f"{', '.join(repr(n) for n in arrays) or 'no arrays'})")
        self.whole, self.walked = {}, {}
        chunks = None
        first = None
        for name in inputs:
            if name not in arrays:
                continue
            value, walked = self._fit(name, arrays[name])
            if not walked:
                self.whole[name] = value
                continue
            n = len(value) // net.blobs[name].shape[0]
            if chunks is not None and n != chunks:
                raise SeqgenError(f"{self.path}: array '{name}' gives {n} chunks of its input's "
                                  f"{net.blobs[name].shape[0]} steps, but '{first}' gives "
                                  f"{chunks}; walked arrays must cover the same time steps")
            chunks, first = n, first or name
            self.walked[name] = value
        self.chunks = chunks or 1
        self.cont = cont
        self.made_up_cont = cont is not None and cont not in arrays
        if self.made_up_cont:
            blob = net.blobs[cont]
            made = np.ones((blob.shape[0] * self.chunks,) + blob.shape[1:], np.float32)
            made[:_rows_per_step(net, cont)] = 0
            if self.chunks > 1:
                self.walked[cont] = made
            else:
                self.whole[cont] = made
        self.T = {name: net.blobs[name].shape[0] for name in self.walked}
        self.passes = 0

    def _fit(self, name, value):
        """(float32 array, walked?) for input `name`; raises on a shape that does not fit."""
        blob_shape = self.net.blobs[name].shape
        where = f"{self.path}: array '{name}'"
        if value.dtype.kind not in "biuf":
            raise SeqgenError(f"{where} has dtype {value.dtype}; expected numbers")
        value = value.astype(np.float32)
        bad = np.argwhere(~np.isfinite(value))
        if bad.size:
            raise SeqgenError(f"{where} holds a non-finite value at index "
                              f"{tuple(int(i) for i in bad[0])}")
        if value.shape == blob_shape:
            return value, False
        squeeze = lambda dims: tuple(d for d in dims if d != 1)
        T = blob_shape[0] if blob_shape else 1
        rule = (f"the net's input '{name}' has shape {blob_shape}: give that shape, or a "
                f"multiple of {T} steps along axis 0 (the time axis) with the other axes equal")
        if value.ndim == 0 or not blob_shape:
            raise SeqgenError(f"{where} has shape {value.shape}, but {rule}")
        if value.shape[0] == T and value.size == int(np.prod(blob_shape)) and \
                squeeze(value.shape[1:]) == squeeze(blob_shape[1:]):
            return value.reshape(blob_shape), False
        if squeeze(value.shape[1:]) != squeeze(blob_shape[1:]) or value.shape[0] < T:
            raise SeqgenError(f"{where} has shape {value.shape}, but {rule}")
        if value.shape[0] % T:
            raise SeqgenError(f"{where} has {value.shape[0]} steps along axis 0, not a multiple "
                              f"of the net's {T} (its input '{name}' has shape {blob_shape}); "
                              f"cut it to {value.shape[0] // T * T} steps")
        return value.reshape((value.shape[0],) + tuple(blob_shape[1:])), True

    def describe(self):
        """One line for the training log: what is fed and how."""
        parts = []
        for name in self.net.inputs:
            if name in self.walked:
                how = f"{len(self.walked[name])} steps in {self.chunks} chunks of {self.T[name]}"
            elif name in self.whole:
                how = "whole"
            else:
                continue
            made = " made up: 0 at the first step" if name == self.cont and self.made_up_cont \
                else ""
            parts.append(f"{name} {how}{made}")
        return "; ".join(parts)

    def chunk(self, k):
        """{input name: array of the input's shape} for chunk k."""
        out = dict(self.whole)
        for name, value in self.walked.items():
            T = self.T[name]
            out[name] = value[k * T:(k + 1) * T]
        return out

    def before_forward(self, solver):
        self(solver)

    def __call__(self, solver):
        values = self.chunk(self.passes % self.chunks)
        self.passes += 1
        blobs = self.net.blobs
        for name, value in values.items():
            blobs[name].data[...] = value


def _read_npz(path):
    """{name: array} of an .npz file, with errors that name the file."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SeqgenError(f"{path}: no such file") from None
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read ({e.strerror})") from None
    if magic[:2] != b"PK":
        kind = "a single .npy array" if magic == b"\x93NUM" else "not a zip archive"
        raise SeqgenError(f"{path}: not an .npz archive ({kind}); save the inputs with "
                          "numpy.savez(path, name=array, ...), one array per input blob")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for name in z.files:
                try:
                    arrays[name] = z[name]
                except ValueError:
                    raise SeqgenError(f"{path}: array '{name}' holds Python objects; save "
                                      "plain numeric arrays") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SeqgenError(f"{path}: not a readable .npz file ({e})") from None
    if not arrays:
        raise SeqgenError(f"{path}: the archive holds no arrays")
    return arrays
