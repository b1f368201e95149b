"""`Eltwise`: element-wise PROD, SUM (with per-bottom coeff) or MAX of equally shaped
bottoms."""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer

_OP = caffe_pb2.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    num_tops = 1

    def layer_setup(self, bottom, top):
        if len(bottom) < 2:
            raise self.error(f"needs at least 2 bottom blobs, got {len(bottom)}")
        p = self.param.eltwise_param
        self.op = p.operation
        if self.op not in (_OP.PROD, _OP.SUM, _OP.MAX):
            raise self.error(f"unknown eltwise_param.operation {self.op}")
        coeff = [float(c) for c in p.coeff]
        if coeff and self.op != _OP.SUM:
            raise self.error("eltwise_param.coeff is only for operation SUM")
        if coeff and len(coeff) != len(bottom):
            raise self.error(f"eltwise_param has {len(coeff)} coeff for {len(bottom)} bottoms "
                             "(give one per bottom or none)")
        self.coeff = coeff or [1.0] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad

    def _name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else str(i)

    def reshape(self, bottom, top):
        s0 = bottom[0].shape
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != s0:
                raise self.error(f"bottom '{self._name(i)}' {b.shape} differs from bottom "
                                 f"'{self._name(0)}' {s0}")
        top[0].reshape(s0)

    def forward(self, bottom, top):
        xs = [b.data for b in bottom]
        dt = xs[0].dtype.type
        if self.op == _OP.PROD:
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y *= x
        elif self.op == _OP.SUM:
            y = np.zeros_like(xs[0])
            for c, x in zip(self.coeff, xs):
                y += x if c == 1.0 else dt(c) * x  # caffe_axpy into a zeroed top
        else:
            # Caffe: bottom 0 wins over bottom 1 only if strictly greater; later bottoms
            # take over only if strictly greater than the running max
            self.argmax = np.where(xs[0] > xs[1], 0, 1).astype(np.int32)
            y = np.where(xs[0] > xs[1], xs[0], xs[1])
            for i, x in enumerate(xs[2:], 2):
                better = x > y
                self.argmax[better] = i
                y = np.where(better, x, y)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        dt = dy.dtype.type
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [bottom[j].data for j in range(len(bottom)) if j != i]
                    d = others[0].copy()
                    for x in others[1:]:
                        d *= x
                else:  # top / bottom_i: wrong where bottom_i == 0, as in Caffe
                    d = top[0].data / b.data
                d *= dy
            elif self.op == _OP.SUM:
                c = self.coeff[i]
                d = dy if c == 1.0 else dt(c) * dy
            else:
                d = dy * (self.argmax == i)
            b.diff[...] = d
