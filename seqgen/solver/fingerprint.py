"""Fingerprints: what a run's net, solver and options were, recorded in each snapshot's
sidecar and compared when a run resumes, with the differences said in words."""
import json

import numpy as np

from ..errors import SeqgenError

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


def option_changes(old, new):
    """Readable differences between two runs' recorded options; a key `_k` beside `k`
    holds the text to show for it (k itself is compared, e.g. a data hash)."""
    changes = []
    for k in sorted(set(old) | set(new)):
        if k.startswith("_") or old.get(k) == new.get(k):
            continue
        a, b = old.get(k, "(unset)"), new.get(k, "(unset)")
        if f"_{k}" in old or f"_{k}" in new:  # shown by name, compared by content
            a, b = old.get(f"_{k}", a), new.get(f"_{k}", b)
            if a == b:
                a, b = f"{a} (as it was)", f"{b} (other values now)"
        changes.append(f"{k} {a} -> {b}")
    return changes


def fingerprint_changes(recorded, current):
    """What differs between the fingerprint a snapshot recorded and the current one, as
    phrases ("the net changed: ..."); [] when nothing does."""
    parts = []
    if recorded.get("net"):
        changes = net_changes(recorded["net"], current["net"])
        if changes:
            parts.append("the net changed: " + summarize(changes))
    if recorded.get("solver"):
        changes = solver_changes(recorded["solver"], current["solver"])
        if changes:
            parts.append("the solver changed: " + summarize(changes))
    old, new = recorded.get("options") or {}, current.get("options") or {}
    if old and new:
        changes = option_changes(old, new)
        if changes:
            parts.append("the training options changed: " + summarize(changes))
    return parts


def check_fingerprint(recorded, current, path):
    """Refuse to resume `path` when the net, the solver or the run's options differ from
    the ones it was written with."""
    parts = fingerprint_changes(recorded, current)
    if parts:
        raise SeqgenError(f"{path}: cannot resume: " + "; ".join(parts)
                          + " (since that snapshot; to continue anyway, knowing the run "
                          "will not be the one that wrote it, add --allow-changes)")
