"""`Flatten`: merge axes flatten_param.axis .. end_axis (inclusive) into one.

Caffe shares the arrays between bottom and top; here forward/backward copy. In place is
refused, as in Caffe.
"""
import numpy as np

from ..registry import register
from .base import Layer


@register("Flatten")
class FlattenLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    in_place = False

    def _axis(self, value, ndim, what):
        if not -ndim <= value < ndim:
            raise self.error(f"flatten_param.{what} {value} is out of range for a {ndim}-D "
                             "bottom")
        return value % ndim

    def reshape(self, bottom, top):
        p = self.param.flatten_param
        shape = bottom[0].shape
        start = self._axis(p.axis, len(shape), "axis")
        end = self._axis(p.end_axis, len(shape), "end_axis")
        if end < start:
            raise self.error(f"flatten_param.end_axis ({end}) comes before axis ({start})")
        merged = int(np.prod(shape[start:end + 1]))
        top[0].reshape(shape[:start] + (merged,) + shape[end + 1:])

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)
