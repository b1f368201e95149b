"""BVLC-style LSTM and RNN layers: gradients against finite differences (float64), step-at-
a-time equivalence, changing T and N, and the compiled generator hook."""
import numpy as np
import pytest
from gradcheck import numeric_gradient, relative_error

from seqgen.blob import Blob
from seqgen.generation.generate import generate, stack_plan
from seqgen.io.prototxt import parse_net_text
from seqgen.kernels.bvlc_lstm_path import FORCED
from seqgen.net import TEST, Net
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

T, N, I, H, S = 5, 3, 2, 3, 2


@pytest.fixture(autouse=True, params=["loops", "gemm", "panels"])
def lstm_path(request, monkeypatch):
    """Every case runs on each kernel path of the BVLC LSTM (its shapes would pick one)."""
    # "panels": the GEMM path with its step products on W_h packed in panels, which its
    # shapes here (T < 8) would keep on BLAS
    monkeypatch.setattr(FORCED, "path", request.param.replace("panels", "gemm"))
    monkeypatch.setattr(FORCED, "panels", request.param == "panels" or None)
    return request.param
STATES = {"LSTM": ("h", "c"), "RNN": ("h",)}


class Rig:
    """One layer with its own bottoms and tops (float64 unless told otherwise)."""

    def __init__(self, kind, static=False, expose=False, T=T, N=N, dtype=np.float64, seed=0,
                 params=None):
        lp = caffe_pb2.LayerParameter(name="rec", type=kind)
        lp.recurrent_param.num_output = H
        lp.recurrent_param.expose_hidden = expose
        self.kind, self.static, self.expose, self.dtype = kind, static, expose, dtype
        self.states = STATES[kind] if expose else ()
        self.bottom = [Blob((T, N, I), dtype), Blob((T, N), dtype)]
        if static:
            self.bottom.append(Blob((N, S), dtype))
        self.bottom += [Blob((1, N, H), dtype) for _ in self.states]
        self.top = [Blob((0,), dtype) for _ in range(1 + len(self.states))]
        lp.bottom.extend(f"b{i}" for i in range(len(self.bottom)))
        lp.top.extend(f"t{i}" for i in range(len(self.top)))
        self.layer = layer_class(kind)(lp, caffe_pb2.TRAIN)
        self.layer.setup(self.bottom, self.top)
        self.layer.reshape(self.bottom, self.top)
        rng = np.random.default_rng(seed)
        for k, blob in enumerate(self.layer.blobs):
            blob.data[...] = (params[k] if params is not None
                              else 0.5 * rng.standard_normal(blob.shape))

    def set_inputs(self, x, cont, xs=None, states=()):
        self.bottom[0].reshape(x.shape)
        self.bottom[1].reshape(cont.shape)
        self.bottom[0].data[...] = x
        self.bottom[1].data[...] = cont
        k = 2
        if self.static:
            self.bottom[2].reshape(xs.shape)
            self.bottom[2].data[...] = xs
            k = 3
        for blob, value in zip(self.bottom[k:], states):
            blob.reshape(value.shape)
            blob.data[...] = value
        self.layer.reshape(self.bottom, self.top)

    def forward(self):
        self.layer.forward(self.bottom, self.top)
        return [t.data.copy() for t in self.top]

    def backward(self, top_diffs, clear=True):
        for t, d in zip(self.top, top_diffs):
            t.diff[...] = d
        if clear:
            for b in self.layer.blobs:
                b.diff[...] = 0
        for b in self.bottom:
            b.diff[...] = 0
        prop = [i != 1 for i in range(len(self.bottom))]
        self.layer.backward(self.top, prop, self.bottom)


def random_inputs(rig, rng, T=T, N=N):
    x = rng.standard_normal((T, N, I))
    xs = rng.standard_normal((N, S)) if rig.static else None
    states = [0.5 * rng.standard_normal((1, N, H)) for _ in rig.states]
    return x, xs, states


