"""`Split`: one bottom shared by several tops; gradients of the tops are summed.

The Net inserts it automatically when one blob feeds several layers, as Caffe does. Like
Caffe's, the tops share the bottom's data array (no copy); each top has its own diff.
"""
import numpy as np

from ..registry import register
from .base import Layer


@register("Split")
class SplitLayer(Layer):
    num_bottoms = 1
    runs_forward = False  # the tops alias the bottom's data
    passes_through = True

    def reshape(self, bottom, top):
        for blob in top:
            if blob.diff_shape != bottom[0].shape:
                blob.set_arrays(diff=np.zeros(bottom[0].shape, np.float32))
            blob.set_arrays(data=bottom[0].data)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = top[0].diff
            for blob in top[1:]:
                diff += blob.diff
