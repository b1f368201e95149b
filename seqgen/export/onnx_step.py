"""The step graph: one time step of the net, the recurrent state as explicit inputs and
outputs. Each recurrent layer is written out as its cell equations in plain ONNX operators
(MatMul, Add, Split, Sigmoid, Tanh, Mul), weights in Caffe's own gate order i, f, o, g.

There is no cont/clip input: a step that starts a new sequence (cont = 0 in Caffe) is the
caller zeroing that stream's state, which Caffe's forward equals exactly (with h_{t-1} = 0
and c_{t-1} = 0, dropping the recurrent term and forcing f = 0 change nothing).
"""
import numpy as np

from . import net_view
from .onnx_layers import STATELESS
from .recurrent_io import final_states, initial_states


def _step_input(ctx, layer, N):
    """x_t as (N, I): the fork's (N, I...) rows, or BVLC's (1, N, I...)."""
    x = layer.param.bottom[0]
    return ctx.reshape(ctx.value(x), (N, int(ctx.net.blobs[x].count // N)), f"{layer.name}.x")


def _static_term(ctx, layer, W_s, hint):
    """x_static W_s^T (N, out), or None."""
    if W_s is None:
        return None
    xs = layer.param.bottom[2]
    N = ctx.shape(xs)[0]
    flat = ctx.reshape(ctx.value(xs), (N, W_s.shape[1]), f"{hint}.x_static")
    return ctx.matmul(flat, W_s, f"{hint}.static")


def _add(ctx, values, hint):
    values = [v for v in values if v is not None]
    y = values[0]
    for v in values[1:]:
        y = ctx.node("Add", [y, v], hint)
    return y


def lstm_step(ctx, layer, bottoms, tops):
    """c = f c_{t-1} + i g, h = o tanh(c), gates from W_x x + W_h h_{t-1} + b (+ static)."""
    W_x, W_h, b, W_s = net_view.lstm_params(layer)
    H = W_h.shape[1]
    N = layer.N
    hint = layer.name
    h0, c0 = initial_states(ctx, layer, N, H, (N, H))
    x = _step_input(ctx, layer, N)
    pre = _add(ctx, [ctx.matmul(x, W_x, f"{hint}.Wx", b), ctx.matmul(h0, W_h, f"{hint}.Wh"),
                     _static_term(ctx, layer, W_s, hint)], f"{hint}.gates")
    i, f, o, g = ctx.node("Split", [pre, ctx.const(np.full(4, H), f"{hint}.split", np.int64)],
                          f"{hint}.gate", outputs=4, axis=1)
    i, f, o = (ctx.node("Sigmoid", [v], f"{hint}.{k}") for v, k in ((i, "i"), (f, "f"), (o, "o")))
    g = ctx.node("Tanh", [g], f"{hint}.g")
    c = ctx.node("Add", [ctx.node("Mul", [f, c0], f"{hint}.fc"),
                         ctx.node("Mul", [i, g], f"{hint}.ig")], f"{hint}.c")
    h = ctx.node("Mul", [o, ctx.node("Tanh", [c], f"{hint}.tanh_c")], f"{hint}.h")
    ctx.define(tops[0], ctx.reshape(h, ctx.shape(tops[0]), f"{hint}/{tops[0]}"))
    final_states(ctx, layer, (h, c), N, H)


def rnn_step(ctx, layer, bottoms, tops):
    """h = tanh(W_xh x + b_h + W_hh h_{t-1} (+ static)), o = tanh(W_ho h + b_o)."""
    W_xh, b_h, W_s, W_hh, W_ho, b_o = net_view.rnn_params(layer)
    H, N, hint = W_hh.shape[0], layer.N, layer.name
    (h0,) = initial_states(ctx, layer, N, H, (N, H))
    x = _step_input(ctx, layer, N)
    pre = _add(ctx, [ctx.matmul(x, W_xh, f"{hint}.Wxh", b_h),
                     ctx.matmul(h0, W_hh, f"{hint}.Whh"),
                     _static_term(ctx, layer, W_s, hint)], f"{hint}.pre")
    h = ctx.node("Tanh", [pre], f"{hint}.h")
    o = ctx.node("Tanh", [ctx.matmul(h, W_ho, f"{hint}.Who", b_o)], f"{hint}.o")
    ctx.define(tops[0], ctx.reshape(o, ctx.shape(tops[0]), f"{hint}/{tops[0]}"))
    final_states(ctx, layer, (h,), N, H)


STEP = {**STATELESS, "Lstm": lstm_step, "LSTM": lstm_step, "RNN": rnn_step}
