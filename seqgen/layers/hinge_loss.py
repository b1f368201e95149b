"""`HingeLoss`: one-vs-all hinge loss, sum_k max(0, 1 - d_k x_k) / N with d_k = 1 for the
label's class and -1 otherwise (L1), or the sum of squares (hinge_loss_param.norm L2).

As hinge_loss_layer.cpp: N is the first axis, every other axis is a class (count / N of
them), and one label per item. Backward: L1 gives sign(margin) * -d_k / N (0 where the
margin is 0), L2 gives 2 * margin * -d_k / N, times the loss weight.
"""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .labels import read_labels


@register("HingeLoss")
class HingeLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = 1
    no_grad_bottoms = (1,)
    bottom_roles = {1: "labels"}
    in_place = False

    def layer_setup(self, bottom, top):
        self.l2 = self.param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L2

    def reshape(self, bottom, top):
        x, label = bottom
        self.num = x.num
        self.dim = x.count // max(self.num, 1)
        if label.count != self.num:
            raise self.error(f"bottom '{self.bottom_name(1)}' has {label.count} labels for "
                             f"{self.num} items of '{self.bottom_name(0)}' {x.shape}")
        top[0].reshape(())

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        lab, _ = read_labels(self, bottom[1], self.num, 1, self.dim)
        rows = np.arange(self.num)
        # Caffe negates the label's entry, then takes max(0, 1 + that)
        d = x.copy()
        d[rows, lab[:, 0]] *= -1
        self._sign = np.ones_like(d)
        self._sign[rows, lab[:, 0]] = -1
        self._m = np.maximum(0, 1 + d)
        loss = np.sum(self._m * self._m if self.l2 else self._m, dtype=np.float64)
        top[0].data[...] = loss / self.num

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        w = float(top[0].diff)
        g = np.sign(self._m) if not self.l2 else 2 * self._m
        g = g * self._sign * (w / self.num)
        bottom[0].diff[...] = g.reshape(bottom[0].shape)
