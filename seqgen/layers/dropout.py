"""`Dropout`: in TRAIN, zero each element with probability dropout_ratio and scale the
survivors by 1 / (1 - ratio) (Caffe's inverted dropout); in TEST, the identity.

The mask comes from seqgen's shared generator (`fillers.generator()`, seeded by the
solver's random_seed), so a seeded run is repeatable; tests may set `layer.rng`. The
draws go into a buffer kept between calls; kernels/dropout.py applies them.
"""
import numpy as np

from .. import fillers
from ..kernels.dropout import apply_mask
from ..proto import caffe_pb2
from ..registry import register
from .base import ElementwiseLayer


@register("Dropout")
class DropoutLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_param.dropout_ratio must be in [0, 1), got {self.ratio}")
        self.rng = None  # None: use the shared, seedable generator at each forward
        self.train = self.phase == caffe_pb2.TRAIN

    def is_identity(self):
        """At TEST the layer copies its bottom (compiled generation looks through it)."""
        return not self.train

    def _scale(self, dtype):
        # Caffe: scale_ = 1. / (1. - threshold_), in double, stored as Dtype
        return dtype.type(1.0 / (1.0 - self.ratio))

    def forward(self, bottom, top):
        x = bottom[0].data
        if not self.train:
            if top[0] is not bottom[0]:
                top[0].data[...] = x
            return
        # Bernoulli(1 - ratio) keep mask, like caffe_rng_bernoulli(count, 1 - threshold):
        # kept where the uniform draw is >= ratio (the same draws as rng.random(x.shape))
        rng = self.rng if self.rng is not None else fillers.generator()
        if getattr(self, "_u", None) is None or self._u.shape != x.shape:
            self._u = np.zeros(x.shape, np.float64)
        rng.random(out=self._u)
        apply_mask(x.reshape(-1), self._u.reshape(-1), self.ratio, self._scale(x.dtype),
                   top[0].data.reshape(-1))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if not self.train:
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = dy
            return
        apply_mask(dy.reshape(-1), self._u.reshape(-1), self.ratio, self._scale(dy.dtype),
                   bottom[0].diff.reshape(-1))
