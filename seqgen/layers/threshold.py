"""`Threshold`: y = 1 where x > threshold_param.threshold, else 0.

Caffe leaves its backward NOT_IMPLEMENTED (a net that needs it aborts); its derivative is 0
wherever it exists, so here the bottom gradient is 0.
"""

from ..registry import register
from .base import ElementwiseLayer


@register("Threshold")
class ThresholdLayer(ElementwiseLayer):
    def layer_setup(self, bottom, top):
        self.threshold = self.param.threshold_param.threshold

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x > x.dtype.type(self.threshold)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 0
