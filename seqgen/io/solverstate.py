"""`.solverstate` files: Caffe's binary SolverState (iter=1, learned_net=2, history=3,
current_step=4), written as SGDSolver::SnapshotSolverStateToBinaryProto writes it and read
as RestoreSolverStateFromBinaryProto reads it, with the checks Caffe leaves out (history
blob shapes) made into errors that say what differs.

Caffe's SolverState has no room for what else a run needs to continue exactly: the state
recurrent layers carry from one chunk to the next, the position in the data, the random
generators, and what the net and solver were. seqgen writes these into a sidecar beside
the state, `<prefix>_iter_<n>.seqgen.npz` (see `write_sidecar`), together with the
SHA-256 of the .caffemodel and .solverstate it belongs to, so that a set of files from
different writes is recognised.
"""
import hashlib
import io
import json
import os
import zipfile

import numpy as np

from ..errors import SeqgenError
from ..proto import caffe_pb2
from .atomic import atomic_write_bytes
from .weights import blob_from_proto, blob_shape, blob_to_proto, read_message

SIDECAR_SUFFIX = ".seqgen.npz"
SIDECAR_FORMAT = "seqgen-resume"
SIDECAR_VERSION = 1


def solverstate_bytes(solver, model_path):
    """The serialized SolverState of `solver` naming `model_path`."""
    state = caffe_pb2.SolverState(iter=solver.iter, current_step=solver.current_step)
    # Caffe stores the model file name as written; keep it relative to the state file
    state.learned_net = os.path.basename(model_path)
    for h in solver.history:
        blob_to_proto(h, state.history.add())
    return state.SerializeToString()


# -- the sidecar ---------------------------------------------------------------------------

def sidecar_path(state_path):
    """`<prefix>_iter_<n>.seqgen.npz` beside `<prefix>_iter_<n>.solverstate`."""
    state_path = os.fspath(state_path)
    stem = state_path[:-len(".solverstate")] if state_path.endswith(".solverstate") \
        else state_path
    return stem + SIDECAR_SUFFIX


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_bytes(meta, arrays):
    """`meta` (JSON-able) and `arrays` ({key: ndarray}) as the bytes of one .npz."""
    payload = {f"a{i}": np.asarray(a) for i, a in enumerate(arrays.values())}
    meta = dict(meta, format=SIDECAR_FORMAT, version=SIDECAR_VERSION,
                arrays={key: f"a{i}" for i, key in enumerate(arrays)})
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    return buffer.getvalue()


def write_sidecar(path, meta, arrays):
    """Write a sidecar file atomically (snapshots write it with their group instead)."""
    atomic_write_bytes(path, sidecar_bytes(meta, arrays))


def read_sidecar(path):
    """(meta, {key: ndarray}) of a sidecar; SeqgenError naming the file when it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            if meta.get("format") != SIDECAR_FORMAT:
                raise ValueError("not a seqgen resume sidecar")
            if meta.get("version", 0) > SIDECAR_VERSION:
                raise ValueError(f"written by a newer seqgen (format version "
                                 f"{meta.get('version')})")
            arrays = {key: z[name] for key, name in meta.get("arrays", {}).items()}
    except FileNotFoundError:
        raise SeqgenError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise SeqgenError(f"{path}: not a readable seqgen sidecar ({e}); delete it to resume "
                          "without it (the carried recurrent state then starts from zero)") \
            from None
    return meta, arrays


def _fmt(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_history(solver, state, path):
    """The state's history blobs fit this solver: count (solver type, parameter count) and
    every shape (the net's parameters)."""
    params = solver.net.learnable_params
    kind = solver.param.type
    slots = len(solver.history) // max(1, len(params))  # history blobs per parameter
    have, need = len(state.history), len(solver.history)
    if have != need:
        if params and have == len(params) * (3 - slots):
            other = "AdaDelta or Adam" if slots == 1 else "SGD, Nesterov, AdaGrad or RMSProp"
            hint = (f"; it was written by another solver type ({other}: {3 - slots} per "
                    f"parameter, {kind}: {slots})")
        else:
            hint = "; it is from another net"
        raise SeqgenError(f"{path}: the solver state holds {have} history blobs, but this "
                          f"{kind} solver for {len(params)} learnable parameters needs "
                          f"{need}{hint}")
    for i, (proto, h) in enumerate(zip(state.history, solver.history)):
        shape = tuple(blob_shape(proto))
        lp = params[i % len(params)]
        if shape != tuple(h.shape):
            legacy = proto.HasField("num") or proto.HasField("channels") \
                or proto.HasField("height") or proto.HasField("width")
            padded = (1,) * (4 - h.ndim) + tuple(h.shape) if h.ndim <= 4 else None
            if not (legacy and shape == padded):
                raise SeqgenError(f"{path}: history blob {i} (of parameter {lp.name}) has shape "
                                  f"{_fmt(shape)}, but the net's {lp.name} has shape "
                                  f"{_fmt(h.shape)}: the state is from another net")
        count = blob_from_proto(proto).size
        if count != h.size:
            raise SeqgenError(f"{path}: history blob {i} (of parameter {lp.name}) holds {count} "
                              f"values for shape {_fmt(shape)}; the file is damaged")


def load_solverstate(solver, path):
    """Read and check a .solverstate for `solver` without changing anything: (SolverState,
    path of the .caffemodel it names or None)."""
    state = read_message(path, caffe_pb2.SolverState(), ".solverstate (binary SolverState)")
    if not state.HasField("iter"):
        raise SeqgenError(f"{path}: not a solver state (no iteration number in it)")
    if state.iter < 0 or state.current_step < 0:
        raise SeqgenError(f"{path}: negative iter ({state.iter}) or current_step "
                          f"({state.current_step}); the file is damaged")
    check_history(solver, state, path)
    model = None
    if state.learned_net:
        model = state.learned_net
        if isinstance(model, bytes):  # protobuf hands back a name that is not UTF-8 as bytes
            raise SeqgenError(f"{path}: the weights file name it holds is not text "
                              f"({model[:40]!r}); the file is damaged")
        if not os.path.isabs(model) and not os.path.exists(model):
            model = os.path.join(os.path.dirname(path), os.path.basename(model))
        if not os.path.exists(model):
            raise SeqgenError(f"{path}: the weights it names, {state.learned_net}, are neither "
                              f"at that path nor beside the state file")
    return state, model


def apply_solverstate(solver, state, model):
    """Load the weights and history of a checked state into `solver`."""
    if model is not None:
        solver.net.copy_from(model)  # its errors name what differs in the net
    for proto, h in zip(state.history, solver.history):
        h[...] = blob_from_proto(proto).reshape(h.shape)
    solver.iter = state.iter
    solver.current_step = state.current_step
