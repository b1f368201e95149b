"""What every exporter needs from a built Net: its time steps, which inputs are time-major,
the layers to convert (Split layers folded away), and the net reshaped to one time step.

Shapes follow the dialects: the fork's Lstm reads (T*N, I...) rows t*N + n, BVLC's
LSTM/RNN read (T, N, I...). One step of either is the net with T = 1.
"""
from ..errors import SeqgenError

FORK = "Lstm"
BVLC = ("LSTM", "RNN")
RECURRENT = (FORK,) + BVLC
SKIPPED = ("Input", "Silence")  # no computation to export


def evaluates(layer):
    """Whether a layer only scores the net against labels (a loss, Accuracy): left out of
    an export as sampling leaves it out (generation/sample.py HEADS), so that a training
    net exports as its prediction; its input blob becomes an output instead."""
    return layer.is_loss or layer.type == "Accuracy"


def _untimed_bottoms(layer):
    """The bottoms of a BVLC recurrent layer without a time axis: x_static and the
    expose_hidden initial states (everything after x and cont)."""
    return set(layer.param.bottom[2:]) if layer.type in BVLC else set()


def steps(net):
    """The number of time steps T every recurrent layer of `net` runs (1 without any)."""
    found = {}
    for layer in net.layers:
        if layer.type == FORK:
            found[layer.name] = net.blobs[layer.param.bottom[0]].num // layer.N
        elif layer.type in BVLC:
            found[layer.name] = net.blobs[layer.param.bottom[0]].shape[0]
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in found.items())
        raise SeqgenError(f"{net.source}: the recurrent layers run different numbers of "
                          f"steps ({listed}); seqgen exports nets with one T")
    return next(iter(found.values()), 1)


def _sources(net):
    """{blob: the blob it copies} for the tops of Split layers."""
    alias = {}
    for layer in net.layers:
        if layer.type == "Split":
            src = layer.param.bottom[0]
            alias.update((t, alias.get(src, src)) for t in layer.param.top)
    return alias


def time_inputs(net):
    """The input blobs with a time axis first: all but those read only as x_static or as
    an exposed initial state."""
    alias = _sources(net)
    static, other = set(), set()
    for layer in net.layers:
        if layer.type == "Split":
            continue
        untimed = _untimed_bottoms(layer)
        for b in layer.param.bottom:
            (static if b in untimed else other).add(alias.get(b, b))
    return [name for name in net.inputs if name not in static or name in other]


def to_one_step(net):
    """Reshape `net` in place so that every recurrent layer runs a single step."""
    T = steps(net)
    if T == 1:
        return net
    for name in time_inputs(net):
        blob = net.blobs[name]
        blob.reshape((blob.shape[0] // T,) + tuple(blob.shape[1:]))
    try:
        net.reshape()
    except SeqgenError as e:
        raise SeqgenError(f"the net cannot run one step at a time: {e}") from None
    return net


def layers(net):
    """(layer, bottom names, top names) to convert, in net order: Input, Silence, losses and
    Accuracy left out, Split tops replaced by the blob they copy."""
    alias = _sources(net)
    for layer in net.layers:
        if layer.type in SKIPPED or layer.type == "Split" or evaluates(layer):
            continue
        yield layer, [alias.get(b, b) for b in layer.param.bottom], list(layer.param.top)


def predictions(net):
    """The output blobs of the net (what the exported graph returns besides states): its
    outputs but those of losses and Accuracy, and what those read that nothing exported
    reads (the logits of a training net)."""
    alias = _sources(net)
    dropped = [layer for layer in net.layers if evaluates(layer)]
    gone = {top for layer in dropped for top in layer.param.top}
    read = {b for _, bottoms, _ in layers(net) for b in bottoms}
    names = [alias.get(n, n) for n in net.outputs if n not in gone]
    names += [alias.get(b, b) for layer in dropped for b in layer.param.bottom
              if alias.get(b, b) not in read]
    return [n for n in dict.fromkeys(names) if n not in net.inputs]


#: the names of an LSTM's blobs W_x, W_h, b, W_static in either dialect: the fork's Lstm
#: and BVLC's LSTM (`param_names`)
LSTM_BLOBS = (("W_x", "W_xc"), ("W_h", "W_hc"), ("b", "b_c"), ("W_xc_static",))


def lstm_blob_indices(layer):
    """The indices in `layer.blobs` of W_x, W_h, b and W_static (None when absent) of a
    fork Lstm or a BVLC LSTM, found by their names."""
    names = list(layer.param_names)
    return tuple(next((names.index(n) for n in aliases if n in names), None)
                 for aliases in LSTM_BLOBS)


def lstm_params(layer):
    """(W_x (4H, I), W_h (4H, H), b (4H), W_static (4H, S) or None) of a fork Lstm or a
    BVLC LSTM, in Caffe's gate order i, f, o, g."""
    return tuple(None if i is None else layer.blobs[i].data
                 for i in lstm_blob_indices(layer))


def rnn_params(layer):
    """(W_xh, b_h, W_static or None, W_hh, W_ho, b_o) of a BVLC RNN."""
    d = [blob.data for blob in layer.blobs]
    return (d[0], d[1], d[2] if layer.static else None) + tuple(d[-3:])


def state_keys(layer):
    return ("h", "c") if layer.type in (FORK, "LSTM") else ("h",)


def exposed(layer):
    """Whether a BVLC layer takes its initial state from bottoms (expose_hidden)."""
    return layer.type in BVLC and layer.expose
