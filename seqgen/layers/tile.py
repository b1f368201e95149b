"""`Tile`: repeat the bottom `tiles` times along `axis` (tile_param); each block of the
axes from `axis` on is copied whole, so [a, b] tiled twice is [a, b, a, b].

Backward sums the copies' gradients (tile_layer.cpp).
"""
from ..registry import register
from .base import Layer, shape_count
from .softmax import canonical_axis


@register("Tile")
class TileLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    in_place = False

    def layer_setup(self, bottom, top):
        p = self.param.tile_param
        if not p.HasField("tiles"):
            raise self.error("tile_param.tiles must be given")
        if p.tiles <= 0:
            raise self.error(f"tile_param.tiles {p.tiles} must be > 0")
        self.tiles = int(p.tiles)

    def reshape(self, bottom, top):
        shape = list(bottom[0].shape)
        self.axis = canonical_axis(self, self.param.tile_param.axis, len(shape),
                                   "tile_param.axis")
        self.outer = shape_count(shape[:self.axis])
        self.inner = shape_count(shape[self.axis:])
        shape[self.axis] *= self.tiles
        top[0].reshape(self.check_size(shape, f"top '{self.top_name(0)}'"))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer, 1, self.inner)
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = x

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
            bottom[0].diff.reshape(self.outer, self.inner)[...] = dy.sum(axis=1)
