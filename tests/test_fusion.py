"""The Net's rewrites (seqgen/fusion.py), embed-lstm: a fused Embed -> LSTM pair against the
same pair unfused in float64 (to 1e-12: the algebra is exact, only rounding differs), its
gradients against finite differences, a fused float32 net against the unfused net and a
numpy formula, where the rewrite must not apply, `seqgen info`'s line and the switch."""
import numpy as np
import pytest
from google.protobuf import text_format
from gradcheck import numeric_gradient, relative_error
from helpers import assert_close, run
from reference import lstm_forward

from seqgen import fusion
from seqgen.app.info import describe
from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.kernels.bvlc_lstm_path import FORCED
from seqgen.net import TRAIN, Net
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

T, N, V, E, H = 5, 3, 7, 4, 6  # V < T*N: the fused path runs


def _layer(text):
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    return layer_class(lp.type)(lp, TRAIN, {})


class Pair:
    """An Embed feeding an LSTM, on float64 blobs of their own (no Net: the Net's blobs are
    float32); `fused` links them as the rewrite does."""

    def __init__(self, fused, bias_term, seed=0):
        uniform = 'type: "uniform" min: -0.5 max: 0.5'
        self.embed = _layer(f'name: "e" type: "Embed" embed_param {{ input_dim: {V} '
                            f'num_output: {E} bias_term: {str(bias_term).lower()} '
                            f'weight_filler {{ {uniform} }} bias_filler {{ {uniform} }} }}')
        self.lstm = _layer(f'name: "l" type: "LSTM" recurrent_param {{ num_output: {H} '
                           f'weight_filler {{ {uniform} }} bias_filler {{ {uniform} }} }}')
        self.tok, self.cont = Blob((T, N), np.float64), Blob((T, N), np.float64)
        self.x, self.h = Blob((0,), np.float64), Blob((0,), np.float64)
        self.embed.setup([self.tok], [self.x])
        for b in self.embed.blobs:
            b.set_arrays(np.array(b.data, np.float64), np.zeros(b.shape))
        rng = np.random.default_rng(seed)
        for b in self.embed.blobs:  # the fillers draw from numpy's global generator
            b.data[...] = rng.uniform(-0.5, 0.5, b.shape)
        self.embed.reshape([self.tok], [self.x])
        self.lstm.setup([self.x, self.cont], [self.h])
        for b in self.lstm.blobs:
            b.data[...] = rng.uniform(-0.5, 0.5, b.shape)
        self.lstm.reshape([self.x, self.cont], [self.h])
        if fused:
            self.embed.fusion = self.lstm.fusion = fusion.EmbedProjection(self.embed, self.lstm,
                                                                           self.x)

    def params(self):
        return [b for layer in (self.embed, self.lstm) for b in layer.blobs]

    def forward(self, tokens, cont):
        self.tok.data[...] = tokens
        self.cont.data[...] = cont
        self.embed.forward([self.tok], [self.x])
        self.lstm.forward([self.x, self.cont], [self.h])
        return self.h.data

    def backward(self, dh):
        for b in self.params():
            b.diff[...] = 0
        self.h.diff[...] = dh
        self.lstm.backward([self.h], [True, False], [self.x, self.cont])
        self.embed.backward([self.x], [False], [self.tok])
        return [b.diff.copy() for b in self.params()]


@pytest.fixture(params=["gemm", "panels"])
def gemm_path(request, monkeypatch):
    """The fused projection runs on the LSTM's GEMM path, its step products on BLAS or on
    panels."""
    monkeypatch.setattr(FORCED, "path", "gemm")
    monkeypatch.setattr(FORCED, "panels", request.param == "panels")


def _calls(rng):
    """Two forward calls of tokens and cont: a fresh start, a padding id (-1), restarts in
    the middle of the sequence, and state carried into the second call."""
    tokens = rng.integers(0, V, (2, T, N)).astype(float)
    tokens[0, 1, 2] = -1
    cont = np.ones((2, T, N))
    cont[0, 0] = 0
    cont[0, 2, 1] = cont[1, 3, 0] = 0
    return tokens, cont


def _forward_backward_both(fused, plain, tokens, cont, call, rng):
    """Call number `call` (alternating the two of `_calls`) on both pairs: the forward,
    then the backward of one random top diff."""
    dh = rng.standard_normal((T, N, H))
    for pair in (fused, plain):
        pair.forward(tokens[call % 2], cont[call % 2])
        pair.backward(dh)


