"""The fork `Lstm` layer's recurrence with every gate block padded to whole vectors.

The equations, gate order (i, f, o, g), cont semantics and float rounding are those of
`kernels.bvlc_lstm` (its results bit for bit, float32 and float64); only the memory layout and
the loop shapes differ, for the small layers the fork's examples use (H = 7, 15), where
`kernels.bvlc_lstm` spent much of a step in the scalar remainders of its vector loops (4H = 60
is seven vectors of 8 and four leftovers, 3H = 45 sigmoids five vectors and five scalars):

- inside the kernels each gate block has Hp = H rounded up to LANES (8) entries, so gates
  and the cell are rows of Gp = 4 Hp; every loop over them is whole vectors. The padded
  entries have zero weights and bias, so they stay 0 in h, c and the gate gradients (an
  infinite input makes them NaN, 0 * inf; then the weight gradient dW_x = sum dpre x is
  not finite either, in kernels.bvlc_lstm too, and training stops there);
- the recurrent product adds four rows of W_h^T per pass over the gates (in order, no
  reassociation: the rounding of four separate axpys), a quarter of the loads and stores;
- the weight gradients are summed inside the backward loop, four steps' rows at a time
  as float64 axpys over the gate block (exact products, float64 sums as kernels.bvlc_lstm's
  BLAS product has them, in another order): work off the recurrence's dependency chain,
  in place of a BLAS product after it and a (T*N, 4H) float64 copy of the gate gradients;
- one call does a whole forward (weights packed, state and cont read, top written) or a
  whole backward (top diff read, recurrence, weight gradients added to the diffs), so the
  layer's Python is a few statements per pass.

Buffers (T steps, N streams, I inputs; rows t*N + n of Caffe's blobs):
  W_xT (I, Gp), W_hT (H, Gp), bias (N, Gp): packed from W_x (4H, I), W_h (4H, H), b (4H);
  cont (T, N); h, c (T+1, N, Hp), row 0 the initial state; gates (T, N, Gp);
  tanh_c (T, N, Hp); dh, dc (N, Hp); scratch for the backward: one step's gate gradients
  dpre (N, Gp), rhs (T*N, I + H + 1), ring (parts, 4, Gp), acc (parts, I + H + 1, Gp).
The kernels are dtype-generic (float32 in the layer, float64 for finite differences).
"""
import numpy as np
from numba import njit, prange

from .activations import FASTMATH, sigmoid, tanh
from .bvlc_lstm import gate_gradients
from .scalars import U

LANES = 8
JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
# the four-row axpy must add its rows in order (no reassociation), as in kernels.generate
IN_ORDER = dict(JIT, fastmath=FASTMATH - {"reassoc"})


