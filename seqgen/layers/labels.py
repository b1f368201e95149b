"""Class labels as Caffe's SoftmaxWithLoss and Accuracy read them: scores split around
their class axis, one label per prediction, float values cast to int (static_cast,
truncating toward zero), positions equal to ignore_label skipped."""
import numpy as np

from .softmax import canonical_axis


def split_at_class_axis(layer, scores, labels, axis, what):
    """(axis, outer, classes, inner) of the scores blob around its class `axis` (`what`
    names the field in messages); one label per prediction, as Caffe CHECKs."""
    if scores.data.ndim == 0:
        raise layer.error(f"bottom '{layer.bottom_name(0)}' is a scalar; it needs a class axis")
    axis = canonical_axis(layer, axis, scores.data.ndim, what)
    shape = scores.shape
    outer, classes = int(np.prod(shape[:axis])), shape[axis]
    inner = int(np.prod(shape[axis + 1:]))
    if labels.count != outer * inner:
        raise layer.error(f"bottom '{layer.bottom_name(1)}' has {labels.count} labels but "
                          f"'{layer.bottom_name(0)}' {shape} makes {outer * inner} "
                          f"predictions over axis {axis}")
    return axis, outer, classes, inner


def read_labels(layer, label_blob, outer, inner, classes, ignore=None):
    """(labels (outer, inner) as int64 with ignored positions set to 0, mask of the labels
    that count). A label outside [0, classes) is refused: Caffe only DCHECKs it, so a
    release build would read past the scores."""
    labels = label_blob.data.reshape(outer, inner)
    with np.errstate(invalid="ignore"):
        lab = labels.astype(np.int64)
    valid = lab != ignore if ignore is not None else np.ones(lab.shape, bool)
    bad = valid & ((lab < 0) | (lab >= classes))
    if bad.any():
        raise label_error(layer, label_blob, int(np.flatnonzero(bad)[0]), classes, ignore)
    return np.where(valid, lab, 0), valid


def label_error(layer, label_blob, flat, classes, ignore=None):
    """The error for the label at flat position `flat` outside [0, classes)."""
    pos = tuple(int(i) for i in np.unravel_index(flat, label_blob.shape))
    return layer.error(f"bottom '{layer.bottom_name(1)}' holds label "
                       f"{float(label_blob.data.flat[flat]):g} at {pos}; labels must be in "
                       f"[0, {classes})" + (f" or equal ignore_label {ignore}"
                                            if ignore is not None else ""))
