"""`SigmoidCrossEntropyLoss`: cross-entropy of targets t in [0, 1] with p = sigmoid(x),
summed over every element and divided by Caffe's normalizer.

From sigmoid_cross_entropy_loss_layer.cpp: the stable form
-(x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))) per element; the default
normalization is BATCH_SIZE (the first axis), not the VALID that LossParameter declares
(the legacy `normalize: true` means VALID); an element is ignored when int(t) (C's
truncation) equals ignore_label. The gradient is (p - t) * loss_weight / normalizer, 0 at
ignored elements; the target takes none.
"""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .loss_norm import ignore_label, normalization_mode, normalizer


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = 1
    no_grad_bottoms = (1,)
    in_place = False

    def layer_setup(self, bottom, top):
        self.ignore = ignore_label(self)
        self.mode = normalization_mode(self, caffe_pb2.LossParameter.BATCH_SIZE)

    def reshape(self, bottom, top):
        x, t = bottom
        if x.count != t.count:
            raise self.error(f"bottoms '{self.bottom_name(0)}' {x.shape} and "
                             f"'{self.bottom_name(1)}' {t.shape} must have the same count")
        self.outer = x.num
        self.inner = x.count // max(self.outer, 1)
        top[0].reshape(())

    def _valid(self, t):
        if self.ignore is None:
            return np.ones(t.shape, bool)
        with np.errstate(invalid="ignore"):
            return t.astype(np.int64) != self.ignore  # static_cast<int>: truncation

    def forward(self, bottom, top):
        x = bottom[0].data.ravel()
        t = bottom[1].data.ravel().astype(x.dtype)
        self._mask = self._valid(t)
        pos = (x >= 0).astype(x.dtype)
        with np.errstate(over="ignore"):
            terms = x * (t - pos) - np.log1p(np.exp(x - 2 * x * pos))
        loss = -np.sum(terms[self._mask], dtype=np.float64)
        self._norm = normalizer(self.mode, self.outer, self.inner, int(self._mask.sum()))
        top[0].data[...] = loss / self._norm

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape).astype(x.dtype)
        p = (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(x.dtype)
        g = np.where(self._mask.reshape(x.shape), p - t, 0)
        scale = float(top[0].diff) / self._norm
        bottom[0].diff[...] = g * x.dtype.type(scale)
