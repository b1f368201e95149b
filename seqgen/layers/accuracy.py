"""`Accuracy`: the share of predictions whose true label is among the top_k scores along
accuracy_param.axis (Caffe's AccuracyLayer); labels equal to ignore_label are skipped.

An optional second top holds the accuracy per class (C values). Caffe's layer has no
backward (it is a metric, not a loss), so no gradient flows to either bottom, even with
force_backward.
"""
import numpy as np

from ..registry import register
from .base import Layer
from .labels import read_labels, split_at_class_axis


@register("Accuracy")
class AccuracyLayer(Layer):
    num_bottoms = 2
    num_tops = (1, 2)
    no_grad_bottoms = (0, 1)
    bottom_roles = {1: "labels"}

    def layer_setup(self, bottom, top):
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        self.has_ignore = p.HasField("ignore_label")
        self.ignore = int(p.ignore_label)

    def reshape(self, bottom, top):
        self.axis, self.outer, self.C, self.inner = split_at_class_axis(
            self, bottom[0], bottom[1], self.param.accuracy_param.axis, "accuracy_param.axis")
        if self.top_k > self.C:
            raise self.error(f"accuracy_param.top_k {self.top_k} is more than the "
                             f"{self.C} classes of '{self.bottom_name(0)}' (axis {self.axis})")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.C,))

    def forward(self, bottom, top):
        scores = bottom[0].data.reshape(self.outer, self.C, self.inner)
        lab, valid = read_labels(self, bottom[1], self.outer, self.inner, self.C,
                                 self.ignore if self.has_ignore else None)
        true = np.take_along_axis(scores, lab[:, None, :], axis=1)
        # Caffe counts the classes scoring >= the true class (the true class included):
        # a tie with the true score counts against it, and a NaN true score counts nothing
        # and so is "correct" -- both reproduced on purpose.
        at_least = (scores >= true).sum(axis=1)
        correct = (at_least - 1 < self.top_k) & valid
        count = int(valid.sum())
        dtype = top[0].data.dtype
        top[0].data[...] = dtype.type(correct.sum()) / dtype.type(count) if count else 0
        if len(top) > 1:
            seen = np.bincount(lab[valid], minlength=self.C).astype(dtype)
            hits = np.bincount(lab[correct], minlength=self.C).astype(dtype)
            top[1].data[...] = np.divide(hits, seen, out=np.zeros_like(hits), where=seen > 0)

    def backward(self, top, propagate_down, bottom):
        """None: Caffe's Accuracy is not differentiable (its Backward is NOT_IMPLEMENTED)."""
