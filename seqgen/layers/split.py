"""`Split`: one bottom shared by several tops; gradients of the tops are summed.

The Net inserts it automatically when one blob feeds several layers, as Caffe does.
"""
from ..registry import register
from .base import Layer


@register("Split")
class SplitLayer(Layer):
    num_bottoms = 1

    def reshape(self, bottom, top):
        for blob in top:
            blob.reshape(bottom[0].shape)

    def forward(self, bottom, top):
        for blob in top:
            blob.data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = top[0].diff
            for blob in top[1:]:
                diff += blob.diff
