"""Which net and weights a RUN_OR_WEIGHTS argument names: a .caffemodel, or a run folder
whose run.json records both."""
import os

from ..errors import SeqgenError
from ..runs.record import RUN_FILE, RunRecord


def read_run_record(folder):
    """(net, weights) recorded in a run folder's RunRecord (found again if it moved)."""
    if not os.path.exists(os.path.join(folder, RUN_FILE)):
        raise SeqgenError(f"{folder}: not a .caffemodel and not a run folder (no {RUN_FILE})")
    record = RunRecord.read(folder)
    if not record.get("weights"):
        raise SeqgenError(f"{folder}/{RUN_FILE}: the run has no snapshot yet (no 'weights' "
                          "recorded)")
    return record.net, record.weights


def resolve(run_or_weights, net=None):
    """(net prototxt, .caffemodel) for `seqgen export`: --net wins over the run's net."""
    if os.path.isdir(run_or_weights):
        run_net, weights = read_run_record(run_or_weights)
        net = net or run_net
    else:
        weights = run_or_weights
        if not os.path.exists(weights):
            raise SeqgenError(f"{weights}: no such file or run folder")
    if not net:
        raise SeqgenError(f"{run_or_weights}: which net? give --net NET.prototxt")
    if not os.path.exists(net):
        raise SeqgenError(f"{net}: the net file does not exist (give --net NET.prototxt)")
    return net, weights
