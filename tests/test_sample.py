"""Token sampling: the compiled Embed -> LSTM stack -> InnerProduct sampler against the
per-step Net path, and the draws against the softmax they come from."""
import numpy as np
import pytest
from helpers import random_net

from seqgen.errors import SeqgenError
from seqgen.generation.sample import next_probabilities, sample_plan, sample_tokens, token_inputs

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

V, E, T = 11, 5, 8

LSTM = """layer {{ name: "{name}" type: "LSTM" bottom: "{bottom}" bottom: "cont" top: "{name}"
        recurrent_param {{ num_output: {H} weight_filler {{ type: "gaussian" std: 0.5 }}
                          bias_filler {{ type: "gaussian" std: 0.3 }} }} }}
"""
EMBED = f"""layer {{ name: "embed" type: "Embed" bottom: "x" top: "embed"
        embed_param {{ input_dim: {V} num_output: {E}
                      weight_filler {{ type: "gaussian" std: 1 }} }} }}
"""
IP = f"""layer {{ name: "logits" type: "InnerProduct" bottom: "lstm2" top: "logits"
        inner_product_param {{ num_output: {V} axis: 2
                              weight_filler {{ type: "gaussian" std: 1 }}
                              bias_filler {{ type: "gaussian" std: 0.5 }} }} }}
"""
# the training net: labels, dropout between the layers, the loss at the end
TRAIN = (f"""layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "label"
        input_param {{ shape {{ dim: {T} dim: 1 }} }} }}
""" + EMBED + LSTM.format(name="lstm1", bottom="embed", H=7)
         + """layer { name: "drop1" type: "Dropout" bottom: "lstm1" top: "lstm1" }
""" + LSTM.format(name="lstm2", bottom="lstm1", H=6) + IP
         + """layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label"
        top: "loss" softmax_param { axis: 2 } }
""")
# the deploy net: a Softmax output, no labels
DEPLOY = ("""input: "x" input_shape { dim: 1 dim: 1 }
input: "cont" input_shape { dim: 1 dim: 1 }
""" + EMBED + LSTM.format(name="lstm1", bottom="embed", H=7)
          + LSTM.format(name="lstm2", bottom="lstm1", H=6) + IP
          + """layer { name: "prob" type: "Softmax" bottom: "logits" top: "prob"
        softmax_param { axis: 2 } }
""")
# not a chain the compiled sampler knows (a ReLU after the LSTMs): the Net path only
OTHER = DEPLOY.replace(IP, """layer { name: "relu" type: "ReLU" bottom: "lstm2" top: "relu" }
""" + IP.replace('bottom: "lstm2"', 'bottom: "relu"'))
assert "ReLU" in OTHER

PRIME = [3, 1, 4, 1, 5, 9, 2, 6]


def make_net(text=TRAIN, seed=0):
    return random_net(text, seed, std=0.6)


@pytest.fixture(scope="module")
def net():
    return make_net()


def test_both_nets_are_compiled_chains_and_the_relu_net_is_not():
    for text, expect in ((TRAIN, True), (DEPLOY, True), (OTHER, False)):
        n = make_net(text)
        tokens, cont, logits = token_inputs(n)
        assert (tokens, cont, logits) == ("x", "cont", "logits")
        assert (sample_plan(n, tokens, cont) is not None) == expect, text


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.5, 4), (0.3, 2),
                                               (1.0, V)])
def test_compiled_equals_stepwise(net, temperature, top_k):
    for seed in (0, 1, 7):
        args = (net, PRIME, 120, temperature, top_k, seed)
        compiled = sample_tokens(*args)
        stepwise = sample_tokens(*args, compiled=False)
        np.testing.assert_array_equal(compiled, stepwise)
        assert len(set(compiled.tolist())) > 1


def test_deploy_net_samples_like_the_training_net():
    train, deploy = make_net(TRAIN), make_net(DEPLOY)
    for seed in (0, 3):
        ids = sample_tokens(train, PRIME, 80, 0.9, 0, seed)
        np.testing.assert_array_equal(sample_tokens(deploy, PRIME, 80, 0.9, 0, seed), ids)
        np.testing.assert_array_equal(
            sample_tokens(deploy, PRIME, 80, 0.9, 0, seed, compiled=False), ids)


def test_greedy_forms_agree(net):
    greedy = sample_tokens(net, PRIME, 100, argmax=True)
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 100, argmax=True, compiled=False),
                                  greedy)
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 100, 1e-6, seed=5), greedy)
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 100, 1.3, 1, seed=6), greedy)
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 100, 1.3, 1, seed=6,
                                                compiled=False), greedy)


def test_seed_repeats_and_different_seeds_differ(net):
    a = sample_tokens(net, PRIME, 200, seed=42)
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 200, seed=42), a)
    assert (sample_tokens(net, PRIME, 200, seed=43) != a).any()
    assert a.dtype == np.int64 and a.shape == (200,)
    assert a.min() >= 0 and a.max() < V


def test_top_k_keeps_only_the_k_largest_logits(net):
    probs = next_probabilities(net, PRIME, 1.0, 3)
    full = next_probabilities(net, PRIME, 1.0)
    assert np.count_nonzero(probs) == 3
    np.testing.assert_array_equal(np.flatnonzero(probs), np.sort(np.argsort(full)[-3:]))
    np.testing.assert_allclose(probs[probs > 0], full[probs > 0] / full[probs > 0].sum(),
                               rtol=1e-12)


def prime_logits(net, prime):
    """The logits after the prime, from one Net.forward over the whole prime sequence."""
    P = len(prime)
    cont = np.ones((P, 1), np.float32)
    cont[0] = 0
    label = np.zeros((P, 1), np.float32)
    net.reset_state()
    net.forward(x=np.array(prime, np.float32).reshape(P, 1), cont=cont, label=label)
    return net.blobs["logits"].data[-1, 0].astype(np.float64)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("compiled", [True, False])
