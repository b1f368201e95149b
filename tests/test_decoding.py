"""Decoding modes against independent references: top-p's kept set against a numpy
nucleus written here, M streams in one batched pass against each stream drawn alone (and
against the one-stream kernel), beam search against exhaustive search over every sequence
of a tiny model scored by a float64 numpy LSTM (tests/reference.py), stops against the
unstopped draw cut by hand."""
import itertools

import numpy as np
import pytest
from helpers import random_net
from reference import lstm_forward

from seqgen.errors import SeqgenError
from seqgen.generation.decoding import Decoding, sample, stop_at
from seqgen.generation.sample import (
    _one_step_inputs,
    draw_numpy,
    draw_streams,
    next_probabilities,
    sample_plan,
    sample_tokens,
    stream_seeds,
)
from seqgen.kernels.sample import draw, lstm_stack_sample

pytestmark = pytest.mark.numerics


def lm(V, E, sizes, static=0):
    """A deploy net Embed(V, E) -> LSTM(sizes...) -> InnerProduct V; with static > 0 the
    first LSTM also reads an x_static input of that many numbers."""
    text = f"""input: "x" input_shape {{ dim: 1 dim: 1 }}
input: "cont" input_shape {{ dim: 1 dim: 1 }}
{f'input: "feats" input_shape {{ dim: 1 dim: {static} }}' if static else ''}
layer {{ name: "embed" type: "Embed" bottom: "x" top: "l0"
        embed_param {{ input_dim: {V} num_output: {E} }} }}
"""
    for i, H in enumerate(sizes):
        extra = ' bottom: "feats"' if static and i == 0 else ""
        text += f"""layer {{ name: "lstm{i + 1}" type: "LSTM" bottom: "l{i}" bottom: "cont"{extra}
        top: "l{i + 1}" recurrent_param {{ num_output: {H} }} }}
"""
    text += f"""layer {{ name: "logits" type: "InnerProduct" bottom: "l{len(sizes)}"
        top: "logits" inner_product_param {{ num_output: {V} axis: 2 }} }}
layer {{ name: "prob" type: "Softmax" bottom: "logits" top: "prob" softmax_param {{ axis: 2 }} }}
"""
    return text


@pytest.fixture(scope="module")
def wide():
    """4H = 48 and 40 gate columns: one 32-column register tile and a remainder."""
    return random_net(lm(13, 6, (12, 10)), seed=1, std=0.6)


def reference_logits(net, prefix, static=None):
    """float64 logits after feeding prefix from a zero state, by tests/reference.py."""
    layers = {layer.name: layer for layer in net.layers}
    table, bias = (blob.data.astype(np.float64) for blob in layers["embed"].blobs)
    x = (table[np.asarray(prefix)] + bias)[:, None, :]
    cont = np.ones((len(prefix), 1))
    cont[0] = 0
    i = 1
    while f"lstm{i}" in layers:
        blobs = [b.data.astype(np.float64) for b in layers[f"lstm{i}"].blobs]
        W_x, b = blobs[0], blobs[1]
        extra = 0
        if len(blobs) == 4:  # W_x, b, W_static, W_h
            extra = static.reshape(1, -1) @ blobs[2].T
        H = blobs[-1].shape[1]
        h, _, _ = lstm_forward(x, cont, W_x, b, blobs[-1], np.zeros((1, H)), np.zeros((1, H)),
                               extra)
        x = h[1:]
        i += 1
    W, b = (blob.data.astype(np.float64) for blob in layers["logits"].blobs)
    return x[-1, 0] @ W.T + b


def nucleus(p, top_p):
    """The kept set of top-p over probabilities p, written plainly: walk the tokens from
    the most likely down until their sum reaches top_p, then add every token tied with the
    last one taken."""
    order = sorted(range(len(p)), key=lambda j: -p[j])
    total, taken = 0.0, []
    for j in order:
        taken.append(j)
        total += p[j]
        if total >= top_p * sum(p) - 1e-12:
            break
    floor = p[taken[-1]]
    return sorted(j for j in range(len(p)) if p[j] >= floor)


# -- top-p ---------------------------------------------------------------------------------

