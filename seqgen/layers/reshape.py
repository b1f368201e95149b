"""`Reshape`: a new shape for the same values. reshape_param.shape replaces the bottom axes
[axis, axis + num_axes); a 0 copies the bottom dimension at that position, one -1 is
inferred from the count.

Caffe shares the arrays between bottom and top; here forward/backward copy (cheap), so the
top stays valid however other layers treat their arrays. In place is refused, as in Caffe.
"""
from ..registry import register
from .base import Layer, shape_count


@register("Reshape")
class ReshapeLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    in_place = False

    def layer_setup(self, bottom, top):
        dims = [int(d) for d in self.param.reshape_param.shape.dim]
        if sum(d == -1 for d in dims) > 1:
            raise self.error(f"reshape_param.shape {dims} has more than one -1")
        if any(d < -1 for d in dims):
            raise self.error(f"reshape_param.shape {dims} has a dimension below -1")
        self.dims = dims

    def reshape(self, bottom, top):
        p = self.param.reshape_param
        shape = bottom[0].shape
        ndim = len(shape)
        # a negative axis counts from the end with -1 = after the last axis
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"reshape_param.axis {p.axis} is out of range for a {ndim}-D "
                             "bottom")
        if p.num_axes < -1:
            raise self.error("reshape_param.num_axes must be >= 0, or -1 for all")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise self.error(f"reshape_param.axis + num_axes = {end} is beyond the {ndim} "
                             "axes of the bottom")
        new = list(self.dims)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= ndim:
                    raise self.error(f"reshape_param.shape has a 0 at position {i}, but "
                                     "there is no bottom axis there to copy")
                new[i] = shape[start + i]
        out = list(shape[:start]) + new + list(shape[end:])
        count = shape_count(shape)  # exact integers: np.prod would overflow on huge dims
        if -1 in new:
            known = shape_count(d for d in out if d != -1)
            if known == 0 or count % known:
                raise self.error(f"cannot infer the -1 in {self.dims}: bottom count {count} is "
                                 f"not divisible by the other dimensions' product {known}")
            out[start + new.index(-1)] = count // known
        if shape_count(out) != count:
            raise self.error(f"shape {tuple(out)} has {shape_count(out)} elements but "
                             f"bottom {shape} has {count}")
        top[0].reshape(self.check_size(out, f"top '{self.top_name(0)}'"))

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)
