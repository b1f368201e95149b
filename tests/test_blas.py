"""kernels.blas.gemm (numpy's BLAS from compiled code) and its compiled fallback, against
numpy's products: every transpose combination, alpha/beta, strided rows, both dtypes; the
BLAS thread control (count, parking the workers) from compiled code."""
import ctypes
import os

import numpy as np
import pytest
from numba import njit

from seqgen.kernels import blas
from seqgen.kernels.blas import NO_TRANS, ROW_MAJOR, TRANS, gemm

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


@njit(cache=True)
def call(ta, tb, alpha, A, B, beta, C):
    gemm(ta, tb, alpha, A, B, beta, C)


def case(dtype, ta, tb, seed=0, m=5, n=7, k=3):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    want = 0.5 * (A.T if ta else A).astype(np.float64) @ (B.T if tb else B) + 2 * C
    return A, B, C, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_matches_numpy(dtype, ta, tb):
    A, B, C, want = case(dtype, ta, tb)
    call(ta, tb, 0.5, A, B, 2.0, C)
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m", [1, 2])
def test_products_of_few_rows_go_row_by_row_and_match_numpy(dtype, ta, tb, m):
    # (one gemv per row below GEMV_MAX_ROWS: every way a row of op(A) and op(B) are laid out)
    assert m <= blas.GEMV_MAX_ROWS
    A, B, C, want = case(dtype, ta, tb, seed=4, m=m, n=9, k=6)
    call(ta, tb, 0.5, A, B, 2.0, C)
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-13)
    # strided rows of every operand, and beta = 0 reading nothing of C
    rng = np.random.default_rng(5)
    big_a = rng.standard_normal((12, 20)).astype(dtype)
    a = big_a[:6, 3:3 + m] if ta else big_a[:m, 3:9]
    big_b = rng.standard_normal((12, 20)).astype(dtype)
    b = big_b[:9, 2:8] if tb else big_b[:6, 2:11]
    out = np.full((m, 30), np.nan, dtype)
    call(ta, tb, 1.0, a, b, 0.0, out[:, 10:19])
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
    np.testing.assert_allclose(out[:, 10:19], ref, rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert np.isnan(out[:, :10]).all() and np.isnan(out[:, 19:]).all()


def test_strided_rows_and_beta_zero_ignores_garbage():
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((6, 10)), rng.standard_normal((3, 4))
    C = np.full((6, 4), np.nan)  # beta = 0 must not read C (BLAS semantics)
    call(False, False, 1.0, X[:, 5:8], W, 0.0, C)
    np.testing.assert_allclose(C, X[:, 5:8] @ W, rtol=1e-13)


def test_products_run_on_numpy_blas_here():
    # this project's machines have numpy wheels with OpenBLAS; a silent fallback would be
    # correct but slow
    assert blas.USES_BLAS


@pytest.mark.parametrize("kind,dtype", [("s", np.float32), ("d", np.float64)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_fallback_loops_match_numpy(kind, dtype, ta, tb):
    A, B, C, want = case(dtype, ta, tb, seed=2)
    fn = blas._fallback(kind).ctypes
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
    m, n = C.shape
    k = A.shape[0] if ta else A.shape[1]
    fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 0.5,
       ptr(A), A.shape[1], ptr(B), B.shape[1], 2.0, ptr(C), n)
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("kind,dtype", [("s", np.float32), ("d", np.float64)])
@pytest.mark.parametrize("trans", [False, True])
def test_fallback_gemv_matches_numpy(kind, dtype, trans):
    rng = np.random.default_rng(6)
    A = rng.standard_normal((4, 7)).astype(dtype)
    x = rng.standard_normal(3 * (4 if trans else 7)).astype(dtype)  # read at stride 3
    y = rng.standard_normal(7 if trans else 4).astype(dtype)
    want = 0.5 * (A.T if trans else A).astype(np.float64) @ x[::3] + 2 * y
    fn = blas._fallback_gemv(kind).ctypes
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
    fn(ROW_MAJOR, TRANS if trans else NO_TRANS, 4, 7, 0.5, ptr(A), 7, ptr(x), 3, 2.0, ptr(y), 1)
    np.testing.assert_allclose(y, want, rtol=1e-5 if dtype == np.float32 else 1e-13)


@njit(cache=True)
def threads_then_park(n):
    before = blas.blas_threads()
    blas.set_blas_threads(n)
    during = blas.blas_threads()
    blas.set_blas_threads(1)
    blas.park_blas_threads()
    parked = blas.blas_threads()
    blas.set_blas_threads(before)
    return before, during, parked


def test_thread_control_reaches_numpy_blas_and_parking_keeps_it_working():
    from threadpoolctl import threadpool_info, threadpool_limits

    assert blas.CONTROLS_THREADS and blas.PARKS_THREADS  # numpy's OpenBLAS wheels here

    def numpy_blas_threads():
        return [i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas" and "numpy" in i["filepath"]]

    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))
    want = A @ B
    with threadpool_limits(2, user_api="blas"):
        assert threads_then_park(2) == (2, 2, 1)
        assert numpy_blas_threads() == [2]
        np.testing.assert_allclose(A @ B, want, rtol=1e-12)  # workers start again
        # counted once they run: after set_blas_threads(2) alone they may not have started
        tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0
        blas.set_blas_threads(1)
        blas.park_blas_threads()
        if tasks:  # the parked workers are gone until the next threaded product
            assert len(os.listdir("/proc/self/task")) < tasks
        blas.set_blas_threads(2)
        np.testing.assert_allclose(A @ B, want, rtol=1e-12)
        assert numpy_blas_threads() == [2]
