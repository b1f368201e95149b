"""The BVLC LSTM's two kernel paths (axpy loops, GEMM-shaped) against each other and
against an independent numpy formula, in float64, on one thread and split over streams;
and the choice between them by shape."""
import numpy as np
import pytest
from reference import lstm_forward as reference_forward

from seqgen.kernels.lstm import lstm_backward, lstm_forward, param_gradients
from seqgen.kernels.lstm_gemm import (choose_path, lstm_backward_gemm,
                                      lstm_backward_gemm_parallel, lstm_forward_gemm,
                                      lstm_forward_gemm_parallel)

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


def run_loops(p):
    h, c, gates, tanh_c, dpre = buffers(p)
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    lstm_forward(p["x"], np.ascontiguousarray(p["W_x"].T), bias,
                 np.ascontiguousarray(p["W_h"].T), p["cont"], h, c, gates, tanh_c)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    lstm_backward(p["top"], np.ascontiguousarray(p["W_h"].T), p["cont"], c, gates, tanh_c,
                  p["x"].dtype.type(0), dpre, dh, dc)
    dW_x, dbias, dW_h = param_gradients(dpre, p["x"], h, p["cont"])
    return dict(h=h, c=c, dpre=dpre, dh0=dh, dc0=dc, dW_x=dW_x, db=dbias.sum(0), dW_h=dW_h)


def run_gemm(p, parts=1):
    h, c, gates, tanh_c, dpre = buffers(p)
    dt = p["x"].dtype
    bias = np.ascontiguousarray(np.broadcast_to(p["b"], (N, G)))
    hm, rec, drec = np.zeros((T, N, H), dt), np.zeros((N, G), dt), np.zeros((N, H), dt)
    np.matmul(p["x"].reshape(T * N, I), p["W_x"].T, out=gates.reshape(T * N, G))
    args = (bias, np.ascontiguousarray(p["W_h"].T), p["cont"], h, c, gates, tanh_c, hm, rec)
    if parts > 1:
        lstm_forward_gemm_parallel(*args, parts)
    else:
        lstm_forward_gemm(*args)
    dh, dc = p["dhT"].copy(), p["dcT"].copy()
    args = (p["top"], p["W_h"], p["cont"], c, gates, tanh_c, dpre, dh, dc, drec)
    if parts > 1:
        lstm_backward_gemm_parallel(*args, parts)
    else:
        lstm_backward_gemm(*args)
    d2 = dpre.reshape(T * N, G)
    return dict(h=h, c=c, dpre=dpre, dh0=dh, dc0=dc, dW_x=d2.T @ p["x"].reshape(T * N, I),
                db=d2.sum(0), dW_h=d2.T @ hm.reshape(T * N, H), hm=hm)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gemm_path_equals_loop_path_in_float64(parts):
    p = problem(np.float64)
    a, b = run_loops(p), run_gemm(p, parts)
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
    a, b = run_loops(p), run_gemm(p, 2)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-5, err_msg=key)


def test_shapes_choose_the_path():
    assert choose_path(1, 7) == choose_path(1, 15) == choose_path(2, 15) == "loops"
    assert choose_path(4, 15) == choose_path(1, 32) == choose_path(20, 200) == "gemm"
