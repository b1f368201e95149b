"""`Log`: y = log_base(shift + scale * x), base e when log_param.base is -1 (Caffe's default).

Backward: dy/dx = scale / (ln(base) * (shift + scale * x)). Caffe's backward reads the
bottom data, which an in-place layer has overwritten; here the input is kept when in place
so the gradient stays right (the forward is Caffe's either way).
"""
import math

import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Log")
class LogLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        p = self.param.log_param
        base = float(np.float32(p.base))
        if base != -1 and not base > 0:
            raise self.error(f"log_param.base {base:g} must be > 0 (or -1 for e)")
        log_base = 1.0 if base == -1 else math.log(base)
        if log_base == 0 or not math.isfinite(log_base):
            raise self.error(f"log_param.base {base:g} has log {log_base:g}; 1/log(base) "
                             "would not be finite")
        self.base_scale = 1.0 / log_base
        self.scale, self.shift = float(p.scale), float(p.shift)
        self.backward_scale = self.scale / log_base

    def _inner(self, x):
        t = x.dtype.type
        return x * t(self.scale) + t(self.shift)

    def forward(self, bottom, top):
        x = bottom[0].data
        self._x = x.copy() if top[0] is bottom[0] else None
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(self._inner(x))
        top[0].data[...] = y * x.dtype.type(self.base_scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = self._x if self._x is not None else bottom[0].data
        with np.errstate(divide="ignore", invalid="ignore"):
            d = x.dtype.type(self.backward_scale) / self._inner(x)
        np.multiply(top[0].diff, d, out=bottom[0].diff)
