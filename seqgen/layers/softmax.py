"""`Softmax`: exp(x - max) / sum(exp(x - max)) over one axis (softmax_param.axis).

`softmax3` works on an (outer, channels, inner) view and is shared with SoftmaxWithLoss.
"""
import numpy as np

from ..registry import register
from .base import Layer


def softmax3(x3):
    """Softmax over axis 1 of a 3-D array, in its dtype, with Caffe's max subtraction."""
    e = np.exp(x3 - x3.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def canonical_axis(layer, axis, ndim, what="axis"):
    """Caffe's CanonicalAxisIndex: -ndim <= axis < ndim, negative counts from the end."""
    if not -ndim <= axis < ndim:
        raise layer.error(f"{what} {axis} is out of range for a {ndim}-D bottom")
    return axis % ndim


@register("Softmax")
class SoftmaxLayer(Layer):
    num_bottoms = 1
    num_tops = 1

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.axis = canonical_axis(self, self.param.softmax_param.axis, len(shape),
                                   "softmax_param.axis")
        self.dims = (int(np.prod(shape[:self.axis])), shape[self.axis],
                     int(np.prod(shape[self.axis + 1:])))
        if top[0] is not bottom[0]:
            top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = softmax3(bottom[0].data.reshape(self.dims)).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data.reshape(self.dims)
        dy = top[0].diff.reshape(self.dims)
        dx = (dy - (dy * y).sum(axis=1, keepdims=True)) * y  # works in place too
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)
