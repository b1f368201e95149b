"""Free-running generation: the compiled stack generator against the per-step Net path."""
import numpy as np
import pytest
from helpers import ROOT

from seqgen.data.sources import sinusoid
from seqgen.errors import SeqgenError, SeqgenRuntimeError
from seqgen.generation.generate import generate, stack_plan
from seqgen.net import TEST, Net

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def random_net(name, seed=0):
    net = Net(ROOT / "prototxt" / f"{name}.prototxt", TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.normal(0, 0.3, blob.shape)
    return net


@pytest.mark.parametrize("name", ["lstm_short", "deep_lstm_short"])
@pytest.mark.parametrize("mode", ["previous", "zero"])
def test_compiled_generation_equals_stepwise_net(name, mode):
    net = random_net(name)
    assert stack_plan(net, "data", "clip", "ip1") is not None
    seq = sinusoid(320)
    stepwise = generate(net, 200, mode, seq, prime=7, compiled=False)
    compiled = generate(net, 200, mode, seq, prime=7)
    np.testing.assert_allclose(compiled, stepwise, rtol=0, atol=1e-6)


def test_previous_mode_feeds_predictions_back_and_prime_feeds_truth():
    net = random_net("lstm_short", seed=1)
    seq = sinusoid(320)
    free = generate(net, 50, "previous", seq)
    primed = generate(net, 50, "previous", seq, prime=20)
    zero = generate(net, 50, "zero", seq)
    assert free[0] == primed[0] == zero[0]  # step 0 input is 0 in every mode
    assert np.abs(free[1:] - zero[1:]).max() > 1e-4  # the input matters
    assert np.abs(primed[1:21] - free[1:21]).max() > 1e-4  # truth, not predictions, fed
    # zero mode ignores priming entirely
    np.testing.assert_array_equal(generate(net, 50, "zero", seq, prime=20), zero)


def test_bad_generation_requests():
    net = random_net("lstm_short")
    with pytest.raises(SeqgenError, match="steps"):
        generate(net, 0)
    with pytest.raises(SeqgenError, match="prime"):
        generate(net, 10, "previous", sinusoid(320)[:5], prime=10)


def test_divergence_is_reported():
    net = random_net("lstm_short")
    net.params["ip1"][1].data[...] = np.inf
    with pytest.raises(SeqgenRuntimeError, match="diverged"):
        generate(net, 10, "previous")


RNN_NET = """
input: "data" input_shape { dim: 12 dim: 1 dim: 1 }
input: "clip" input_shape { dim: 12 dim: 1 }
layer { name: "rnn1" type: "RNN" bottom: "data" bottom: "clip" top: "rnn1"
        recurrent_param { num_output: 5 weight_filler { type: "gaussian" std: 0.4 }
                          bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "rnn2" type: "RNN" bottom: "rnn1" bottom: "clip" top: "rnn2"
        recurrent_param { num_output: 4 weight_filler { type: "gaussian" std: 0.4 }
                          bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "rnn2" top: "ip1"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.5 } } }
"""


@pytest.mark.parametrize("mode", ["previous", "zero"])
def test_compiled_rnn_stack_equals_stepwise_net(mode):
    from seqgen.io.prototxt import parse_net_text

    net = Net(parse_net_text(RNN_NET), TEST)
    assert stack_plan(net, "data", "clip", "ip1") is not None
    seq = sinusoid(320)
    stepwise = generate(net, 60, mode, seq, prime=5, compiled=False)
    compiled = generate(net, 60, mode, seq, prime=5)
    assert np.abs(stepwise).max() > 1e-3
    np.testing.assert_allclose(compiled, stepwise, rtol=0, atol=1e-6)
