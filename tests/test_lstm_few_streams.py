"""The GEMM path with one and two streams, where kernels.blas.gemm turns each step's
products into one gemv per row: equal to the axpy-loop path in float64, forward, backward
and the weight gradients, with restarts and a carried state."""
import numpy as np
import pytest

from seqgen.kernels import blas
from seqgen.kernels.bvlc_lstm import lstm_backward, lstm_forward
from seqgen.kernels.bvlc_lstm_gemm import (
    lstm_backward_gemm,
    lstm_forward_gemm,
    lstm_param_gradients_gemm,
)

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

T, I, H = 6, 4, 5
G = 4 * H


def inputs(N, seed):
    rng = np.random.default_rng(seed)
    cont = np.ones((T, N))
    cont[2, 0] = 0  # a restart in the middle of stream 0
    p = dict(x=rng.standard_normal((T, N, I)), W_x=0.4 * rng.standard_normal((G, I)),
             W_h=0.4 * rng.standard_normal((G, H)), bias=0.2 * rng.standard_normal((N, G)),
             h0=0.5 * rng.standard_normal((N, H)), c0=0.5 * rng.standard_normal((N, H)),
             top=rng.standard_normal((T, N, H)), dhT=rng.standard_normal((N, H)),
             dcT=rng.standard_normal((N, H)), cont=cont)
    return {k: np.ascontiguousarray(v) for k, v in p.items()}


def states(p, N):
    h, c = np.zeros((T + 1, N, H)), np.zeros((T + 1, N, H))
    h[0], c[0] = p["h0"], p["c0"]
    return h, c, np.zeros((T, N, G)), np.zeros((T, N, H)), np.zeros((T, N, G))


@pytest.mark.parametrize("N", [1, 2])
def test_one_and_two_streams_equal_the_loop_path(N):
    assert N <= blas.GEMV_MAX_ROWS  # (the row-by-row products are what is tested)
    p = inputs(N, seed=10 + N)
    h, c, gates, tanh_c, dpre = states(p, N)
    W_hT = np.ascontiguousarray(p["W_h"].T)
    lstm_forward(p["x"], np.ascontiguousarray(p["W_x"].T), p["bias"], W_hT, p["cont"], h, c,
                 gates, tanh_c)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    lstm_backward(p["top"], W_hT, p["cont"], c, gates, tanh_c, 0.0, dpre, dh, dc)

    h2, c2, gates2, tanh_c2, dpre2 = states(p, N)
    hm = np.zeros((T, N, H))
    x2 = p["x"].reshape(T * N, I)
    no_panels = np.zeros((0, 0, 16))  # (the row-by-row BLAS products are what is tested)
    lstm_forward_gemm(x2, p["W_x"], p["bias"], p["W_h"], p["cont"], h2, c2, gates2, tanh_c2,
                      hm, no_panels, 1)
    dh2, dc2 = p["dhT"].copy(), p["dcT"].copy()
    lstm_backward_gemm(p["top"], p["W_h"], p["cont"], c2, gates2, tanh_c2, dpre2, dh2, dc2,
                       no_panels, 1)
    for name, want, got in (("h", h, h2), ("c", c, c2), ("dpre", dpre, dpre2),
                            ("dh0", dh, dh2), ("dc0", dc, dc2)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)

    dW_x, db, dW_h, dx = np.zeros((G, I)), np.zeros(G), np.zeros((G, H)), np.zeros((T * N, I))
    lstm_param_gradients_gemm(dpre2, x2, hm, p["W_x"], dW_x, db, dW_h, dx, True)
    d2 = dpre.reshape(T * N, G)
    recurrent_in = (p["cont"][:, :, None] * h[:T]).reshape(T * N, H)
    np.testing.assert_allclose(dW_x, d2.T @ x2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW_h, d2.T @ recurrent_in, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, d2.sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, d2 @ p["W_x"], rtol=1e-12, atol=1e-12)
