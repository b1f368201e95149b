"""`ReLU`: max(x, 0) + negative_slope * min(x, 0) (leaky when negative_slope != 0).

In place, backward sees the output as its bottom data; for negative_slope >= 0 the sign
of the output equals the sign of the input, so the gradient is unchanged (as in Caffe).
As in Caffe, it reads whatever the shared blob holds at backward time, so later in-place
layers must keep the signs (Dropout does; a Scale or Sigmoid after it would not).
"""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("ReLU")
class ReLULayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        self.slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottom, top):
        x = bottom[0].data
        y = np.maximum(x, 0)
        if self.slope:
            y += x.dtype.type(self.slope) * np.minimum(x, 0)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data  # the output when in place
        s = x.dtype.type(self.slope)
        # Caffe: top_diff * ((x > 0) + negative_slope * (x <= 0)); NaN gets 0
        np.multiply(top[0].diff, (x > 0) + s * (x <= 0), out=bottom[0].diff)
