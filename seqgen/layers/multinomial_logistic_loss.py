"""`MultinomialLogisticLoss`: -mean over items of log p[label], with p the bottom itself
(probabilities, e.g. a Softmax's top) clipped below at 1e-20 (Caffe's kLOG_THRESHOLD).

As multinomial_logistic_loss_layer.cpp: N is the first axis, the other axes are classes,
one label per item; the gradient is -loss_weight / (N p[label]) at the label, 0 elsewhere.
"""
import numpy as np

from ..registry import register
from .base import Layer
from .labels import read_labels

LOG_THRESHOLD = 1e-20


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = 1
    no_grad_bottoms = (1,)
    bottom_roles = {1: "labels"}
    in_place = False

    def reshape(self, bottom, top):
        x, label = bottom
        self.num = x.num
        self.dim = x.count // max(self.num, 1)
        if label.count != self.num or label.num != self.num:
            raise self.error(f"bottom '{self.bottom_name(1)}' {label.shape} must hold one "
                             f"label per item of '{self.bottom_name(0)}' {x.shape}")
        top[0].reshape(())

    def _probs(self, bottom):
        x = bottom[0].data.reshape(self.num, self.dim)
        lab, _ = read_labels(self, bottom[1], self.num, 1, self.dim)
        rows = np.arange(self.num)
        return rows, lab[:, 0], np.maximum(x[rows, lab[:, 0]], x.dtype.type(LOG_THRESHOLD))

    def forward(self, bottom, top):
        _, _, p = self._probs(bottom)
        top[0].data[...] = -np.sum(np.log(p), dtype=np.float64) / self.num

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        rows, lab, p = self._probs(bottom)
        g = np.zeros((self.num, self.dim), bottom[0].diff.dtype)
        g[rows, lab] = -float(top[0].diff) / self.num / p
        bottom[0].diff[...] = g.reshape(bottom[0].shape)
