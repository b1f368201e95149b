"""`BatchNorm`: (x - mean) / sqrt(var + eps) per channel (axis 1), over the first axis and
every axis after the channel; no scale or shift (Caffe puts a Scale layer after it).

Three blobs, as Caffe's BatchNormLayer: the running sums of the mean and the variance and
their scale factor s; the statistics are mean / s and variance / s (0 when s is 0). With
batch statistics (the default in TRAIN; use_global_stats in batch_norm_param overrides),
each forward updates them: s = s * f + 1, mean = batch mean + f * mean, variance =
m / (m - 1) * batch variance + f * variance, with f = moving_average_fraction and m the
values per channel. The blobs are never learned: their lr_mult is 0 (added when the
prototxt gives no param spec; any other lr_mult is refused, as Caffe does), and backward
gives them no gradient.
"""
import numpy as np

from ..proto import caffe_pb2
from ..registry import register
from .base import Layer


@register("BatchNorm")
class BatchNormLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    param_names = ("mean", "variance", "scale_factor")

    def layer_setup(self, bottom, top):
        p = self.param.batch_norm_param
        self.fraction = float(p.moving_average_fraction)
        self.global_stats = p.use_global_stats if p.HasField("use_global_stats") \
            else self.phase == caffe_pb2.TEST
        self.eps = float(p.eps)
        shape = bottom[0].shape
        if not shape:
            raise self.error(f"bottom '{self.bottom_name(0)}' is a scalar; BatchNorm needs "
                             "(N, C, ...)")
        self.channels = 1 if len(shape) == 1 else shape[1]
        zero = caffe_pb2.FillerParameter(type="constant", value=0)
        self.blobs = [self.new_param((self.channels,), zero, "mean"),
                      self.new_param((self.channels,), zero, "variance"),
                      self.new_param((1,), zero, "scale_factor")]
        # Caffe masks the statistics from the solver with lr_mult 0 (batch_norm_layer.cpp)
        for i in range(len(self.blobs)):
            if len(self.param.param) == i:
                self.param.param.add().lr_mult = 0
            elif self.param.param[i].lr_mult != 0:
                raise self.error(f"param {i} has lr_mult {self.param.param[i].lr_mult:g}; "
                                 "BatchNorm's statistics are not learned (give lr_mult: 0 or "
                                 "no param spec)")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) > 1 and shape[1] != self.channels:
            raise self.error(f"bottom '{self.bottom_name(0)}' has shape {shape}; its axis 1 "
                             f"must stay {self.channels} (the channels)")
        if top[0] is not bottom[0]:
            top[0].reshape(shape)

    def _view(self, a):
        """(N, C, spatial) view of an array of the bottom's shape."""
        return a.reshape(a.shape[0], self.channels, -1)

    def forward(self, bottom, top):
        x = self._view(bottom[0].data)
        t = x.dtype.type
        mean_sum, var_sum, factor = (b.data for b in self.blobs)
        if self.global_stats:
            s = t(0) if factor[0] == 0 else t(1) / factor[0]
            mean, var = s * mean_sum, s * var_sum
        else:
            mean = x.mean(axis=(0, 2), dtype=x.dtype)
        centered = x - mean[None, :, None]
        if not self.global_stats:
            var = (centered * centered).mean(axis=(0, 2), dtype=x.dtype)
            f = t(self.fraction)
            factor *= f
            factor += 1
            mean_sum[...] = mean + f * mean_sum
            m = x.size // self.channels
            correction = t(m) / t(m - 1) if m > 1 else t(1)
            var_sum[...] = correction * var + f * var_sum
        self.std = np.sqrt(var + t(self.eps))
        self.x_norm = centered / self.std[None, :, None]
        top[0].data[...] = self.x_norm.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._view(top[0].diff).copy()  # in place, the bottom diff is the same array
        std = self.std[None, :, None]
        if self.global_stats:
            bottom[0].diff[...] = (dy / std).reshape(bottom[0].shape)
            return
        y = self.x_norm
        mean_dy = dy.mean(axis=(0, 2), keepdims=True)
        mean_dy_y = (dy * y).mean(axis=(0, 2), keepdims=True)
        bottom[0].diff[...] = ((dy - mean_dy - y * mean_dy_y) / std).reshape(bottom[0].shape)