def lanes(H):
    """H rounded up to a whole number of vectors (the padded gate block)."""
    return -(-int(H) // LANES) * LANES


# -- forward -----------------------------------------------------------------------------
@njit(**JIT)
def pack_weights(W_x, W_h, b, W_xT, W_hT, bias):
    """W_xT (I, Gp), W_hT (H, Gp), bias (N, Gp) from W_x (4H, I), W_h (4H, H), b (4H);
    padded entries are left as they are (zero)."""
    G, I = W_x.shape
    H = G // 4
    Hp = W_xT.shape[1] // 4
    for q in range(4):
        for k in range(H):
            j, jp = q * H + k, q * Hp + k
            for i in range(I):
                W_xT[i, jp] = W_x[j, i]
            for i in range(H):
                W_hT[i, jp] = W_h[j, i]
            for n in range(bias.shape[0]):
                bias[n, jp] = b[j]


@njit(**IN_ORDER)
def _add_recurrent(gates, t, n, W_hT, h, m):
    """gates[t, n] += W_h h_{t-1} (scaled by m unless m is 1), summed over k in order."""
    H, Gp = W_hT.shape
    k = 0
    while k + 4 <= H:
        a0, a1, a2, a3 = h[t, n, k], h[t, n, k + 1], h[t, n, k + 2], h[t, n, k + 3]
        if m != 1:
            a0, a1, a2, a3 = a0 * m, a1 * m, a2 * m, a3 * m
        for j in range(Gp):
            # added one row after the other, as four separate axpys would
            gates[t, n, j] = gates[t, n, j] + W_hT[k, j] * a0 + W_hT[k + 1, j] * a1 \
                + W_hT[k + 2, j] * a2 + W_hT[k + 3, j] * a3
        k += 4
    for k in range(k, H):  # noqa: B020 (the remainder after the unrolled rows)
        a = h[t, n, k]
        if m != 1:
            a = a * m
        for j in range(Gp):
            gates[t, n, j] += W_hT[k, j] * a


@njit(**JIT)
def _start(clip, has_clip, h0, c0, cont, h, c, n0, n1):
    """cont (1 where clip is nonzero, the fork tests it as a bool) and the initial state:
    h0, c0 (N, H) with a clip input, zeros without."""
    T, N = cont.shape
    H = h0.shape[1]
    zero = h[0, 0, 0] * 0
    one = zero + 1
    for n in range(n0, n1):
        for t in range(T):
            if has_clip:
                cont[t, n] = one if clip[t * N + n] != 0 else zero
            else:
                cont[t, n] = zero if t == 0 else one
        for k in range(H):
            h[0, n, k] = h0[n, k] if has_clip else zero
            c[0, n, k] = c0[n, k] if has_clip else zero


@njit(**JIT)
def _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, top, hT, cT, n0, n1):
    T, N, Gp = gates.shape
    Hp = Gp // 4
    H = top.shape[2]
    I = x.shape[2]
    fzero = np.float32(0)  # (float32 unifies with either dtype)
    for t in range(T):  # input projection of every step, off the recurrent path
        for n in range(n0, n1):
            for j in range(Gp):
                gates[t, n, j] = bias[n, j]
            for i in range(I):
                a = x[t, n, i]
                for j in range(Gp):
                    gates[t, n, j] += W_xT[i, j] * a
    for t in range(T):
        for n in range(n0, n1):
            m = cont[t, n]
            if m != 0:
                _add_recurrent(gates, t, n, W_hT, h, m)
        for n in range(n0, n1):  # the gates, the cell and h, lane by lane in one pass
            m = cont[t, n]
            for k in range(Hp):
                gi = sigmoid(gates[t, n, k])
                gf = sigmoid(gates[t, n, U(Hp + k)])
                go = sigmoid(gates[t, n, U(2 * Hp + k)])
                gg = tanh(gates[t, n, U(3 * Hp + k)])
                if m != 1:  # a restart ignores c_{t-1}: f is exactly 0 (Caffe);
                    gf = fzero if m == 0 else gf * m  # BVLC: f = cont * sigmoid(.)
                gates[t, n, k] = gi
                gates[t, n, U(Hp + k)] = gf
                gates[t, n, U(2 * Hp + k)] = go
                gates[t, n, U(3 * Hp + k)] = gg
                ct = gf * c[t, n, k] + gi * gg
                c[t + 1, n, k] = ct
                tc = tanh(ct)
                tanh_c[t, n, k] = tc
                h[t + 1, n, k] = go * tc
    for t in range(T):
        for n in range(n0, n1):
            for k in range(H):
                top[t, n, k] = h[t + 1, n, k]
    for n in range(n0, n1):
        for k in range(H):
            hT[n, k] = h[T, n, k]
            cT[n, k] = c[T, n, k]


@njit(**JIT)
def lstm_forward(x, clip, has_clip, h0, c0, W_x, W_h, b, W_xT, W_hT, bias, cont, h, c,
                 gates, tanh_c, top, hT, cT):
    """The whole forward of the layer: pack the weights, read cont and the initial state
    (`_start`), run the recurrence, write h_1..h_T into top (T, N, H) and the final state
    into hT, cT (N, H), which may be h0, c0 themselves."""
    N = gates.shape[1]
    pack_weights(W_x, W_h, b, W_xT, W_hT, bias)
    _start(clip, has_clip, h0, c0, cont, h, c, 0, N)
    _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, top, hT, cT, 0, N)


@njit(parallel=True, **JIT)
def lstm_forward_parallel(x, clip, has_clip, h0, c0, W_x, W_h, b, W_xT, W_hT, bias, cont,
                          h, c, gates, tanh_c, top, hT, cT, parts):
    """lstm_forward with the streams split into `parts` groups run on separate threads."""
    N = gates.shape[1]
    pack_weights(W_x, W_h, b, W_xT, W_hT, bias)
    for p in prange(parts):
        n0, n1 = p * N // parts, (p + 1) * N // parts
        _start(clip, has_clip, h0, c0, cont, h, c, n0, n1)
        _forward_streams(x, W_xT, bias, W_hT, cont, h, c, gates, tanh_c, top, hT, cT,
                         n0, n1)


