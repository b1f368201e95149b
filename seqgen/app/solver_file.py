"""What `seqgen train` is given: a solver file, or a net file (then the solver beside it,
or the caffe-lstm example's settings)."""
import os

from ..errors import SeqgenError
from ..io.prototxt import parse_solver_text, read_net, read_solver

# The fork's examples/lstm_sequence solver settings, used when a net comes without a solver.
FORK_SOLVER = """
base_lr: 0.0001
momentum: 0.95
lr_policy: "fixed"
display: 200
average_loss: 200
max_iter: 100000
"""


def _is_solver(path):
    """A solver file names a net or sets solver fields; a net file does neither."""
    try:
        read_net(path)
        return False
    except SeqgenError as net_error:
        try:
            param = read_solver(path)
        except SeqgenError:
            raise net_error from None
        return bool(param.net or param.HasField("net_param") or param.train_net
                    or param.HasField("train_net_param"))


def _default_prefix(param, solver_path):
    """Snapshots of a solver without snapshot_prefix are named after its file (as the
    Solver does when it reads the file itself), not after '<SolverParameter>'."""
    if not param.snapshot_prefix:
        stem = os.path.splitext(os.path.basename(solver_path))[0]
        param.snapshot_prefix = stem.replace("_solver", "")


def resolve_solver(path, log=print):
    """(SolverParameter, net file, the solver's name for messages) for a solver file or a
    net file."""
    if not os.path.exists(path):
        raise SeqgenError(f"{path}: no such file")
    if _is_solver(path):
        param = read_solver(path)
        _default_prefix(param, path)
        return param, param.net or param.train_net, str(path)
    stem, _ = os.path.splitext(path)
    beside = stem + "_solver.prototxt"
    if os.path.exists(beside):
        log(f"Using the solver beside the net: {beside}")
        param = read_solver(beside)
        param.net = os.path.abspath(path)
        _default_prefix(param, beside)
        return param, path, beside
    log(f"No {os.path.basename(beside)} beside the net: using the caffe-lstm example's solver "
        "settings (SGD, base_lr 1e-4, momentum 0.95, max_iter 100000)")
    param = parse_solver_text(FORK_SOLVER, "<fork solver settings>")
    param.net = os.path.abspath(path)
    param.snapshot_prefix = os.path.basename(stem)
    return param, path, "<fork solver settings>"
