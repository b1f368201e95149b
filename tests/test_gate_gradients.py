"""One backward step's gate gradients (kernels/bvlc_lstm.step_gradients over gate_gradients,
which the BVLC loop and GEMM paths and the fork's lane kernels share) against numpy's float32
arithmetic, bit for bit.

The kernel is compiled without fast-math, so each of its operations rounds to float32 on
its own, as each numpy ufunc does: the same formulas in the same order give the same bits on
any CPU (no contracted multiply-add can differ). A kernel that computed in float64 and
rounded at the end (what an int literal in the formulas does in numba) fails here."""
import numpy as np
import pytest
from numba import njit

from seqgen.kernels.bvlc_lstm import step_gradients

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


@njit(cache=False)
def _one_step(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t):
    H = dh_rec.shape[1]
    for n in range(dh_rec.shape[0]):
        step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t, n, H)


def _numpy_step(top_diff, cont, c, gates, tanh_c, dh_rec, dc, t):
    """The step's formulas in float32 numpy, one rounding per operation."""
    one = np.float32(1)
    H = dh_rec.shape[1]
    gi, gf, go, gg = (gates[t, :, q * H:(q + 1) * H] for q in range(4))
    m = cont[t][:, None]
    with np.errstate(divide="ignore"):
        inv_m = np.where(m != 0, one / m, np.float32(0)).astype(np.float32)
    tc = tanh_c[t]
    dh = top_diff[t] + dh_rec
    dct = dc + dh * go * (one - tc * tc)
    dpre = np.concatenate([dct * gg * gi * (one - gi),
                           dct * c[t] * gf * (one - gf * inv_m),
                           dh * tc * go * (one - go),
                           dct * gi * (one - gg * gg)], axis=1)
    return dpre, gf * dct


@pytest.mark.parametrize("H", [7, 16, 128])
def test_step_gradients_round_as_float32_numpy(H):
    rng = np.random.default_rng(H)
    T, N = 3, 5
    f = np.float32
    cont = np.ones((T, N), f)
    cont[1, 0], cont[1, 3] = 0, 0.5  # a new sequence, and BVLC's fractional cont
    gates = rng.random((T, N, 4 * H)).astype(f)
    gates[1, 0, H:2 * H] = 0  # the forget gate a cont of 0 leaves
    gates[1, 3, H:2 * H] *= f(0.5)
    c = rng.standard_normal((T + 1, N, H)).astype(f)
    tanh_c = np.tanh(c[1:]).astype(f)
    top_diff = rng.standard_normal((T, N, H)).astype(f)
    dh_rec = rng.standard_normal((N, H)).astype(f)
    dc = rng.standard_normal((N, H)).astype(f)
    t = 1
    want_dpre, want_dc = _numpy_step(top_diff, cont, c, gates, tanh_c, dh_rec, dc, t)
    dpre = np.zeros((T, N, 4 * H), f)
    _one_step(top_diff, cont, c, gates, tanh_c, dpre, dh_rec, dc, t)
    np.testing.assert_array_equal(dpre[t], want_dpre)
    np.testing.assert_array_equal(dc, want_dc)
