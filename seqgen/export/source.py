"""Which net and weights a RUN_OR_WEIGHTS argument names: a run folder whose run.json
records both, or a .caffemodel (inside a run: that run's net), read as every command reads
a RUN argument (runs/pick.py)."""
import os

from ..errors import SeqgenError
from ..runs.pick import pick_run


def resolve(run_or_weights, net=None, say=None):
    """(net prototxt, .caffemodel) for `seqgen export`: --net wins over the run's net (`say`
    gets the line naming a run's best checked weights)."""
    picked = pick_run(run_or_weights, say=say, command="export")
    weights = picked.need_weights()
    net = net or (picked.record.net if picked.record is not None else None)
    if not net:
        raise SeqgenError(f"{run_or_weights}: which net? give --net NET.prototxt")
    if not os.path.exists(net):
        raise SeqgenError(f"{net}: the net file does not exist (give --net NET.prototxt)")
    return net, weights
