"""`Reduction`: SUM, ASUM (sum of |x|), SUMSQ or MEAN over all axes from
reduction_param.axis on, times coeff; the top keeps the axes before `axis`."""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer

_OP = caffe_pb2.ReductionParameter


@register("Reduction")
class ReductionLayer(Layer):
    num_bottoms = 1
    num_tops = 1

    def layer_setup(self, bottom, top):
        self.op = self.param.reduction_param.operation
        if self.op not in (_OP.SUM, _OP.ASUM, _OP.SUMSQ, _OP.MEAN):
            raise self.error(f"unknown reduction_param.operation {self.op}")

    def reshape(self, bottom, top):
        p = self.param.reduction_param
        shape = bottom[0].shape
        ndim = len(shape)
        if not -ndim <= p.axis < ndim:
            raise self.error(f"reduction_param.axis {p.axis} is out of range for a {ndim}-D "
                             "bottom")
        self.axis = p.axis % ndim
        self.num = int(np.prod(shape[:self.axis]))
        self.dim = int(np.prod(shape[self.axis:]))
        top[0].reshape(shape[:self.axis])

    def _coeff(self, dtype):
        c = dtype.type(self.param.reduction_param.coeff)
        if self.op == _OP.MEAN:
            c = c / dtype.type(self.dim)  # Caffe folds 1/dim into coeff_ (in Dtype)
        return c

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op == _OP.ASUM:
            r = np.abs(x).sum(axis=1)
        elif self.op == _OP.SUMSQ:
            r = (x * x).sum(axis=1)
        else:
            r = x.sum(axis=1)
        c = self._coeff(x.dtype)
        if c != 1:
            r *= c
        top[0].data[...] = r.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data.reshape(self.num, self.dim)
        g = top[0].diff.reshape(self.num, 1) * self._coeff(x.dtype)  # Caffe's bottom_coeff
        if self.op == _OP.ASUM:
            d = np.sign(x) * g  # caffe_cpu_sign: 0 at 0
        elif self.op == _OP.SUMSQ:
            d = x * (2 * g)
        else:
            d = np.broadcast_to(g, x.shape)
        bottom[0].diff[...] = d.reshape(bottom[0].shape)
