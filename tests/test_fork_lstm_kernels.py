"""The fork layer's padded-lane kernels (kernels/fork_lstm.py) against kernels/bvlc_lstm.py:
the same numbers bit for bit in float32 (two paths seqgen controls: a run trained on
either continues unchanged on the other) and in float64, on
one thread and split over streams, for layer sizes that fill the lanes and that do not."""
import numpy as np
import pytest
from helpers import lstm_problem

from seqgen.kernels import bvlc_lstm as plain
from seqgen.kernels import fork_lstm as lanes

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def problem(T, N, I, H, dtype, seed, fractional=False):
    rng = np.random.default_rng(seed)
    cont = np.ones((T, N))
    cont[0, ::2] = 0
    cont[T // 3, 0] = 0
    if fractional:  # BVLC's cont values other than 0 and 1 (the kernels support them)
        cont[T // 2, 0] = 0.5
        cont[T - 1, N - 1] = 0.25
    return lstm_problem(rng, cont, I, H, dtype)


def run_plain(p, threshold):
    T, N, I = p["x"].shape
    G, H = p["W_h"].shape
    dt = p["x"].dtype
    h, c = np.zeros((T + 1, N, H), dt), np.zeros((T + 1, N, H), dt)
    h[0], c[0] = p["h0"], p["c0"]
    gates, tanh_c, dpre = np.zeros((T, N, G), dt), np.zeros((T, N, H), dt), np.zeros((T, N, G), dt)
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    W_hT = np.ascontiguousarray(p["W_h"].T)
    plain.lstm_forward(p["x"], np.ascontiguousarray(p["W_x"].T), bias, W_hT, p["cont"], h, c,
                       gates, tanh_c)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    plain.lstm_backward(p["top"], W_hT, p["cont"], c, gates, tanh_c, dt.type(threshold), dpre,
                        dh, dc)
    dW_x, dbias, dW_h = plain.param_gradients(dpre, p["x"], h, p["cont"])
    return dict(h=h, c=c, gates=gates, dpre=dpre, dh0=dh, dc0=dc, dW_x=dW_x,
                db=dbias.sum(0), dW_h=dW_h)


def run_lanes(p, threshold, parts=1):
    T, N, I = p["x"].shape
    G, H = p["W_h"].shape
    Hp = lanes.lanes(H)
    Gp = 4 * Hp
    dt = p["x"].dtype
    z = lambda *shape: np.zeros(shape, dt)  # noqa: E731
    W_xT, W_hT, bias, cont = z(I, Gp), z(H, Gp), z(N, Gp), z(T, N)
    h, c, gates = z(T + 1, N, Hp), z(T + 1, N, Hp), z(T, N, Gp)
    tanh_c, top = z(T, N, Hp), z(T, N, H)
    hT, cT = z(N, H), z(N, H)
    # the layer turns clip markers into 0/1; fractional cont goes in through cont directly
    fwd = (p["x"], p["cont"].reshape(-1), True, p["h0"], p["c0"], p["W_x"], p["W_h"], p["b"],
           W_xT, W_hT, bias, cont, h, c, gates, tanh_c, top, hT, cT)
    if parts > 1:
        lanes.lstm_forward_parallel(*fwd, parts)
    else:
        lanes.lstm_forward(*fwd)
    np.testing.assert_array_equal(cont, p["cont"] != 0)
    if (p["cont"] % 1).any():  # rerun with the fractional values themselves
        cont[...] = p["cont"]
        h[0, :, :H], c[0, :, :H] = p["h0"], p["c0"]
        lanes._forward_streams(p["x"], W_xT, bias, W_hT, cont, h, c, gates, tanh_c, top, hT,
                               cT, 0, N)
    np.testing.assert_array_equal(top, h[1:, :, :H])
    np.testing.assert_array_equal(hT, h[T, :, :H])
    step, dh, dc = z(N, Gp), z(N, Hp), z(N, Hp)
    dh[:, :H], dc[:, :H] = p["dhT"], p["dcT"]
    K = I + H + 1
    rhs, ring, acc = np.zeros((T * N, K)), np.zeros((parts, 4, Gp)), np.ones((parts, K, Gp))
    dW_x, dW_h, db, d32 = z(G, I), z(G, H), z(G), z(T * N, G)
    bwd = (p["top"], W_hT, cont, c, gates, tanh_c, dt.type(threshold), step, dh, dc, p["x"], h,
           False, rhs, ring, acc, dW_x, dW_h, db, d32, True)
    if parts > 1:
        lanes.lstm_backward_parallel(*bwd)
    else:
        lanes.lstm_backward(*bwd)
    for pad in (h[..., H:], c[..., H:], acc.reshape(parts, K, 4, Hp)[..., H:]):
        assert not pad.any(), "the padded lanes must stay zero"
    return dict(h=h[..., :H], c=c[..., :H], gates=unpad(gates, H, Hp), dpre=d32.reshape(T, N, G),
                dh0=dh[:, :H], dc0=dc[:, :H], dW_x=dW_x, db=db, dW_h=dW_h)


def unpad(a, H, Hp):
    return np.concatenate([a[..., q * Hp:q * Hp + H] for q in range(4)], axis=-1)


SHAPES = [(40, 1, 1, 15), (40, 1, 7, 7), (30, 3, 5, 50), (20, 2, 3, 4), (25, 2, 2, 8),
          (12, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.0, 0.1])
@pytest.mark.parametrize("fractional", [False, True])
def test_lane_kernels_repeat_the_plain_kernels(shape, dtype, threshold, fractional):
    for seed in range(2):
        p = problem(*shape, dtype, seed, fractional)
        a, b = run_plain(p, threshold), run_lanes(p, threshold)
        for key in ("h", "c", "gates", "dpre", "dh0", "dc0"):
            if dtype == np.float32:  # float64 sums of the recurrent gradient may differ in
                np.testing.assert_array_equal(b[key], a[key], err_msg=key)  # the last bit
            else:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-14, err_msg=key)
        for key in ("dW_x", "db", "dW_h"):  # float64 sums in another order, rounded once
            if dtype == np.float32:
                np.testing.assert_array_equal(b[key], a[key].astype(np.float32), err_msg=key)
            else:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("parts", [2, 3])
def test_lane_kernels_split_over_streams_equal_one_thread(parts):
    p = problem(20, 7, 3, 6, np.float32, 4)
    a, b = run_lanes(p, 0.1), run_lanes(p, 0.1, parts)
    for key in a:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
