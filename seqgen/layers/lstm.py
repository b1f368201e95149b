"""`Lstm`: the caffe-lstm fork's LSTM layer (lstm_param), with a correct gradient by default.

Bottoms: x (T*N, I...) and an optional clip (T*N) marker; top: h (T*N, H); row t*N + n.
Blobs [W_x (4H, I), W_h (4H, H), b (4H)], gates i, f, o, g. With a clip bottom the final
h/c of one forward call is the start of the next (the fork's truncated BPTT).
The fork's CPU layer mis-indexes clip and mixes streams when batch_size > 1, and its dW_h
adds terms for steps that do not continue; seqgen computes the exact gradient unless the
net is built with options {"fork_compat": True}, which reproduces that dW_h term (N = 1).
"""
from collections.abc import Mapping

import numpy as np

from ..kernels.lstm import (lstm_backward, lstm_backward_parallel, lstm_forward,
                            lstm_forward_parallel, param_gradients)
from ..registry import register
from ..threads import stream_parts
from .base import Layer

def _shapes(bottom, top):
    return tuple(b.data.shape for b in bottom), tuple(t.data.shape for t in top)


def _check_shapes(layer, bottom, top, backward=False):
    """The jitted kernels do not check bounds: refuse blobs whose shapes changed since
    `reshape` validated them (a caller that skipped reshape), instead of letting a kernel
    read or write past an array's end."""
    if getattr(layer, "_shapes", None) is None:
        raise layer.error("forward/backward before reshape (call setup and reshape first)")
    if _shapes(bottom, top) != layer._shapes:
        (want_b, want_t), (got_b, got_t) = layer._shapes, _shapes(bottom, top)
        raise layer.error(f"the blobs changed shape since reshape (bottoms {list(want_b)} -> "
                          f"{list(got_b)}, tops {list(want_t)} -> {list(got_t)}); call reshape "
                          "after changing an input's shape")
    if backward:
        for what, blobs in (("top", top), ("bottom", bottom)):
            for i, blob in enumerate(blobs):
                if blob.diff.shape != blob.data.shape:
                    raise layer.error(f"{what} {i} has a diff of shape {blob.diff.shape} for "
                                      f"data of shape {blob.data.shape}")


