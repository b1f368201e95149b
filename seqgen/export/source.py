"""Which net and weights a RUN_OR_WEIGHTS argument names: a .caffemodel, or a run folder
whose run.json records both."""
import json
import os

from ..errors import SeqgenError

RUN_FILE = "run.json"


def read_run_record(folder):
    """(net, weights) recorded in a run folder's run.json (absolute paths when written).

    The one place that reads run.json here, so that it can switch to the run-record class
    when that exists. A weights file that moved with the folder is found by its name."""
    path = os.path.join(folder, RUN_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise SeqgenError(f"{folder}: not a .caffemodel and not a run folder (no {RUN_FILE})") \
            from None
    except (OSError, ValueError) as e:
        raise SeqgenError(f"{path}: cannot read the run record ({e})") from None
    if not isinstance(record, dict):
        raise SeqgenError(f"{path}: not a run record (expected a JSON object)")
    net, weights = record.get("net"), record.get("weights")
    if not weights:
        raise SeqgenError(f"{path}: the run has no snapshot yet (no 'weights' recorded)")
    if not os.path.exists(weights):
        weights = os.path.join(folder, os.path.basename(weights))
    return net, weights


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
