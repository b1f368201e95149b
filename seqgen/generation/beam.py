"""Beam search over a token language model (the LRCN captioner's way of decoding): the K
most likely continuations of a prime, found by keeping the K best prefixes at each step.

Step t extends each of the live prefixes by every token of the vocabulary and orders the
candidates by their log-probability (sum of log softmax(logits) of their tokens; ties
keep the earlier prefix, then the lower id). In that order a candidate that ends (a stop
id, or a stop string completed) is finished when it ranks among the first K; the others
become the live prefixes until there are K. After `steps` tokens the live prefixes are
finished too. The K finished texts with the best length-normalised score
    score = logprob / length ** alpha
(length: generated tokens, the stop included; alpha 0 ranks by log-probability, 1 by its
mean per token, Hugging Face's length_penalty form) are returned, best first.

Runs on the compiled Embed -> LSTM stack -> InnerProduct chain only (kernels/sample.py's
rows kernel, one row per live prefix).
"""
import numpy as np

from ..errors import SeqgenError
from ..kernels.sample import prime_rows, rows_affine, rows_logits
from .sample import _check, _one_step_inputs, _prime, drawable, sample_plan, token_inputs


def log_softmax(logits):
    """float64 log softmax of each row."""
    l = np.asarray(logits, np.float64)
    top = l.max(axis=1, keepdims=True)
    return l - top - np.log(np.exp(l - top).sum(axis=1, keepdims=True))


def _ends(ids, decoding, text):
    """What ends a prefix whose last token was just added: "stop_id", "stop" or None."""
    if ids[-1] in decoding.stop_ids:
        return "stop_id"
    if decoding.stop:
        span = max(len(s) for s in decoding.stop) + 1
        window = text(ids[-span:])
        if any(s in window for s in decoding.stop):
            return "stop"
    return None


def _extend(live, logp, decoding, text, finished):
    """The next live prefixes [(parent row, token, logprob, ids)] from the candidates of
    the live ones [(logprob, ids)] with their next-token log-probabilities logp (rows, n);
    ending candidates among the first K go to finished."""
    K, n = decoding.beam, logp.shape[1]
    scores = np.array([lp for lp, _ in live])[:, None] + logp
    order = np.argsort(-scores, axis=None, kind="stable")
    out = []
    for rank, flat in enumerate(order):
        parent, token = divmod(int(flat), n)
        ids = live[parent][1] + [token]
        ended = _ends(ids, decoding, text)
        if ended is None:
            out.append((parent, token, float(scores[parent, token]), ids))
        elif rank < K:
            finished.append((float(scores[parent, token]), ids, ended))
        if len(out) == K or rank + 1 >= 2 * K and len(out):
            break
    return out


def beam_search(net, prime_ids, decoding, vocab_size=None, text=None, static=None):
    """The decoding.beam best continuations (decoding.Sample, best first) of prime_ids."""
    from .decoding import Sample  # lazy: decoding imports this module

    names = token_inputs(net)
    _one_step_inputs(net, static)
    n = drawable(vocab_size, net.blobs[names[2]].shape[-1])
    _check(decoding.steps, 1.0, 0, False, n)
    prime = _prime(prime_ids, n)
    plan = sample_plan(net, names[0], names[1])
    if plan is None:
        raise SeqgenError(f"{net.source}: --beam runs on Embed -> LSTM stack -> "
                          "InnerProduct nets only (this net needs sampling instead)")
    K = decoding.beam
    h, c, G, X = prime_rows(*plan[:10], prime, K)
    logits = np.zeros((K, plan[10].shape[0]), np.float32)
    rows_affine(plan[2], plan[3], plan[10], plan[11], X, 1, logits)
    live, finished = [(0.0, [])], []
    for _ in range(decoding.steps):
        nxt = _extend(live, log_softmax(logits[:len(live), :n]), decoding, text, finished)
        if not nxt:
            break
        parents = [p for p, _, _, _ in nxt]
        h[:, :len(nxt)], c[:, :len(nxt)] = h[:, parents], c[:, parents]
        live = [(lp, ids) for _, _, lp, ids in nxt]
        tokens = np.array([t for _, t, _, _ in nxt], np.int64)
        rows_logits(*plan, tokens, h, c, G, X, logits)
    else:
        finished += [(lp, ids, "steps") for lp, ids in live]
    ranked = sorted(finished, key=lambda f: -f[0] / len(f[1]) ** decoding.alpha)
    return [Sample(np.array(ids, np.int64), ended, None, lp, lp / len(ids) ** decoding.alpha)
            for lp, ids, ended in ranked[:K]]