@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.6, 0), (1.5, 5)])
@pytest.mark.parametrize("compiled", [True, False])
def test_top_p_keeps_the_nucleus(wide, top_p, temperature, top_k, compiled):
    prime = [3, 1, 4, 1, 5]
    l = reference_logits(wide, prime) / temperature
    if top_k:
        l = np.where(l >= np.sort(l)[-top_k], l, -np.inf)
    p = np.exp(l - l.max())
    p /= p.sum()
    want = nucleus(p, top_p)
    got = next_probabilities(wide, prime, temperature, top_k, compiled=compiled, top_p=top_p)
    assert np.flatnonzero(got).tolist() == want
    np.testing.assert_allclose(got[want], p[want] / p[want].sum(), rtol=1e-4)
    if top_p < 1:
        assert len(want) < 13


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.6, 0.75, 0.99])
def test_top_p_keeps_ties_with_the_last_token(top_p):
    """Logits with exact ties: 2, 1, 1, 1, 0, 0 -> the kernel's and numpy's kept sets are
    the reference's, ties at the boundary all kept."""
    logits = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 1.0], np.float32)
    p = np.exp(logits.astype(np.float64) - 2)
    want = nucleus(p / p.sum(), top_p)
    w = np.zeros(6)
    draw(logits, 6, 1.0, 0, top_p, False, 0.5, w)
    assert np.flatnonzero(np.diff(np.concatenate([[0.0], w]))).tolist() == want
    _, probs = draw_numpy(logits, 1.0, 0, False, 0.5, 6, top_p)
    assert np.flatnonzero(probs).tolist() == want
    assert len(want) in (1, 4, 6)  # never part of the three tied 1s


def test_top_p_draws_stay_in_the_nucleus(wide):
    ids = sample_tokens(wide, [2], 400, top_p=0.5, seed=3)
    compiled_free = sample_tokens(wide, [2], 400, top_p=0.5, seed=3, compiled=False)
    np.testing.assert_array_equal(ids, compiled_free)
    assert len(set(ids.tolist())) > 1


# -- M streams at once ---------------------------------------------------------------------

@pytest.mark.parametrize("M", [1, 3, 4, 6, 9])
@pytest.mark.parametrize("settings", [dict(), dict(temperature=0.7, top_k=4),
                                      dict(top_p=0.8), dict(argmax=True)])
def test_a_batch_draws_what_each_stream_draws_alone(wide, M, settings):
    seeds = stream_seeds(11, M)
    batch, _ = draw_streams(wide, [1, 2, 3], 60, seeds, **settings)
    assert batch.shape == (M, 60)
    for i, seed in enumerate(seeds):
        np.testing.assert_array_equal(batch[i], sample_tokens(wide, [1, 2, 3], 60, seed=seed,
                                                              **settings))
    if M > 1 and not settings.get("argmax"):
        assert len({tuple(row) for row in batch.tolist()}) == M


def test_stream_seeds_do_not_depend_on_the_count():
    assert stream_seeds(5, 3) == stream_seeds(5, 7)[:3]
    assert stream_seeds(5, 2) != stream_seeds(6, 2)


def test_rows_kernel_equals_the_one_stream_kernel(wide):
    """The batched kernel (tiles of four rows) and the one-stream kernel it replaced draw
    the same ids for each stream's uniforms."""
    plan = sample_plan(wide, "x", "cont")
    seeds = stream_seeds(2, 8)
    batch, _ = draw_streams(wide, [4, 4], 200, seeds)
    for i, seed in enumerate(seeds):
        out = np.zeros(200, np.int64)
        lstm_stack_sample(*plan, np.array([4, 4]), np.random.default_rng(seed).random(200),
                          13, 1.0, 0, 1.0, False, out, np.zeros(13))
        np.testing.assert_array_equal(batch[i], out)


def test_batched_and_stepwise_agree(wide):
    seeds = stream_seeds(9, 5)
    a, _ = draw_streams(wide, [0], 50, seeds, temperature=0.9)
    b, _ = draw_streams(wide, [0], 50, seeds, temperature=0.9, compiled=False)
    np.testing.assert_array_equal(a, b)


# -- beam search ---------------------------------------------------------------------------

V_TINY, L = 4, 3


@pytest.fixture(scope="module")
def tiny():
    return random_net(lm(V_TINY, 3, (8,)), seed=4, std=1.2)


def all_scores(net, prime, length, n=V_TINY):
    """{sequence: its log-probability} for every sequence of `length` tokens."""
    def logp(prefix):
        l = reference_logits(net, list(prime) + list(prefix))[:n]
        return l - l.max() - np.log(np.exp(l - l.max()).sum())

    scores = {(): 0.0}
    for t in range(length):
        for seq in itertools.product(range(n), repeat=t):
            lp = logp(seq)
            for j in range(n):
                scores[seq + (j,)] = scores[seq] + lp[j]
    return scores


