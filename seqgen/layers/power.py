"""`Power`: y = (shift + scale * x) ^ power, with Caffe's special cases kept as they are.

From power_layer.cpp: when power * scale == 0 the top is the constant 1 (power 0) or
shift^power and the bottom gradient is 0 (not multiplied by the top diff); power 1 gives
the gradient scale * dy; power 2 computes 2 * scale * (shift + scale * x); with shift 0 the
gradient is power * y / x (NaN at x = 0, as in Caffe); otherwise power * scale * y /
(shift + scale * x). An in-place layer keeps its input for backward (Caffe would read the
overwritten top there).
"""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Power")
class PowerLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = (float(np.float32(v)) for v in
                                              (p.power, p.scale, p.shift))
        self.diff_scale = float(np.float32(self.power) * np.float32(self.scale))

    def _inner(self, x):
        t = x.dtype.type
        y = x * t(self.scale) if self.scale != 1 else x.copy()
        if self.shift != 0:
            y += t(self.shift)
        return y

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        if self.diff_scale == 0:
            with np.errstate(all="ignore"):
                value = t(1) if self.power == 0 else np.power(t(self.shift), t(self.power))
            top[0].data[...] = value
            return
        self._x = x.copy() if top[0] is bottom[0] else None
        y = self._inner(x)
        if self.power != 1:
            with np.errstate(all="ignore"):
                y = np.power(y, t(self.power))
        top[0].data[...] = y

    def _dydx(self, x, y):
        t = x.dtype.type
        if self.diff_scale == 0 or self.power == 1:
            return np.full(x.shape, t(self.diff_scale))
        with np.errstate(all="ignore"):
            if self.power == 2:
                return x * t(self.diff_scale * self.scale) + t(self.diff_scale * self.shift)
            if self.shift == 0:
                return y / x * t(self.power)
            return y / self._inner(x) * t(self.diff_scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        if self.diff_scale != 0 and self._x is not None:
            x = self._x
        d = self._dydx(x, top[0].data)
        if self.diff_scale != 0:
            d = d * top[0].diff
        bottom[0].diff[...] = d

    _x = None
