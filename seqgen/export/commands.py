"""What `seqgen export` and `seqgen import` do, behind the CLI: resolve the run or weights,
pick the format's writer, carry a text run's vocabulary along, and say what was written."""
from ..errors import SeqgenError
from ..io.outputs import check_output
from .source import resolve
from .vocab import run_vocabulary


def _onnx(net, weights, out, graph, force, metadata):
    from .onnx_export import export_onnx  # lazy: needs the [onnx] extra

    model = export_onnx(net, weights, out, graph or "step", metadata)
    names = lambda values: ", ".join(v.name for v in values)
    return [f"Wrote {out} (ONNX {graph or 'step'} graph, opset "
            f"{model.opset_import[0].version})",
            f"  inputs: {names(model.graph.input)}",
            f"  outputs: {names(model.graph.output)}"]


def _torch(net, weights, out, graph, force, metadata):
    from .torch_state import check_model_py, export_torch  # lazy: needs the [torch] extra

    check_model_py(out, force, inputs=(net, weights))
    return export_torch(net, weights, out, metadata)


FORMATS = {"onnx": _onnx, "torch": _torch}
SUFFIXES = {"onnx": (".onnx",), "torch": (".safetensors",)}


def export(source, net=None, fmt=None, graph=None, out=None, force=False):
    """Export the net and weights `source` names; returns the lines to print."""
    if fmt is None:
        raise SeqgenError(f"give --format ({' or '.join(FORMATS)})")
    if fmt not in FORMATS:
        raise SeqgenError(f"unknown --format '{fmt}' (known: {', '.join(FORMATS)})")
    if graph is not None and fmt == "torch":
        raise SeqgenError("--graph is for --format onnx; the torch state dict has no graph")
    if not out:
        raise SeqgenError("give --out FILE")
    said = []
    net, weights = resolve(source, net, say=said.append)
    check_output(out, suffixes=SUFFIXES[fmt], what=f"--format {fmt}", inputs=(net, weights),
                 force=force)
    vocab = run_vocabulary(source)
    if vocab is not None:
        vocab.check(out, force, (net, weights))
    lines = FORMATS[fmt](net, weights, out, graph, force, vocab.metadata() if vocab else {})
    return said + lines + ([vocab.write(out)] if vocab else [])
