"""`Exp`: y = base ^ (shift + scale * x), base e when exp_param.base is -1 (the default);
gradient y * scale * ln(base), from the output, so it works in place (Caffe's ExpLayer)."""
import math

import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Exp")
class ExpLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        p = self.param.exp_param
        base, scale, shift = float(np.float32(p.base)), float(p.scale), float(p.shift)
        if base != -1 and not base > 0:
            raise self.error(f"exp_param.base is {base:g}; it must be > 0 (or -1 for e)")
        log_base = 1.0 if base == -1 else math.log(base)
        try:
            outer = 1.0 if shift == 0 else (base ** shift if base != -1 else math.exp(shift))
        except OverflowError:
            outer = math.inf
        self.inner, self.outer = log_base * scale, outer
        with np.errstate(over="ignore"):  # the factors must hold in float32, Caffe's type
            finite = np.isfinite(np.float32([self.inner, self.outer])).all()
        if not finite:
            raise self.error(f"exp_param base {base:g}, scale {scale:g}, shift {shift:g} "
                             "overflow float32")

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        y = np.exp(x * t(self.inner)) if self.inner != 1 else np.exp(x)
        if self.outer != 1:
            y *= t(self.outer)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            d = top[0].data * top[0].diff
            if self.inner != 1:
                d *= d.dtype.type(self.inner)  # rounded to the blob's type
            bottom[0].diff[...] = d
