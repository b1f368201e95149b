"""`Swish`: y = x * sigmoid(beta * x) (swish_param.beta, default 1).

Backward as swish_layer.cpp: dy * (beta * y + s * (1 - beta * y)) with s = sigmoid(beta x)
kept from forward, so in place works (it reads only the top and s).
"""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Swish")
class SwishLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        self.beta = float(np.float32(self.param.swish_param.beta))

    def forward(self, bottom, top):
        x = bottom[0].data
        bx = (x * x.dtype.type(self.beta)).astype(np.float64)
        # as Caffe's Sigmoid layer: 0.5 * tanh(0.5 x) + 0.5 in double, stored in Dtype
        self._s = (0.5 * np.tanh(0.5 * bx) + 0.5).astype(x.dtype)
        top[0].data[...] = x * self._s

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, s = top[0].data, self._s
            by = y * y.dtype.type(self.beta)
            bottom[0].diff[...] = top[0].diff * (by + s * (1 - by))
