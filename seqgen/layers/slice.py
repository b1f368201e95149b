"""`Slice`: cut the bottom along one axis into the tops, at slice_param.slice_point or
into equal parts when no points are given (slice_param.axis, or legacy slice_dim)."""
from ..registry import register
from .base import Layer


@register("Slice")
class SliceLayer(Layer):
    num_bottoms = 1

    def layer_setup(self, bottom, top):
        if not top:
            raise self.error("needs at least 1 top blob")
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("give either slice_param.axis or slice_dim, not both")

    def reshape(self, bottom, top):
        p = self.param.slice_param
        shape = bottom[0].shape
        ndim = len(shape)
        if p.HasField("slice_dim"):
            axis = int(p.slice_dim)  # legacy: non-negative only
            if axis >= ndim:
                raise self.error(f"slice_dim {axis} is out of range for a {ndim}-D bottom")
        else:
            if not -ndim <= p.axis < ndim:
                raise self.error(f"slice_param.axis {p.axis} is out of range for a "
                                 f"{ndim}-D bottom")
            axis = p.axis % ndim
        dim = shape[axis]
        points = [int(q) for q in p.slice_point]
        if points:
            if len(points) != len(top) - 1:
                raise self.error(f"{len(points)} slice_point(s) for {len(top)} tops "
                                 f"(need {len(top) - 1})")
            bounds = [0] + points + [dim]
            if any(b <= a for a, b in zip(bounds[:-2], bounds[1:-1])) or points[-1] > dim:
                raise self.error(f"slice_point {points} must increase strictly, start above 0 "
                                 f"and not exceed the axis size {dim}")
            sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        else:
            if dim % len(top):
                raise self.error(f"{len(top)} tops do not divide slice axis {axis} of size "
                                 f"{dim} evenly; give slice_point")
            sizes = [dim // len(top)] * len(top)
        self.axis, self.sizes = axis, sizes
        for t, n in zip(top, sizes):
            t.reshape(shape[:axis] + (n,) + shape[axis + 1:])

    def forward(self, bottom, top):
        x = bottom[0].data
        lead = (slice(None),) * self.axis
        start = 0
        for t, n in zip(top, self.sizes):
            t.data[...] = x[lead + (slice(start, start + n),)]
            start += n

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        lead = (slice(None),) * self.axis
        start = 0
        for t, n in zip(top, self.sizes):
            dx[lead + (slice(start, start + n),)] = t.diff
            start += n
