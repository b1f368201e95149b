"""`seqgen info`: a net described the way Caffe's Net::Init logs it.

For every layer (including the Split layers inserted where one blob feeds several
layers): its name and type, `name <- bottom` and `name -> top` lines, the top shapes in
Caffe's "Top shape: 320 15 (4800)" form with any loss weight, and the running "Memory
required for data". seqgen adds what Caffe's log leaves out: the shape and count of each
parameter blob (shared ones marked and counted once) and the total. Then, as Caffe does,
which layers need backward computation (in reverse order), the outputs, and the total
number of learnable parameters.
"""
import os

import numpy as np

from ..data.tokens import VOCAB_FILE, Vocabulary
from ..errors import SeqgenError
from ..generation.sample import spare_outputs, token_inputs
from ..io.prototxt import read_net, read_solver
from ..kernels import target
from ..net import Net
from ..proto import caffe_pb2


def shape_string(shape):
    """Caffe's Blob::shape_string: the dims, then the count in parentheses."""
    count = int(np.prod(shape)) if len(shape) else 1
    return "".join(f"{d} " for d in shape) + f"({count})"


def _net_file(path):
    """The net of `path`: the file itself, or the net a solver file names."""
    try:
        read_net(path)
        return path
    except SeqgenError as net_error:
        try:
            solver = read_solver(path)
        except SeqgenError:
            raise net_error from None
        if solver.net or solver.train_net:
            return solver.net or solver.train_net
        if solver.HasField("net_param"):
            return solver.net_param
        if solver.HasField("train_net_param"):
            return solver.train_net_param
        raise net_error from None


#: seqgen's own lines (parameters, totals), which Caffe's log does not have
SEQGEN_ONLY = ("param", "total", "fusion", "vectors")


def net_init_events(net):
    """(kind, text, note) for each line of Caffe's Net::Init log of a built Net, in its order
    (kinds: layer, bottom, top, in_place, setup, shape, loss_weight, memory, backward,
    no_backward, output, done), with seqgen's own lines (kinds in SEQGEN_ONLY); `note` is
    what `seqgen info` adds to the line (the layer's type)."""
    owner_of = {}  # id(parameter blob) -> (layer name, index) of its first use
    fixed = {id(p.blob) for p in net.learnable_params if p.lr_mult == 0}
    memory = 0
    for idx, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        lp = layer.param
        loss = net._loss_weights[idx]
        yield "layer", f"Creating Layer {name}", f" ({layer.type})"
        for b in lp.bottom:
            yield "bottom", f"{name} <- {b}", ""
        for t in lp.top:
            if t in lp.bottom:
                yield "in_place", f"{name} -> {t} (in-place)", ""
            else:
                yield "top", f"{name} -> {t}", ""
        yield "setup", f"Setting up {name}", ""
        for t in lp.top:
            blob = net.blobs[t]
            yield "shape", f"Top shape: {shape_string(blob.shape)}", ""
            weight = next((float(w) for b, w in loss if b is blob), 0.0)
            if weight:
                yield "loss_weight", f"    with loss weight {weight:g}", ""
            memory += blob.count
        for text in _param_lines(net, name, layer, owner_of, fixed):
            yield "param", text, ""
        yield "memory", f"Memory required for data: {memory * 4}", ""
    for idx in range(len(net.layers) - 1, -1, -1):
        if net.layer_needs_backward(net.layer_names[idx]):
            yield "backward", f"{net.layer_names[idx]} needs backward computation.", ""
        else:
            yield "no_backward", f"{net.layer_names[idx]} does not need backward computation.", ""
    for out in net.outputs:
        yield "output", f"This network produces output {out}", ""
    yield "done", "Network initialization done.", ""
    for note in net.fusion_notes:  # seqgen.fusion's rewrites, applied or refused
        yield "fusion", note.text, ""
    total = sum(p.blob.count for p in net.learnable_params)
    frozen = sum(p.blob.count for p in net.learnable_params if p.lr_mult == 0)
    blobs = len(net.learnable_params)
    line = f"Total learnable parameters: {total} in {blobs} blob{'s' if blobs != 1 else ''}"
    if frozen:
        line += f" ({frozen} fixed by lr_mult 0)"
    yield "total", line, ""
    yield "vectors", target.describe(), ""


def _param_lines(net, name, layer, owner_of, fixed):
    """seqgen's lines for a layer's parameter blobs: shape, name, sharing, lr_mult 0."""
    lp = layer.param
    names = layer.param_names
    for i, blob in enumerate(layer.blobs):
        label = f"Param {i}" + (f" ({names[i]})" if i < len(names) else "")
        text = f"{label}: {shape_string(blob.shape)}"
        spec = lp.param[i] if i < len(lp.param) else None
        if id(blob) in owner_of:
            first_layer, first_index = owner_of[id(blob)]
            shared = f" as '{spec.name}'" if spec is not None and spec.name else ""
            text += f", shared{shared} with {first_layer} param {first_index}"
        else:
            owner_of[id(blob)] = (name, i)
            if spec is not None and spec.name:
                text += f", named '{spec.name}'"
            if id(blob) in fixed:
                text += ", fixed (lr_mult 0)"
        yield text


#: the lines `seqgen info` indents under their layer
INDENTED = ("bottom", "top", "in_place", "setup", "shape", "loss_weight", "param", "memory")


def describe(net):
    """The lines of Caffe's Net::Init log for a built Net, plus parameter shapes."""
    phase = caffe_pb2.Phase.Name(net.phase)
    stages = list(net.param.state.stage)
    state = f"{phase} phase" + (f", stages {', '.join(stages)}" if stages else "")
    lines = [f'Net "{net.name}" ({state}) from {net.source}']
    for kind, text, note in net_init_events(net):
        lines.append(("  " if kind in INDENTED else "") + text + note)
    return lines


def net_info(path, phase="TRAIN", stages=()):
    """The `seqgen info` text for a net (or solver) file in the given phase and stages."""
    net = Net(_net_file(path), phase=phase, stages=stages)
    if not isinstance(path, str) or net.source == "<NetParameter>":
        net.source = str(path)
    notes = vocabulary_notes(net, path)
    return "\n".join(describe(net) + notes + [f"Draw it: seqgen draw {path} --out net.png"])


def vocabulary_notes(net, path):
    """For a net in a text run's folder (a vocab.txt beside it): the line naming the
    outputs its vocabulary never samples, if any."""
    if not isinstance(path, str):
        return []
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(os.path.join(folder, VOCAB_FILE)):
        return []
    try:
        logits = token_inputs(net)[2]
        spare = spare_outputs(net.blobs[logits].shape[-1], len(Vocabulary.read(folder)))
    except SeqgenError:  # not a language model after all: nothing to say
        return []
    return [f"Note: {spare}"] if spare else []