@register("Lstm")
class LstmLayer(Layer):
    num_bottoms = (1, 2)
    num_tops = 1
    no_grad_bottoms = (1,)
    bottom_roles = {1: "cont"}

    def setup(self, bottom, top):
        self.check_counts(bottom, top)
        p = self.param.lstm_param
        self.H = int(p.num_output)
        self.N = int(p.batch_size)
        self.threshold = float(p.clipping_threshold)
        if self.H <= 0:
            raise self.error("lstm_param.num_output must be > 0")
        if self.N <= 0:
            raise self.error("lstm_param.batch_size must be > 0")
        self.fork_dwh = bool(self.options.get("fork_compat"))
        if self.fork_dwh and self.N != 1:
            raise self.error(
                f"the fork-compatible gradient is only defined for batch_size 1 (this layer has "
                f"batch_size {self.N}); the fork's CPU layer is wrong for several streams")
        if top[0] in bottom:
            raise self.error("Lstm cannot work in place (give the top another name than the "
                             "bottoms)")
        x = bottom[0]
        if x.data.ndim < 1 or x.count == 0:
            raise self.error(f"bottom '{self.bottom_name(0)}' is empty (shape {x.shape})")
        if x.num % self.N:
            raise self.error(f"bottom '{self.bottom_name(0)}' has {x.num} rows, not a multiple "
                             f"of batch_size {self.N}")
        I = x.count // x.num
        H = self.H
        self.check_size((self.N, 4 * H), "the recurrent state (batch_size, 4 num_output)")
        self.blobs = [self.new_param((4 * H, I), p.weight_filler, "W_x"),
                      self.new_param((4 * H, H), p.weight_filler, "W_h"),
                      self.new_param((4 * H,), p.bias_filler, "b")]
        self.reset_state()

    def reshape(self, bottom, top):
        x = bottom[0]
        R = x.num
        N, H = self.N, self.H
        if x.count == 0:
            raise self.error(f"bottom '{self.bottom_name(0)}' is empty (shape {x.shape})")
        I = x.count // R
        if I != self.blobs[0].shape[1]:
            raise self.error(f"bottom '{self.bottom_name(0)}' has {I} values per row, "
                             f"but W_x expects {self.blobs[0].shape[1]}")
        if R % N:
            raise self.error(f"bottom '{self.bottom_name(0)}' has {R} rows, not a multiple "
                             f"of batch_size {N}")
        if len(bottom) > 1 and bottom[1].count != R:
            raise self.error(f"clip bottom '{self.bottom_name(1)}' has {bottom[1].count} "
                             f"values, but '{self.bottom_name(0)}' has {R} rows (one marker "
                             "per row is needed)")
        T = R // N
        self.check_size((T, N, 4 * H), "the gate buffer (T, batch_size, 4 num_output)")
        if getattr(self, "_T", None) != T:
            self._T = T
            self._h = np.zeros((T + 1, N, H), np.float32)  # row 0: the initial state
            self._c = np.zeros((T + 1, N, H), np.float32)
            self._gates = np.zeros((T, N, 4 * H), np.float32)
            self._tanh_c = np.zeros((T, N, H), np.float32)
            self._dpre = np.zeros((T, N, 4 * H), np.float32)
            self._cont = np.ones((T, N), np.float32)
            self._cont[0] = 0
            self._bias = np.zeros((N, 4 * H), np.float32)
            self._scratch = np.zeros((2, N, H), np.float32)
            self._nparts = self._parts()
        # the top is a view of the state buffer's rows 1..T: no copy after forward
        top[0].reshape(R, H)
        top[0].data = self._h[1:].reshape(R, H)
        self._shapes = _shapes(bottom, top)

    # -- recurrent state ---------------------------------------------------------------
    def reset_state(self):
        self.h_T = np.zeros((self.N, self.H), np.float32)
        self.c_T = np.zeros((self.N, self.H), np.float32)

    def get_state(self):
        return {"h": self.h_T.copy(), "c": self.c_T.copy()}

    def set_state(self, state):
        if state is None:
            self.reset_state()
            return
        if not isinstance(state, Mapping) or any(k not in state for k in ("h", "c")):
            raise self.error("state must be a mapping with keys 'h' and 'c', as get_state() "
                             "returns")
        for key in ("h", "c"):
            try:
                value = np.asarray(state[key], np.float32)
            except (TypeError, ValueError) as e:
                raise self.error(f"state '{key}' is not an array of numbers ({e})") from None
            if value.shape != (self.N, self.H):
                raise self.error(f"state '{key}' must have shape {(self.N, self.H)}, "
                                 f"got {value.shape}")
        self.h_T = np.array(state["h"], np.float32)
        self.c_T = np.array(state["c"], np.float32)

    def set_forget_bias(self, value):
        """What the fork's driver does after building the net: b[H:2H] = value."""
        self.blobs[2].data[self.H:2 * self.H] = value
        return True

    def lstm_weights(self):
        """(W_x (4H, I), W_h (4H, H), b (4H)) for compiled generation of LSTM stacks."""
        return tuple(blob.data for blob in self.blobs)

    # -- compute -------------------------------------------------------------------------
    def _parts(self):
        return stream_parts(self.N)

    def forward(self, bottom, top):
        _check_shapes(self, bottom, top)
        T, N = self._T, self.N
        W_x, W_h, b = (blob.data for blob in self.blobs)
        x = bottom[0].data.reshape(T, N, -1)
        if len(bottom) > 1:
            # "continues" = nonzero marker (the fork tests it as a bool, not a multiplier)
            np.not_equal(bottom[1].data.reshape(T, N), 0, out=self._cont)
            self._h[0], self._c[0] = self.h_T, self.c_T
        else:
            self._h[0] = self._c[0] = 0
        self._W_xT = W_x.T.copy()
        self._W_hT = W_h.T.copy()
        self._bias[...] = b
        args = (x, self._W_xT, self._bias, self._W_hT, self._cont, self._h, self._c,
                self._gates, self._tanh_c)
        parts = self._nparts
        if parts > 1:
            lstm_forward_parallel(*args, parts)
        else:
            lstm_forward(*args)
        self.h_T = self._h[T]  # views: row 0 is refilled from them before the next call
        self.c_T = self._c[T]

    def backward(self, top, propagate_down, bottom):
        _check_shapes(self, bottom, top, backward=True)
        T, N, H = self._T, self.N, self.H
        x = bottom[0].data.reshape(T, N, -1)
        dh, dc = self._scratch
        self._scratch.fill(0)  # no gradient arrives on the final state (it only feeds the next call)
        args = (top[0].diff.reshape(T, N, H), self._W_hT, self._cont, self._c, self._gates,
                self._tanh_c, np.float32(self.threshold), self._dpre, dh, dc)
        if self._nparts > 1:
            lstm_backward_parallel(*args, self._nparts)
        else:
            lstm_backward(*args)
        dW_x, dbias, dW_h = param_gradients(self._dpre, x, self._h, self._cont, self.fork_dwh)
        self.blobs[0].diff += dW_x
        self.blobs[1].diff += dW_h
        self.blobs[2].diff += dbias.sum(axis=0)
        if propagate_down[0]:
            np.matmul(self._dpre.reshape(T * N, 4 * H), self.blobs[0].data,
                      out=bottom[0].diff.reshape(T * N, -1))
