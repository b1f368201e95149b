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

from ..kernels.fork_lstm import (
    lanes,
    lstm_backward,
    lstm_backward_parallel,
    lstm_forward,
    lstm_forward_parallel,
)
from ..registry import register
from ..threads import stream_parts
from .base import Layer


@register("Lstm")
class ForkLstmLayer(Layer):
    num_bottoms = (1, 2)
    num_tops = 1
    in_place = False
    in_place_advice = "give the top another name than the bottoms"
    param_names = ("W_x", "W_h", "b")
    no_grad_bottoms = (1,)
    bottom_roles = {1: "cont"}
    reads_options = ("fork_compat",)

    def layer_setup(self, bottom, top):
        p = self.param.lstm_param
        self.H = int(p.num_output)
        self.N = int(p.batch_size)
        self.threshold = float(p.clipping_threshold)
        self._threshold = np.float32(self.threshold)
        if self.H <= 0:
            raise self.error("lstm_param.num_output must be > 0")
        if self.N <= 0:
            raise self.error("lstm_param.batch_size must be > 0")
        self.fork_dwh = bool(self.options.get("fork_compat"))
        if self.fork_dwh and self.N != 1:
            raise self.error(
                f"the fork-compatible gradient is only defined for batch_size 1 (this layer has "
                f"batch_size {self.N}); the fork's CPU layer is wrong for several streams")
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
            self._allocate(T, N, H, I)
        top[0].reshape(R, H)
        self.record_shapes(bottom, top)

    def _allocate(self, T, N, H, I):
        """The kernels' buffers (kernels.fork_lstm: gate blocks padded to Hp entries)."""
        Hp = lanes(H)
        G, Gp, R = 4 * H, 4 * Hp, T * N
        f32 = np.float32
        self._T = T
        self._hp = np.zeros((T + 1, N, Hp), f32)  # row 0: the initial state
        self._cp = np.zeros((T + 1, N, Hp), f32)
        self._gp = np.zeros((T, N, Gp), f32)
        self._tanh_c = np.zeros((T, N, Hp), f32)
        self._dpre_step = np.zeros((N, Gp), f32)  # one step's gate gradients (scratch)
        self._cont = np.ones((T, N), f32)
        self._W_xT = np.zeros((I, Gp), f32)
        self._W_hT = np.zeros((H, Gp), f32)
        self._bias = np.zeros((N, Gp), f32)
        self._dh = np.zeros((N, Hp), f32)
        self._dc = np.zeros((N, Hp), f32)
        self._dpre = np.zeros((T, N, G), f32)  # compact, for dx (float32, as Caffe)
        self._dpre2 = self._dpre.reshape(R, G)
        self._rhs = np.zeros((R, I + H + 1), np.float64)  # [x_t, h_{t-1}, 1] per row
        self._nparts = self._parts()
        self._ring = np.zeros((self._nparts, 4, Gp), np.float64)
        self._acc = np.zeros((self._nparts, I + H + 1, Gp), np.float64)
        self._no_clip = np.zeros(1, f32)
        self._h_end = np.zeros((N, H), f32)
        self._c_end = np.zeros((N, H), f32)

    # the unpadded views of the kernels' buffers (for tests and inspection; copies)
    @property
    def _gates(self):
        return self._unpad(self._gp)

    @property
    def _c(self):
        return np.ascontiguousarray(self._cp[:, :, :self.H])

    @property
    def _h(self):
        return np.ascontiguousarray(self._hp[:, :, :self.H])

    def _unpad(self, a):
        H, Hp = self.H, a.shape[-1] // 4
        return np.concatenate([a[..., q * Hp:q * Hp + H] for q in range(4)], axis=-1)

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

    def lstm_weights(self, static=None):
        """(W_x (4H, I), W_h (4H, H), b (4H)) for compiled generation of LSTM stacks (the
        fork's layer has no static input)."""
        return tuple(blob.data for blob in self.blobs) if static is None else None

    # -- compute -------------------------------------------------------------------------
    def _parts(self):
        return stream_parts(self.N)

    def forward(self, bottom, top):
        self.check_shapes(bottom, top)
        T, N = self._T, self.N
        W_x, W_h, b = self.blobs
        has_clip = len(bottom) > 1
        args = (bottom[0].data.reshape(T, N, -1),
                bottom[1].data.reshape(-1) if has_clip else self._no_clip, has_clip,
                self.h_T, self.c_T, W_x.data, W_h.data, b.data, self._W_xT, self._W_hT,
                self._bias, self._cont, self._hp, self._cp, self._gp, self._tanh_c,
                top[0].data.reshape(T, N, self.H), self._h_end, self._c_end)
        if self._nparts > 1:
            lstm_forward_parallel(*args, self._nparts)
        else:
            lstm_forward(*args)
        # the final state (the next call's initial state; get_state copies it)
        self.h_T, self.c_T = self._h_end, self._c_end

    def backward(self, top, propagate_down, bottom):
        self.check_shapes(bottom, top, backward=True)
        T, N, H = self._T, self.N, self.H
        W_x, W_h, b = self.blobs
        dh, dc, d32 = self._dh, self._dc, self._dpre2
        dh.fill(0)  # no gradient arrives on the final state (it only feeds the next call)
        dc.fill(0)
        dx = bool(propagate_down[0])
        args = (top[0].diff.reshape(T, N, H), self._W_hT, self._cont, self._cp, self._gp,
                self._tanh_c, self._threshold, self._dpre_step, dh, dc,
                bottom[0].data.reshape(T, N, -1), self._hp, self.fork_dwh, self._rhs,
                self._ring, self._acc, W_x.diff, W_h.diff, b.diff, d32, dx)
        if self._nparts > 1:
            lstm_backward_parallel(*args)
        else:
            lstm_backward(*args)
        if dx:
            np.matmul(d32, W_x.data, out=bottom[0].diff.reshape(T * N, -1))
