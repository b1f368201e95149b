"""The two sizes of a language-model net that its vocabulary sets: the Embed layers'
input_dim (token ids in) and the output InnerProduct's num_output (one score per token
out). Checked against a corpus or a run's vocab.txt, naming both layers and the value to
set; `fitted_net` is the copy `seqgen train --fit-vocab` trains. More outputs than tokens
is no error: the spare outputs are never sampled (generation/sample.py)."""
from ..errors import SeqgenError
from ..io.prototxt import read_net
from ..net import TRAIN, Net
from ..proto import caffe_pb2
from .roles import inputs_by_role

EMBED_FIELD = "embed_param.input_dim"
OUTPUT_FIELD = "inner_product_param.num_output"


def _producer(net, blob, before):
    """The layer (name, layer) that last writes `blob` before layer index `before`,
    following Split layers back to their source."""
    for k in range(before - 1, -1, -1):
        layer = net.layers[k]
        if blob in layer.param.top:
            if layer.type == "Split":
                return _producer(net, layer.param.bottom[0], k)
            return net.layer_names[k], layer
    return None, None


def vocabulary_layers(net, roles):
    """[(layer name, type, size, field)] of the layers the vocabulary sizes: every layer
    taking token ids (Embed), then the output layer scoring the labels (its
    InnerProduct, or the loss layer when no InnerProduct makes the scores)."""
    found = [(name, layer.type, layer.token_capacity(), EMBED_FIELD)
             for name, layer in zip(net.layer_names, net.layers)
             if layer.token_capacity() is not None]
    for k, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        if roles.get("labels") in layer.param.bottom[1:2] and layer.is_loss:
            logits = layer.param.bottom[0]
            size = net.blobs[logits].shape[-1]
            source, producer = _producer(net, logits, k)
            if producer is not None and producer.type == "InnerProduct":
                found.append((source, producer.type, size, OUTPUT_FIELD))
            else:
                found.append((name, layer.type, size, f"the classes of '{logits}'"))
            break
    return found


def _said(name, kind, size, field):
    verb = "takes" if field == EMBED_FIELD else "scores"
    return f"layer '{name}' ({kind}) {verb} {size} ({field})"


def check_vocabulary(net, roles, vocab, what, fix=None):
    """Refuse a vocabulary larger than an Embed's input_dim or the output's size: one line
    naming the layers, their sizes and the value to set (`fix`: how else, e.g.
    --fit-vocab)."""
    layers = vocabulary_layers(net, roles)
    small = [entry for entry in layers if entry[2] < len(vocab)]
    if not small:
        return
    fields = " and ".join(dict.fromkeys(entry[3].rsplit(".", 1)[-1] for entry in small))
    where = f" in {net.source}" if net.source != "<NetParameter>" else ""
    raise SeqgenError(f"{what} has {len(vocab)} distinct tokens, but "
                      + ", ".join(_said(*entry) for entry in layers)
                      + f": set {fields} to {len(vocab)}{where}" + (f" ({fix})" if fix else ""))


def fit_sizes(net_path, size):
    """(the net file's NetParameter, {layer name: size}) for --fit-vocab: its Embed layers
    and its output InnerProduct, found in the TRAIN net built from the file."""
    net = Net(net_path, TRAIN)
    layers = vocabulary_layers(net, inputs_by_role(net))
    if not any(field == OUTPUT_FIELD for *_, field in layers) or len(layers) < 2:
        raise SeqgenError(f"--fit-vocab: {net_path} has no Embed layer reading token ids and "
                          "InnerProduct scoring the labels to size")
    return read_net(net_path), {name: size for name, _, _, field in layers}


def fitted_net(param, sizes):
    """A copy of NetParameter `param` with {layer name: size} written into each named
    layer's input_dim (Embed) or num_output (InnerProduct), in every phase's copy of it."""
    copy = caffe_pb2.NetParameter()
    copy.CopyFrom(param)
    for layer in copy.layer:
        if layer.name not in sizes:
            continue
        if layer.type == "Embed":
            layer.embed_param.input_dim = sizes[layer.name]
        elif layer.type == "InnerProduct":
            layer.inner_product_param.num_output = sizes[layer.name]
    return copy