# -- backward ----------------------------------------------------------------------------
@njit(**JIT)
def _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc,
                      rhs, ring, acc, d32, want_d32, n0, n1):
    T, N, Gp = gates.shape
    Hp = Gp // 4
    H = W_hT.shape[0]
    zero = np.float64(0)  # dh_rec: float32 products summed in float64 (as kernels.bvlc_lstm)
    steps = dpre.reshape(1, N, Gp)  # (gate_gradients writes a step's rows of a (T, N, G) one)
    rows = np.empty(4, np.int64)  # the rows whose gradients are in ring
    full = 0
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            # dh = top_diff + dh_rec, kept in dh_rec (its padding stays 0)
            for k in range(H):
                dh_rec[n, k] = top_diff[t, n, k] + dh_rec[n, k]
        for n in range(n0, n1):
            gate_gradients(cont, c, gates, tanh_c, dh_rec, dc, steps, t, n, 0, Hp)
            r = t * N + n
            rows[full] = r
            if threshold > 0:
                for j in range(Gp):
                    v = min(max(dpre[n, j], -threshold), threshold)
                    dpre[n, j] = v
                    ring[full, j] = v
            else:
                for j in range(Gp):
                    ring[full, j] = dpre[n, j]
            if want_d32:
                for q in range(4):
                    for k in range(H):
                        d32[r, U(q * H + k)] = dpre[n, U(q * Hp + k)]
            full += 1
            if full == 4:  # the weight gradients of the last four rows (off the recurrence)
                _accumulate(acc, ring, rhs, rows)
                full = 0
        for n in range(n0, n1):
            m = cont[t, n]
            if m != 0:  # dh_rec = m W_h^T dpre, float32 products summed in float64
                # (kernels.bvlc_lstm's roundings: its float64 sums come out the same in another
                # order, as sums of float32 values in float64 almost always do exactly),
                # four rows of W_h^T per pass over dpre
                k = 0
                while k + 4 <= H:
                    s0, s1, s2, s3 = zero, zero, zero, zero
                    for j in range(Gp):
                        d = dpre[n, j]
                        s0 += W_hT[k, j] * d
                        s1 += W_hT[k + 1, j] * d
                        s2 += W_hT[k + 2, j] * d
                        s3 += W_hT[k + 3, j] * d
                    dh_rec[n, k], dh_rec[n, k + 1] = s0 * m, s1 * m
                    dh_rec[n, k + 2], dh_rec[n, k + 3] = s2 * m, s3 * m
                    k += 4
                while k + 2 <= H:
                    s0, s1 = zero, zero
                    for j in range(Gp):
                        d = dpre[n, j]
                        s0 += W_hT[k, j] * d
                        s1 += W_hT[k + 1, j] * d
                    dh_rec[n, k], dh_rec[n, k + 1] = s0 * m, s1 * m
                    k += 2
                if k < H:
                    s0 = zero
                    for j in range(Gp):
                        s0 += W_hT[k, j] * dpre[n, j]
                    dh_rec[n, k] = s0 * m
            else:
                for k in range(H):
                    dh_rec[n, k] = zero
    for i in range(full):
        _accumulate_row(acc, ring, i, rhs, rows[i])


@njit(**IN_ORDER)
def _accumulate(acc, ring, rhs, rows):
    """acc (K, Gp) += the products of four rows of rhs (K) and their gate gradients in ring
    (4, Gp), in float64 (exact products; the sums in the order the rows came)."""
    K, Gp = acc.shape
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    for k in range(K):
        a0, a1, a2, a3 = rhs[r0, k], rhs[r1, k], rhs[r2, k], rhs[r3, k]
        for j in range(Gp):
            acc[k, j] = acc[k, j] + a0 * ring[0, j] + a1 * ring[1, j] + a2 * ring[2, j] \
                + a3 * ring[3, j]


@njit(**IN_ORDER)
def _accumulate_row(acc, ring, i, rhs, r):
    K, Gp = acc.shape
    for k in range(K):
        a = rhs[r, k]
        for j in range(Gp):
            acc[k, j] += a * ring[i, j]


