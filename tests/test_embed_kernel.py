"""kernels/embed.py against plain numpy: the index check (first bad position), the gather
with and without bias, and the scatter-add with repeated indices, in float32 and float64."""
import numpy as np
import pytest

from seqgen.kernels.embed import embed_backward, embed_forward, read_indices

K, E = 7, 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_indices_reads_integers_in_range(dtype):
    x = np.array([0, 6, 3, 3, 0, 1], dtype)
    idx = np.full(x.size, -5, np.int64)
    assert read_indices(x, K, idx) == -1
    np.testing.assert_array_equal(idx, [0, 6, 3, 3, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [7, 8, -1, 1.5, -0.5, 6.999, np.nan, np.inf, -np.inf, 1e30])
def test_read_indices_returns_the_first_bad_position(dtype, bad):
    x = np.array([1, 2, 3, 4, 5, 6], dtype)
    x[2] = bad
    x[4] = bad  # a later bad value: the first one is reported
    assert read_indices(x, K, np.zeros(x.size, np.int64)) == 2


def table(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, E)).astype(dtype), rng.normal(size=E).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_gathers_rows(dtype, bias):
    W, b = table(dtype)
    idx = np.array([3, 0, 3, 6, 6, 1], np.int64)
    top = np.full((idx.size, E), np.nan, dtype)
    embed_forward(idx, W, b if bias else np.zeros(0, dtype), top)
    want = np.stack([W[k] + (b if bias else 0) for k in idx])
    np.testing.assert_array_equal(top, want)  # one float add per element: exact


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_backward_adds_repeated_indices(dtype, bias):
    rng = np.random.default_rng(1)
    idx = np.array([2, 5, 2, 2, 0, 5, 2], np.int64)  # 2 four times, 5 twice, others never
    dy = rng.normal(size=(idx.size, E)).astype(dtype)
    dW0 = rng.normal(size=(K, E)).astype(dtype)  # diffs accumulate onto what is there
    db0 = rng.normal(size=E).astype(dtype)
    dW, db = dW0.copy(), db0.copy()
    embed_backward(idx, dy, dW, db if bias else np.zeros(0, dtype), np.zeros(E, dtype))
    onehot = np.zeros((idx.size, K))
    onehot[np.arange(idx.size), idx] = 1
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dW, dW0 + onehot.T @ dy.astype(np.float64), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(dW[[1, 3, 4, 6]], dW0[[1, 3, 4, 6]])
    # in row order, one add after another (Caffe's axpy loop): the same bits as np.add.at
    ordered = dW0.copy()
    np.add.at(ordered, idx, dy)
    np.testing.assert_array_equal(dW, ordered)
    if bias:
        np.testing.assert_allclose(db, db0 + dy.astype(np.float64).sum(axis=0), rtol=rtol,
                                   atol=rtol)
        np.testing.assert_array_equal(db, db0 + dy.sum(axis=0))


def test_backward_of_no_rows_changes_nothing():
    W, b = table(np.float32)
    dW, db = W.copy(), b.copy()
    embed_backward(np.zeros(0, np.int64), np.zeros((0, E), np.float32), dW, db,
                   np.zeros(E, np.float32))
    np.testing.assert_array_equal(dW, W)
    np.testing.assert_array_equal(db, b)
