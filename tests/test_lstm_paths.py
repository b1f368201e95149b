"""The BVLC LSTM's two kernel paths (axpy loops, on one thread or split over streams, and
GEMM-shaped, unsplit or split over stream groups) against each other and against an
independent numpy formula, in float64; the choice between them by shape; the split's
choice by shape and thread budget."""
import numba
import numpy as np
import pytest
from helpers import lstm_problem
from reference import lstm_forward as reference_forward
from threadpoolctl import threadpool_info, threadpool_limits

from seqgen import threads
from seqgen.kernels.bvlc_lstm import (
    lstm_backward,
    lstm_backward_parallel,
    lstm_forward,
    lstm_forward_parallel,
    param_gradients,
)
from seqgen.kernels.bvlc_lstm_gemm import (
    lstm_backward_gemm,
    lstm_forward_gemm,
    lstm_param_gradients_gemm,
    panel_buffer,
)
from seqgen.kernels.bvlc_lstm_path import FORCED, PANEL_MAX_ROWS, choose_path, split_parts

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

T, N, I, H = 7, 9, 5, 6
G = 4 * H


def problem(dtype, seed=3):
    rng = np.random.default_rng(seed)
    cont = np.ones((T, N))
    cont[0, :4] = 0  # restarts at the first step,
    cont[3, 2] = cont[5, 7] = 0  # in the middle,
    cont[2, 1], cont[4, 8] = 0.5, 0.25  # and BVLC's fractional cont values
    return lstm_problem(rng, cont, I, H, dtype)


def buffers(p):
    dt = p["x"].dtype
    h, c = np.zeros((T + 1, N, H), dt), np.zeros((T + 1, N, H), dt)
    h[0], c[0] = p["h0"], p["c0"]
    return h, c, np.zeros((T, N, G), dt), np.zeros((T, N, H), dt), np.zeros((T, N, G), dt)


def run_loops(p, parts=1):
    h, c, gates, tanh_c, dpre = buffers(p)
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    W_hT = np.ascontiguousarray(p["W_h"].T)
    args = (p["x"], np.ascontiguousarray(p["W_x"].T), bias, W_hT, p["cont"], h, c, gates,
            tanh_c)
    lstm_forward_parallel(*args, parts) if parts > 1 else lstm_forward(*args)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    args = (p["top"], W_hT, p["cont"], c, gates, tanh_c, p["x"].dtype.type(0), dpre, dh, dc)
    lstm_backward_parallel(*args, parts) if parts > 1 else lstm_backward(*args)
    dW_x, dbias, dW_h = param_gradients(dpre, p["x"], h, p["cont"])
    dx = dpre.reshape(T * N, G) @ p["W_x"]
    return dict(h=h, c=c, dpre=dpre, dh0=dh, dc0=dc, dW_x=dW_x, db=dbias.sum(0), dW_h=dW_h,
                dx=dx)


def run_gemm(p, parts=1, panels=False):
    """The GEMM path; panels: its step products over W_h packed in panels, not BLAS."""
    h, c, gates, tanh_c, dpre = buffers(p)
    dt = p["x"].dtype
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    hm, x2 = np.zeros((T, N, H), dt), p["x"].reshape(T * N, I)
    P, Q = panel_buffer(H, dt, False, panels), panel_buffer(H, dt, True, panels)
    lstm_forward_gemm(x2, p["W_x"], bias, p["W_h"], p["cont"], h, c, gates, tanh_c, hm, P,
                      parts)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    lstm_backward_gemm(p["top"], p["W_h"], p["cont"], c, gates, tanh_c, dpre, dh, dc, Q, parts)
    # the products accumulate onto what the diffs hold
    start = {k: np.full(shape, 0.25, dt) for k, shape in
             (("dW_x", (G, I)), ("db", (G,)), ("dW_h", (G, H)))}
    grads = {k: v.copy() for k, v in start.items()}
    dx = np.zeros((T * N, I), dt)
    lstm_param_gradients_gemm(dpre, x2, hm, p["W_x"], grads["dW_x"], grads["db"],
                              grads["dW_h"], dx, True)
    out = {k: grads[k] - start[k] for k in grads}
    return dict(h=h, c=c, dpre=dpre, dh0=dh, dc0=dc, hm=hm, dx=dx, **out)


