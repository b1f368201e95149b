"""`Scale`: top = bottom0 * s (+ bias), s broadcast over bottom0's axes [axis, axis + s.ndim).

s is a learned parameter (one bottom; shape from scale_param.axis / num_axes, filled by
scale_param.filler, default constant 1) or the second bottom. With bias_term, a learned
bias of the same broadcast shape follows (Caffe runs an internal Bias layer for it).
In place, the input is saved in forward because the scale gradient needs it.
"""
from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .bias import broadcast_dims, param_shape


@register("Scale")
class ScaleLayer(Layer):
    num_bottoms = (1, 2)
    num_tops = 1

    def layer_setup(self, bottom, top):
        p = self.param.scale_param
        shape = bottom[0].shape
        self.blobs, names = [], []
        if len(bottom) == 1:
            sshape = param_shape(self, shape, p.axis, p.num_axes, "scale_param")
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(
                type="constant", value=1.0)  # identity unless told otherwise
            self.blobs.append(self.new_param(sshape, filler, "scale"))
            names.append("scale")
        self.bias_term = p.bias_term
        if self.bias_term:
            # Caffe's internal Bias layer: num_axes from the scale bottom when there is one
            nb = bottom[1].data.ndim if len(bottom) > 1 else p.num_axes
            bshape = param_shape(self, shape, p.axis, nb, "scale_param")
            self.blobs.append(self.new_param(bshape, p.bias_filler, "bias"))
            names.append("bias")
        self.param_names = tuple(names)

    def _name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else str(i)

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        axis = self.param.scale_param.axis
        what = f"bottom '{self._name(1)}'" if len(bottom) > 1 else "the scale parameter"
        self.dims = broadcast_dims(self, bottom[0].shape, self._scale(bottom).shape, axis,
                                   "scale_param", what)
        if self.bias_term:
            self.bdims = broadcast_dims(self, bottom[0].shape, self.blobs[-1].shape, axis,
                                        "scale_param", "the bias parameter")
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        self.saved = x.copy() if top[0] is bottom[0] else None  # overwritten below
        y = x.reshape(self.dims) * self._scale(bottom).data.reshape(1, -1, 1)
        if self.bias_term:
            y = y.reshape(self.bdims)
            y += self.blobs[-1].data.reshape(1, -1, 1)
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        # everything that reads the top diff comes before the bottom diff is written, which
        # in place is the same array
        dy = top[0].diff
        if self.bias_term:
            self.blobs[-1].diff += dy.reshape(self.bdims).sum(axis=(0, 2)).reshape(
                self.blobs[-1].shape)
        scale = self._scale(bottom)
        learned = len(bottom) == 1
        if learned or propagate_down[1]:
            x = self.saved if self.saved is not None else bottom[0].data
            g = (dy * x).reshape(self.dims).sum(axis=(0, 2)).reshape(scale.shape)
            if learned:
                scale.diff += g  # parameters accumulate
            else:
                scale.diff[...] = g
        if propagate_down[0]:
            dx = dy.reshape(self.dims) * scale.data.reshape(1, -1, 1)
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
