"""The Lstm kernels against finite differences (float64) and against themselves stepwise."""
import numpy as np
import pytest
from gradcheck import numeric_gradient, relative_error

from seqgen.blob import Blob
from seqgen.kernels.bvlc_lstm import lstm_backward, lstm_forward, param_gradients
from seqgen.layers.fork_lstm import ForkLstmLayer
from seqgen.proto import caffe_pb2

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

T, N, I, H = 6, 3, 2, 4


def run(params, x, cont, h0, c0, R):
    W_x, W_h, b = params
    h, c = np.zeros((T + 1, N, H)), np.zeros((T + 1, N, H))
    h[0], c[0] = h0, c0
    tc, gates = np.zeros((T, N, H)), np.zeros((T, N, 4 * H))
    bias = np.broadcast_to(b, (N, 4 * H)).copy()
    lstm_forward(x, np.ascontiguousarray(W_x.T), bias, np.ascontiguousarray(W_h.T), cont, h, c,
                 gates, tc)
    return float(np.sum(h[1:] * R)), (h, c, gates, tc)


def analytic(params, x, cont, h0, c0, R):
    W_x, W_h, b = params
    _, (h, c, gates, tc) = run(params, x, cont, h0, c0, R)
    dpre = np.zeros((T, N, 4 * H))
    lstm_backward(R, np.ascontiguousarray(W_h.T), cont, c, gates, tc, 0.0, dpre,
                  np.zeros((N, H)), np.zeros((N, H)))
    dW_x, dbias, dW_h = param_gradients(dpre, x, h, cont)
    dx = (dpre.reshape(T * N, 4 * H) @ W_x).reshape(x.shape)
    return {"W_x": dW_x, "W_h": dW_h, "b": dbias.sum(0), "x": dx}


@pytest.mark.parametrize("pattern", ["restarts", "no_restart_after_t0", "fractional"])
def test_gradient_matches_finite_differences(pattern):
    rng = np.random.default_rng(11)
    W_x, W_h, b = (0.5 * rng.standard_normal(s) for s in [(4 * H, I), (4 * H, H), (4 * H,)])
    x = rng.standard_normal((T, N, I))
    h0, c0 = 0.5 * rng.standard_normal((N, H)), 0.5 * rng.standard_normal((N, H))
    R = rng.standard_normal((T, N, H))
    cont = np.ones((T, N))
    cont[0] = (1, 0, 1)  # stream 1 restarts at t=0 although a carried state exists
    if pattern == "restarts":
        cont[3, 0] = 0  # mid-sequence restarts
        cont[2, 2] = 0
        cont[4, 2] = 0
    if pattern == "fractional":  # BVLC's forward for cont values other than 0 and 1
        cont[2, 0] = 0.5
        cont[4, 1] = 0.25
    inputs = {"W_x": W_x, "W_h": W_h, "b": b, "x": x}
    grads = analytic((W_x, W_h, b), x, cont, h0, c0, R)
    worst = 0.0
    for name, arr in inputs.items():
        num = numeric_gradient(lambda: run((W_x, W_h, b), x, cont, h0, c0, R)[0], arr, 1e-6)
        rel = relative_error(num, grads[name])
        worst = max(worst, rel.max())
        assert rel.max() < 1e-5, f"{name}: relative error {rel.max():.2e}"
    assert worst < 1e-5


def make_layer(N_streams, seed=3, thr=0.0):
    lp = caffe_pb2.LayerParameter(name="l", type="Lstm")
    lp.lstm_param.num_output = H
    lp.lstm_param.batch_size = N_streams
    lp.lstm_param.clipping_threshold = thr
    layer = ForkLstmLayer(lp, caffe_pb2.TRAIN)
    bottom, top = [Blob((T * N_streams, I)), Blob((T * N_streams,))], [Blob()]
    layer.setup(bottom, top)
    rng = np.random.default_rng(seed)
    for blob in layer.blobs:
        blob.data[...] = 0.5 * rng.standard_normal(blob.shape)
    return layer


def forward(layer, x, clip):
    bottom, top = [Blob(x.shape), Blob(clip.shape)], [Blob()]
    bottom[0].data[...] = x
    bottom[1].data[...] = clip
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return top[0].data.copy()


def test_one_call_equals_stepwise_calls_with_state_carried():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T * N, I)).astype(np.float32)
    clip = np.ones(T * N, np.float32)
    clip[:N] = 0
    clip[3 * N + 1] = 0
    whole = forward(make_layer(N), x, clip)
    layer = make_layer(N)
    steps = [forward(layer, x[t * N:(t + 1) * N], clip[t * N:(t + 1) * N]) for t in range(T)]
    np.testing.assert_allclose(np.concatenate(steps), whole, rtol=0, atol=1e-6)


def test_clip_zero_mid_sequence_equals_fresh_start():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, I)).astype(np.float32)
    clip = np.ones(T, np.float32)
    clip[0] = 0
    clip[3] = 0
    whole = forward(make_layer(1), x, clip)
    fresh = forward(make_layer(1), x[3:], np.array([0, 1, 1], np.float32))
    np.testing.assert_array_equal(whole[3:], fresh)


def test_state_carries_between_calls_only_with_continuation():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, I)).astype(np.float32)
    layer = make_layer(1)
    forward(layer, x, np.r_[0, np.ones(T - 1)].astype(np.float32))
    carried = forward(layer, x, np.ones(T, np.float32))
    restarted = forward(layer, x, np.r_[0, np.ones(T - 1)].astype(np.float32))
    fresh = forward(make_layer(1), x, np.r_[0, np.ones(T - 1)].astype(np.float32))
    np.testing.assert_array_equal(restarted, fresh)
    assert np.abs(carried - fresh).max() > 1e-3


def test_streams_split_over_threads_equal_one_thread(monkeypatch):
    from seqgen import threads

    rng = np.random.default_rng(8)
    N16 = 16
    x = rng.standard_normal((T * N16, I)).astype(np.float32)
    clip = (rng.random(T * N16) > 0.2).astype(np.float32)
    top_diff = rng.standard_normal((T * N16, H)).astype(np.float32)

    def run_layer():
        layer = make_layer(N16, thr=0.5)
        bottom, top = [Blob(x.shape), Blob(clip.shape)], [Blob()]
        bottom[0].data[...] = x
        bottom[1].data[...] = clip
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = top_diff
        layer.backward(top, [True, False], bottom)
        return [top[0].data.copy(), bottom[0].diff.copy()] + [b.diff.copy() for b in layer.blobs]

    monkeypatch.setattr(threads, "PARALLEL_MIN_STREAMS", 4)
    monkeypatch.setattr(threads, "_threads", 2)
    split = run_layer()
    assert make_layer(N16)._parts() > 1 or threads.numba.get_num_threads() == 1
    monkeypatch.setattr(threads, "PARALLEL_MIN_STREAMS", 10 ** 9)
    single = run_layer()
    for a, b in zip(split, single):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
