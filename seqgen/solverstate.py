"""`.solverstate` files: Caffe's binary SolverState (iter=1, learned_net=2, history=3,
current_step=4), written as SGDSolver::SnapshotSolverStateToBinaryProto writes it and read
as RestoreSolverStateFromBinaryProto reads it, with the checks Caffe leaves out (history
blob shapes) made into errors that say what differs."""
import os

from .errors import SeqgenError
from .fileio import atomic_write_bytes
from .proto import caffe_pb2
from .updates import history_slots
from .weights import blob_from_proto, blob_shape, blob_to_proto, read_message

def write_solverstate(solver, path, model_path):
    state = caffe_pb2.SolverState(iter=solver.iter, current_step=solver.current_step)
    # Caffe stores the model file name as written; keep it relative to the state file
    state.learned_net = os.path.basename(model_path)
    for h in solver.history:
        blob_to_proto(h, state.history.add())
    atomic_write_bytes(path, state.SerializeToString())


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


def read_solverstate(solver, path):
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
        if not os.path.isabs(model) and not os.path.exists(model):
            model = os.path.join(os.path.dirname(path), os.path.basename(model))
        if not os.path.exists(model):
            raise SeqgenError(f"{path}: the weights it names, {state.learned_net}, are neither "
                              f"at that path nor beside the state file")
        solver.net.copy_from(model)  # its errors name what differs in the net
    for proto, h in zip(state.history, solver.history):
        h[...] = blob_from_proto(proto).reshape(h.shape)
    solver.iter = state.iter
    solver.current_step = state.current_step
    return state
