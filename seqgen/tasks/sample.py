"""Sampling tokens from a language model one step at a time (placeholder: stepping the net
with Net.forward; the compiled sampler replaces it)."""
import numpy as np

from ..errors import SeqgenError
from .roles import input_roles


def sample_tokens(net, prime_ids, steps, temperature=1.0, top_k=0, seed=None, argmax=False,
                  compiled=True):
    """Feed `prime_ids` from a zero state, then draw `steps` tokens from
    softmax(logits / temperature) (top_k: only the k most likely; argmax: the most likely)."""
    roles = input_roles(net)
    tokens, cont = roles["tokens"], roles["cont"]
    if temperature <= 0 and not argmax:
        raise SeqgenError(f"--temperature must be > 0, got {temperature}")
    for name in (tokens, cont):
        net.blobs[name].reshape((1, 1))
    for name in net.inputs:
        if name not in (tokens, cont):
            net.blobs[name].reshape((1, 1))
    net.reshape()
    net.reset_state()
    logits_blob = _logits(net, roles)
    rng = np.random.default_rng(seed)
    out = []
    feed = list(prime_ids)
    for i in range(len(prime_ids) + steps - 1):
        net.blobs[tokens].data[...] = feed[i]
        net.blobs[cont].data[...] = 0.0 if i == 0 else 1.0
        net.forward()
        if i < len(prime_ids) - 1:
            continue
        z = np.asarray(net.blobs[logits_blob].data, np.float64).ravel()
        if argmax or temperature < 1e-4:
            k = int(np.argmax(z))
        else:
            z = z / temperature
            if top_k:
                z[np.argsort(z)[:-top_k]] = -np.inf
            p = np.exp(z - z.max())
            p /= p.sum()
            k = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), len(p) - 1))
        out.append(k)
        feed.append(k)
    return np.array(out[:steps], np.int64)


def _logits(net, roles):
    for layer in net.layers:
        if layer.is_loss and roles.get("labels") in layer.param.bottom[1:2]:
            return layer.param.bottom[0]
    raise SeqgenError(f"{net.source}: cannot tell the logits blob (no loss layer reading the "
                      "labels)")
