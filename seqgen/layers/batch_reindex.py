"""`BatchReindex`: top[i] = bottom0[indices[i]] along the first axis; `indices` (bottom 1,
one axis) may repeat or leave out items. Backward adds each top item's gradient into the
item it came from (Caffe's BatchReindexLayer); the indices take no gradient."""
import numpy as np

from ..registry import register
from .base import Layer


@register("BatchReindex")
class BatchReindexLayer(Layer):
    num_bottoms = 2
    num_tops = 1
    in_place = False
    no_grad_bottoms = (1,)

    def reshape(self, bottom, top):
        data, idx = bottom
        if idx.data.ndim != 1:
            raise self.error(f"bottom '{self.bottom_name(1)}' (the indices) must have one axis, "
                             f"not shape {idx.shape}")
        if data.data.ndim == 0:
            raise self.error(f"bottom '{self.bottom_name(0)}' is a scalar; it needs a first axis")
        top[0].reshape((idx.shape[0],) + data.shape[1:])

    def _indices(self, bottom):
        n, idx = bottom[0].shape[0], bottom[1].data
        # Caffe checks 0 <= index < N on the float value, then truncates (static_cast<int>)
        bad = ~((idx >= 0) & (idx < n))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.error(f"bottom '{self.bottom_name(1)}' holds {idx[i]:g} at position {i}; "
                             f"indices must lie in [0, {n})")
        return idx.astype(np.int64)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self._indices(bottom)]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            np.add.at(diff, self._indices(bottom), top[0].diff)