PATTERNS = {
    # stream 1 restarts at t=0 although a state exists; mid-sequence restarts
    "restarts": [(0, 1, 0), (3, 0, 0), (2, 2, 0), (4, 2, 0)],
    # BVLC's forward with cont values other than 0 and 1 (our gradient is exact)
    "fractional": [(0, 1, 0), (2, 0, 0.5), (4, 1, 0.25), (3, 2, 0)],
}


def make_cont(pattern, T=T, N=N):
    cont = np.ones((T, N))
    for t, n, v in PATTERNS[pattern]:
        cont[t, n] = v
    return cont


CONFIGS = [
    (kind, static, expose, pattern)
    for kind in ("LSTM", "RNN")
    for static, expose in ((False, False), (True, False), (False, True), (True, True))
    for pattern in ("restarts", "fractional")
    if pattern == "restarts" or (static and expose)
]


@pytest.mark.parametrize("kind,static,expose,pattern", CONFIGS)
def test_gradients_match_finite_differences(kind, static, expose, pattern):
    rig = Rig(kind, static, expose, seed=5)
    rng = np.random.default_rng(7)
    x, xs, states = random_inputs(rig, rng)
    cont = make_cont(pattern)
    rig.set_inputs(x, cont, xs, states)
    # the carried state (no expose_hidden) is used where cont[0] != 0 but takes no gradient
    carried = None if expose else {s: 0.5 * rng.standard_normal((N, H)) for s in STATES[kind]}
    R = [rng.standard_normal((T, N, H))] + [rng.standard_normal((1, N, H)) for _ in rig.states]

    def loss():
        if carried is not None:
            rig.layer.set_state(carried)
        outs = rig.forward()
        return sum(float((o * r).sum()) for o, r in zip(outs, R))

    loss()
    rig.backward(R)
    analytic = [b.diff.copy() for b in rig.layer.blobs]
    checked = list(rig.layer.blobs)
    for i, b in enumerate(rig.bottom):
        if i != 1:  # no gradient for cont
            analytic.append(b.diff.copy())
            checked.append(b)
    assert len(checked) == len(rig.layer.blobs) + len(rig.bottom) - 1
    for blob, grad in zip(checked, analytic):
        num = numeric_gradient(loss, blob.data, 1e-6)
        rel = relative_error(num, grad)
        assert rel.max() < 1e-5, f"{blob.shape}: relative error {rel.max():.2e}"
        assert np.abs(num).max() > 1e-3  # every checked gradient is really exercised


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
@pytest.mark.parametrize("static", [False, True])
def test_one_call_equals_single_steps_with_carried_state(kind, static):
    rng = np.random.default_rng(3)
    full = Rig(kind, static, seed=1)
    x, xs, _ = random_inputs(full, rng)
    cont = make_cont("restarts")
    cont[0] = 0
    full.set_inputs(x, cont, xs)
    want = full.forward()[0]
    want_state = full.layer.get_state()

    step = Rig(kind, static, T=1, params=[b.data for b in full.layer.blobs])
    got = []
    for t in range(T):
        step.set_inputs(x[t:t + 1], cont[t:t + 1], xs)
        got.append(step.forward()[0])
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-13, atol=1e-13)
    state = step.layer.get_state()
    assert sorted(state) == sorted(STATES[kind])
    for s in STATES[kind]:
        np.testing.assert_allclose(state[s], want_state[s], rtol=1e-13, atol=1e-13)
    if kind == "LSTM":  # the top is h itself (the RNN's top is o)
        np.testing.assert_allclose(state["h"], want[-1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_gradients_chain_across_calls_through_exposed_state(kind):
    """T one-step calls chained via h_T -> h_0 (and c) give the full sequence's forward
    and, passing each call's h_0/c_0 diff to the previous call's h_T/c_T, its gradients."""
    rng = np.random.default_rng(4)
    full = Rig(kind, static=True, expose=True, seed=2)
    x, xs, states = random_inputs(full, rng)
    cont = make_cont("fractional")
    full.set_inputs(x, cont, xs, states)
    outs = full.forward()
    R = rng.standard_normal((T, N, H))
    zeros = [np.zeros((1, N, H))] * len(full.states)
    full.backward([R] + zeros)

    params = [b.data for b in full.layer.blobs]
    steps = [Rig(kind, static=True, expose=True, T=1, params=params) for _ in range(T)]
    for r in steps[1:]:  # share one set of parameter blobs, so their diffs accumulate
        r.layer.blobs = steps[0].layer.blobs
    carry = states
    for t, r in enumerate(steps):
        r.set_inputs(x[t:t + 1], cont[t:t + 1], xs, carry)
        o = r.forward()
        np.testing.assert_allclose(o[0], outs[0][t:t + 1], rtol=1e-13, atol=1e-13)
        carry = o[1:]
    for got, want in zip(carry, outs[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    for b in steps[0].layer.blobs:
        b.diff[...] = 0
    back = zeros
    dx, dxs = np.zeros_like(x), np.zeros_like(xs)
    for t in range(T - 1, -1, -1):
        r = steps[t]
        r.backward([R[t:t + 1]] + back, clear=False)
        dx[t] = r.bottom[0].diff[0]
        dxs += r.bottom[2].diff
        back = [b.diff.copy() for b in r.bottom[3:]]
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, full.bottom[0].diff, **tol)
    np.testing.assert_allclose(dxs, full.bottom[2].diff, **tol)
    for got, want in zip(back, full.bottom[3:]):
        np.testing.assert_allclose(got, want.diff, **tol)
    for got, want in zip(steps[0].layer.blobs, full.layer.blobs):
        np.testing.assert_allclose(got.diff, want.diff, **tol)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_T_and_N_may_change_between_calls(kind):
    # float32, as in production: the threaded LSTM kernels are then the ones the Lstm
    # layer compiles too (a float64 build of them alone takes ~15 s without a cache)
    f32 = dict(dtype=np.float32)
    tol = dict(rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(6)
    rig = Rig(kind, seed=3, **f32)
    params = [b.data.copy() for b in rig.layer.blobs]
    x, _, _ = random_inputs(rig, rng)
    rig.set_inputs(x, np.ones((T, N)))
    rig.forward()
    assert rig.layer.get_state()["h"].shape == (N, H)

    # a new batch size drops the carried state: cont = 1 at t = 0 then continues from zero
    N2 = 9  # enough streams for the LSTM's multi-threaded kernels
    x2 = rng.standard_normal((7, N2, I))
    x3 = rng.standard_normal((2, N2, I))
    rig.set_inputs(x2, np.ones((7, N2)))
    assert rig.layer.N == N2
    assert not rig.layer.get_state()["h"].any()
    a = rig.forward()[0]
    mid_state = rig.layer.get_state()
    rig.set_inputs(x3, np.ones((2, N2)))  # new T, same N: the state carries on
    b = rig.forward()[0]
    R = rng.standard_normal((2, N2, H))
    rig.backward([R])
    assert rig.top[0].shape == (2, N2, H)

    ref = Rig(kind, T=9, N=N2, params=params, **f32)
    ref.set_inputs(np.concatenate([x2, x3]), np.ones((9, N2)))
    want = ref.forward()[0]
    np.testing.assert_allclose(np.concatenate([a, b]), want, **tol)

    # each stream run on its own gives the same numbers (the threaded kernels split streams)
    for n in (0, N2 - 1):
        one = Rig(kind, T=9, N=1, params=params, **f32)
        one.set_inputs(np.concatenate([x2, x3])[:, n:n + 1], np.ones((9, 1)))
        np.testing.assert_allclose(one.forward()[0][:, 0], want[:, n], **tol)
    # the backward of the last call equals one started from the carried state
    ref2 = Rig(kind, T=2, N=N2, params=params, **f32)
    ref2.set_inputs(x3, np.ones((2, N2)))
    ref2.layer.set_state(mid_state)
    np.testing.assert_allclose(ref2.forward()[0], b, rtol=0, atol=0)
    ref2.backward([R])
    np.testing.assert_allclose(ref2.bottom[0].diff, rig.bottom[0].diff, rtol=0, atol=0)
    for got, want in zip(rig.layer.blobs, ref2.layer.blobs):
        np.testing.assert_allclose(got.diff, want.diff, **tol)


def test_state_api():
    rig = Rig("LSTM")
    state = rig.layer.get_state()
    assert sorted(state) == ["c", "h"] and state["h"].shape == (N, H)
    rig.layer.set_state({"h": np.ones((1, N, H)), "c": np.full((N, H), 2.0)})
    assert (rig.layer.get_state()["c"] == 2).all()
    with pytest.raises(Exception, match="shape"):
        rig.layer.set_state({"h": np.ones((N + 1, H)), "c": np.ones((N + 1, H))})
    rig.layer.reset_state()
    assert not rig.layer.get_state()["h"].any()
    exposed = Rig("RNN", expose=True)
    assert exposed.layer.get_state() is None
    with pytest.raises(Exception, match="expose_hidden"):
        exposed.layer.set_state({"h": np.zeros((N, H))})


NET = """
name: "bvlc_gen"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 1 dim: 1 } } }
layer { name: "cont" type: "Input" top: "cont" input_param { shape { dim: 4 dim: 1 } } }
layer { name: "lstm1" type: "LSTM" bottom: "data" bottom: "cont" top: "h1"
        recurrent_param { num_output: 5 weight_filler { type: "gaussian" std: 0.4 }
                          bias_filler { type: "gaussian" std: 0.4 } } }
layer { name: "lstm2" type: "LSTM" bottom: "h1" bottom: "cont" top: "h2"
        recurrent_param { num_output: 4 weight_filler { type: "gaussian" std: 0.4 }
                          bias_filler { type: "gaussian" std: 0.4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "h2" top: "out"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.4 } } }
"""


def test_compiled_generator_uses_bvlc_lstm_weights():
    net = Net(parse_net_text(NET), TEST)
    plan = stack_plan(net, "data", "cont", "out")
    assert plan is not None
    true = np.sin(np.arange(40) / 3.0)[:, None]
    compiled = generate(net, 30, "previous", true, prime=5)
    stepwise = generate(net, 30, "previous", true, prime=5, compiled=False)
    np.testing.assert_allclose(compiled, stepwise, rtol=0, atol=2e-6)
    assert np.abs(compiled).max() > 1e-3


def test_lstm_weights_only_for_plain_lstm():
    plain = Rig("LSTM").layer
    W_x, W_h, b = plain.lstm_weights()
    assert W_x.shape == (4 * H, I) and W_h.shape == (4 * H, H) and b.shape == (4 * H,)
    assert W_x is plain.blobs[0].data and b is plain.blobs[1].data and W_h is plain.blobs[2].data
    assert Rig("LSTM", static=True).layer.lstm_weights() is None
    assert Rig("LSTM", expose=True).layer.lstm_weights() is None
    assert Rig("RNN").layer.lstm_weights() is None


def test_rnn_weights_only_for_plain_rnn():
    plain = Rig("RNN").layer
    W_xh, b_h, W_hh, W_ho, b_o = plain.rnn_weights()
    assert [a is blob.data for a, blob in zip((W_xh, b_h, W_hh, W_ho, b_o), plain.blobs)] \
        == [True] * 5
    assert Rig("RNN", static=True).layer.rnn_weights() is None
    assert Rig("RNN", expose=True).layer.rnn_weights() is None
    assert Rig("LSTM").layer.rnn_weights() is None


def test_layers_without_the_generator_hooks_answer_none_and_ignore_forget_bias():
    """Every layer answers the compiled generator's questions; one without a forget gate
    leaves set_forget_bias without effect."""
    lp = caffe_pb2.LayerParameter(name="t", type="TanH")
    layer = layer_class("TanH")(lp, caffe_pb2.TRAIN)
    assert (layer.lstm_weights(), layer.rnn_weights(), layer.affine_weights()) == (None,) * 3
    rnn = Rig("RNN").layer
    before = [blob.data.copy() for blob in rnn.blobs]
    assert layer.set_forget_bias(5.0) is False and rnn.set_forget_bias(5.0) is False
    assert all(np.array_equal(b, blob.data) for b, blob in zip(before, rnn.blobs))
    lstm = Rig("LSTM").layer
    assert lstm.set_forget_bias(5.0) is True
    np.testing.assert_array_equal(lstm.blobs[1].data[H:2 * H], 5.0)
