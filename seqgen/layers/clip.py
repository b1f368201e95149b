"""`Clip`: min(max(x, clip_param.min), clip_param.max); the gradient passes where
min <= x <= max (both ends included, as Caffe's ClipLayer).

In place, Caffe's backward reads the clipped output as its input, which always lies in
[min, max], so every gradient passes; seqgen reproduces that (clip_layer.cpp)."""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Clip")
class ClipLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max (required fields in Caffe)")
        self.lo, self.hi = float(p.min), float(p.max)

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        # fmax: NaN becomes min, as Caffe's std::max(min, std::min(x, max)) gives
        np.fmax(t(self.lo), np.minimum(x, t(self.hi)), out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data  # the output when in place
            t = x.dtype.type
            inside = (x >= t(self.lo)) & (x <= t(self.hi))
            np.multiply(top[0].diff, inside, out=bottom[0].diff)
