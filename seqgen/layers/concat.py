"""`Concat`: join the bottoms along one axis (concat_param.axis, or legacy concat_dim)."""
import numpy as np

from ..registry import register
from .base import Layer


@register("Concat")
class ConcatLayer(Layer):
    num_tops = 1

    def layer_setup(self, bottom, top):
        if not bottom:
            raise self.error("needs at least 1 bottom blob")
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("give either concat_param.axis or concat_dim, not both")

    def _name(self, i):
        return self.param.bottom[i] if i < len(self.param.bottom) else str(i)

    def reshape(self, bottom, top):
        p = self.param.concat_param
        ndim = bottom[0].data.ndim
        if p.HasField("concat_dim"):
            axis = int(p.concat_dim)  # legacy: non-negative only
            if axis >= ndim:
                raise self.error(f"concat_dim {axis} is out of range for a {ndim}-D bottom")
        else:
            if not -ndim <= p.axis < ndim:
                raise self.error(f"concat_param.axis {p.axis} is out of range for a "
                                 f"{ndim}-D bottom")
            axis = p.axis % ndim
        s0 = bottom[0].shape
        for i, b in enumerate(bottom[1:], 1):
            s = b.shape
            if len(s) != ndim or s[:axis] != s0[:axis] or s[axis + 1:] != s0[axis + 1:]:
                raise self.error(f"bottom '{self._name(i)}' {s} does not match bottom "
                                 f"'{self._name(0)}' {s0} outside concat axis {axis}")
        self.axis = axis
        self.sizes = [b.shape[axis] for b in bottom]
        top[0].reshape(s0[:axis] + (sum(self.sizes),) + s0[axis + 1:])

    def forward(self, bottom, top):
        np.concatenate([b.data for b in bottom], axis=self.axis, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        lead = (slice(None),) * self.axis
        start = 0
        for b, n, prop in zip(bottom, self.sizes, propagate_down):
            if prop:
                b.diff[...] = dy[lead + (slice(start, start + n),)]
            start += n
