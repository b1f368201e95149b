"""SoftmaxWithLoss: labels read and checked, the max-shifted softmax fused with the log loss,
and the gradient (prob - onehot) * scale.

Scores are (rows, C) when nothing follows the class axis (inner = 1, the `_rows` kernels,
whose class loops run over contiguous memory) and (outer, C, inner) otherwise (`_3d`).
`lab` holds one int64 label per prediction, -1 where the label is ignored. float32 uses
the vectorisable exp of `activations` (3e-7 relative); float64 stays exact.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .activations import FASTMATH, exp
from .scalars import typed

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # Caffe clamps with FLT_MIN even for double


def exp_floor(a):
    """The shifted score below which exp is taken as 0 in a's dtype (see `_exp_floor`)."""
    return a.dtype.type(-np.inf)


@overload(exp_floor)
def _exp_floor(a):
    # the float32 exp clamps its argument at -87 (exp(-87) = 1.6e-38, above FLT_MIN); true
    # exp is below FLT_MIN there, so 0 keeps the FLT_MIN clamp of the loss exactly
    if a.dtype == types.float32:
        return lambda a: np.float32(-87.0)
    return lambda a: -np.inf


@njit(**JIT)
def read_labels(labels, C, has_ignore, ignore, lab):
    """lab[i] = labels[i] truncated toward zero (Caffe's static_cast<int>), -1 where that
    equals ignore_label; returns (labels that count, the first position of a label outside
    [0, C) that is not ignored, or -1)."""
    count = 0
    for i in range(labels.size):
        v = labels[i]
        if v > -1 and v < C:  # truncates into [0, C); false for NaN
            k = np.int64(v)
            if has_ignore and k == ignore:
                lab[i] = -1
            else:
                lab[i] = k
                count += 1
        elif has_ignore and abs(v) < 2.0 ** 62 and np.int64(v) == ignore:
            lab[i] = -1
        else:
            return count, i
    return count, -1


@njit(inline="always", **JIT)
def row_max(x, r):
    """max of x[r, :] in eight independent lanes: a single running max does not vectorise
    (LLVM needs no-NaNs for that), this does. A NaN is skipped here, but reaches every
    probability of its row through its exp."""
    C = x.shape[1]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[r, 0]
    c = 0
    while c + 8 <= C:
        v = x[r, c]
        m0 = v if v > m0 else m0
        v = x[r, c + 1]
        m1 = v if v > m1 else m1
        v = x[r, c + 2]
        m2 = v if v > m2 else m2
        v = x[r, c + 3]
        m3 = v if v > m3 else m3
        v = x[r, c + 4]
        m4 = v if v > m4 else m4
        v = x[r, c + 5]
        m5 = v if v > m5 else m5
        v = x[r, c + 6]
        m6 = v if v > m6 else m6
        v = x[r, c + 7]
        m7 = v if v > m7 else m7
        c += 8
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for k in range(c, C):
        m = max(m, x[r, k])
    return m


@njit(**JIT)
def softmax_loss_rows(x, lab, prob):
    """prob[r] = softmax(x[r]); returns the sum over counted rows of
    -log(max(prob[r, lab[r]], FLT_MIN)), accumulated in float64."""
    R, C = x.shape
    zero, floor = typed(x, 0), exp_floor(x)
    loss = 0.0
    for r in range(R):
        m = row_max(x, r)
        s = zero
        for c in range(C):
            d = x[r, c] - m
            e = zero if d < floor else exp(d)  # NaN still propagates
            prob[r, c] = e
            s += e
        for c in range(C):
            prob[r, c] /= s
        k = lab[r]
        if k >= 0:
            loss -= np.log(max(prob[r, k], FLT_MIN))
    return loss


@njit(**JIT)
def softmax_loss_3d(x, lab, prob, m, s):
    """softmax_loss_rows over axis 1 of (outer, C, inner) scores; lab is (outer, inner), m (in
    x's dtype) and s (float64: each sum runs along C, one add after another) are scratch of
    length inner."""
    O, C, I = x.shape
    zero, floor = typed(x, 0), exp_floor(x)
    loss = 0.0
    for o in range(O):
        for i in range(I):
            m[i] = x[o, 0, i]
            s[i] = 0
        for c in range(1, C):
            for i in range(I):
                m[i] = max(m[i], x[o, c, i])
        for c in range(C):
            for i in range(I):
                d = x[o, c, i] - m[i]
                e = zero if d < floor else exp(d)
                prob[o, c, i] = e
                s[i] += e
        for i in range(I):
            m[i] = s[i]  # the sum rounded to x's dtype, as the rows kernel has it
        for c in range(C):
            for i in range(I):
                prob[o, c, i] /= m[i]
        for i in range(I):
            k = lab[o, i]
            if k >= 0:
                loss -= np.log(max(prob[o, k, i], FLT_MIN))
    return loss


@njit(**JIT)
def softmax_loss_backward_rows(prob, lab, scale, diff):
    """diff[r] = (prob[r] - onehot(lab[r])) * scale, and 0 in every class of an ignored row
    (Caffe writes 0 there rather than scaling by a mask)."""
    R, C = prob.shape
    zero, one = typed(prob, 0), typed(prob, 1)
    for r in range(R):
        k = lab[r]
        if k < 0:
            for c in range(C):
                diff[r, c] = zero
        else:
            for c in range(C):
                diff[r, c] = prob[r, c] * scale
            diff[r, k] = (prob[r, k] - one) * scale


@njit(**JIT)
def softmax_loss_backward_3d(prob, lab, scale, diff):
    """softmax_loss_backward_rows over axis 1 of (outer, C, inner); lab is (outer, inner)."""
    O, C, I = prob.shape
    zero, one = typed(prob, 0), typed(prob, 1)
    for o in range(O):
        for c in range(C):
            for i in range(I):
                diff[o, c, i] = prob[o, c, i] * scale if lab[o, i] >= 0 else zero
        for i in range(I):
            k = lab[o, i]
            if k >= 0:
                diff[o, k, i] = (prob[o, k, i] - one) * scale