def reference_beam(scores, K, length, stop_ids=(), alpha=1.0):
    """Beam search over the exhaustive table, as beam.py documents it."""
    live, finished = [()], []
    for _ in range(length):
        cands = sorted(((scores[s + (j,)], b, j) for b, s in enumerate(live)
                        for j in range(V_TINY)), key=lambda c: (-c[0], c[1], c[2]))
        nxt = []
        for rank, (_, b, j) in enumerate(cands):
            seq = live[b] + (j,)
            if j in stop_ids:
                if rank < K:
                    finished.append(seq)
            else:
                nxt.append(seq)
            if len(nxt) == K or (rank + 1 >= 2 * K and nxt):
                break
        live = nxt
    finished += live
    return sorted(finished, key=lambda s: -scores[s] / len(s) ** alpha)[:K]


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_beam_search_against_every_sequence(tiny, K):
    prime = [1, 0]
    scores = all_scores(tiny, prime, L)
    got = sample(tiny, prime, Decoding(steps=L, beam=K))
    assert [tuple(s.ids.tolist()) for s in got] == reference_beam(scores, K, L)
    for s in got:
        assert s.logprob == pytest.approx(scores[tuple(s.ids.tolist())], abs=1e-4)
        assert s.ended == "steps"
    if K == 1:  # one beam is the greedy path
        greedy = sample_tokens(tiny, prime, L, argmax=True)
        assert got[0].ids.tolist() == greedy.tolist()


def test_a_full_beam_over_two_steps_is_exhaustive(tiny):
    """K = V keeps every first token, so the K best two-token sequences are the K best of
    all V**2, which the table ranks."""
    scores = all_scores(tiny, [2], 2)
    best = sorted((s for s in scores if len(s) == 2), key=lambda s: -scores[s])[:V_TINY]
    got = sample(tiny, [2], Decoding(steps=2, beam=V_TINY, alpha=0))
    assert [tuple(s.ids.tolist()) for s in got] == best


@pytest.mark.parametrize("prime,stop,K", [([2], 2, 3), ([1], 1, 3), ([3], 3, 2)])
def test_beam_with_a_stop_id_normalises_by_length(tiny, prime, stop, K):
    """Settings where the ranking with alpha 0 (log-probability) and with alpha 1 (its
    mean per token) differ, so the normalisation is tested."""
    scores = all_scores(tiny, prime, 5)
    results = {}
    for alpha in (0.0, 0.6, 1.0):
        want = reference_beam(scores, K, 5, stop_ids=(stop,), alpha=alpha)
        got = sample(tiny, prime, Decoding(steps=5, beam=K, alpha=alpha, stop_ids=(stop,)))
        assert [tuple(s.ids.tolist()) for s in got] == want
        for s in got:
            lp = scores[tuple(s.ids.tolist())]
            assert s.logprob == pytest.approx(lp, abs=1e-4)
            assert s.score == pytest.approx(lp / len(s.ids) ** alpha, abs=1e-4)
        assert all((s.ended == "stop_id") == (s.ids[-1] == stop) for s in got)
        results[alpha] = want
    assert results[0.0] != results[1.0]
    assert any(len(s) < 5 for s in results[0.0])  # a stopped text among the best


def test_beam_stop_strings_end_texts_like_the_ids_that_spell_them(tiny):
    """A stop string that only token 2 completes ends texts where stop id 2 does; one that
    spans two tokens ("da": 3 then 0) ends them at the second."""
    def text(ids):
        return "".join("abcd"[i] for i in ids)

    by_id = sample(tiny, [0], Decoding(steps=5, beam=3, stop_ids=(2,)))
    by_text = sample(tiny, [0], Decoding(steps=5, beam=3, stop=("c",)), text=text)
    assert [s.ids.tolist() for s in by_text] == [s.ids.tolist() for s in by_id]
    assert [s.ended for s in by_text] == [s.ended.replace("stop_id", "stop") for s in by_id]
    for s in sample(tiny, [0], Decoding(steps=5, beam=3, stop=("da",)), text=text):
        t = text(s.ids)
        assert ("da" in t) == (s.ended == "stop") and ("da" not in t[:-1])


def test_beam_refuses_a_net_it_cannot_run():
    text = lm(5, 3, (4,)).replace('bottom: "l1"\n        top: "logits"', 'bottom: "relu"\n'
                                  '        top: "logits"')
    text = text.replace('layer { name: "logits"', 'layer { name: "relu" type: "ReLU" '
                        'bottom: "l1" top: "relu" }\nlayer { name: "logits"')
    net = random_net(text, seed=0)
    assert "ReLU" in text and sample_plan(net, "x", "cont") is None
    with pytest.raises(SeqgenError, match=r"--beam runs on Embed -> LSTM stack -> "
                                          r"InnerProduct nets only"):
        sample(net, [0], Decoding(steps=3, beam=2))


