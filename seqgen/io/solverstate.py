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
import json
import os

import numpy as np

from ..errors import SeqgenError
from .atomic import atomic_open
from ..proto import caffe_pb2
from ..solver.updates import history_slots
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


def write_sidecar(path, meta, arrays):
    """Write `meta` (JSON-able) and `arrays` ({key: ndarray}) as one .npz, atomically."""
    payload = {f"a{i}": np.asarray(a) for i, a in enumerate(arrays.values())}
    meta = dict(meta, format=SIDECAR_FORMAT, version=SIDECAR_VERSION,
                arrays={key: f"a{i}" for i, key in enumerate(arrays)})
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **payload)


def read_sidecar(path):
    """(meta, {key: ndarray}) of a sidecar; SeqgenError naming the file when it is damaged."""
    import zipfile

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


# -- fingerprints: what the net and the solver were ---------------------------------------------

# Solver fields that do not change what an update does: where and how often to report,
# snapshot and test, how long to run, and the seed (the generators themselves are restored).
SOLVER_FIELDS_IGNORED = {
    "net", "net_param", "train_net", "train_net_param", "test_net", "test_net_param",
    "train_state", "test_state", "test_iter", "test_interval", "test_compute_loss",
    "test_initialization", "max_iter", "display", "average_loss", "snapshot",
    "snapshot_prefix", "snapshot_diff", "snapshot_format", "snapshot_after_train",
    "solver_mode", "device_id", "random_seed", "debug_info", "layer_wise_reduce", "weights",
}
# Layer fields that do not matter once the weights exist (fillers) or that only select the
# layer for a phase (the TRAIN net's layer list shows that).
LAYER_FIELDS_IGNORED = {"name", "include", "exclude"}


def float32_text(value):
    """The shortest text that reads back as the same float32: 0.0001, 1e-08, 100000."""
    x = np.float32(value)
    if x == 0 or 1e-4 <= abs(x) < 1e7:
        return np.format_float_positional(x, trim="-")
    return np.format_float_scientific(x, trim="-")


def _scalar_text(field, value):
    fd = field
    if fd.type == fd.TYPE_FLOAT:
        return float32_text(value)
    if fd.type == fd.TYPE_DOUBLE:
        return repr(float(value))
    if fd.type == fd.TYPE_BOOL:
        return "true" if value else "false"
    if fd.type == fd.TYPE_ENUM:
        v = fd.enum_type.values_by_number.get(value)
        return v.name if v is not None else str(value)
    if fd.type in (fd.TYPE_STRING, fd.TYPE_BYTES):
        return json.dumps(value if isinstance(value, str) else value.decode("latin-1"))
    return str(value)


def flatten_message(msg, prefix="", skip=frozenset()):
    """{field path: value text} of a message: every scalar field with its effective value
    (defaults included, so that writing a default out does not count as a change), set
    sub-messages recursively, repeated fields as lists; `skip` names top-level fields to
    leave out, and fillers are always left out."""
    out = {}
    for fd in msg.DESCRIPTOR.fields:
        name = fd.name
        if (not prefix and name in skip) or name.endswith("_filler") or name == "filler":
            continue
        path = prefix + name
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else \
            fd.label == fd.LABEL_REPEATED
        value = getattr(msg, name)
        if fd.type == fd.TYPE_MESSAGE:
            if repeated:
                for i, sub in enumerate(value):
                    out.update(flatten_message(sub, f"{path}[{i}]."))
            elif msg.HasField(name):
                out.update(flatten_message(value, path + "."))
        elif repeated:
            if len(value):
                out[path] = "[" + ", ".join(_scalar_text(fd, v) for v in value) + "]"
        else:
            out[path] = _scalar_text(fd, value)
    return out


def net_fingerprint(net):
    """What the TRAIN net is: its layers in order (name, type) and each layer's settings."""
    param = net.param
    layers = [[lp.name, lp.type] for lp in param.layer]
    fields = {lp.name: flatten_message(lp, skip=LAYER_FIELDS_IGNORED) for lp in param.layer}
    top = flatten_message(param, skip={"name", "layer", "layers", "state"})
    shapes = {lp.name: list(lp.blob.shape) for lp in net.learnable_params}
    return {"layers": layers, "fields": fields, "net": top, "params": shapes}


def solver_fingerprint(param):
    return flatten_message(param, skip=SOLVER_FIELDS_IGNORED)


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _field_changes(old, new):
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if a != b:
            out.append(f"{key} {a} -> {b}")
    return out


def net_changes(old, new):
    """Readable differences between two net fingerprints (old = the snapshot's)."""
    out = []
    old_layers = {n: t for n, t in old.get("layers", [])}
    new_layers = {n: t for n, t in new.get("layers", [])}
    for name, kind in old.get("layers", []):
        if name not in new_layers:
            out.append(f"layer '{name}' ({kind}) is gone")
    for name, kind in new.get("layers", []):
        if name not in old_layers:
            out.append(f"layer '{name}' ({kind}) is new")
    common_old = [n for n, _ in old.get("layers", []) if n in new_layers]
    common_new = [n for n, _ in new.get("layers", []) if n in old_layers]
    if common_old != common_new:
        out.append("the layers are in another order (" + ", ".join(common_old) + " -> "
                   + ", ".join(common_new) + ")")
    for name in common_new:
        if old_layers[name] != new_layers[name]:
            out.append(f"layer '{name}': type {old_layers[name]} -> {new_layers[name]}")
            continue
        changes = _field_changes(old.get("fields", {}).get(name, {}),
                                 new.get("fields", {}).get(name, {}))
        out.extend(f"layer '{name}' ({new_layers[name]}): {c}" for c in changes)
    out.extend(f"net: {c}" for c in _field_changes(old.get("net", {}), new.get("net", {})))
    old_shapes, new_shapes = old.get("params", {}), new.get("params", {})
    for key in new_shapes:
        if key in old_shapes and old_shapes[key] != new_shapes[key]:
            out.append(f"parameter {key}: shape {_shape_text(old_shapes[key])} -> "
                       f"{_shape_text(new_shapes[key])}")
    return out


def solver_changes(old, new):
    return _field_changes(old, new)


def summarize(changes, limit=6):
    """'a; b; c' with at most `limit` items, and how many more there are."""
    shown = changes[:limit]
    more = len(changes) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _fmt(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_history(solver, state, path):
    """The state's history blobs fit this solver: count (solver type, parameter count) and
    every shape (the net's parameters)."""
    params = solver.net.learnable_params
    kind = solver.param.type
    slots = history_slots(kind)
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
