"""Building an ONNX graph from a seqgen Net: node and initializer bookkeeping over
onnx.helper, and the walk that hands each layer to its converter.

A converter is `fn(ctx, layer, bottoms, tops)`: it reads its bottoms' ONNX values with
`ctx.value(blob)`, adds nodes with `ctx.node(...)`, and binds each top with
`ctx.define(blob, value)`. Registries map Caffe layer types to converters; a layer type
missing from the registry is refused, naming the layer.
"""
import numpy as np

from ..errors import SeqgenError
from ..extras import install_hint
from . import net_view

OPSET = 17


def require_onnx():
    """The onnx module, or a SeqgenError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise SeqgenError("ONNX export needs the onnx package: " + install_hint("onnx")) \
            from None
    return onnx


class GraphContext:
    """One graph under construction, for one Net (already reshaped to the graph's T)."""

    def __init__(self, net, registry):
        self.onnx = require_onnx()
        self.net, self.registry = net, registry
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.values = {}  # blob name -> current ONNX value name
        self.states = []  # (input name, output name, shape) of recurrent state
        self._names = set()

    # -- names and values -----------------------------------------------------------------
    def fresh(self, hint):
        name, k = hint, 1
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def shape(self, blob):
        return tuple(int(d) for d in self.net.blobs[blob].shape)

    def value(self, blob):
        """The ONNX value of a blob; a net input becomes a graph input on first use."""
        if blob not in self.values:
            if blob not in self.net.inputs:  # the Net guarantees producers; defensive
                raise SeqgenError(f"blob '{blob}' has no producer in the exported graph")
            self.values[blob] = self.add_input(self.fresh(blob), self.shape(blob))
        return self.values[blob]

    def define(self, blob, value):
        self.values[blob] = value

    def add_input(self, name, shape):
        self.inputs.append(self.onnx.helper.make_tensor_value_info(
            name, self.onnx.TensorProto.FLOAT, list(shape)))
        return name

    def add_output(self, name, value, shape):
        """Graph output `name` holding `value` (through an Identity when named otherwise)."""
        if value != name:
            self.fresh(name)
            self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name]))
        self.outputs.append(self.onnx.helper.make_tensor_value_info(
            name, self.onnx.TensorProto.FLOAT, list(shape)))

    def state(self, layer, key, shape):
        """A recurrent state input `<layer>.<key>` (its output `<layer>.<key>_out` is
        bound later by `state_out`)."""
        name = self.fresh(f"{layer.name}.{key}")
        self.add_input(name, shape)
        self.states.append((name, f"{name}_out", tuple(shape)))
        return name

    def state_out(self, layer, key, value):
        name = f"{layer.name}.{key}"
        _, out, shape = next(s for s in self.states if s[0] == name)
        self.add_output(out, value, shape)

    # -- nodes ----------------------------------------------------------------------------
    def const(self, array, hint, dtype=np.float32):
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(array, dtype), name))
        return name

    def node(self, op, inputs, hint, outputs=1, **attrs):
        """Add one node; returns its output name (or a list when outputs > 1)."""
        names = [self.fresh(hint if outputs == 1 else f"{hint}.{k}") for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), names,
                                                     name=self.fresh(f"{hint}:{op}"), **attrs))
        return names[0] if outputs == 1 else names

    def reshape(self, value, shape, hint):
        return self.node("Reshape", [value, self.const(np.array(shape, np.int64),
                                                       f"{hint}.shape", np.int64)], hint)

    def matmul(self, value, W, hint, b=None):
        """value @ W.T (+ b): Caffe's InnerProduct product, W stored (out, in)."""
        y = self.node("MatMul", [value, self.const(np.asarray(W).T, f"{hint}.W")], hint)
        return y if b is None else self.node("Add", [y, self.const(b, f"{hint}.b")], hint)

    # -- the walk -------------------------------------------------------------------------
    def convert(self):
        for layer, bottoms, tops in net_view.layers(self.net):
            fn = self.registry.get(layer.type)
            if fn is None:
                raise SeqgenError(
                    f"{self.net.source}: layer '{layer.name}' ({layer.type}) cannot be "
                    f"exported to ONNX (exported layer types: {', '.join(sorted(self.registry))})")
            fn(self, layer, bottoms, tops)
        for blob in net_view.predictions(self.net):
            self.add_output(blob, self.value(blob), self.shape(blob))
        # the net's inputs and predictions first, then the states in layer order
        order = {name: k for k, name in enumerate(self.net.inputs)}
        order.update((name, len(order) + k) for k, s in enumerate(self.states) for name in s[:2])
        key = lambda v: order.get(v.name, -1)
        self.inputs.sort(key=key)
        self.outputs.sort(key=key)
        return self

    def model(self, doc, graph_name):
        """The checked ModelProto."""
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs,
                                  self.initializers)
        model = helper.make_model(graph, producer_name="seqgen", doc_string=doc,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8  # opset 17's IR; every onnxruntime since 1.12 reads it
        self.onnx.checker.check_model(model, full_check=True)
        return model
