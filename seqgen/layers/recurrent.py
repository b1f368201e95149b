"""`LSTM` and `RNN`: BVLC Caffe's recurrent layers (recurrent_param), computed by the numba
kernels instead of Caffe's internal unrolled net.

Bottoms: x (T, N, ...; axes 2 and later are flattened to I inputs), cont (T, N), an optional
x_static (N, ...; flattened from axis 1 to S inputs), then with expose_hidden the initial
states h_0 (1, N, H) [and c_0 for the LSTM]. A static input is present when there are more
bottoms than 2 + the number of exposed states. Tops: h (LSTM) or o (RNN), (T, N, H); with
expose_hidden also h_T [and c_T], (1, N, H).

Parameter blobs, in BVLC's order (the .caffemodel, solverstate and `param {}` order):
  LSTM: W_xc (4H, I), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H); gates i, f, o, g
  RNN:  W_xh (H, I), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H)
weight_filler fills every matrix and bias_filler every bias (both default to constant 0).

Equations (cont_t multiplies the previous state; the static term has no bias, is added at
every step and is not masked by cont):
  LSTM: G = W_xc x_t + b_c + W_xc_static x_static + W_hc (cont_t h_{t-1});
        f = 0 where cont_t == 0, else cont_t * sigmoid(G_f);  c_t = f c_{t-1} + i g;
        h_t = o tanh(c_t)
  RNN:  h_t = tanh(W_xh x_t + b_h + W_xh_static x_static + W_hh (cont_t h_{t-1}));
        o_t = tanh(W_ho h_t + b_o)

Hidden state between calls: without expose_hidden, each forward call starts from the
final h_T [c_T] of the previous call (zeros for a fresh layer), multiplied by cont[0] like
any other step, and backward stops at the start of the call (truncated BPTT). With
expose_hidden, the initial state comes from the h_0/c_0 bottoms on every call and nothing
is carried. `reset_state`/`get_state`/`set_state` read and write the carried state
({"h": (N, H)[, "c": (N, H)]}) for step-at-a-time use.

Where seqgen deliberately differs from BVLC (BVLC commit 9b891540):
- T and N may change from one call to the next (BVLC fixes T at setup). When N changes, the
  carried state no longer fits and is reset to zeros.
- With expose_hidden, gradients flow into the h_0/c_0 bottoms and from diffs placed on the
  h_T/c_T tops. BVLC shares only the data of those blobs with its unrolled net, so it
  always leaves zero in the h_0/c_0 diffs and ignores h_T/c_T top diffs; with zero top
  diffs on h_T/c_T every other gradient here equals BVLC's.
- For cont values other than 0 and 1 the forward is BVLC's, but the gradient is the exact
  derivative. BVLC differentiates the forget gate as if the cont-scaled f were a plain
  sigmoid (f (1 - f) instead of cont s (1 - s)), which is off by about 1e-2 relative on its
  own test data; every gradient that passes through such a step differs accordingly.
No gradient is computed for cont (BVLC refuses to).
"""
from collections.abc import Mapping

import numpy as np

from ..kernels.bvlc_lstm import (
    lstm_backward,
    lstm_backward_parallel,
    lstm_forward,
    lstm_forward_parallel,
    param_gradients,
)
from ..kernels.bvlc_lstm_gemm import (
    lstm_backward_gemm,
    lstm_forward_gemm,
    lstm_param_gradients_gemm,
    lstm_recurrence_gemm,
    lstm_state_gradients_gemm,
    panel_buffer,
)
from ..kernels.bvlc_lstm_path import panels_for, parts_for, path_for
from ..kernels.rnn import rnn_backward, rnn_forward
from ..registry import register
from .base import Layer


def _flat(shape):
    return int(np.prod(shape, dtype=np.int64))


