"""`PReLU`: y = max(x, 0) + a_c * min(x, 0), one learnable slope per channel (axis 1) or
one for all (prelu_param.channel_shared); slopes start at 0.25 unless prelu_param.filler
says otherwise (prelu_layer.cpp).

As Caffe, the slope gradient sums dy * x over x <= 0, and the bottom gradient is
dy * ((x > 0) + a_c (x <= 0)); in place, the input is kept from forward for backward.
"""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import ElementwiseLayer


@register("PReLU")
class PReLULayer(ElementwiseLayer):
    param_names = ("slope",)

    def layer_setup(self, bottom, top):
        if bottom[0].data.ndim < 2:
            raise self.error(f"bottom '{self.bottom_name(0)}' {bottom[0].shape} needs at "
                             "least 2 axes (axis 1 holds the channels)")
        p = self.param.prelu_param
        self.shared = bool(p.channel_shared)
        filler = p.filler
        if not p.HasField("filler"):
            filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
        self.channels = bottom[0].shape[1]
        shape = () if self.shared else (self.channels,)
        self.blobs = [self.new_param(shape, filler, "slope")]

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.data.ndim < 2 or x.shape[1] != self.channels:
            raise self.error(f"bottom '{self.bottom_name(0)}' {x.shape} must keep its "
                             f"{self.channels} channels on axis 1")
        super().reshape(bottom, top)

    def _slopes(self, x):
        """The slope for every element of x, broadcast over the channel axis."""
        a = self.blobs[0].data.astype(x.dtype)
        if self.shared:
            return a.reshape(())
        return a.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        self._x = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = np.maximum(x, 0) + self._slopes(x) * np.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        x = self._x if self._x is not None else bottom[0].data
        dy = top[0].diff
        neg = x <= 0
        # the slope first: in place, writing the bottom diff overwrites the top diff
        g = dy * x * neg
        if self.shared:
            self.blobs[0].diff[...] += g.sum()
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            self.blobs[0].diff += g.sum(axis=axes).astype(self.blobs[0].diff.dtype)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * ((x > 0) + self._slopes(x) * neg)
