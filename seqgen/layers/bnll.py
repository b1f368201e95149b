"""`BNLL` (binomial normal log likelihood): log(1 + exp(x)), computed stably; gradient
sigmoid(x) with x capped at 50 as Caffe's kBNLL_THRESHOLD.

In place, Caffe's backward reads the shared blob (the output) as its input; seqgen
reproduces that (bnll_layer.cpp), as ReLU does."""
import numpy as np

from ..registry import register
from .base import ElementwiseLayer

THRESHOLD = 50.0  # Caffe's kBNLL_THRESHOLD


@register("BNLL")
class BNLLLayer(ElementwiseLayer):
    def forward(self, bottom, top):
        x = bottom[0].data
        # x + log(1 + exp(-x)) for x > 0, log(1 + exp(x)) otherwise: log1p(exp(-|x|)) + max(x, 0)
        top[0].data[...] = np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            e = np.exp(np.minimum(bottom[0].data, bottom[0].data.dtype.type(THRESHOLD)))
            np.multiply(top[0].diff, e / (e + 1), out=bottom[0].diff)
