"""`Sigmoid`: y = 1 / (1 + exp(-x)); backward uses the output y (1 - y), so in-place works.

Caffe evaluates 0.5 * tanh(0.5 * x) + 0.5 with double literals, i.e. in double precision
rounded to float at the end; float32 blobs are computed the same way here.
"""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("Sigmoid")
class SigmoidLayer(ElementwiseLayer):
    def forward(self, bottom, top):
        x = bottom[0].data.astype(np.float64)  # a copy, so in place is safe
        top[0].data[...] = 0.5 * np.tanh(0.5 * x) + 0.5

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            # Caffe: top_diff * sigmoid_x (in Dtype) * (1. - sigmoid_x) (in double)
            dy_y = (top[0].diff * y).astype(np.float64)
            bottom[0].diff[...] = dy_y * (1.0 - y.astype(np.float64))
