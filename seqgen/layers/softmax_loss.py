"""`SoftmaxWithLoss`: mean (by loss_param.normalization) of -log softmax(x)[label].

Fusing softmax and the log loss gives the stable gradient prob - onehot(label). An
optional second top receives the probabilities. The label bottom takes no gradient.
Labels, softmax, loss and gradient are compiled kernels (kernels/softmax_loss.py) over
buffers kept while the shapes stay the same.
"""
import numpy as np

from ..kernels.softmax_loss import (
    read_labels,
    softmax_loss_3d,
    softmax_loss_backward_3d,
    softmax_loss_backward_rows,
    softmax_loss_rows,
)
from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .labels import label_error, split_at_class_axis

_LP = caffe_pb2.LossParameter


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = (1, 2)
    no_grad_bottoms = (1,)
    bottom_roles = {1: "labels"}

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        self.has_ignore = lp.HasField("ignore_label")
        self.ignore = int(lp.ignore_label)
        # The legacy bool only counts when `normalization` is not set explicitly.
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.mode = _LP.VALID if lp.normalize else _LP.BATCH_SIZE
        else:
            self.mode = lp.normalization

    def _name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else str(i)

    def reshape(self, bottom, top):
        x, label = bottom[0], bottom[1]
        if x.data.ndim == 0:
            raise self.error(f"bottom '{self._name(0)}' is a scalar; it needs a class axis")
        # LossLayer::Reshape: data and label share the first dimension
        if label.num != x.num:
            raise self.error(f"bottoms '{self._name(0)}' {x.shape} and '{self._name(1)}' "
                             f"{label.shape} differ in their first dimension")
        self.axis, self.outer, self.C, self.inner = split_at_class_axis(
            self, x, label, self.param.softmax_param.axis, "softmax_param.axis")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(x.shape)

    def _normalizer(self, valid_count, dtype):
        """Caffe's get_normalizer, including its max(1, n) guard against all-ignored batches."""
        m = self.mode
        if m == _LP.FULL:
            n = self.outer * self.inner
        elif m == _LP.VALID:
            n = valid_count
        elif m == _LP.BATCH_SIZE:
            n = self.outer
        elif m == _LP.NONE:
            n = 1
        else:
            raise self.error(f"unknown loss_param.normalization {m}")
        return max(dtype.type(1), dtype.type(n))

    def _buffers(self, x):
        """prob (outer, C, inner) in x's dtype, int64 labels (outer, inner) with -1 where
        ignored, and the 3-D kernel's scratch; kept while shape and dtype stay."""
        shape = (self.outer, self.C, self.inner)
        prob = getattr(self, "_prob", None)
        if prob is None or prob.shape != shape or prob.dtype != x.dtype:
            self._prob = np.zeros(shape, x.dtype)
            self._lab = np.zeros((self.outer, self.inner), np.int64)
            self._scratch = (np.zeros(self.inner, x.dtype), np.zeros(self.inner, np.float64))

    def forward(self, bottom, top):
        x = bottom[0].data
        self._buffers(x)
        labels = bottom[1].data
        ignore = self.ignore if self.has_ignore else None
        self.count, bad = read_labels(labels.reshape(-1), self.C, self.has_ignore, self.ignore,
                                      self._lab.reshape(-1))
        if bad >= 0:
            raise label_error(self, bottom[1], bad, self.C, ignore)
        if self.inner == 1:  # nothing but 1s after the class axis: rows x classes
            loss = softmax_loss_rows(x.reshape(self.outer, self.C), self._lab.reshape(-1),
                                     self._prob.reshape(self.outer, self.C))
        else:
            loss = softmax_loss_3d(x.reshape(self._prob.shape), self._lab, self._prob,
                                   self._scratch[0], self._scratch[1])
        # Caffe sums the loss in Dtype, one add after another; the float64 sum is closer to
        # the exact one than any float32 order. The division is in Dtype, as Caffe's
        top[0].data[...] = x.dtype.type(loss) / self._normalizer(self.count, x.dtype)
        if len(top) > 1:
            np.copyto(top[1].data, self._prob.reshape(top[1].shape))

    def backward(self, top, propagate_down, bottom):
        # propagate_down[1] is never honoured: Caffe cannot backpropagate to labels
        if not propagate_down[0]:
            return
        dt = bottom[0].data.dtype
        # the loss weight arrives as the top diff (the Net writes it there)
        scale = dt.type(top[0].diff.reshape(-1)[0]) / self._normalizer(self.count, dt)
        diff = bottom[0].diff
        if self.inner == 1:
            softmax_loss_backward_rows(self._prob.reshape(self.outer, self.C),
                                       self._lab.reshape(-1), scale,
                                       diff.reshape(self.outer, self.C))
        else:
            softmax_loss_backward_3d(self._prob, self._lab, scale, diff.reshape(self._prob.shape))
