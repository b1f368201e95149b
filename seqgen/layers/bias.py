"""`Bias`: top = bottom0 + b, with b broadcast over bottom0's axes [axis, axis + b.ndim).

b is a learned parameter (one bottom; shape from bias_param.axis / num_axes, filled by
bias_param.filler, default 0) or the second bottom. The helpers here are shared with
Scale, which in Caffe runs a Bias layer internally for its bias_term.
"""
import numpy as np

from ..registry import register
from .base import Layer


def param_shape(layer, shape, axis, num_axes, what):
    """Shape of a learned broadcast parameter: shape[axis : axis + num_axes] (-1 = to the end)."""
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise layer.error(f"{what}.axis {axis} is out of range for a {ndim}-D bottom")
    axis %= ndim
    if num_axes < -1:
        raise layer.error(f"{what}.num_axes must be >= 0, or -1 to extend to the end")
    end = ndim if num_axes == -1 else axis + num_axes
    if end > ndim:
        raise layer.error(f"{what}: axis {axis} + num_axes {num_axes} reaches past the "
                          f"{ndim} axes of the bottom {shape}")
    return tuple(shape[axis:end])


def broadcast_dims(layer, shape, pshape, axis, what, pname):
    """(outer, dim, inner) for applying a `pshape` parameter to a bottom of `shape` at `axis`.

    A scalar parameter always uses axis 0 (Caffe: any axis is equivalent)."""
    ndim = len(shape)
    if not pshape:
        axis = 0
    elif not -ndim <= axis < ndim:
        raise layer.error(f"{what}.axis {axis} is out of range for a {ndim}-D bottom")
    axis %= max(ndim, 1)
    if ndim < axis + len(pshape) or tuple(shape[axis:axis + len(pshape)]) != tuple(pshape):
        raise layer.error(f"{pname} of shape {tuple(pshape)} does not match bottom shape "
                          f"{tuple(shape)} from axis {axis}")
    return (int(np.prod(shape[:axis])), int(np.prod(pshape)),
            int(np.prod(shape[axis + len(pshape):])))


@register("Bias")
class BiasLayer(Layer):
    num_bottoms = (1, 2)
    num_tops = 1

    def layer_setup(self, bottom, top):
        if len(bottom) == 1:
            p = self.param.bias_param
            shape = param_shape(self, bottom[0].shape, p.axis, p.num_axes, "bias_param")
            self.blobs = [self.new_param(shape, p.filler, "b")]
            self.param_names = ("b",)

    def _name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else str(i)

    def reshape(self, bottom, top):
        b = bottom[1] if len(bottom) > 1 else self.blobs[0]
        what = f"bottom '{self._name(1)}'" if len(bottom) > 1 else "the bias parameter"
        self.dims = broadcast_dims(self, bottom[0].shape, b.shape,
                                   self.param.bias_param.axis, "bias_param", what)
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        b = (bottom[1] if len(bottom) > 1 else self.blobs[0]).data
        y = bottom[0].data.reshape(self.dims) + b.reshape(1, -1, 1)
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        learned = len(bottom) == 1
        if learned or propagate_down[1]:
            g = dy.reshape(self.dims).sum(axis=(0, 2))
            if learned:
                self.blobs[0].diff += g.reshape(self.blobs[0].shape)  # parameters accumulate
            else:
                bottom[1].diff[...] = g.reshape(bottom[1].shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = dy  # in place: the diff is already there
