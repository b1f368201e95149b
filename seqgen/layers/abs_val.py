"""`AbsVal`: |x|, gradient sign(x) (0 at 0 and at NaN, Caffe's caffe_cpu_sign).

Caffe's AbsValLayer refuses to run in place (its backward needs the input's sign)."""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer


@register("AbsVal")
class AbsValLayer(ElementwiseLayer):
    in_place = False
    in_place_advice = "its backward needs the input; give the top another name"

    def forward(self, bottom, top):
        np.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            sign = (x > 0).astype(x.dtype) - (x < 0)  # 0 for NaN, as caffe_cpu_sign
            np.multiply(sign, top[0].diff, out=bottom[0].diff)
