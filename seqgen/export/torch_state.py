"""`seqgen export --format torch` and `seqgen import`: Caffe blobs <-> a PyTorch state dict
stored as safetensors (readable without torch), with model.py written beside it.

The names are those of torch_model.SeqgenNet; the module's configuration is stored in the
file's metadata under "seqgen" (JSON). Gate blocks move from Caffe's i, f, o, g to
PyTorch's i, f, g, o; import sums bias_ih + bias_hh back into Caffe's single bias.
"""
import json
import os
from pathlib import Path

import numpy as np

from ..errors import SeqgenError
from ..extras import install_hint
from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..io.outputs import check_output
from ..net import TEST, Net
from . import gates
from .torch_chain import chain

MODEL_SOURCE = Path(__file__).with_name("torch_model.py")


def require_safetensors():
    try:
        import safetensors.numpy as st
    except ImportError:
        raise SeqgenError("the PyTorch state dict needs the safetensors package: "
                          + install_hint("torch")) from None
    return st


def _to_torch(entry, array):
    if entry.gates:
        array = gates.reorder(array, gates.CAFFE, gates.TORCH)
    return array.T if entry.transpose else array


def _from_torch(entry, array):
    array = array.T if entry.transpose else array
    return gates.reorder(array, gates.TORCH, gates.CAFFE) if entry.gates else array


def state_dict(net):
    """(config, {name: float32 array}) of a TEST Net."""
    config, entries = chain(net)
    tensors = {}
    for e in entries:
        value = _to_torch(e, net.params[e.layer][e.blob].data)
        tensors[e.name] = np.ascontiguousarray(value, np.float32)
        if e.twin:
            tensors[e.twin] = np.zeros_like(tensors[e.name])
    return config, tensors


def model_py(out):
    """The module file export writes beside the state dict `out`."""
    return os.path.join(os.path.dirname(os.path.abspath(out)), "model.py")


def check_model_py(out, force, inputs=()):
    """Refuse to replace a model.py beside `out` that is not seqgen's own (same text)."""
    check_output(model_py(out), flag=f"--out {out}: beside it,", inputs=inputs, force=force,
                 content=MODEL_SOURCE.read_text())


def export_torch(net_file, weights, out, metadata=None):
    """Write the safetensors file (with {key: text} `metadata` besides the module's
    settings: a text net's vocabulary) and model.py beside it; returns the lines to
    print."""
    st = require_safetensors()
    config, tensors = state_dict(Net(net_file, weights, TEST))
    atomic_write_bytes(out, st.save(tensors, metadata={**(metadata or {}),
                                                       "seqgen": json.dumps(config)}))
    model = model_py(out)
    atomic_write_text(model, MODEL_SOURCE.read_text())
    return [f"Wrote {out} ({len(tensors)} tensors) and {model} (the module: "
            f"from model import load; net = load({os.path.basename(out)!r}))"]


def _read(st, path):
    try:
        return st.load_file(os.fspath(path))
    except FileNotFoundError:
        raise SeqgenError(f"{path}: no such file") from None
    except Exception as e:  # safetensors raises its own error types for bad files
        raise SeqgenError(f"{path}: not a safetensors file ({e})") from None


def load_state_dict(net, tensors, source):
    """Write the state dict into `net`'s blobs; every shape is checked first."""
    _, entries = chain(net)
    expected = {e.name for e in entries} | {e.twin for e in entries if e.twin}
    missing = sorted(expected - set(tensors))
    extra = sorted(set(tensors) - expected)
    if missing or extra:
        raise SeqgenError(f"{source}: the tensors do not match the net: "
                          + "; ".join(f"{what} {', '.join(names)}" for what, names in
                                      (("missing", missing), ("unexpected", extra)) if names))
    copies = []
    for e in entries:
        for name in (e.name, e.twin) if e.twin else (e.name,):
            _check_finite(tensors[name], name, source)
        value = np.asarray(tensors[e.name], np.float32)
        if e.twin:
            if tensors[e.twin].shape != value.shape:
                raise SeqgenError(f"{source}: {e.twin} has shape {tuple(tensors[e.twin].shape)}"
                                  f" but {e.name} {tuple(value.shape)}")
            value = value + np.asarray(tensors[e.twin], np.float32)
        blob = net.params[e.layer][e.blob]
        want = _to_torch(e, blob.data).shape
        if value.shape != want:
            raise SeqgenError(f"{source}: {e.name} has shape {tuple(value.shape)}, but layer "
                              f"'{e.layer}' blob {e.blob} needs {tuple(want)} (Caffe shape "
                              f"{tuple(blob.shape)})")
        copies.append((blob, _from_torch(e, value)))
    for blob, value in copies:
        blob.data[...] = value


def _check_finite(tensor, name, source):
    """Refuse a tensor holding NaN or infinity, as --weights refuses such a .caffemodel."""
    values = np.asarray(tensor).ravel()
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise SeqgenError(f"{source}: {name} holds {bad.size} non-finite value(s) "
                          f"({values[bad[0]]} at index {int(bad[0])}); the weights were saved "
                          "from a diverged model")


def import_torch(path, net_file, out, force=False):
    """`seqgen import`: a .safetensors state dict into a .caffemodel for `net_file`."""
    check_output(out, suffixes=(".caffemodel",), what="seqgen import",
                 inputs=(path, net_file), force=force)
    st = require_safetensors()
    tensors = _read(st, path)
    net = Net(net_file, phase=TEST)
    load_state_dict(net, tensors, path)
    net.save(out)
    return [f"Wrote {out} ({len(net.params)} layers with weights from {path})"]
