"""`seqgen export --format onnx`: a trained net as an ONNX model, a step graph (default) or
a sequence graph, with its input/output names documented in the model's doc_string."""
import os

from ..errors import SeqgenError
from ..io.atomic import atomic_write_bytes
from ..net import TEST, Net
from . import net_view
from .onnx_graph import GraphContext
from .onnx_sequence import SEQUENCE
from .onnx_step import STEP

GRAPHS = {"step": STEP, "sequence": SEQUENCE}

_ABOUT = {
    "step": ("One time step of the net. Feed x_t and every recurrent layer's state; get the "
             "prediction and the new state (<layer>.h_out, <layer>.c_out). There is no "
             "cont/clip input: to start a new sequence in a stream (Caffe's cont = 0), "
             "zero that stream's rows of every state input, which equals Caffe's forward "
             "exactly. Start with all states zero. Weights keep Caffe's gate order i, f, o, g."),
    "sequence": ("The whole sequence at once: ONNX LSTM/RNN operators over T steps, started "
                 "from the state inputs (initial_h/initial_c; zeros for a fresh start). Valid "
                 "for a sequence WITHOUT restarts: ONNX's operators have no cont input, so "
                 "every step continues the previous one (Caffe's cont = 1 after the first "
                 "step). Weights are in ONNX's gate order i, o, f, c."),
}


def _io_lines(values, what):
    return [f"  {what} {v.name}: " + " x ".join(str(d.dim_value)
                                                for d in v.type.tensor_type.shape.dim)
            for v in values]


def _doc(ctx, graph, source):
    rows = ["Exported by seqgen from " + source + ".", _ABOUT[graph],
            "Rows of the fork's Lstm blobs are t*N + n (time-major); BVLC blobs are "
            "(T, N, ...). State inputs are (N, H), named <layer>.h, <layer>.c; outputs "
            "<layer>.h_out, <layer>.c_out. All tensors are float32."]
    rows += _io_lines(ctx.inputs, "input") + _io_lines(ctx.outputs, "output")
    return "\n".join(rows)


def onnx_model(net, graph="step"):
    """The ModelProto of a TEST-phase Net; the step graph reshapes `net` to one step."""
    if graph not in GRAPHS:
        raise SeqgenError(f"unknown --graph '{graph}' (known: {', '.join(GRAPHS)})")
    if graph == "step":
        net_view.to_one_step(net)
    ctx = GraphContext(net, GRAPHS[graph]).convert()
    return ctx.model(_doc(ctx, graph, net.source), f"{net.name or 'net'}_{graph}")


def export_onnx(net_file, weights, out, graph="step", metadata=None):
    """Write the ONNX model of `net_file` with `weights` to `out`, with {key: text}
    `metadata` in its metadata_props (a text net's vocabulary); returns the model."""
    if graph not in GRAPHS:
        raise SeqgenError(f"unknown --graph '{graph}' (known: {', '.join(GRAPHS)})")
    model = onnx_model(Net(net_file, weights, TEST), graph)
    model.doc_string = model.doc_string.replace(
        "from " + str(net_file), f"from {os.path.basename(str(net_file))} with "
        f"{os.path.basename(str(weights))}", 1)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write_bytes(out, model.SerializeToString())
    return model