@pytest.mark.parametrize("bias_term", [False, True])
def test_fused_pair_equals_unfused_in_float64(gemm_path, bias_term):
    rng = np.random.default_rng(1)
    fused, plain = Pair(True, bias_term), Pair(False, bias_term)
    tokens, cont = _calls(rng)
    for call in range(2):
        dh = rng.standard_normal((T, N, H))
        h = fused.forward(tokens[call], cont[call]).copy()
        np.testing.assert_allclose(h, plain.forward(tokens[call], cont[call]), rtol=0,
                                   atol=1e-12)
        assert fused.lstm.fusion.active  # the fused path ran, not the fallback
        got, want = fused.backward(dh), plain.backward(dh)
        names = ["W_e", "b_e"][:1 + bias_term] + ["W_xc", "b_c", "W_hc"]
        for name, g, w in zip(names, got, want):
            scale = max(1.0, np.abs(w).max())
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-12 * scale, err_msg=name)
        for s in ("h", "c"):  # the carried state
            np.testing.assert_allclose(fused.lstm.get_state()[s], plain.lstm.get_state()[s],
                                       rtol=0, atol=1e-12)
        # the Embed top's diff, formed when read from the gate gradients kept by backward
        scale = max(1.0, np.abs(plain.x.diff).max())
        np.testing.assert_allclose(fused.x.diff, plain.x.diff, rtol=0, atol=1e-12 * scale)


def test_deferred_top_diff_survives_later_backwards_and_updates(gemm_path):
    """The top's diff of the last backward that formed it: read after a change of W_x (the
    solver's update comes before anyone reads it), and after a backward that does not
    propagate to the input, over calls whose gate-gradient buffers change hands."""
    rng = np.random.default_rng(2)
    fused, plain = Pair(True, False), Pair(False, False)
    tokens, cont = _calls(rng)
    for call in range(4):
        _forward_backward_both(fused, plain, tokens, cont, call, rng)
        assert fused.x._pending is not None
        if call == 1:
            W = fused.lstm.blobs[0].data
            W[...] += 1.0  # an update, then the diff is read
            np.testing.assert_allclose(fused.x.diff, plain.x.diff, rtol=0, atol=1e-12)
            W[...] -= 1.0
    dh = rng.standard_normal((T, N, H))
    for pair in (fused, plain):  # a backward that leaves the input's diff alone
        pair.h.diff[...] = dh
        pair.lstm.backward([pair.h], [False, False], [pair.x, pair.cont])
    np.testing.assert_allclose(fused.x.diff, plain.x.diff, rtol=0, atol=1e-12)


def test_fused_pair_gradients_against_finite_differences(gemm_path):
    """Embed's table and bias and the LSTM's W_xc, from a carried state and with a restart
    in the middle of the call."""
    rng = np.random.default_rng(2)
    pair = Pair(True, bias_term=True, seed=3)
    tokens, cont = _calls(rng)
    pair.forward(tokens[0], cont[0])
    start = pair.lstm.get_state()
    R = rng.standard_normal((T, N, H))

    def objective():
        pair.lstm.set_state(start)
        return float(np.sum(pair.forward(tokens[1], cont[1]) * R))

    objective()
    grads = pair.backward(R)
    assert pair.lstm.fusion.active
    for blob, ana in zip(pair.params()[:3], grads[:3]):  # W_e, b_e, W_xc
        num = numeric_gradient(objective, blob.data, 1e-6)
        assert relative_error(num, ana).max() < 1e-6


# -- through the Net ----------------------------------------------------------------------
def _net_text(T=6, N=8, V=11, extra="", embed_extra="", lstm_extra=""):
    uniform = 'weight_filler { type: "uniform" min: -0.3 max: 0.3 }'
    return f'''name: "lm"
layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"
  input_param {{ shape {{ dim: {T} dim: {N} }} shape {{ dim: {T} dim: {N} }}
                shape {{ dim: {T} dim: {N} }} }} }}
layer {{ name: "embed" type: "Embed" bottom: "data" top: "embed" {embed_extra}
  embed_param {{ input_dim: {V} num_output: 5 bias_term: false {uniform} }} }}
{extra}
layer {{ name: "lstm" type: "LSTM" bottom: "embed" bottom: "cont" top: "lstm" {lstm_extra}
  recurrent_param {{ num_output: 16 {uniform} {uniform.replace("weight", "bias")} }} }}
layer {{ name: "predict" type: "InnerProduct" bottom: "lstm" top: "predict"
  inner_product_param {{ num_output: {V} axis: 2 {uniform} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "predict" bottom: "label" top: "loss"
  softmax_param {{ axis: 2 }} }}
'''