@njit(**JIT)
def _gradient_operands(x, h, cont, fork_dwh, rhs, n0, n1):
    """rhs (T*N rows, I + H + 1) float64 rows [x_t, h_{t-1} as it entered the step, 1] for
    streams n0..n1: the weight gradients [dW_x, dW_h, db] are the sums over rows of rhs
    times the row's gate gradients. h_{t-1} is cont * h (nothing at a restart); with
    fork_dwh the fork's CPU term: h_{t-1} whatever cont says, and h_0 of stream 0 only at
    t = 0."""
    T, N, I = x.shape
    H = rhs.shape[1] - I - 1
    for t in range(T):
        for n in range(n0, n1):
            r = t * N + n
            for i in range(I):
                rhs[r, i] = x[t, n, i]
            if fork_dwh:
                keep = t > 0 or n == 0
                for k in range(H):
                    rhs[r, U(I + k)] = h[t, n, k] if keep else 0
            else:
                m = cont[t, n]
                for k in range(H):
                    rhs[r, U(I + k)] = h[t, n, k] * m  # rounded as the float32 product
            rhs[r, U(I + H)] = 1


@njit(**JIT)
def _add_weight_gradients(acc, dW_x, dW_h, db):
    """dW_x (4H, I), dW_h (4H, H), db (4H) += acc[0] + acc[1] + ... (parts, I + H + 1, Gp),
    the padding lanes left out, each sum rounded once to the diff's dtype (as numpy's `+=`
    of a float64 array into a float32 one)."""
    G, I = dW_x.shape
    H = G // 4
    Hp = acc.shape[2] // 4
    for q in range(4):
        for k in range(H):
            j, jp = q * H + k, q * Hp + k
            for i in range(I + H + 1):
                v = acc[0, i, jp]
                for p in range(1, acc.shape[0]):
                    v += acc[p, i, jp]
                if i < I:
                    dW_x[j, i] = dW_x[j, i] + v
                elif i < I + H:
                    dW_h[j, U(i - I)] = dW_h[j, U(i - I)] + v
                else:
                    db[j] = db[j] + v


@njit(**JIT)
def lstm_backward(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc, x, h,
                  fork_dwh, rhs, ring, acc, dW_x, dW_h, db, d32, want_d32):
    """Back-propagate top_diff (T, N, H) through the recurrence and add the weight
    gradients to dW_x (4H, I), dW_h (4H, H), db (4H).

    The gate pre-activation gradients are clipped to [-threshold, threshold] when
    threshold > 0 (the fork's clipping_threshold); with want_d32 they are written to d32
    (T*N, 4H) for the input gradient dx = d32 W_x. The weight gradients are summed in
    float64 as the rows come (four at a time, off the recurrence): rhs (T*N, I + H + 1),
    ring (parts, 4, Gp) and acc (parts, I + H + 1, Gp) are scratch, as is dpre (N, Gp).
    dh_rec and dc (N, Hp) come in holding the gradient on the final state h_T, c_T (zeros
    when nothing uses them) and go out holding the gradient on the initial state.
    """
    N = gates.shape[1]
    _gradient_operands(x, h, cont, fork_dwh, rhs, 0, N)
    acc[...] = 0
    _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc, rhs,
                      ring[0], acc[0], d32, want_d32, 0, N)
    _add_weight_gradients(acc, dW_x, dW_h, db)


@njit(parallel=True, **JIT)
def lstm_backward_parallel(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec,
                           dc, x, h, fork_dwh, rhs, ring, acc, dW_x, dW_h, db, d32, want_d32):
    """lstm_backward over stream groups on separate threads, one per row of ring and acc."""
    N = gates.shape[1]
    parts = acc.shape[0]
    acc[...] = 0
    for p in prange(parts):
        n0, n1 = p * N // parts, (p + 1) * N // parts
        _gradient_operands(x, h, cont, fork_dwh, rhs, n0, n1)
        _backward_streams(top_diff, W_hT, cont, c, gates, tanh_c, threshold, dpre, dh_rec, dc,
                          rhs, ring[p], acc[p], d32, want_d32, n0, n1)
    _add_weight_gradients(acc, dW_x, dW_h, db)
