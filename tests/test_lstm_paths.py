"""The BVLC LSTM's two kernel paths (axpy loops, on one thread or split over streams, and
GEMM-shaped) against each other and against an independent numpy formula, in float64; and
the choice between them by shape."""
import numpy as np
import pytest
from reference import lstm_forward as reference_forward

from seqgen.kernels.lstm import (lstm_backward, lstm_backward_parallel, lstm_forward,
                                 lstm_forward_parallel, param_gradients)
from seqgen.kernels.lstm_gemm import (choose_path, lstm_backward_gemm, lstm_forward_gemm,
                                      lstm_param_gradients_gemm)

T, N, I, H = 7, 9, 5, 6
G = 4 * H


def problem(dtype, seed=3):
    rng = np.random.default_rng(seed)
    cont = np.ones((T, N))
    cont[0, :4] = 0  # restarts at the first step,
    cont[3, 2] = cont[5, 7] = 0  # in the middle,
    cont[2, 1], cont[4, 8] = 0.5, 0.25  # and BVLC's fractional cont values
    p = dict(x=rng.standard_normal((T, N, I)), W_x=0.4 * rng.standard_normal((G, I)),
             W_h=0.4 * rng.standard_normal((G, H)), b=0.2 * rng.standard_normal(G),
             h0=0.5 * rng.standard_normal((N, H)), c0=0.5 * rng.standard_normal((N, H)),
             cont=cont, top=rng.standard_normal((T, N, H)),
             dhT=rng.standard_normal((N, H)), dcT=rng.standard_normal((N, H)))
    return {k: np.ascontiguousarray(v, dtype) for k, v in p.items()}


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


def run_gemm(p):
    h, c, gates, tanh_c, dpre = buffers(p)
    dt = p["x"].dtype
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    hm, x2 = np.zeros((T, N, H), dt), p["x"].reshape(T * N, I)
    lstm_forward_gemm(x2, p["W_x"], bias, p["W_h"], p["cont"], h, c, gates, tanh_c, hm)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    lstm_backward_gemm(p["top"], p["W_h"], p["cont"], c, gates, tanh_c, dpre, dh, dc)
    # the products accumulate onto what the diffs hold
    start = {k: np.full(shape, 0.25, dt) for k, shape in
             (("dW_x", (G, I)), ("db", (G,)), ("dW_h", (G, H)))}
    grads = {k: v.copy() for k, v in start.items()}
    dx = np.zeros((T * N, I), dt)
    lstm_param_gradients_gemm(dpre, x2, hm, p["W_x"], grads["dW_x"], grads["db"],
                              grads["dW_h"], dx, True)
    out = {k: grads[k] - start[k] for k in grads}
    return dict(h=h, c=c, dpre=dpre, dh0=dh, dc0=dc, hm=hm, dx=dx, **out)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gemm_path_equals_loop_path_in_float64(parts):
    p = problem(np.float64)
    a, b = run_loops(p, parts), run_gemm(p)
    assert a.keys() <= b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_gemm_forward_equals_numpy_formula():
    p = problem(np.float64)
    hs, cs, _ = reference_forward(p["x"], p["cont"], p["W_x"], p["b"], p["W_h"], p["h0"],
                                  p["c0"])
    out = run_gemm(p)
    np.testing.assert_allclose(out["h"], hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["c"], cs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["hm"], p["cont"][:, :, None] * hs[:T], atol=0)


def test_float32_paths_agree():
    p = problem(np.float32)
    a, b = run_loops(p), run_gemm(p)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-5, err_msg=key)


def test_shapes_choose_the_path():
    assert choose_path(1, 7) == choose_path(1, 15) == choose_path(2, 15) == "loops"
    assert choose_path(4, 15) == choose_path(1, 32) == choose_path(20, 200) == "gemm"