def _net(tmp_path, fused=True, **kw):
    path = tmp_path / "lm.prototxt"
    path.write_text(_net_text(**kw))
    return Net(str(path), TRAIN, options={"fusion": fused})


def _same_weights(a, b):
    for name, blobs in a.params.items():
        for x, y in zip(blobs, b.params[name]):
            y.data[...] = x.data


def _step(net, rng, cont, V=11):
    T, N = net.blobs["data"].shape
    net.clear_param_diffs()
    feed = dict(data=rng.integers(0, V, (T, N)), label=rng.integers(0, V, (T, N)), cont=cont)
    loss = net.forward(**feed)["loss"].copy()
    net.backward()
    return loss, feed


def test_fused_net_equals_unfused_net_and_the_formula(tmp_path):
    fused, plain = _net(tmp_path), _net(tmp_path, fused=False)
    assert [f.layers for f in fused.fusions] == [("embed", "lstm")] and not plain.fusions
    _same_weights(fused, plain)
    cont = np.ones((6, 8))
    cont[0], cont[3, 2] = 0, 0
    h0 = c0 = np.zeros((8, 16))
    for call in range(2):
        rng_a, rng_b = np.random.default_rng(call), np.random.default_rng(call)
        loss, feed = _step(fused, rng_a, cont)
        assert fused.layer("lstm").fusion.active
        assert_close(loss, _step(plain, rng_b, cont)[0], "loss")
        for name, blobs in plain.params.items():
            for i, blob in enumerate(blobs):
                assert_close(fused.params[name][i].diff, blob.diff, f"{name} {i} diff")
        assert fused.blobs["embed"]._pending is not None  # backward left it unformed
        assert_close(fused.blobs["embed"].diff, plain.blobs["embed"].diff, "the top's diff")
        assert fused.blobs["embed"]._pending is None  # formed once, when read
        # the forward against numpy in float64, from the state the first call left
        W_e = fused.params["embed"][0].data.astype(np.float64)
        W_x, b, W_h = (p.data.astype(np.float64) for p in fused.params["lstm"])
        h, c, _ = lstm_forward(W_e[feed["data"]], cont, W_x, b, W_h, h0, c0)
        assert_close(fused.blobs["lstm"].data, h[1:], "h")
        assert_close(fused.blobs["embed"].data, W_e[feed["data"]], "the Embed's top")
        h0, c0 = h[-1], c[-1]
        cont[0] = 1


def test_training_never_forms_the_skipped_diff(tmp_path):
    """Nothing in the net's own iterations reads the Embed top's deferred diff: a fill left
    by one backward is dropped unformed by the next (a shape check that read the diff had
    formed the product the fusion skips, once an iteration)."""
    net = _net(tmp_path)
    rng = np.random.default_rng(3)
    cont = np.ones((6, 8))
    formed = []
    for call in range(3):
        _step(net, rng, cont)
        fill = net.blobs["embed"]._pending
        assert fill is not None
        net.blobs["embed"].defer_diff(
            lambda diff, fill=fill, call=call: (formed.append(call), fill(diff)))
    assert formed == []


def test_a_partial_forward_runs_unfused(tmp_path):
    """pycaffe's forward(start=) from the LSTM reads the Embed's top as the user wrote it."""
    net, plain = _net(tmp_path), _net(tmp_path, fused=False)
    _same_weights(net, plain)
    rng = np.random.default_rng(0)
    cont = np.zeros((6, 8))
    for n in (net, plain):
        n.forward(data=rng.integers(0, 11, (6, 8)), label=np.zeros((6, 8)), cont=cont)
    x = rng.standard_normal((6, 8, 5))
    for n in (net, plain):
        n.reset_state()
        n.blobs["embed"].data[...] = x
        n.forward(start="lstm")
    assert not net.layer("lstm").fusion.active
    assert_close(net.blobs["lstm"].data, plain.blobs["lstm"].data, "h")
    net.forward()  # the whole net again: fused
    assert net.layer("lstm").fusion.active


