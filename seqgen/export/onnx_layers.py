"""ONNX converters for the layers without state, shared by the step and sequence graphs.

Every blob has the static shape the seqgen Net gives it, so reshapes are constants and
each converter reproduces its layer's forward exactly (TEST phase: Dropout is the
identity).
"""
import numpy as np

from ..proto import caffe_pb2

STATELESS = {}


def converts(*types):
    def deco(fn):
        for t in types:
            STATELESS[t] = fn
        return fn
    return deco


def _hint(layer, tops):
    return f"{layer.name}/{tops[0]}"


@converts("InnerProduct")
def inner_product(ctx, layer, bottoms, tops):
    shape = ctx.shape(bottoms[0])
    M, K = int(np.prod(shape[:layer.axis])), int(np.prod(shape[layer.axis:]))
    hint = _hint(layer, tops)
    x = ctx.reshape(ctx.value(bottoms[0]), (M, K), f"{hint}.in")
    W, b = layer.affine_weights()
    y = ctx.matmul(x, W, hint, b if layer.bias_term else None)
    ctx.define(tops[0], ctx.reshape(y, ctx.shape(tops[0]), hint))


@converts("Embed")
def embed(ctx, layer, bottoms, tops):
    hint = _hint(layer, tops)
    idx = ctx.node("Cast", [ctx.value(bottoms[0])], f"{hint}.index",
                   to=ctx.onnx.TensorProto.INT64)
    y = ctx.node("Gather", [ctx.const(layer.blobs[0].data, f"{hint}.W"), idx], hint)
    if layer.bias_term:
        y = ctx.node("Add", [y, ctx.const(layer.blobs[1].data, f"{hint}.b")], hint)
    ctx.define(tops[0], y)


@converts("Softmax")
def softmax(ctx, layer, bottoms, tops):
    ctx.define(tops[0], ctx.node("Softmax", [ctx.value(bottoms[0])], _hint(layer, tops),
                                 axis=layer.axis))


def _unary(op):
    def convert(ctx, layer, bottoms, tops):
        ctx.define(tops[0], ctx.node(op, [ctx.value(bottoms[0])], _hint(layer, tops)))
    return convert


for _type, _op in (("TanH", "Tanh"), ("Sigmoid", "Sigmoid"), ("Dropout", "Identity")):
    STATELESS[_type] = _unary(_op)


@converts("ReLU")
def relu(ctx, layer, bottoms, tops):
    x = ctx.value(bottoms[0])
    if layer.slope:
        y = ctx.node("LeakyRelu", [x], _hint(layer, tops), alpha=layer.slope)
    else:
        y = ctx.node("Relu", [x], _hint(layer, tops))
    ctx.define(tops[0], y)


@converts("Flatten", "Reshape")
def reshape(ctx, layer, bottoms, tops):
    ctx.define(tops[0], ctx.reshape(ctx.value(bottoms[0]), ctx.shape(tops[0]),
                                    _hint(layer, tops)))


@converts("Eltwise")
def eltwise(ctx, layer, bottoms, tops):
    op = caffe_pb2.EltwiseParameter
    hint = _hint(layer, tops)
    xs = [ctx.value(b) for b in bottoms]
    if layer.op == op.MAX:
        ctx.define(tops[0], ctx.node("Max", xs, hint))
        return
    if layer.op == op.SUM:
        xs = [x if c == 1.0 else ctx.node("Mul", [x, ctx.const(np.float32(c), f"{hint}.coeff")],
                                          hint) for x, c in zip(xs, layer.coeff)]
    y = xs[0]
    for x in xs[1:]:
        y = ctx.node("Mul" if layer.op == op.PROD else "Add", [y, x], hint)
    ctx.define(tops[0], y)


def _broadcast_shape(dims):
    """Shape (outer, dim, inner) -> a shape that broadcasts a (dim,) parameter over it."""
    return (1, dims[1], 1)


@converts("Scale", "Bias")
def scale_or_bias(ctx, layer, bottoms, tops):
    """top = x * s (+ b) or x + b, the parameter broadcast at `axis` through the layer's
    (outer, dim, inner) view."""
    hint = _hint(layer, tops)
    shape = ctx.shape(bottoms[0])
    x = ctx.reshape(ctx.value(bottoms[0]), layer.dims, f"{hint}.in")
    if len(bottoms) > 1:
        p = ctx.reshape(ctx.value(bottoms[1]), _broadcast_shape(layer.dims), f"{hint}.param")
    else:
        p = ctx.const(layer.blobs[0].data.reshape(_broadcast_shape(layer.dims)), f"{hint}.param")
    y = ctx.node("Mul" if layer.type == "Scale" else "Add", [x, p], hint)
    if layer.type == "Scale" and layer.bias_term:
        b = layer.blobs[-1].data.reshape(_broadcast_shape(layer.bdims))
        y = ctx.reshape(y, layer.bdims, f"{hint}.bias_in")
        y = ctx.node("Add", [y, ctx.const(b, f"{hint}.bias")], hint)
    ctx.define(tops[0], ctx.reshape(y, shape, hint))


@converts("Concat")
def concat(ctx, layer, bottoms, tops):
    ctx.define(tops[0], ctx.node("Concat", [ctx.value(b) for b in bottoms], _hint(layer, tops),
                                 axis=layer.axis))


@converts("Slice")
def slice_(ctx, layer, bottoms, tops):
    sizes = ctx.const(np.array(layer.sizes, np.int64), f"{layer.name}.split", np.int64)
    outs = ctx.node("Split", [ctx.value(bottoms[0]), sizes], _hint(layer, tops),
                    outputs=len(tops), axis=layer.axis)
    for top, value in zip(tops, outs if len(tops) > 1 else [outs]):
        ctx.define(top, value)
