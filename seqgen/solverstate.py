"""`.solverstate` files: Caffe's binary SolverState (iter, learned_net, history, current_step)."""
import os

from .errors import SeqgenError
from .fileio import atomic_write_bytes
from .proto import caffe_pb2
from .weights import blob_from_proto, blob_shape, blob_to_proto, read_message


def write_solverstate(solver, path, model_path):
    state = caffe_pb2.SolverState(iter=solver.iter, current_step=solver.current_step)
    # Caffe stores the model file name as written; keep it relative to the state file
    state.learned_net = os.path.basename(model_path)
    for h in solver.history:
        blob_to_proto(h, state.history.add())
    atomic_write_bytes(path, state.SerializeToString())


def read_solverstate(solver, path):
    state = read_message(path, caffe_pb2.SolverState(), ".solverstate (binary SolverState)")
    if not state.HasField("iter") or len(state.history) != len(solver.history):
        raise SeqgenError(f"{path}: this solver state holds {len(state.history)} history blobs, "
                          f"but the solver for this net needs {len(solver.history)} (is it from "
                          "another net or solver type?)")
    for i, (proto, h) in enumerate(zip(state.history, solver.history)):
        values = blob_from_proto(proto)
        if values.size != h.size:
            raise SeqgenError(f"{path}: history blob {i} has shape {blob_shape(proto)}, "
                              f"the net's parameter has {h.shape}")
        h[...] = values.reshape(h.shape)
    if state.learned_net:
        model = state.learned_net
        if not os.path.isabs(model) and not os.path.exists(model):
            model = os.path.join(os.path.dirname(path), os.path.basename(model))
        solver.net.copy_from(model)
    solver.iter = state.iter
    solver.current_step = state.current_step
    return state
