"""`TanH`: y = tanh(x); backward uses the output (1 - y^2), so in-place use works."""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("TanH")
class TanHLayer(ElementwiseLayer):
    def forward(self, bottom, top):
        np.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)