def test_the_prime_sets_the_state(temperature, compiled):
    net = make_net(seed=3)
    l = prime_logits(net, PRIME) / temperature
    want = np.exp(l - l.max())
    want /= want.sum()
    got = next_probabilities(net, PRIME, temperature, compiled=compiled)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    # a different prime gives a different distribution
    other = next_probabilities(net, PRIME[::-1], temperature, compiled=compiled)
    assert np.abs(other - got).max() > 1e-3


def test_draws_follow_the_softmax(net):
    """Chi-square of 4000 first draws (one seed each) against the softmax; the same
    statistic rejects the distribution at another temperature, so the bound can fail."""
    n = 4000
    first = np.array([sample_tokens(net, PRIME, 1, 1.0, 0, seed)[0] for seed in range(n)])
    counts = np.bincount(first, minlength=V)

    def chi2(p):
        keep = p * n >= 5
        return (((counts - n * p) ** 2 / (n * p))[keep]).sum(), keep.sum() - 1

    stat, dof = chi2(next_probabilities(net, PRIME, 1.0))
    bound = dof + 5 * np.sqrt(2 * dof)  # about 5 standard deviations of chi2(dof)
    assert stat < bound, (stat, bound)
    wrong, _ = chi2(next_probabilities(net, PRIME, 1.3))
    assert wrong > bound, (wrong, bound)


def test_the_relu_net_runs_through_the_net():
    net = make_net(OTHER)
    ids = sample_tokens(net, PRIME, 30, 0.8, 5, seed=1)
    assert ids.shape == (30,) and ids.min() >= 0 and ids.max() < V
    np.testing.assert_array_equal(sample_tokens(net, PRIME, 30, 0.8, 5, seed=1), ids)


@pytest.mark.parametrize("kwargs,message", [
    (dict(temperature=0), "temperature must be"),
    (dict(temperature=-1.0), "temperature must be"),
    (dict(temperature=float("nan")), "temperature must be"),
    (dict(top_k=-1), r"top_k must be an integer in \[0, 11\]"),
    (dict(top_k=V + 1), r"top_k must be an integer in \[0, 11\]"),
    (dict(prime_ids=[1, 11]), r"prime id 11 at position 1 is outside \[0, 11\)"),
    (dict(prime_ids=[-1]), r"prime id -1 at position 0"),
    (dict(prime_ids=[1.5]), r"prime id 1.5"),
    (dict(prime_ids=[]), "at least one token id"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(steps=10 ** 12), r"steps 1000000000000 would take about 14.6 TiB of memory"),
])
def test_bad_arguments(net, kwargs, message):
    args = dict(prime_ids=PRIME, steps=10) | kwargs
    with pytest.raises(SeqgenError, match=message) as info:
        sample_tokens(net, **args)
    assert "\n" not in str(info.value)


def test_argmax_ignores_the_temperature(net):
    ids = sample_tokens(net, PRIME, 10, temperature=0, argmax=True)
    assert ids.shape == (10,)


def masked_softmax(l, n, temperature, top_k):
    """The distribution a vocabulary of n tokens samples from, written independently:
    softmax over the first n logits (the top_k largest of them), zero beyond."""
    head = l[:n] / temperature
    if 0 < top_k < n:
        head = np.where(l[:n] >= np.sort(l[:n])[-top_k], head, -np.inf)
    p = np.exp(head - head.max())
    return np.concatenate([p / p.sum(), np.zeros(len(l) - n)])


@pytest.mark.parametrize("n,temperature,top_k", [(4, 1.0, 0), (7, 0.6, 3), (1, 1.0, 0),
                                                 (10, 1.4, 9), (11, 1.0, 2)])
@pytest.mark.parametrize("compiled", [True, False])
def test_ids_beyond_the_vocabulary_are_never_drawn(n, temperature, top_k, compiled):
    """A net with more outputs (11) than the run's vocabulary (n) has tokens: the masked
    distribution is the softmax of the vocabulary's logits alone, and every id drawn is
    below n, argmax included (the unmasked argmax lies beyond n for n = 4)."""
    net = make_net(seed=3)
    prime = [p % n for p in PRIME]  # a prime in the vocabulary
    l = prime_logits(net, prime)
    got = next_probabilities(net, prime, temperature, top_k, compiled=compiled, vocab_size=n)
    np.testing.assert_allclose(got, masked_softmax(l, n, temperature, top_k), rtol=1e-4,
                               atol=1e-7)
    ids = sample_tokens(net, prime, 300, temperature, top_k, seed=7, compiled=compiled,
                        vocab_size=n)
    assert ids.max() < n
    best = sample_tokens(net, prime, 1, argmax=True, compiled=compiled, vocab_size=n)[0]
    assert best == np.argmax(l[:n])


def test_the_unmasked_argmax_lies_beyond_four_tokens():
    """So that the vocab_size=4 case above tests the mask."""
    assert np.argmax(prime_logits(make_net(seed=3), [p % 4 for p in PRIME])) >= 4


def test_compiled_and_stepwise_masked_draws_agree(net):
    args = (net, [p % 5 for p in PRIME], 200, 0.9, 0, 11)
    np.testing.assert_array_equal(sample_tokens(*args, vocab_size=5),
                                  sample_tokens(*args, compiled=False, vocab_size=5))


@pytest.mark.parametrize("vocab_size", [0, 12, 2.5])
def test_a_vocabulary_that_does_not_fit_is_refused(net, vocab_size):
    with pytest.raises(SeqgenError, match=r"vocab_size must be an integer in \[1, 11\]"):
        sample_tokens(net, PRIME, 5, vocab_size=vocab_size)
