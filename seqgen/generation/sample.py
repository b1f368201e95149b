"""Sampling text from a token language model: Input x (T, N) ids + cont -> Embed -> LSTM
stack -> InnerProduct logits (-> Softmax / SoftmaxWithLoss / Accuracy, which are ignored).

Such a chain runs in one compiled call (kernels/sample.py). Any other net steps through
Net.forward one token at a time (inputs reshaped to T = N = 1, cont 0 at the first step,
then 1) and draws in numpy with the same rule, so both paths give the same ids for a seed:
the uniforms are drawn up front from numpy's Generator, one per step. The compiled path
runs any number of streams at once (kernels/sample.py's rows kernel), each with the
arithmetic of the one-stream kernel, so a stream's ids are the same alone or beside others.
"""
import math
import numbers

import numpy as np

from ..data.roles import inputs_by_role
from ..errors import SeqgenError
from ..kernels.sample import lstm_stack_sample, lstm_stack_sample_rows
from ..limits import MEMORY_LIMIT, check_memory
from .generate import computing_layers, lstm_arrays, output_name, stackable

#: layers after the logits that sampling leaves out (it computes its own softmax)
HEADS = ("Softmax", "SoftmaxWithLoss", "Accuracy")


def token_inputs(net):
    """(token input, cont input, logits blob) of a TEST language-model net: the input the
    Embed layer reads, the clip/cont input, and the bottom of the softmax (or the single
    output of a net without one)."""
    roles = inputs_by_role(net)  # found by the layers that read them, whatever their names
    if "tokens" not in roles:
        raise SeqgenError(f"{net.source}: sampling needs an Embed layer reading token ids "
                          f"from a net input (inputs: {', '.join(net.inputs) or 'none'})")
    if "cont" not in roles:
        raise SeqgenError(f"{net.source}: sampling needs a 'cont' (or 'clip') input "
                          f"(inputs: {', '.join(net.inputs)})")
    heads = [layer for layer in net.layers if layer.type in HEADS[:2]]
    logits = heads[0].param.bottom[0] if heads else output_name(net)
    return roles["tokens"], roles["cont"], logits


def _lstm_weights(net, layer, bottoms):
    """A layer's LSTM weights for the compiled chain: a static input (bottom 2, a net
    input holding the --static values) folded into the bias."""
    if len(bottoms) == 3 and bottoms[2] in net.inputs:
        return layer.lstm_weights(net.blobs[bottoms[2]].data.reshape(-1))
    return layer.lstm_weights() if len(bottoms) == 2 else None


def sample_plan(net, tokens, cont):
    """The compiled sampler's arrays (table, table_b, LSTM stack layout, W_out, b_out) when
    the net is exactly Embed(tokens) -> LSTM(..., cont)... -> affine -> heads; else None."""
    embed, layers, affine, current = None, [], None, tokens
    for layer, bottoms, tops in computing_layers(net):
        if affine is not None:  # after the logits: only heads reading them
            if layer.type not in HEADS or bottoms[0] != current:
                return None
            continue
        if embed is None:
            embed = layer.embed_weights() if bottoms == [tokens] and len(tops) == 1 else None
            if embed is None:
                return None
        elif _lstm_weights(net, layer, bottoms) is not None and stackable(
                layer, bottoms[:2], tops, current, cont):
            layers.append(_lstm_weights(net, layer, bottoms))
        elif layers and bottoms == [current] and len(tops) == 1:
            affine = layer.affine_weights()
            if affine is None:
                return None
        else:
            return None
        current = tops[0]
    if affine is None:
        return None
    table, table_b = (np.ascontiguousarray(a, np.float32) for a in embed)
    stack = lstm_arrays(layers)
    W_out, b_out = (np.ascontiguousarray(a, np.float32) for a in affine)
    if not (table.shape[0] == W_out.shape[0] and table.shape[1] == stack[0][0]
            and W_out.shape[1] == stack[1][-1]):
        return None
    return (table, table_b) + stack + (W_out, b_out)


