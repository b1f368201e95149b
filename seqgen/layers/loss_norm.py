"""Caffe's loss normalization (LossParameter.normalization) for the losses that copy
SoftmaxWithLoss's get_normalizer: FULL, VALID, BATCH_SIZE or NONE, never below 1."""
from ..proto import caffe_pb2

_LP = caffe_pb2.LossParameter


def normalization_mode(layer, unset_default, legacy=True):
    """The mode `layer`'s loss_param asks for; `unset_default` when neither field is set.
    With `legacy`, the deprecated bool `normalize` counts (true: VALID, false:
    BATCH_SIZE); without it, setting `normalize` is refused, as InfogainLoss CHECKs."""
    lp = layer.param.loss_param
    if lp.HasField("normalization"):
        mode = lp.normalization
    elif lp.HasField("normalize") and legacy:
        mode = _LP.VALID if lp.normalize else _LP.BATCH_SIZE
    else:
        mode = unset_default
    if lp.HasField("normalize") and not legacy:
        raise layer.error("loss_param.normalize is deprecated; use loss_param.normalization")
    return mode


def normalizer(mode, outer, inner, valid):
    """Caffe's get_normalizer: the count the loss is divided by (at least 1, so an
    all-ignored batch gives 0 instead of NaN)."""
    n = {_LP.FULL: outer * inner, _LP.VALID: valid, _LP.BATCH_SIZE: outer, _LP.NONE: 1}[mode]
    return max(1.0, float(n))


def ignore_label(layer):
    """loss_param.ignore_label when set, else None."""
    lp = layer.param.loss_param
    return int(lp.ignore_label) if lp.HasField("ignore_label") else None
