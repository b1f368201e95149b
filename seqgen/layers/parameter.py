"""`Parameter`: no bottoms; its one top is its learnable blob (parameter_param.shape).

As parameter_layer.hpp, the top shares the blob's data and diff, so layers above write the
parameter's gradient directly, and the blob starts at zeros (weights come from a
.caffemodel or a script). Forward shares again each call, since the solver may move the
blob's arrays (Net.pack_params).
"""
from ..blob import Blob
from ..registry import register
from .base import Layer


@register("Parameter")
class ParameterLayer(Layer):
    num_bottoms = 0
    num_tops = 1
    param_names = ("value",)

    def layer_setup(self, bottom, top):
        shape = self.check_size(tuple(self.param.parameter_param.shape.dim),
                                "parameter_param.shape")
        self.blobs = [Blob(shape)]
        top[0].reshape(shape)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        top[0].share_data(self.blobs[0])
