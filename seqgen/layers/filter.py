"""`Filter`: keeps the items (along the first axis) whose selector is nonzero; the last
bottom is the selector (N, 1, ...), the others are filtered into one top each.

The tops' first axis depends on the selector's values, so the Net reshapes this layer
before every forward, as Caffe does for every layer. Caffe's first reshape (at setup, when
the selector holds nothing yet) gives the tops the bottoms' full first axis; seqgen does
the same. Backward copies each kept item's gradient back and writes 0 for the others; the
selector takes no gradient (filter_layer.cpp)."""
import numpy as np

from ..registry import register
from .base import Layer


@register("Filter")
class FilterLayer(Layer):
    num_bottoms = (2, 2 ** 31)
    in_place = False
    reshapes_every_forward = True

    def check_counts(self, bottom, top):
        super().check_counts(bottom, top)
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom ({len(bottom) - 1}, the last of "
                             f"the {len(bottom)} bottoms is the selector), got {len(top)}")

    def layer_setup(self, bottom, top):
        self.no_grad_bottoms = (len(bottom) - 1,)
        self.first_reshape = True

    def reshape(self, bottom, top):
        sel = bottom[-1]
        name = self.bottom_name(len(bottom) - 1)
        if sel.data.ndim == 0 or any(d != 1 for d in sel.shape[1:]):
            raise self.error(f"selector '{name}' has shape {sel.shape}; every axis but the "
                             "first must be 1")
        for i, b in enumerate(bottom[:-1]):
            if b.data.ndim == 0 or b.shape[0] != sel.shape[0]:
                raise self.error(f"bottom '{self.bottom_name(i)}' has shape {b.shape}; its first "
                                 f"axis must match the selector '{name}' ({sel.shape[0]})")
        n = len(self._kept(bottom))
        if self.first_reshape:  # Caffe's first_reshape_: the selector is not filled yet
            n, self.first_reshape = bottom[0].shape[0], False
        for b, t in zip(bottom[:-1], top):
            t.reshape((n,) + b.shape[1:])

    def _kept(self, bottom):
        """The items whose selector is nonzero (read anew: a caller may skip reshape)."""
        self.keep = np.flatnonzero(bottom[-1].data.reshape(-1))
        return self.keep

    def forward(self, bottom, top):
        keep = self._kept(bottom)
        for b, t in zip(bottom[:-1], top):
            t.reshape((len(keep),) + b.shape[1:])
            t.data[...] = b.data[keep]

    def backward(self, top, propagate_down, bottom):
        for i, t in enumerate(top):
            if propagate_down[i]:
                diff = bottom[i].diff
                diff[...] = 0
                diff[self.keep] = t.diff
