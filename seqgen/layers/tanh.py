"""`TanH`: y = tanh(x); backward uses the output (1 - y^2), so in-place use works."""
import numpy as np

from ..registry import register
from .base import Layer


@register("TanH")
class TanHLayer(Layer):
    num_bottoms = 1
    num_tops = 1

    def setup(self, bottom, top):
        self.check_counts(bottom, top)

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        np.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)
