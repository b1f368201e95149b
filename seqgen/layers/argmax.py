"""`ArgMax`: the indices (or, with out_max_val, also the values) of the top_k largest
entries, per item of the first axis over everything after it, or along argmax_param.axis.

Without an axis the top has shape (N, 1, top_k) (N, 2, top_k with out_max_val: indices,
then values), padded with 1s to the bottom's number of axes, as Caffe's ArgMaxLayer; with
an axis, the bottom's shape with top_k at the axis, holding indices or (out_max_val) values.
Ties go to the larger index (Caffe sorts (value, index) pairs with std::greater). Caffe has
no backward for it; seqgen never asks for one (the bottom takes no gradient)."""
import numpy as np

from ..registry import register
from .base import Layer


@register("ArgMax")
class ArgMaxLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    in_place = False
    no_grad_bottoms = (0,)

    def layer_setup(self, bottom, top):
        p = self.param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        shape = bottom[0].shape
        if self.top_k < 1:
            raise self.error("argmax_param.top_k must be at least 1")
        self.axis = None
        if p.HasField("axis"):
            nd = len(shape)
            if not -nd <= p.axis < nd:
                raise self.error(f"argmax_param.axis {p.axis} is out of range for bottom "
                                 f"'{self.bottom_name(0)}' of shape {shape}")
            self.axis = p.axis % nd
            dim = shape[self.axis]
        else:
            if not shape:
                raise self.error(f"bottom '{self.bottom_name(0)}' is a scalar; ArgMax needs "
                                 "a first axis")
            dim = int(np.prod(shape[1:], dtype=np.int64))
        if self.top_k > dim:
            raise self.error(f"argmax_param.top_k {self.top_k} is more than the {dim} values "
                             "it chooses from")

    def reshape(self, bottom, top):
        shape = list(bottom[0].shape)
        if self.axis is not None:
            shape[self.axis] = self.top_k
        else:
            shape = [shape[0], 2 if self.out_max_val else 1, self.top_k] + \
                [1] * (len(shape) - 3)
        top[0].reshape(shape)

    def _ranked(self, v):
        """Indices of the top_k largest entries along the last axis of `v`, largest first,
        ties to the larger index."""
        dim = v.shape[-1]
        order = np.argsort(-v[..., ::-1], axis=-1, kind="stable")[..., :self.top_k]
        return dim - 1 - order

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.axis is None:
            v = x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))
            idx = self._ranked(v)
            out = top[0].data.reshape(x.shape[0], 2 if self.out_max_val else 1, self.top_k)
            out[:, 0] = idx
            if self.out_max_val:
                out[:, 1] = np.take_along_axis(v, idx, axis=-1)
            return
        v = np.moveaxis(x, self.axis, -1)
        idx = self._ranked(v)
        res = np.take_along_axis(v, idx, axis=-1) if self.out_max_val else idx
        top[0].data[...] = np.moveaxis(res, -1, self.axis)
