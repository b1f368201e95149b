"""`SoftmaxWithLoss`: mean (by loss_param.normalization) of -log softmax(x)[label].

Fusing softmax and the log loss gives the stable gradient prob - onehot(label). An
optional second top receives the probabilities. The label bottom takes no gradient.
"""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .labels import read_labels, split_at_class_axis
from .softmax import softmax3

_LP = caffe_pb2.LossParameter
FLT_MIN = np.finfo(np.float32).tiny  # Caffe clamps with FLT_MIN even for double nets


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = (1, 2)
    no_grad_bottoms = (1,)
    bottom_roles = {1: "labels"}

    def setup(self, bottom, top):
        self.check_counts(bottom, top)
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

    def forward(self, bottom, top):
        x = bottom[0].data
        prob = softmax3(x.reshape(self.outer, self.C, self.inner))
        lab, valid = read_labels(self, bottom[1], self.outer, self.inner, self.C,
                                 self.ignore if self.has_ignore else None)
        picked = np.take_along_axis(prob, lab[:, None, :], axis=1)[:, 0, :]
        loss = -np.log(np.maximum(picked[valid], x.dtype.type(FLT_MIN))).sum(dtype=x.dtype)
        self.count = int(valid.sum())
        top[0].data[...] = loss / self._normalizer(self.count, x.dtype)
        if len(top) > 1:
            top[1].data[...] = prob.reshape(top[1].shape)
        self._prob, self._lab, self._valid = prob, lab, valid

    def backward(self, top, propagate_down, bottom):
        # propagate_down[1] is never honoured: Caffe cannot backpropagate to labels
        if not propagate_down[0]:
            return
        dt = bottom[0].data.dtype
        d = self._prob.copy()
        o, i = np.nonzero(self._valid)
        d[o, self._lab[o, i], i] -= 1
        d *= self._valid[:, None, :]  # ignored positions get zero gradient in every class
        # the loss weight arrives as the top diff (the Net writes it there)
        scale = dt.type(top[0].diff.reshape(-1)[0]) / self._normalizer(self.count, dt)
        d *= scale
        bottom[0].diff[...] = d.reshape(bottom[0].shape)