@pytest.mark.parametrize("panels", [False, True])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gemm_path_equals_loop_path_in_float64(parts, panels):
    p = problem(np.float64)
    a, b = run_loops(p, parts), run_gemm(p, panels=panels)
    assert a.keys() <= b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("panels", [False, True])
def test_gemm_forward_equals_numpy_formula(panels):
    p = problem(np.float64)
    hs, cs, _ = reference_forward(p["x"], p["cont"], p["W_x"], p["b"], p["W_h"], p["h0"],
                                  p["c0"])
    out = run_gemm(p, panels=panels)
    np.testing.assert_allclose(out["h"], hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["c"], cs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["hm"], p["cont"][:, :, None] * hs[:T], atol=0)


@pytest.mark.parametrize("panels", [False, True])
def test_float32_paths_agree(panels):
    p = problem(np.float32)
    a, b = run_loops(p), run_gemm(p, panels=panels)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-5, err_msg=key)


def test_shapes_choose_the_path():
    assert choose_path(1, 7) == choose_path(1, 15) == choose_path(2, 15) == "loops"
    assert choose_path(4, 15) == choose_path(1, 32) == choose_path(20, 200) == "gemm"


# -- the GEMM recurrence split over stream groups (N = 9: no part count divides it evenly
# but 3; cont restarts streams 0-3 at t = 0, 2 at t = 3, 7 at t = 5, in different groups)
SPLITS = [2, 3, 4, 9]


@pytest.mark.parametrize("panels", [False, True])
@pytest.mark.parametrize("parts", SPLITS)
def test_split_gemm_path_equals_unsplit_and_loops_in_float64(parts, panels):
    p = problem(np.float64)
    whole, split = run_gemm(p, panels=panels), run_gemm(p, parts, panels)
    loops = run_loops(p)
    assert split.keys() == whole.keys()
    for key in whole:  # the same arithmetic per row; BLAS may tile rows differently
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-13, atol=1e-13,
                                   err_msg=key)
    for key in loops:
        np.testing.assert_allclose(split[key], loops[key], rtol=1e-12, atol=1e-12,
                                   err_msg=key)


@pytest.mark.parametrize("panels", [False, True])
@pytest.mark.parametrize("parts", SPLITS)
def test_split_gemm_forward_equals_numpy_formula(parts, panels):
    p = problem(np.float64)
    hs, cs, _ = reference_forward(p["x"], p["cont"], p["W_x"], p["b"], p["W_h"], p["h0"],
                                  p["c0"])
    out = run_gemm(p, parts, panels)
    np.testing.assert_allclose(out["h"], hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["c"], cs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["hm"], p["cont"][:, :, None] * hs[:T], atol=0)


@pytest.mark.parametrize("parts", [2, 3])
def test_split_gemm_path_float32_stays_within_reordering(parts):
    p = problem(np.float32)
    whole, split = run_gemm(p), run_gemm(p, parts)
    for key in whole:
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [2, 3, 9])
def test_split_panel_products_are_bit_identical(parts, dtype):
    """On panels every element of a step product is the same sum whichever tile (and so
    whichever stream group) computes it: the split changes no bit, unlike BLAS's tiling."""
    p = problem(dtype)
    whole, split = run_gemm(p, panels=True), run_gemm(p, parts, True)
    for key in ("h", "c", "dpre", "dh0", "dc0"):
        np.testing.assert_array_equal(split[key], whole[key], err_msg=key)


