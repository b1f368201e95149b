"""`ELU`: max(x, 0) + alpha * (exp(min(x, 0)) - 1); gradient 1 for x > 0, y + alpha
otherwise (Caffe's ELULayer, which reads the output for it, so it also works in place)."""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("ELU")
class ELULayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, bottom, top):
        x = bottom[0].data
        a = x.dtype.type(self.alpha)
        top[0].data[...] = np.maximum(x, 0) + a * (np.exp(np.minimum(x, 0)) - 1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x, y = bottom[0].data, top[0].data  # in place both are the output: y > 0 iff x > 0
            a = x.dtype.type(self.alpha)
            np.multiply(top[0].diff, (x > 0) + (a + y) * (x <= 0), out=bottom[0].diff)
