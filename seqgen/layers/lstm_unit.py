"""`LSTMUnit`: one step of BVLC's LSTM cell, the layer its `LSTM` unrolls into.

Bottoms c_prev (1, N, H), gate inputs x (1, N, 4H) in the order i, f, o, g, and cont
(1, N); tops c and h (1, N, H). As lstm_unit_layer.cpp: i, f, o = sigmoid, g = tanh,
f is multiplied by cont (0 where cont == 0: a new sequence forgets c_prev), c = f c_prev
+ i g, h = o tanh(c). Backward is Caffe's, including its forget-gate term c_prev f (1 - f)
with f already scaled by cont (exact for cont in {0, 1}, the values BVLC uses); cont takes
no gradient.
"""
import numpy as np

from ..registry import register
from .base import Layer


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@register("LSTMUnit")
class LSTMUnitLayer(Layer):
    num_bottoms = 3
    num_tops = 2
    no_grad_bottoms = (2,)
    bottom_roles = {2: "cont"}
    in_place = False

    def reshape(self, bottom, top):
        c_prev, x, cont = bottom
        n = c_prev.shape[1] if c_prev.data.ndim == 3 else None
        for i, (blob, ndim) in enumerate(zip(bottom, (3, 3, 2))):
            if blob.data.ndim != ndim or blob.shape[0] != 1 or blob.shape[1] != n:
                raise self.error(f"bottom '{self.bottom_name(i)}' {blob.shape} must be "
                                 f"{ndim}-D with shape (1, N{', ...' if ndim == 3 else ''}) "
                                 f"and the N of bottom '{self.bottom_name(0)}' ({n})")
        self.H = c_prev.shape[2]
        if x.shape[2] != 4 * self.H:
            raise self.error(f"bottom '{self.bottom_name(1)}' {x.shape} must hold 4 x "
                             f"{self.H} gate inputs (i, f, o, g) per item")
        top[0].reshape(c_prev.shape)
        top[1].reshape(c_prev.shape)

    def _gates(self, bottom):
        """i, f (times cont), o, g in float64, each (N, H)."""
        H = self.H
        x = bottom[1].data[0].astype(np.float64)
        cont = bottom[2].data[0].astype(np.float64)[:, None]
        i = _sigmoid(x[:, :H])
        f = np.where(cont == 0, 0.0, cont * _sigmoid(x[:, H:2 * H]))
        o = _sigmoid(x[:, 2 * H:3 * H])
        g = np.tanh(x[:, 3 * H:])
        return i, f, o, g

    def forward(self, bottom, top):
        i, f, o, g = self._gates(bottom)
        c = f * bottom[0].data[0] + i * g
        top[0].data[0] = c
        top[1].data[0] = o * np.tanh(c.astype(top[0].data.dtype))

    def backward(self, top, propagate_down, bottom):
        if not (propagate_down[0] or propagate_down[1]):
            return
        H = self.H
        i, f, o, g = self._gates(bottom)
        c_prev = bottom[0].data[0].astype(np.float64)
        tanh_c = np.tanh(top[0].data[0].astype(np.float64))
        dc, dh = top[0].diff[0], top[1].diff[0]
        dct = dc + dh * o * (1 - tanh_c * tanh_c)
        if propagate_down[0]:
            bottom[0].diff[0] = dct * f
        if propagate_down[1]:
            dx = bottom[1].diff[0]
            dx[:, :H] = dct * g * i * (1 - i)
            dx[:, H:2 * H] = dct * c_prev * f * (1 - f)
            dx[:, 2 * H:3 * H] = dh * tanh_c * o * (1 - o)
            dx[:, 3 * H:] = dct * i * (1 - g * g)