def _prime(prime_ids, V):
    """The prime as int64 ids, checked to be integers in [0, V)."""
    raw = np.asarray(prime_ids).reshape(-1)
    if raw.size == 0:
        raise SeqgenError("the prime must hold at least one token id")
    if raw.dtype.kind not in "iuf":
        raise SeqgenError(f"prime ids must be integers, got {raw.dtype} values")
    ids = raw.astype(np.int64)
    bad = np.flatnonzero((ids != raw) | (ids < 0) | (ids >= V))
    if bad.size:
        raise SeqgenError(f"prime id {raw[bad[0]]} at position {bad[0]} is outside [0, {V}) "
                          f"(the vocabulary)")
    return ids


def _check(steps, temperature, top_k, argmax, n, top_p=1.0):
    """Refuse bad sampling arguments with one-line messages (n: the tokens that may be
    drawn)."""
    if not isinstance(steps, numbers.Integral) or steps < 1:
        raise SeqgenError(f"steps must be a positive integer, got {steps!r}")
    check_memory(f"steps {steps}", steps * 16, f"give {MEMORY_LIMIT // 16} or fewer (16 bytes "
                 "a step: its id and its uniform)")
    if not argmax and not (isinstance(temperature, numbers.Real)
                           and math.isfinite(temperature) and temperature > 0):
        raise SeqgenError(f"temperature must be a finite number > 0, got {temperature!r} "
                          "(argmax picks the most likely token)")
    if not isinstance(top_k, numbers.Integral) or not 0 <= top_k <= n:
        raise SeqgenError(f"top_k must be an integer in [0, {n}] (0 = all tokens), "
                          f"got {top_k!r}")
    if not (isinstance(top_p, numbers.Real) and 0 < top_p <= 1):
        raise SeqgenError(f"top_p must be a number in (0, 1] (1 = all tokens), got {top_p!r}")


def drawable(vocab_size, V):
    """How many of the net's V outputs may be drawn: the vocabulary's size (ids from it
    on have no token), or all V when the caller has no vocabulary."""
    if vocab_size is None:
        return V
    if not isinstance(vocab_size, numbers.Integral) or not 1 <= vocab_size <= V:
        raise SeqgenError(f"vocab_size must be an integer in [1, {V}] (the net's outputs), "
                          f"got {vocab_size!r}")
    return int(vocab_size)


def spare_outputs(V, n):
    """The line saying which of the net's V outputs a vocabulary of n tokens never samples
    (None when there are none)."""
    if n >= V:
        return None
    span = f"output {n} is" if n == V - 1 else f"outputs {n}-{V - 1} are"
    return (f"the net has {V} outputs, the vocabulary {n} token{'s' * (n != 1)}: {span} "
            "never sampled")


def _nucleus_floor(e, keep, top_p):
    """The weight a kept token must reach under top_p (kernels/sample.py's rule): the
    smallest of the largest weights whose sum, largest first, reaches top_p of the total."""
    q = np.sort(e[keep])[::-1]
    c = np.cumsum(q)
    return q[int(np.argmax(c >= top_p * c[-1]))]


def draw_numpy(logits, temperature, top_k, argmax, u, n=None, top_p=1.0):
    """(token, probabilities) by kernels/sample.py's rule, in numpy: only the first n
    logits (default: all) may be drawn."""
    l = np.asarray(logits, np.float32).reshape(-1)
    V = l.size
    n = V if n is None else n
    if argmax:
        token = int(np.argmax(l[:n]))
        return token, np.eye(V)[token]
    inside = np.arange(V) < n
    keep = inside & (l >= np.sort(l[:n])[n - top_k]) if 0 < top_k < n else inside
    top = np.float64(l[:n].max())
    e = np.exp((l.astype(np.float64) - top) / temperature)
    if top_p < 1:
        keep = keep & (e >= _nucleus_floor(e, keep, top_p))
    w = np.where(keep, e, 0.0)
    c = np.cumsum(w)
    token = int(np.searchsorted(c, u * c[-1], side="right"))
    if token >= V:
        token = int(np.flatnonzero(keep)[-1])
    return token, w / c[-1]


def _one_step_inputs(net, static=None):
    """Reshape every input to T = N = 1 (labels too, so loss layers still fit) and zero it;
    the static input (name, values) to one row holding the values."""
    for name in net.inputs:
        blob = net.blobs[name]
        if static is not None and name == static[0]:
            blob.reshape((1,) + tuple(blob.shape[1:]))
        elif len(blob.shape) >= 2:
            blob.reshape((1, 1) + tuple(blob.shape[2:]))
        blob.data[...] = 0
    net.reshape()
    if static is not None:
        net.blobs[static[0]].data[...] = static[1].reshape(net.blobs[static[0]].shape)