def test_rule_leaves_small_batches_unfused(tmp_path):
    """V >= T*N: the pair computes unfused (and still right)."""
    net = _net(tmp_path, T=2, N=4)  # 8 tokens, V = 11
    plain = _net(tmp_path, fused=False, T=2, N=4)
    _same_weights(net, plain)
    assert net.fusions and "(8 now: off)" in net.fusions[0].text
    cont = np.zeros((2, 4))
    _step(net, np.random.default_rng(0), cont)
    _step(plain, np.random.default_rng(0), cont)
    assert not net.layer("lstm").fusion.active
    np.testing.assert_array_equal(net.params["embed"][0].diff, plain.params["embed"][0].diff)


def test_frozen_embed_is_fused_and_takes_no_gradient(tmp_path):
    kw = dict(embed_extra="param { lr_mult: 0 }")
    net, plain = _net(tmp_path, **kw), _net(tmp_path, fused=False, **kw)
    _same_weights(net, plain)
    assert net.fusions and not net.layer_needs_backward("embed")
    cont = np.zeros((6, 8))
    _step(net, np.random.default_rng(0), cont)
    _step(plain, np.random.default_rng(0), cont)
    assert not net.params["embed"][0].diff.any()
    assert_close(net.params["lstm"][0].diff, plain.params["lstm"][0].diff, "W_xc")


@pytest.mark.parametrize("extra", [
    'layer { name: "peek" type: "Silence" bottom: "embed" }',  # a Split reads it
    'layer { name: "drop" type: "Dropout" bottom: "embed" top: "embed" }',
])
def test_not_fused_when_another_layer_reads_the_embed_top(tmp_path, extra):
    net = _net(tmp_path, extra=extra)
    assert not net.fusions and not net.fusion_notes


def test_not_fused_when_the_backward_plans_differ(tmp_path):
    """A frozen Embed and an explicit propagate_down to it: the LSTM would form a gradient
    nobody uses (harmless to skip, but the rewrite only fuses plans that agree)."""
    net = _net(tmp_path, embed_extra="param { lr_mult: 0 }",
               lstm_extra="propagate_down: true propagate_down: false")
    assert not net.fusions
    assert net.fusion_notes[0].text == ("Not fused: embed (Embed): the backward plan "
                                        "(propagate_down / force_backward) differs between "
                                        "the two")


def test_info_reports_the_rewrite(tmp_path, capsys):
    net = _net(tmp_path)
    assert ("Fused embed -> lstm (embed-lstm): lstm's input projection from a 11 x 64 table "
            "(embed's rows times W_xc) while input_dim 11 < T*N tokens (48 now: on); blob "
            "'embed' keeps its data, its diff is formed when read") in describe(net)
    code, out, _ = run(capsys, "info", tmp_path / "lm.prototxt")
    assert code == 0 and "Fused embed -> lstm (embed-lstm)" in out


def test_the_switch(tmp_path, monkeypatch, capsys):
    assert not _net(tmp_path, fused=False).fusion_notes
    monkeypatch.setenv("SEQGEN_FUSION", "off")
    assert not _net(tmp_path, fused=None).fusions
    assert _net(tmp_path, fused=True).fusions  # the option wins over the environment
    monkeypatch.setenv("SEQGEN_FUSION", "maybe")
    with pytest.raises(SeqgenError, match=r"^SEQGEN_FUSION='maybe': expected off or on$"):
        _net(tmp_path, fused=None)
    code, _, err = run(capsys, "info", tmp_path / "lm.prototxt")
    assert code == 2 and err.strip() == "seqgen: error: SEQGEN_FUSION='maybe': expected off or on"


def test_a_new_gate_gradient_buffer_holds_no_garbage(gemm_path, monkeypatch):
    """The buffer the LSTM takes when the fused Embed keeps its gate gradients is zeroed:
    the backward kernels read their typed zero from it, so NaN left in new memory made
    every gradient NaN (a CI failure, one run in several). The allocator is made to hand
    out NaN-filled memory here."""
    def nan_empty_like(a, *args, **kwargs):
        return np.full_like(a, np.nan)
    monkeypatch.setattr(np, "empty_like", nan_empty_like)
    rng = np.random.default_rng(3)
    fused, plain = Pair(True, False), Pair(False, False)
    tokens, cont = _calls(rng)
    for call in range(3):
        _forward_backward_both(fused, plain, tokens, cont, call, rng)
        for got, want in zip(fused.lstm.blobs, plain.lstm.blobs):
            assert np.isfinite(got.diff).all()
            np.testing.assert_allclose(got.diff, want.diff, rtol=0, atol=1e-12)
