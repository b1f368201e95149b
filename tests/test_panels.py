"""kernels.panels: the few-row products over a weight packed in 16- or 32-column panels,
against numpy's matmul (float64 and float32), with both register tiles (4 and 8 rows), for
every tile remainder, padded last panel, strided rows and beta; the two tiles' results to
the bit; and the claim the stream split relies on, that a row's result does not depend on
which rows it is computed with."""
import numpy as np
import pytest

from seqgen.kernels.panels import WIDTH, pack_panels, panel_count, panel_gemm

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def packed(B, trans):
    columns, K = (B.shape[0], B.shape[1]) if trans else (B.shape[1], B.shape[0])
    P = np.full((panel_count(columns), K, WIDTH), np.nan, B.dtype)  # packing must fill all
    pack_panels(B, trans, P)
    return P


@pytest.mark.parametrize("trans", [True, False])
@pytest.mark.parametrize("columns, K", [(16, 3), (60, 15), (200, 50), (33, 17)])
def test_packing_lays_out_op_b_by_panels(trans, columns, K):
    rng = np.random.default_rng(columns + K)
    op_b = rng.standard_normal((K, columns))
    P = packed(np.ascontiguousarray(op_b.T if trans else op_b), trans)
    padded = np.zeros((K, panel_count(columns) * WIDTH))
    padded[:, :columns] = op_b
    want = padded.reshape(K, -1, WIDTH).transpose(1, 0, 2)
    np.testing.assert_array_equal(P, want)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 6, 7, 9, 12, 33])
@pytest.mark.parametrize("trans", [True, False])
@pytest.mark.parametrize("H", [15, 75])  # 75: deep products (K = 300 backward)
@pytest.mark.parametrize("rows", [4, 8])
def test_products_equal_matmul(M, trans, dtype, tol, H, rows):
    rng = np.random.default_rng(M)
    K, columns = (H, 4 * H) if trans else (4 * H, H)  # the 4H x H weight either way round
    B = rng.standard_normal((columns, K) if trans else (K, columns)).astype(dtype)
    A = rng.standard_normal((M, K)).astype(dtype)
    C = rng.standard_normal((M, columns)).astype(dtype)
    want = A.astype(np.float64) @ (B.T if trans else B).astype(np.float64)
    P = packed(B, trans)
    for beta in (1.0, 0.5):
        got = C.copy()
        panel_gemm(A, P, beta, got, rows)
        ref = want + beta * C.astype(np.float64)
        assert np.abs(got - ref).max() <= tol * np.abs(ref).max()
    got = np.full_like(C, np.nan)  # beta 0 never reads C
    panel_gemm(A, P, 0.0, got, rows)
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_two_tiles_agree_to_the_bit(dtype):
    """The 8-row tile (the default with AVX-512) sums each element as the 4-row one does, so
    switching tiles never changes a result (an 8-row tile over 5-7 rows repeats the last)."""
    rng = np.random.default_rng(5)
    B = rng.standard_normal((256, 64)).astype(dtype)  # K = 64, op(B) = B.T: 256 columns
    P = packed(B, True)
    for M in range(1, 20):
        A = rng.standard_normal((M, 64)).astype(dtype)
        C = rng.standard_normal((M, 256)).astype(dtype)
        four, eight = C.copy(), C.copy()
        panel_gemm(A, P, 1.0, four, 4)
        panel_gemm(A, P, 1.0, eight, 8)
        np.testing.assert_array_equal(four, eight)


def test_strided_rows():
    """Row views of (T, N, X) buffers, as the LSTM kernels pass them (hm[t, n0:n1] into
    gates[t, n0:n1]), with the rows of A and C not contiguous with each other."""
    rng = np.random.default_rng(7)
    A_full, C_full = rng.standard_normal((6, 40)), rng.standard_normal((5, 100))
    B = rng.standard_normal((36, 30))
    A, C = A_full[::2, 5:35], C_full[1:4, 10:46]  # (3, 30) and (3, 36), strided rows
    before = C_full.copy()
    panel_gemm(A, packed(B, True), 1.0, C)
    expect = before.copy()
    expect[1:4, 10:46] += A @ B.T
    np.testing.assert_allclose(C_full, expect, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [4, 8])
def test_a_row_does_not_depend_on_its_neighbours(dtype, rows):
    """Rows computed in groups of 1, 2, 3, 5 or 6 equal the same rows computed all at once, to
    the bit: a group's last rows fill the tile by repeating, not by other arithmetic."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((11, 300)).astype(dtype)
    P = packed(rng.standard_normal((200, 300)).astype(dtype), True)
    C0 = rng.standard_normal((11, 200)).astype(dtype)
    whole = C0.copy()
    panel_gemm(A, P, 1.0, whole, rows)
    for size in (1, 2, 3, 5, 6):
        parts = C0.copy()
        for r0 in range(0, 11, size):
            panel_gemm(A[r0:r0 + size], P, 1.0, parts[r0:r0 + size], rows)
        np.testing.assert_array_equal(parts, whole)