def test_beam_on_a_static_net_against_every_sequence():
    """x_static folded into the compiled chain's bias: the beam of a static net is the
    reference beam over a table scored with the static term at every step."""
    net = random_net(lm(V_TINY, 3, (8,), static=2), seed=5, std=1.2)
    feats = np.array([1.5, -0.5], np.float32)
    scores = {(): 0.0}
    for t in range(L):
        for seq in itertools.product(range(V_TINY), repeat=t):
            l = reference_logits(net, [1] + list(seq), feats.astype(np.float64))
            lp = l - l.max() - np.log(np.exp(l - l.max()).sum())
            for j in range(V_TINY):
                scores[seq + (j,)] = scores[seq] + lp[j]
    got = sample(net, [1], Decoding(steps=L, beam=3), static=("feats", feats))
    assert [tuple(s.ids.tolist()) for s in got] == reference_beam(scores, 3, L)
    for s in got:
        assert s.logprob == pytest.approx(scores[tuple(s.ids.tolist())], abs=1e-4)


# -- stops and static inputs ---------------------------------------------------------------

def test_stop_ids_and_strings_cut_the_unstopped_draw(wide):
    letters = "abcdefghijklm"

    def text(ids):
        return "".join(letters[i] for i in ids)

    full = sample(wide, [0], Decoding(steps=300, seed=4), text=text)[0].ids
    stop_id = int(full[40])
    first = int(np.flatnonzero(full == stop_id)[0])
    got = sample(wide, [0], Decoding(steps=300, seed=4, stop_ids=(stop_id,)), text=text)[0]
    assert got.ids.tolist() == full[:first + 1].tolist() and got.ended == "stop_id"
    s = text(full)
    pair = s[100:102]
    cut = s.index(pair) + 2
    got = sample(wide, [0], Decoding(steps=300, seed=4, stop=("zz", pair)), text=text)[0]
    assert text(got.ids) == s[:cut] and got.ended == "stop"


def test_stop_at_looks_at_the_generated_text_only():
    d = Decoding(stop=("ab",))
    assert stop_at([0, 1, 0, 1], d, lambda ids: "".join("ab"[i] for i in ids)) == (2, "stop")
    assert stop_at([1, 1, 1], d, lambda ids: "".join("ab"[i] for i in ids)) == (3, "steps")


def test_the_static_input_conditions_every_step():
    net = random_net(lm(7, 3, (5,), static=4), seed=2, std=0.8)
    feats = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    prime = [1, 2, 3]
    l = reference_logits(net, prime, feats.astype(np.float64))
    want = np.exp(l - l.max())
    got = next_probabilities_static(net, prime, feats)
    np.testing.assert_allclose(got, want / want.sum(), rtol=1e-4, atol=1e-7)
    stepwise = next_probabilities_static(net, prime, feats, compiled=False)
    np.testing.assert_allclose(stepwise, want / want.sum(), rtol=1e-4, atol=1e-7)
    other = next_probabilities_static(net, prime, -feats)
    assert np.abs(other - got).max() > 1e-3


def next_probabilities_static(net, prime, feats, compiled=True):
    return draw_streams(net, prime, 1, [0], static=("feats", feats), compiled=compiled)[1]


def test_a_static_net_runs_compiled_and_stepwise_alike():
    net = random_net(lm(7, 3, (5, 9), static=4), seed=2, std=0.8)
    static = ("feats", np.array([0.5, -1.0, 2.0, 0.25], np.float32))
    _one_step_inputs(net, static)
    assert sample_plan(net, "x", "cont") is not None
    seeds = stream_seeds(1, 5)
    a, _ = draw_streams(net, [1, 2], 80, seeds, static=static)
    b, _ = draw_streams(net, [1, 2], 80, seeds, static=static, compiled=False)
    np.testing.assert_array_equal(a, b)


# -- bad settings --------------------------------------------------------------------------

@pytest.mark.parametrize("settings,message", [
    (dict(top_p=0), r"--top-p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"--top-p must be in \(0, 1\]"),
    (dict(beam=14), "--beam must be an integer from 1 to 13"),
    (dict(beam=2, top_p=0.5), "--beam searches for the most likely texts"),
    (dict(beam=2, samples=3), "--beam searches for the most likely texts"),
    (dict(beam=2, alpha=-1.0), "--beam-alpha must be a finite number >= 0"),
    (dict(stop=("",)), "--stop: give a non-empty string"),
    (dict(stop_ids=(13,)), r"stop id 13 is outside \[0, 13\)"),
])
def test_bad_settings_are_one_line(wide, settings, message):
    with pytest.raises(SeqgenError, match=message) as info:
        sample(wide, [0], Decoding(steps=5, **settings), text=str)
    assert "\n" not in str(info.value)


def test_decoding_is_a_record():
    d = Decoding(steps=9, top_p=0.9, stop=("\n\n",), stop_ids=(np.int64(3),), seed=123)
    assert d.as_dict() == dict(steps=9, temperature=1.0, top_k=0, top_p=0.9, argmax=False,
                               samples=1, seed=123, beam=0, alpha=1.0, stop=["\n\n"],
                               stop_ids=[3])
