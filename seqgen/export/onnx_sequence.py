"""The sequence graph: the whole T-step net, each recurrent layer one ONNX LSTM or RNN
operator started from `initial_h` / `initial_c`.

ONNX's operators have no cont input (onnx/onnx#4175 asked for one), so this graph is the
net on one sequence without restarts: cont = 1 at every step, the state at t = 0 being the
state inputs (zeros = Caffe's cont[0] = 0). Weights are moved to ONNX's gate order i, o, f, c;
the recurrent bias Rb is 0 (Caffe has one bias). A static input (BVLC x_static) is
exact as extra input columns: x_static is repeated over T and appended to x, and its
weights to W.
"""
import numpy as np

from . import gates, net_view
from .onnx_layers import STATELESS
from .recurrent_io import final_states, initial_states


def _sequence_input(ctx, layer, T, N, W_s):
    """X (T, N, I [+ S]) for the operator: x reshaped, with x_static appended."""
    x = layer.param.bottom[0]
    I = ctx.net.blobs[x].count // (T * N)
    X = ctx.reshape(ctx.value(x), (T, N, I), f"{layer.name}.X")
    if W_s is None:
        return X
    S = W_s.shape[1]
    xs = ctx.reshape(ctx.value(layer.param.bottom[2]), (1, N, S), f"{layer.name}.x_static")
    tiled = ctx.node("Expand", [xs, ctx.const(np.array([T, N, S]), f"{layer.name}.T_N_S",
                                              np.int64)], f"{layer.name}.x_static_T")
    return ctx.node("Concat", [X, tiled], f"{layer.name}.X_static", axis=2)


def _input_weights(W_x, W_s):
    return W_x if W_s is None else np.concatenate([W_x, W_s], axis=1)


def _steps(layer, ctx):
    x = ctx.shape(layer.param.bottom[0])
    return (x[0] // layer.N) if layer.type == net_view.FORK else x[0]


def lstm_sequence(ctx, layer, bottoms, tops):
    W_x, W_h, b, W_s = net_view.lstm_params(layer)
    H, N, T = W_h.shape[1], layer.N, _steps(layer, ctx)
    X = _sequence_input(ctx, layer, T, N, W_s)
    h0, c0 = initial_states(ctx, layer, N, H, (1, N, H))
    onnx_order = lambda a: gates.reorder(a, gates.CAFFE, gates.ONNX)[None]
    W = ctx.const(onnx_order(_input_weights(W_x, W_s)), f"{layer.name}.W")
    R = ctx.const(onnx_order(W_h), f"{layer.name}.R")
    B = ctx.const(np.concatenate([onnx_order(b), np.zeros((1, 4 * H), np.float32)], axis=1),
                  f"{layer.name}.B")
    Y, Y_h, Y_c = ctx.node("LSTM", [X, W, R, B, "", h0, c0], layer.name, outputs=3,
                           hidden_size=H)
    ctx.define(tops[0], ctx.reshape(Y, ctx.shape(tops[0]), f"{layer.name}/{tops[0]}"))
    final_states(ctx, layer, (Y_h, Y_c), N, H)


def rnn_sequence(ctx, layer, bottoms, tops):
    """ONNX's RNN gives h; BVLC's output o = tanh(W_ho h + b_o) follows as MatMul + Tanh."""
    W_xh, b_h, W_s, W_hh, W_ho, b_o = net_view.rnn_params(layer)
    H, N, T = W_hh.shape[0], layer.N, _steps(layer, ctx)
    X = _sequence_input(ctx, layer, T, N, W_s)
    (h0,) = initial_states(ctx, layer, N, H, (1, N, H))
    W = ctx.const(_input_weights(W_xh, W_s)[None], f"{layer.name}.W")
    R = ctx.const(W_hh[None], f"{layer.name}.R")
    B = ctx.const(np.concatenate([b_h, np.zeros(H, np.float32)])[None], f"{layer.name}.B")
    Y, Y_h = ctx.node("RNN", [X, W, R, B, "", h0], layer.name, outputs=2, hidden_size=H)
    h = ctx.reshape(Y, (T * N, H), f"{layer.name}.h")
    o = ctx.node("Tanh", [ctx.matmul(h, W_ho, f"{layer.name}.Who", b_o)], f"{layer.name}.o")
    ctx.define(tops[0], ctx.reshape(o, ctx.shape(tops[0]), f"{layer.name}/{tops[0]}"))
    final_states(ctx, layer, (Y_h,), N, H)


SEQUENCE = {**STATELESS, "Lstm": lstm_sequence, "LSTM": lstm_sequence, "RNN": rnn_sequence}