def _stepwise(net, names, prime, uniforms, n, draw):
    """The Net.forward path for one stream: (ids, probabilities of the first draw); draw
    (logits, u) -> (token, probabilities)."""
    tokens, cont, logits = names
    net.reset_state()

    def step(token, first):
        net.blobs[tokens].data[...] = token
        net.blobs[cont].data[...] = 0.0 if first else 1.0
        net.forward()
        return net.blobs[logits].data

    for i, token in enumerate(prime):
        values = step(token, i == 0)
    out = np.zeros(len(uniforms), np.int64)
    first = None
    for i, u in enumerate(uniforms):
        if i:
            values = step(out[i - 1], False)
        out[i], probs = draw(values, u)
        first = probs if first is None else first
    return out, first


def stream_seeds(seed, streams):
    """The seeds of `streams` streams drawn with `seed`: stream i's seed is the i-th
    integer of numpy's Generator seeded with `seed`, so it does not depend on how many
    streams are drawn (seed None: fresh entropy)."""
    rng = np.random.default_rng(seed)
    return [int(rng.integers(2 ** 63)) for _ in range(streams)]


def draw_streams(net, prime_ids, steps, seeds, temperature=1.0, top_k=0, top_p=1.0,
                 argmax=False, compiled=True, vocab_size=None, static=None):
    """(ids (M, steps), probabilities of the first draw) for one stream per seed, all after
    prime_ids: stream i draws with numpy's Generator seeded seeds[i]. static: (input name,
    values) of a net's static input, fed at every step."""
    names = token_inputs(net)
    _one_step_inputs(net, static)
    V = net.blobs[names[2]].count
    n = drawable(vocab_size, V)
    _check(steps, temperature, top_k, argmax, n, top_p)
    prime = _prime(prime_ids, n)
    temperature = 1.0 if argmax else float(temperature)
    uniforms = np.stack([np.random.default_rng(s).random(steps) for s in seeds])
    plan = sample_plan(net, names[0], names[1]) if compiled else None
    if plan is None:
        def draw(logits, u):
            return draw_numpy(logits, temperature, int(top_k), bool(argmax), u, n,
                              float(top_p))

        runs = [_stepwise(net, names, prime, u, n, draw) for u in uniforms]
        return np.stack([r[0] for r in runs]), runs[0][1]
    out, first = np.zeros(uniforms.shape, np.int64), np.zeros(V, np.float64)
    # one stream: the one-stream kernel, whose arithmetic per element is the rows kernel's
    # (tests/test_decoding.py checks the ids agree), without its bookkeeping of rows
    kernel = lstm_stack_sample if len(seeds) == 1 else lstm_stack_sample_rows
    kernel(*plan, prime, uniforms[0] if len(seeds) == 1 else uniforms, n, temperature,
           int(top_k), float(top_p), bool(argmax), out[0] if len(seeds) == 1 else out, first)
    return out, first


def sample_tokens(net, prime_ids, steps, temperature=1.0, top_k=0, seed=None, argmax=False,
                  compiled=True, vocab_size=None, top_p=1.0):
    """`steps` token ids drawn after feeding prime_ids (not included) to a TEST net, from
    softmax(logits / temperature) over the top_k logits (0: all) and their top_p nucleus,
    or the argmax. With vocab_size, only ids below it are drawn (a net may have more
    outputs than its run's vocabulary has tokens)."""
    return draw_streams(net, prime_ids, steps, [seed], temperature, top_k, top_p, argmax,
                        compiled, vocab_size)[0][0]


def next_probabilities(net, prime_ids, temperature=1.0, top_k=0, compiled=True,
                       vocab_size=None, top_p=1.0):
    """The distribution (V,) float64 that the token after prime_ids is drawn from (0 for
    ids from vocab_size on)."""
    return draw_streams(net, prime_ids, 1, [0], temperature, top_k, top_p, False, compiled,
                        vocab_size)[1]
