"""`EuclideanLoss`: sum((a - b)^2) / (2 * a.shape[0]) — Caffe divides by the first axis only."""
import numpy as np

from ..registry import register
from .base import Layer


@register("EuclideanLoss")
class EuclideanLossLayer(Layer):
    is_loss = True
    num_bottoms = 2
    num_tops = (0, 1)

    def reshape(self, bottom, top):
        a, b = bottom
        if a.count // max(a.num, 1) != b.count // max(b.num, 1) or a.num != b.num:
            raise self.error(f"bottoms '{self.bottom_name(0)}' {a.shape} and "
                             f"'{self.bottom_name(1)}' {b.shape} do not match")
        if top:
            top[0].reshape(())
        d = getattr(self, "_d", None)
        if d is None or d.shape != a.shape or d.dtype != a.data.dtype:
            self._d = np.zeros(a.shape, a.data.dtype)  # the difference, kept for backward

    def forward(self, bottom, top):
        np.subtract(bottom[0].data, bottom[1].data.reshape(bottom[0].shape), out=self._d)
        # dot in float32 as Caffe's caffe_cpu_dot
        dot = np.dot(self._d.ravel(), self._d.ravel())
        loss = dot / np.float32(bottom[0].num) / np.float32(2)  # Caffe's order of operations
        if top:
            top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom):
        scale = np.float32(top[0].diff if top else 1.0) / np.float32(bottom[0].num)
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                diff = bottom[i].diff
                if diff.shape == self._d.shape:
                    np.multiply(self._d, sign * scale, out=diff)
                else:
                    diff[...] = (sign * scale * self._d).reshape(diff.shape)
