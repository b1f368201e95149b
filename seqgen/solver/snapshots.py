"""Snapshots: Caffe's .caffemodel + .solverstate, plus seqgen's sidecar
`<prefix>_iter_<n>.seqgen.npz` with what continuing exactly needs (carried recurrent state,
random generators, what the callbacks keep), written as one group that becomes visible
only when all of it is complete; and restoring from them, refusing files that do not
belong together or a run that changed since.
"""
import os

import numpy as np

from .. import fillers
from ..errors import SeqgenError
from ..io.atomic import WriteFailed, atomic_files, signals_deferred
from ..io.solverstate import (
    apply_solverstate,
    load_solverstate,
    read_sidecar,
    sha256_bytes,
    sha256_file,
    sidecar_bytes,
    sidecar_path,
    solverstate_bytes,
)
from ..io.weights import net_to_proto
from .fingerprint import check_fingerprint, fingerprint_changes


def resume_state(solver):
    """(meta, arrays): what continuing from this point needs beyond weights and history:
    the state every recurrent layer carries, the shared random generator, and what each
    callback's snapshot_state adds (data position, ...)."""
    return assemble(capture(solver))


def capture(solver):
    """resume_state()'s parts as gathered, not yet arranged: cheap enough for every
    iteration before the first snapshot; `assemble` makes (meta, arrays) of them."""
    return (solver.iter, solver.net.get_state(), fillers.generator().bit_generator.state,
            [snapshot_state(solver) for snapshot_state in solver.dispatch("snapshot_state")],
            bool(solver.dispatch("snapshot_logs")))


def assemble(captured):
    """The (meta, arrays) of resume_state() from what `capture` gathered."""
    it, layer_states, rng, extras, has_logs = captured
    meta = {"iter": it, "layer_states": [], "fillers_rng": rng}
    arrays = {}
    for layer, state in layer_states.items():
        items = state.items() if isinstance(state, dict) else [("", state)]
        for key, value in items:
            name = f"state/{layer}/{key}"
            arrays[name] = np.asarray(value)  # (get_state returns copies)
            meta["layer_states"].append([layer, key, name])
    extra, extra_arrays = {}, {}
    for more, more_arrays in extras:
        extra.update(more)
        extra_arrays.update(more_arrays)
    if extra or extra_arrays or has_logs:
        meta["extra"] = extra
        arrays.update((f"extra/{key}", value) for key, value in extra_arrays.items())
    return meta, arrays


def snapshot_paths(solver):
    """(caffemodel, sidecar, solverstate) paths of a snapshot at the current iteration."""
    base = f"{solver.snapshot_prefix()}_iter_{solver.iter}"
    return base + ".caffemodel", base + ".seqgen.npz", base + ".solverstate"


def write_snapshot(solver, start_state=None):
    """Write the snapshot's three files as one group (all complete, then renamed into
    place, the .solverstate last), with signals held back; returns (model, state).
    `start_state`: the resume_state() to record, when not the current one."""
    model, side, state = snapshot_paths(solver)
    folder = os.path.dirname(model)
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise WriteFailed(folder, e) from None
    with signals_deferred():
        solver.log(f"Snapshotting to binary proto file {model}")
        model_data = net_to_proto(solver.net).SerializeToString()
        solver.log(f"Snapshotting solver state to binary proto file {state}")
        state_data = solverstate_bytes(solver, model)
        meta, arrays = start_state if start_state is not None else resume_state(solver)
        logs = {}
        for snapshot_logs in solver.dispatch("snapshot_logs"):
            logs.update(snapshot_logs(solver))
        if logs:
            arrays = dict(arrays)
            arrays.update((f"extra/{k}", v) for k, v in logs.items())
        meta = dict(meta, iter=solver.iter, model=os.path.basename(model),
                    model_sha256=sha256_bytes(model_data),
                    solverstate=os.path.basename(state),
                    solverstate_sha256=sha256_bytes(state_data),
                    fingerprint=solver.fingerprint())
        # the .solverstate last: its presence means the whole snapshot is there
        atomic_files([(model, model_data), (side, sidecar_bytes(meta, arrays)),
                      (state, state_data)])
    return model, state


#: `allow_changes` value for the pycaffe API: a changed net or solver is resumed with a warning
WARN = "warn"


def restore(solver, path, allow_changes=False, recorded=None):
    """Continue from a .solverstate (and its sidecar, if any); see Solver.restore.
    `allow_changes`: True resumes silently, WARN with a warning, False refuses."""
    path = os.fspath(path)
    state, model = load_solverstate(solver, path)
    side = sidecar_path(path)
    meta = arrays = None
    if os.path.exists(side):
        meta, arrays = read_sidecar(side)
        _check_sidecar(meta, state, path, model, side)
        recorded = meta.get("fingerprint")
    if recorded and allow_changes == WARN:
        # Caffe's Restore checks nothing beyond the blob shapes: resume, but say so
        changes = fingerprint_changes(recorded, solver.fingerprint())
        if changes:
            solver.log(f"Warning: {path}: resuming although " + "; ".join(changes)
                       + " since that snapshot (Caffe resumes it; the run will not be the "
                       "one that wrote it)")
    elif recorded and not allow_changes:
        check_fingerprint(recorded, solver.fingerprint(), path)
    apply_solverstate(solver, state, model)
    extra = None
    if meta is not None:
        _apply_resume_state(solver, meta, arrays, side)
        if "extra" in meta:
            extra = (meta["extra"], {k[len("extra/"):]: v for k, v in arrays.items()
                                     if k.startswith("extra/")})
            for restore_state in solver.dispatch("restore_state"):
                restore_state(solver, *extra)
    elif solver.net.get_state():
        solver.log(f"Warning: {path} has no {os.path.basename(side)} beside it (not written "
                   "by this seqgen): the recurrent state carried from chunk to chunk starts "
                   "from zero, so the continuation is close to, not exactly, the original run")
    return (solver.iter, model, path), extra, meta is not None


def _check_sidecar(meta, state, path, model, side):
    if meta.get("iter") != state.iter:
        raise SeqgenError(f"{side}: it is for iteration {meta.get('iter')}, but {path} is "
                          f"at iteration {state.iter}; the files do not belong together")
    for what, file, key in (("the state", path, "solverstate_sha256"),
                            ("the weights", model, "model_sha256")):
        if file is not None and meta.get(key) and sha256_file(file) != meta[key]:
            raise SeqgenError(
                f"{path}: {what} file {file} is not the one this snapshot wrote (its SHA-256 "
                f"differs from the one in {os.path.basename(side)}): it was overwritten "
                "by another run, or a write was cut short; resume from another snapshot")


def _apply_resume_state(solver, meta, arrays, side):
    states = {}
    for layer, key, name in meta.get("layer_states", []):
        if name not in arrays:
            raise SeqgenError(f"{side}: the state '{key}' of layer '{layer}' is missing")
        if key == "":
            states[layer] = arrays[name]
        else:
            states.setdefault(layer, {})[key] = arrays[name]
    try:
        solver.net.set_state(states)
    except SeqgenError as e:
        raise SeqgenError(f"{side}: {e}") from None
    rng = meta.get("fillers_rng")
    if rng:
        try:
            fillers.generator().bit_generator.state = rng
        except (TypeError, ValueError, KeyError) as e:
            raise SeqgenError(f"{side}: cannot restore the random generator ({e})") from None