class _Recurrent(Layer):
    """What the LSTM and RNN share: bottoms and tops, parameters, the carried state."""

    no_grad_bottoms = (1,)
    bottom_roles = {1: "cont"}
    in_place = False
    in_place_advice = "give its tops other names than its bottoms"
    #: names of the recurrent states, in exposed bottom/top order
    STATES = ()
    #: name of the main top, for messages
    _main_top = "h"

    # -- setup ---------------------------------------------------------------------------
    def _param_specs(self, I, S):
        """[(name, shape, is_bias)] in BVLC's blob order."""
        raise NotImplementedError

    def check_counts(self, bottom, top):
        """The counts depend on expose_hidden (`num_bottoms`/`num_tops` are the bounds over
        both): bottoms x, cont, [x_static], then the exposed initial states; tops the
        output, then the exposed final states."""
        expose = bool(self.param.recurrent_param.expose_hidden)
        exposed = len(self.STATES) if expose else 0
        plain = 2 + exposed
        if len(bottom) not in (plain, plain + 1):
            states = "".join(f", {s}_0" for s in self.STATES) if expose else ""
            raise self.error(
                f"needs bottoms x, cont, [x_static]{states} ({plain} or {plain + 1} blobs"
                f"{' with expose_hidden' if expose else ''}), got {len(bottom)}")
        want_tops = 1 + exposed
        if len(top) != want_tops:
            names = ", ".join((self._main_top,) + tuple(f"{s}_T" for s in self.STATES[:exposed]))
            raise self.error(f"needs {want_tops} top blob(s) ({names}), got {len(top)}")

    def layer_setup(self, bottom, top):
        p = self.param.recurrent_param
        self.H = int(p.num_output)
        if self.H <= 0:
            raise self.error("recurrent_param.num_output must be > 0")
        self.expose = bool(p.expose_hidden)
        # (the counts are checked: x, cont, [x_static], then the exposed states)
        self.static = len(bottom) == 3 + (len(self.STATES) if self.expose else 0)
        self._first_state = 3 if self.static else 2  # index of h_0 among the bottoms
        if self.static:  # the sampler feeds x_static (--static); bottom 2 is h_0 without it
            self.bottom_roles = {1: "cont", 2: "static"}
        x = bottom[0]
        if x.data.ndim < 2:
            raise self.error(f"the x bottom must have at least 2 axes (T, N, ...), got "
                             f"shape {x.shape}")
        self.dtype = x.data.dtype if x.data.dtype in (np.float32, np.float64) else np.float32
        self.I = _flat(x.shape[2:])
        self.S = 0
        if self.static:
            xs = bottom[2]
            if xs.data.ndim < 1:
                raise self.error("the static bottom must have at least 1 axis (N, ...)")
            self.S = _flat(xs.shape[1:])
        specs = self._param_specs(self.I, self.S)
        self.blobs = [self.new_param(shape, p.bias_filler if is_bias else p.weight_filler,
                                     name, self.dtype) for name, shape, is_bias in specs]
        self.param_names = [name for name, _, _ in specs]
        self.N = int(x.shape[1])
        self._TN = None
        self.reset_state()

    def reshape(self, bottom, top):
        x = bottom[0]
        names = list(self.param.bottom) + [f"#{i}" for i in range(len(self.param.bottom),
                                                                  len(bottom))]
        if x.data.ndim < 2:
            raise self.error(f"bottom '{names[0]}' must have at least 2 axes (T, N, ...), "
                             f"got shape {x.shape}")
        T, N = int(x.shape[0]), int(x.shape[1])
        if T == 0 or N == 0:
            raise self.error(f"bottom '{names[0]}' is empty (shape {x.shape})")
        I = _flat(x.shape[2:])
        if I != self.I:
            raise self.error(f"bottom '{names[0]}' of shape {x.shape} has {I} inputs per "
                             f"step (axes 2 on), but the weights expect {self.I}")
        if tuple(bottom[1].shape) != (T, N):
            raise self.error(f"cont bottom '{names[1]}' must have shape (T, N) = {(T, N)}, "
                             f"got {bottom[1].shape}")
        if self.static:
            xs = bottom[2]
            if xs.data.ndim < 1 or xs.shape[0] != N or _flat(xs.shape[1:]) != self.S:
                raise self.error(f"static bottom '{names[2]}' must have N = {N} rows of "
                                 f"{self.S} values, got shape {xs.shape}")
        if self.expose:
            for k, state in enumerate(self.STATES):
                b = bottom[self._first_state + k]
                if tuple(b.shape) != (1, N, self.H):
                    raise self.error(f"initial state bottom '{names[self._first_state + k]}' "
                                     f"({state}_0) must have shape {(1, N, self.H)}, "
                                     f"got {b.shape}")
        self.check_size((T, N, self._gates_per_unit * self.H),
                        f"the gate buffer (T, N, {self._gates_per_unit} num_output)")
        if N != self.N:
            self.N = N
            self.reset_state()  # a carried state of another batch size cannot continue
        if self._TN != (T, N):
            self._TN = (T, N)
            self._T = T
            self._allocate(T, N)
        top[0].reshape(T, N, self.H)
        for t in top[1:]:
            t.reshape(1, N, self.H)
        self.record_shapes(bottom, top)

    def _allocate(self, T, N):
        raise NotImplementedError

    # -- recurrent state -----------------------------------------------------------------
    def reset_state(self):
        if self.expose:
            self._carry = None
            return
        self._carry = {s: np.zeros((self.N, self.H), self.dtype) for s in self.STATES}

    def get_state(self):
        if self._carry is None:
            return None
        return {s: v.copy() for s, v in self._carry.items()}

    def set_state(self, state):
        if state is None:
            self.reset_state()
            return
        if not isinstance(state, Mapping):
            raise self.error(f"state must be a mapping {{{', '.join(repr(s) for s in self.STATES)}"
                             f": array}}, as get_state() returns, not {type(state).__name__}")
        if self.expose:
            raise self.error("with expose_hidden the initial state comes from the "
                             f"{'/'.join(s + '_0' for s in self.STATES)} bottoms; there is no "
                             "carried state to set")
        new = {}
        for s in self.STATES:
            if s not in state:
                raise self.error(f"state needs key '{s}' (keys: {', '.join(self.STATES)})")
            try:
                value = np.asarray(state[s], self.dtype)
            except (TypeError, ValueError) as e:
                raise self.error(f"state '{s}' is not an array of numbers ({e})") from None
            if value.shape == (1, self.N, self.H):
                value = value[0]
            if value.shape != (self.N, self.H):
                raise self.error(f"state '{s}' must have shape {(self.N, self.H)}, "
                                 f"got {value.shape}")
            new[s] = np.array(value, self.dtype)
        self._carry = new

    def _initial_state(self, bottom, k, buffer):
        """Row 0 of a (T+1, N, H) state buffer: exposed bottom k or the carried state."""
        if self.expose:
            buffer[0] = bottom[self._first_state + k].data.reshape(self.N, self.H)
        else:
            buffer[0] = self._carry[self.STATES[k]]

    def _static_bias(self, bottom, bias, b, W_s):
        """bias (N, out) = b + W_s x_static (the same at every step)."""
        bias[...] = b
        if self.static:
            bias += bottom[2].data.reshape(self.N, self.S) @ W_s.T

    def _static_backward(self, bottom, propagate_down, dbias, W_s, dW_s):
        """Gradients of the static term from the per-stream bias gradient dbias (N, out)."""
        if not self.static:
            return
        xs = bottom[2].data.reshape(self.N, self.S)
        dW_s += dbias.T @ xs
        if propagate_down[2]:
            bottom[2].diff.reshape(self.N, self.S)[...] = dbias @ W_s