@pytest.mark.parametrize("panels", [False, True])
def test_split_gemm_carries_state_across_calls(panels):
    """Two forward calls of split GEMM kernels, the second starting from the first's final
    state (as the layer carries it), equal one call over both halves; so do the backward
    calls, the second half's gradient on its initial state going into the first."""
    p = problem(np.float64)
    whole = run_gemm(p, 1, panels)
    P, Q = panel_buffer(H, np.float64, False, panels), panel_buffer(H, np.float64, True, panels)
    t1 = 3
    dt = p["x"].dtype
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    halves = []
    h_prev, c_prev = p["h0"], p["c0"]
    for t0, t_end, parts in ((0, t1, 2), (t1, T, 3)):
        n = t_end - t0
        h, c = np.zeros((n + 1, N, H), dt), np.zeros((n + 1, N, H), dt)
        h[0], c[0] = h_prev, c_prev
        gates, tanh_c, hm = (np.zeros((n, N, G), dt), np.zeros((n, N, H), dt),
                             np.zeros((n, N, H), dt))
        cont = np.ascontiguousarray(p["cont"][t0:t_end])
        lstm_forward_gemm(np.ascontiguousarray(p["x"][t0:t_end]).reshape(n * N, I), p["W_x"],
                          bias, p["W_h"], cont, h, c, gates, tanh_c, hm, P, parts)
        halves.append((h, c, gates, tanh_c, cont, t0, t_end, parts))
        h_prev, c_prev = h[n], c[n]
    np.testing.assert_allclose(np.concatenate([halves[0][0], halves[1][0][1:]]), whole["h"],
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.concatenate([halves[0][1], halves[1][1][1:]]), whole["c"],
                               rtol=1e-13, atol=1e-13)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    dpres = []
    for _h, c, gates, tanh_c, cont, t0, t_end, parts in reversed(halves):
        dpre = np.zeros_like(gates)
        lstm_backward_gemm(np.ascontiguousarray(p["top"][t0:t_end]), p["W_h"], cont, c, gates,
                           tanh_c, dpre, dh, dc, Q, parts)
        dpres.insert(0, dpre)
    np.testing.assert_allclose(np.concatenate(dpres), whole["dpre"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dh, whole["dh0"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dc, whole["dc0"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("blas_threads", [1, 2])
def test_split_restores_blas_threads(blas_threads):
    numpy_blas = [i["filepath"] for i in threadpool_info() if "numpy" in i["filepath"]
                  and i["user_api"] == "blas"]
    p = problem(np.float32)
    with threadpool_limits(blas_threads, user_api="blas"):
        run_gemm(p, 2)
        after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert numpy_blas and all(after[f] == blas_threads for f in numpy_blas)


def test_split_parts_by_budget_and_shape(monkeypatch):
    monkeypatch.setattr(threads, "_threads", 1)
    assert split_parts(64, 512) == 1  # no budget: never
    monkeypatch.setattr(threads, "_threads", 2)
    two = min(2, numba.get_num_threads())
    assert split_parts(32, 256) == split_parts(64, 256) == split_parts(33, 512) == two
    assert split_parts(32, 32) == split_parts(4, 256) == split_parts(3, 128) == two
    assert split_parts(1, 512) == split_parts(4, 32) == split_parts(2, 64) == 1  # small steps
    assert split_parts(8, 256) == split_parts(16, 128) == split_parts(5, 512) == 1  # packing
    # ... unless the groups' products run on panels, packed once a call
    assert split_parts(8, 256, 50) == split_parts(16, 128, 50) == two
    assert split_parts(5, 512, 8) == two
    assert split_parts(8, 256, 4) == 1  # too few steps to pay for packing


def lstm_rig(Tn, Nn, Hn, seed=0, dtype=np.float32):
    from seqgen.blob import Blob
    from seqgen.layers.recurrent import LSTMLayer
    from seqgen.proto import caffe_pb2

    lp = caffe_pb2.LayerParameter(name="lstm", type="LSTM", bottom=["x", "cont"], top=["h"])
    lp.recurrent_param.num_output = Hn
    bottom, top = [Blob((Tn, Nn, Hn), dtype), Blob((Tn, Nn), dtype)], [Blob((0,), dtype)]
    layer = LSTMLayer(lp, caffe_pb2.TRAIN)
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    rng = np.random.default_rng(seed)
    for blob in layer.blobs:
        blob.data[...] = 0.1 * rng.standard_normal(blob.shape)
    return layer, bottom, top, rng


def test_layer_splits_large_steps_only_with_a_budget(monkeypatch):
    """With a budget of 2 the layer runs a 32-stream, 256-unit LSTM split in two and an
    8 x 32 one unsplit; the split layer's results stay those of the unsplit one, over two
    calls that carry the state, and BLAS keeps its thread count."""
    from seqgen.layers import recurrent

    if numba.get_num_threads() < 2:
        pytest.skip("numba has one thread here")
    used = []
    for name in ("lstm_forward_gemm", "lstm_backward_gemm"):
        kernel = getattr(recurrent, name)
        monkeypatch.setattr(recurrent, name,
                            lambda *a, k=kernel, n=name: (used.append((n, a[-1])), k(*a))[1])
    results = {}
    for budget in (1, 2):
        monkeypatch.setattr(threads, "_threads", budget)
        for Nn, Hn in ((32, 256), (8, 32)):
            used.clear()
            layer, bottom, top, rng = lstm_rig(5, Nn, Hn)
            assert layer.path == "gemm"
            outs = []
            for call in range(2):  # the second call starts from the first's final state
                bottom[0].data[...] = rng.standard_normal(bottom[0].shape)
                bottom[1].data[...] = 1
                bottom[1].data[call, Nn // 2 - 1:] = 0  # restarts in both halves
                top[0].diff[...] = rng.standard_normal(top[0].shape)
                for blob in layer.blobs:
                    blob.diff[...] = 0
                with threadpool_limits(budget, user_api="blas"):
                    layer.forward(bottom, top)
                    layer.backward(top, [True, False], bottom)
                    assert {i["num_threads"] for i in threadpool_info()
                            if i["user_api"] == "blas"} == {budget}
                outs.append([top[0].data.copy(), bottom[0].diff.copy()]
                            + [blob.diff.copy() for blob in layer.blobs])
            want = 2 if (budget, Nn) == (2, 32) else 1
            assert used == [("lstm_forward_gemm", want), ("lstm_backward_gemm", want)] * 2
            results[budget, Nn] = outs
    for Nn in (32, 8):
        for one, two in zip(results[1, Nn], results[2, Nn]):
            for a, b in zip(one, two):
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_layer_puts_few_row_steps_on_panels(monkeypatch):
    """The layer packs W_h into panels for 2-32 rows a step (64 backward) over 8 or more
    steps, and keeps one row, long groups and short calls on BLAS; either way its outputs
    and gradients are the same, over two calls that carry the state (float64)."""
    from seqgen.layers import recurrent

    used = []
    for name in ("lstm_forward_gemm", "lstm_backward_gemm"):
        kernel = getattr(recurrent, name)
        monkeypatch.setattr(recurrent, name,
                            lambda *a, k=kernel, n=name: (used.append((n, a[-2].size > 0)),
                                                          k(*a))[1])
    monkeypatch.setattr(threads, "_threads", 1)
    wide = PANEL_MAX_ROWS[False] + 1  # one row over the forward limit (32; 128 on AVX-512)
    for Tn, Nn, want in ((10, 8, (True, True)), (10, 48, (48 <= PANEL_MAX_ROWS[False], True)),
                         (10, wide, (False, wide <= PANEL_MAX_ROWS[True])), (4, 8, (False, False)),
                         (10, 1, (False, False)), (10, 2, (True, True))):
        outs = {}
        for forced in (None, False):
            monkeypatch.setattr(FORCED, "panels", forced)
            used.clear()
            layer, bottom, top, rng = lstm_rig(Tn, Nn, 24, dtype=np.float64)
            assert layer.path == "gemm" and layer.dtype == np.float64
            got = []
            for call in range(2):
                bottom[0].data[...] = rng.standard_normal(bottom[0].shape)
                bottom[1].data[...] = 1
                bottom[1].data[call, Nn // 2:] = 0
                top[0].diff[...] = rng.standard_normal(top[0].shape)
                for blob in layer.blobs:
                    blob.diff[...] = 0
                layer.forward(bottom, top)
                layer.backward(top, [True, False], bottom)
                got += [top[0].data.copy(), bottom[0].diff.copy()] + [b.diff.copy()
                                                                       for b in layer.blobs]
            if forced is None:
                assert used == [("lstm_forward_gemm", want[0]),
                                ("lstm_backward_gemm", want[1])] * 2, (Tn, Nn)
            outs[forced] = got
        for a, b in zip(outs[None], outs[False]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
