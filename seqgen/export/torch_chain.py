"""Which nets the PyTorch module can hold, and how each Caffe blob maps to a state-dict
entry: [Embed] -> a stack of LSTMs (fork Lstm or BVLC LSTM) or of BVLC RNNs, each fed by
the one before -> [InnerProduct] -> [Softmax] over the last axis."""
from dataclasses import dataclass

from ..errors import SeqgenError
from . import net_view

LSTMS = ("Lstm", "LSTM")


@dataclass(frozen=True)
class Entry:
    """State-dict tensor `name` is blob `blob` of Caffe layer `layer`."""
    name: str
    layer: str
    blob: int
    gates: bool = False  # the 4 gate blocks are reordered (Caffe i,f,o,g <-> torch i,f,g,o)
    transpose: bool = False  # InnerProduct with transpose: true stores W as (K, N)
    twin: str = ""  # torch's second bias (bias_hh): written as 0, added back on import


def _refuse(net, layer, why):
    raise SeqgenError(f"{net.source}: layer '{layer.name}' ({layer.type}) cannot go into the "
                      f"PyTorch module: {why}")


def _recurrent_entries(net, layer, k, kind):
    if layer.type in net_view.BVLC and layer.static:
        _refuse(net, layer, "nn.LSTM/nn.RNN have no static input (x_static)")
    if net_view.exposed(layer):
        _refuse(net, layer, "expose_hidden: pass the initial state to the module instead")
    if kind == "lstm":
        W_x, W_h, b, _ = net_view.lstm_blob_indices(layer)
        return [Entry(f"rnn.weight_ih_l{k}", layer.name, W_x, gates=True),
                Entry(f"rnn.weight_hh_l{k}", layer.name, W_h, gates=True),
                Entry(f"rnn.bias_ih_l{k}", layer.name, b, gates=True,
                      twin=f"rnn.bias_hh_l{k}")]
    return [Entry(f"rnn.{k}.weight_ih_l0", layer.name, 0),
            Entry(f"rnn.{k}.weight_hh_l0", layer.name, 2),
            Entry(f"rnn.{k}.bias_ih_l0", layer.name, 1, twin=f"rnn.{k}.bias_hh_l0"),
            Entry(f"rnn_out.{k}.weight", layer.name, 3),
            Entry(f"rnn_out.{k}.bias", layer.name, 4)]


def _hidden(layer):
    return int(layer.H)


def chain(net):
    """(config, [Entry]) for a TEST net of the supported shape, else a SeqgenError naming
    the first layer that does not fit."""
    config = {"kind": None, "hidden_sizes": [], "embed": None, "output_size": None,
              "out_bias": False, "softmax": False, "layers": []}
    entries, current = [], None
    for layer, bottoms, tops in net_view.layers(net):
        stage = ("embed" if layer.type == "Embed" else
                 "rnn" if layer.type in net_view.RECURRENT else
                 "out" if layer.type == "InnerProduct" else
                 "softmax" if layer.type == "Softmax" else None)
        done = {"embed": config["embed"] or config["kind"], "rnn": config["output_size"],
                "out": config["output_size"] or not config["kind"],
                "softmax": config["softmax"] or not config["kind"]}
        if stage is None or done[stage] or config["softmax"] or \
                (current and bottoms[0] != current):
            _refuse(net, layer, "the module is [Embedding] -> LSTM or RNN stack -> [Linear] "
                                "-> [softmax], each layer fed by the one before")
        current = tops[0]
        config["layers"].append(layer.name)
        if stage == "embed":
            config["embed"] = {"num": layer.K, "dim": layer.N, "bias": bool(layer.bias_term)}
            entries.append(Entry("embed.weight", layer.name, 0))
            if layer.bias_term:
                entries.append(Entry("embed_bias", layer.name, 1))
        elif stage == "rnn":
            kind = "lstm" if layer.type in LSTMS else "rnn"
            if config["kind"] not in (None, kind):
                _refuse(net, layer, "the stack mixes LSTM and RNN layers")
            if kind == "lstm" and config["hidden_sizes"] and \
                    _hidden(layer) != config["hidden_sizes"][0]:
                _refuse(net, layer, f"nn.LSTM's num_layers needs equal hidden sizes "
                                    f"({config['hidden_sizes'][0]} before, {_hidden(layer)} here)")
            if not config["hidden_sizes"]:
                config["input_size"] = int(layer.blobs[0].shape[1])
            entries += _recurrent_entries(net, layer, len(config["hidden_sizes"]), kind)
            config["kind"] = kind
            config["hidden_sizes"].append(_hidden(layer))
        elif stage == "out":
            last = len(net.blobs[bottoms[0]].shape) - 1
            if layer.axis != last:
                _refuse(net, layer, f"nn.Linear works on the last axis ({last}), this "
                                    f"InnerProduct on axis {layer.axis}")
            config["output_size"], config["out_bias"] = layer.N_out, bool(layer.bias_term)
            entries.append(Entry("out.weight", layer.name, 0, transpose=bool(layer.transpose)))
            if layer.bias_term:
                entries.append(Entry("out.bias", layer.name, 1))
        else:
            if layer.axis != len(net.blobs[bottoms[0]].shape) - 1:
                _refuse(net, layer, "the softmax must run over the last axis")
            config["softmax"] = True
    if not config["kind"]:
        raise SeqgenError(f"{net.source}: no LSTM or RNN layer to put into the PyTorch module")
    return config, entries