@register("LSTM")
class LSTMLayer(_Recurrent):
    """BVLC's LSTM (see the module docstring)."""

    num_bottoms = (2, 5)
    num_tops = (1, 3)
    STATES = ("h", "c")
    _gates_per_unit = 4

    def _param_specs(self, I, S):
        G, H = 4 * self.H, self.H
        specs = [("W_xc", (G, I), False), ("b_c", (G,), True)]
        if self.static:
            specs.append(("W_xc_static", (G, S), False))
        specs.append(("W_hc", (G, H), False))
        return specs

    def _weights(self):
        """(W_xc, b_c, W_xc_static or None, W_hc) data arrays."""
        d = [blob.data for blob in self.blobs]
        return (d[0], d[1], d[2], d[3]) if self.static else (d[0], d[1], None, d[2])

    def set_forget_bias(self, value):
        """b_c[H:2H] = value: the forget-gate bias, as the fork's driver sets it."""
        self.blobs[1].data[self.H:2 * self.H] = value
        return True

    def lstm_weights(self, static=None):
        """(W_x (4H, I), W_h (4H, H), b (4H)) for compiled generation of LSTM stacks; None
        with exposed states, which the compiled generator lacks (the step loop runs such
        nets). With a static input, given its values (S,), b holds b + W_xc_static x_static
        (computed as forward's _static_bias does), the term Caffe adds at every step."""
        if self.expose or self.static != (static is not None):
            return None
        W_x, b, W_s, W_h = self._weights()
        if self.static:
            b = (b + np.asarray(static, b.dtype).reshape(1, self.S) @ W_s.T).reshape(-1)
        return W_x, W_h, b

    def exchange_gate_gradients(self, spare):
        """Take `spare` (or a new buffer, if it does not fit) for the next backward's gate
        gradients and return the buffer the last backward filled: a fused Embed keeps it for
        the diff it forms when read (seqgen/fusion.py), instead of copying 4H floats a token."""
        if spare is None or spare.shape != self._dpre.shape or spare.dtype != self._dpre.dtype:
            # zeros, not empty: the backward kernels take their typed zero from dpre[0, 0, 0]
            # (kernels.bvlc_lstm.step_gradients), so a NaN left in new memory made every
            # gate gradient NaN
            spare = np.zeros_like(self._dpre)
        filled, self._dpre = self._dpre, spare
        return filled

    def _parts(self):
        """Stream groups to run on separate threads (`kernels.bvlc_lstm_path.parts_for`)."""
        return parts_for(self.path, self.N, self.H, self._TN[0])

    def _panels(self, parts, backward):
        """The buffer the GEMM path packs W_h into for its step products (empty: BLAS),
        allocated once per shape."""
        T, N = self._TN
        use = panels_for(T, -(-N // parts), backward)  # the largest group's rows
        if (backward, use) not in self._panel_buffers:
            self._panel_buffers[backward, use] = panel_buffer(self.H, self.dtype, backward, use)
        return self._panel_buffers[backward, use]

    def _allocate(self, T, N):
        H, G, dt = self.H, 4 * self.H, self.dtype
        self.path = path_for(N, H)
        self._h = np.zeros((T + 1, N, H), dt)  # row 0: the initial state
        self._c = np.zeros((T + 1, N, H), dt)
        self._gates = np.zeros((T, N, G), dt)
        self._tanh_c = np.zeros((T, N, H), dt)
        self._dpre = np.zeros((T, N, G), dt)
        self._cont = np.zeros((T, N), dt)
        self._bias = np.zeros((N, G), dt)
        self._dstate = np.zeros((2, N, H), dt)  # gradient on (h, c): final in, initial out
        if self.path == "gemm":
            self._hm = np.zeros((T, N, H), dt)  # cont_t h_{t-1}: each step's recurrent input
            self._no_dx = np.zeros((0, 0), dt)
            self._panel_buffers = {}

    def forward(self, bottom, top):
        self.check_shapes(bottom, top)
        T, N = self._TN
        dt = self.dtype
        W_x, b, W_s, W_h = self._weights()
        x = bottom[0].data.reshape(T, N, self.I)
        np.copyto(self._cont, bottom[1].data.reshape(T, N))
        self._static_bias(bottom, self._bias, b, W_s)
        self._initial_state(bottom, 0, self._h)
        self._initial_state(bottom, 1, self._c)
        fused = self.fusion is not None and self.fusion.project(
            self._gates.reshape(T * N, -1), self.path)  # the gates' input part from a table
        if fused:
            parts = self._parts()
            lstm_recurrence_gemm(self._bias, W_h, self._cont, self._h, self._c, self._gates,
                                 self._tanh_c, self._hm, self._panels(parts, False), parts)
        elif self.path == "gemm":
            parts = self._parts()
            lstm_forward_gemm(x.reshape(T * N, self.I), W_x, self._bias, W_h, self._cont,
                              self._h, self._c, self._gates, self._tanh_c, self._hm,
                              self._panels(parts, False), parts)
        else:
            self._W_hT = np.ascontiguousarray(W_h.T, dt)
            args = (x, np.ascontiguousarray(W_x.T, dt), self._bias, self._W_hT, self._cont,
                    self._h, self._c, self._gates, self._tanh_c)
            parts = self._parts()
            if parts > 1:
                lstm_forward_parallel(*args, parts)
            else:
                lstm_forward(*args)
        top[0].data[...] = self._h[1:]
        if self.expose:
            top[1].data[0] = self._h[T]
            top[2].data[0] = self._c[T]
        else:
            self._carry = {"h": self._h[T].copy(), "c": self._c[T].copy()}

    def _backward_loops(self, top_diff, propagate_down, bottom, x, dh, dc):
        T, N = self._TN
        W_x, b, W_s, W_h = self._weights()
        args = (top_diff, self._W_hT, self._cont, self._c, self._gates, self._tanh_c,
                self._dpre.dtype.type(0), self._dpre, dh, dc)
        parts = self._parts()
        if parts > 1:
            lstm_backward_parallel(*args, parts)
        else:
            lstm_backward(*args)
        # float64 sums: the golden 2000-iteration runs need them
        dW_x, dbias, dW_h = param_gradients(self._dpre, x, self._h, self._cont)
        blobs = self.blobs
        blobs[0].diff += dW_x
        blobs[1].diff += dbias.sum(axis=0)
        if self.static:
            self._static_backward(bottom, propagate_down, dbias, W_s, blobs[2].diff)
        blobs[-1].diff += dW_h
        if propagate_down[0]:
            np.matmul(self._dpre.reshape(T * N, -1), W_x, out=bottom[0].diff.reshape(T * N, -1))

    def _backward_gemm(self, top_diff, propagate_down, bottom, x, dh, dc):
        T, N = self._TN
        W_x, b, W_s, W_h = self._weights()
        parts = self._parts()
        lstm_backward_gemm(top_diff, W_h, self._cont, self._c, self._gates, self._tanh_c,
                           self._dpre, dh, dc, self._panels(parts, True), parts)
        blobs = self.blobs
        if self.fusion is not None and self.fusion.active:
            # the input's share goes by token through the fused Embed (no dx is formed)
            lstm_state_gradients_gemm(self._dpre, self._hm, blobs[1].diff, blobs[-1].diff)
            self.fusion.input_gradients(self._dpre.reshape(T * N, -1), blobs[0].diff,
                                        bool(propagate_down[0]))
        else:
            dx = bottom[0].diff.reshape(T * N, self.I) if propagate_down[0] else self._no_dx
            lstm_param_gradients_gemm(self._dpre, x.reshape(T * N, self.I), self._hm, W_x,
                                      blobs[0].diff, blobs[1].diff, blobs[-1].diff, dx,
                                      bool(propagate_down[0]))
        if self.static:
            self._static_backward(bottom, propagate_down, self._dpre.sum(axis=0), W_s,
                                  blobs[2].diff)

    def backward(self, top, propagate_down, bottom):
        self.check_shapes(bottom, top, backward=True)
        T, N = self._TN
        H, I = self.H, self.I
        x = bottom[0].data.reshape(T, N, I)
        dh, dc = self._dstate[0], self._dstate[1]
        if self.expose:  # gradient arriving on h_T, c_T (BVLC ignores it)
            dh[...] = top[1].diff.reshape(N, H)
            dc[...] = top[2].diff.reshape(N, H)
        else:
            self._dstate[...] = 0
        top_diff = top[0].diff.reshape(T, N, H)
        if self.path == "gemm":
            self._backward_gemm(top_diff, propagate_down, bottom, x, dh, dc)
        else:
            self._backward_loops(top_diff, propagate_down, bottom, x, dh, dc)
        if self.expose:  # dh, dc now hold the gradient on h_0, c_0
            for k, d in enumerate((dh, dc)):
                if propagate_down[self._first_state + k]:
                    bottom[self._first_state + k].diff.reshape(N, H)[...] = d


@register("RNN")
class RNNLayer(_Recurrent):
    """BVLC's RNN (see the module docstring)."""

    num_bottoms = (2, 4)
    num_tops = (1, 2)
    STATES = ("h",)
    _main_top = "o"
    _gates_per_unit = 1

    def _param_specs(self, I, S):
        H = self.H
        specs = [("W_xh", (H, I), False), ("b_h", (H,), True)]
        if self.static:
            specs.append(("W_xh_static", (H, S), False))
        specs += [("W_hh", (H, H), False), ("W_ho", (H, H), False), ("b_o", (H,), True)]
        return specs

    def _weights(self):
        """(W_xh, b_h, W_xh_static or None, W_hh, W_ho, b_o) data arrays."""
        d = [blob.data for blob in self.blobs]
        return tuple(d) if self.static else (d[0], d[1], None, d[2], d[3], d[4])

    def rnn_weights(self):
        """(W_xh, b_h, W_hh, W_ho, b_o) for compiled generation of RNN stacks; like
        LSTMLayer.lstm_weights, None with x_static or expose_hidden."""
        if self.static or self.expose:
            return None
        W_xh, b_h, _, W_hh, W_ho, b_o = self._weights()
        return W_xh, b_h, W_hh, W_ho, b_o

    def _allocate(self, T, N):
        H, dt = self.H, self.dtype
        self._h = np.zeros((T + 1, N, H), dt)  # row 0: the initial state
        self._o = np.zeros((T, N, H), dt)  # own copy: the top may be changed in place later
        self._cont = np.zeros((T, N), dt)
        self._bias = np.zeros((N, H), dt)
        self._dpre_o = np.zeros((T, N, H), dt)
        self._dpre_h = np.zeros((T, N, H), dt)
        self._dbias = np.zeros((N, H), np.float64)
        self._dh = np.zeros((N, H), dt)
        self._no_dx = np.zeros((0, 0, 0), dt)

    def forward(self, bottom, top):
        self.check_shapes(bottom, top)
        T, N = self._TN
        dt = self.dtype
        W_xh, b_h, W_s, W_hh, W_ho, b_o = self._weights()
        x = bottom[0].data.reshape(T, N, self.I)
        np.copyto(self._cont, bottom[1].data.reshape(T, N))
        self._W_xhT = np.ascontiguousarray(W_xh.T, dt)
        self._W_hhT = np.ascontiguousarray(W_hh.T, dt)
        self._W_hoT = np.ascontiguousarray(W_ho.T, dt)
        self._static_bias(bottom, self._bias, b_h, W_s)
        self._initial_state(bottom, 0, self._h)
        rnn_forward(x, self._W_xhT, self._bias, self._W_hhT, self._W_hoT,
                    np.ascontiguousarray(b_o, dt), self._cont, self._h, self._o)
        top[0].data[...] = self._o
        if self.expose:
            top[1].data[0] = self._h[T]
        else:
            self._carry = {"h": self._h[T].copy()}

    def backward(self, top, propagate_down, bottom):
        self.check_shapes(bottom, top, backward=True)
        T, N = self._TN
        H, I = self.H, self.I
        W_xh, b_h, W_s, W_hh, W_ho, b_o = self._weights()
        x = bottom[0].data.reshape(T, N, I)
        dh = self._dh
        if self.expose:  # gradient arriving on h_T (BVLC ignores it)
            dh[...] = top[1].diff.reshape(N, H)
        else:
            dh[...] = 0
        want_dx = bool(propagate_down[0])
        dx = bottom[0].diff.reshape(T, N, I) if want_dx else self._no_dx
        grads = np.zeros((I + 2 * H, H), np.float64)  # W_xh^T, W_hh^T, W_ho^T
        db_o = np.zeros(H, np.float64)
        self._dbias[...] = 0
        rnn_backward(top[0].diff.reshape(T, N, H), x, self._W_xhT, self._W_hhT, self._W_hoT,
                     self._cont, self._h, self._o, self._dpre_o,
                     self._dpre_h, grads[:I], self._dbias, grads[I:I + H], grads[I + H:],
                     db_o, dx, want_dx, dh)
        blobs = self.blobs
        blobs[0].diff += grads[:I].T
        blobs[1].diff += self._dbias.sum(axis=0)
        if self.static:
            self._static_backward(bottom, propagate_down, self._dbias, W_s, blobs[2].diff)
        blobs[-3].diff += grads[I:I + H].T
        blobs[-2].diff += grads[I + H:].T
        blobs[-1].diff += db_o
        if self.expose and propagate_down[self._first_state]:
            bottom[self._first_state].diff.reshape(N, H)[...] = dh  # gradient on h_0
