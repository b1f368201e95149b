"""`Dropout`: in TRAIN, zero each element with probability dropout_ratio and scale the
survivors by 1 / (1 - ratio) (Caffe's inverted dropout); in TEST, the identity.

The mask comes from seqgen's shared generator (`fillers.generator()`, seeded by the
solver's random_seed), so a seeded run is repeatable; tests may set `layer.rng`.
"""

from .. import fillers
from ..proto import caffe_pb2
from ..registry import register
from .base import ElementwiseLayer


@register("Dropout")
class DropoutLayer(ElementwiseLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
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
        # Bernoulli(1 - ratio) keep mask, like caffe_rng_bernoulli(count, 1 - threshold)
        rng = self.rng if self.rng is not None else fillers.generator()
        self.mask = rng.random(x.shape) >= self.ratio
        y = x * self.mask  # x * mask * scale, in Caffe's order
        y *= self._scale(x.dtype)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if not self.train:
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = dy
            return
        d = dy * self.mask
        d *= self._scale(dy.dtype)
        bottom[0].diff[...] = d
