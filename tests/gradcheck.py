"""Finite-difference gradient check for one layer, in float64.

The objective is J = sum_k sum(top_k * R_k) with fixed random R_k, so dJ/dtop_k = R_k is
what goes into the top diffs before backward. For a loss layer R_0 is a random scalar,
which also checks that the layer scales its gradient by the top diff (the loss weight).

Tolerance: central differences with eps = 1e-6 have truncation error ~eps^2 * |J'''|
~ 1e-12 and rounding error ~ 1e-16 * |J| / eps ~ 1e-10 * |J|. Against the 1e-3 floor
of the denominator that is up to ~1e-7 for the small blobs used in the tests (|J| of
order 1), and 1e-7 is indeed the worst error test_layers.py sees. The default bound 1e-6
keeps a 10x margin over it; a wrong gradient shows up as 1e-2 or more.
"""
import numpy as np

from seqgen.blob import Blob


def numeric_gradient(objective, array, eps, indices=None):
    """Central differences (J(a + eps) - J(a - eps)) / (2 eps) of the scalar `objective()`
    with respect to entries of `array`, which is changed in place and restored after each;
    `indices` picks the entries (default: all), the others stay 0."""
    num = np.zeros(array.shape)
    for idx in np.ndindex(array.shape) if indices is None else indices:
        old = array[idx]
        array[idx] = old + eps
        fp = objective()
        array[idx] = old - eps
        fm = objective()
        array[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    return num


def relative_error(num, ana):
    """|num - ana| / max(|num|, |ana|, 1e-3) per entry: relative where the gradient is
    large, absolute (scaled by 1e3) where it is near zero."""
    return np.abs(num - ana) / np.maximum(np.maximum(np.abs(num), np.abs(ana)), 1e-3)


def _to_float64(blob):
    blob.set_arrays(np.array(blob.data, np.float64), np.array(blob.diff, np.float64))


def check_layer_gradients(layer_factory, bottom_shapes, bottom_data=None, *, n_tops=1,
                          in_place=False, skip_bottoms=(), objective_tops=None,
                          before_forward=None, eps=1e-6, tol=1e-6, seed=0, check_params=True):
    """Compare a layer's backward with central finite differences; returns the worst
    relative error |num - ana| / max(|num|, |ana|, 1e-3) over everything checked.

    layer_factory: () -> a fresh Layer (its parameter blobs are converted to float64).
    bottom_shapes: one shape per bottom; data is uniform in [-1, 1) unless `bottom_data`
        (a dict {bottom index: array}) gives it, e.g. integer labels or indices.
    skip_bottoms: bottoms without a gradient, besides the layer's no_grad_bottoms
        (integer-valued bottoms are always skipped that way).
    in_place: top 0 is the same Blob as bottom 0, as the Net arranges for `top: == bottom:`.
    objective_tops: which tops enter J (default: all).
    before_forward: called with the layer before every forward (e.g. to reseed a mask).
    """
    rng = np.random.default_rng(seed)
    bottom_data = dict(bottom_data or {})
    values = []
    for i, shape in enumerate(bottom_shapes):
        v = bottom_data.get(i)
        v = rng.uniform(-1, 1, shape) if v is None else np.array(v, np.float64)
        values.append(v)
    bottom = [Blob(v.shape, np.float64) for v in values]
    top = [Blob((0,), np.float64) for _ in range(n_tops)]
    if in_place:
        top[0] = bottom[0]
    layer = layer_factory()
    for b, v in zip(bottom, values):
        b.data[...] = v
    layer.setup(bottom, top)
    for p in layer.blobs:
        _to_float64(p)
    layer.reshape(bottom, top)
    objective_tops = list(range(n_tops)) if objective_tops is None else list(objective_tops)
    R = {k: rng.standard_normal(top[k].shape) for k in objective_tops}

    def objective():
        for b, v in zip(bottom, values):  # restore (in-place forward overwrites bottom 0)
            b.data[...] = v
        if before_forward is not None:
            before_forward(layer)
        layer.forward(bottom, top)
        return sum(float(np.sum(top[k].data * R[k])) for k in objective_tops)

    skip = set(skip_bottoms) | set(layer.no_grad_bottoms)
    grad_bottoms = [i for i in range(len(bottom)) if i not in skip]
    propagate = [i in grad_bottoms for i in range(len(bottom))]

    # analytic: bottom diffs are overwritten, parameter diffs accumulate -- prefill both
    # with garbage to check that
    objective()
    for k in range(n_tops):
        top[k].diff[...] = R[k] if k in R else 0
    if not in_place:
        for i in grad_bottoms:
            bottom[i].diff[...] = rng.standard_normal(bottom[i].shape)
    prefill = [rng.standard_normal(p.diff.shape) for p in layer.blobs]
    for p, f in zip(layer.blobs, prefill):
        p.diff[...] = f
    layer.backward(top, propagate, bottom)
    analytic = {f"bottom {i}": bottom[i].diff.copy() for i in grad_bottoms}
    if check_params:
        for j, (p, f) in enumerate(zip(layer.blobs, prefill)):
            analytic[f"param {j}"] = p.diff - f

    worst = 0.0
    for name, ana in analytic.items():
        kind, j = name.split()
        target = values[int(j)] if kind == "bottom" else layer.blobs[int(j)].data
        num = numeric_gradient(objective, target, eps)
        err = float(relative_error(num, ana).max(initial=0.0))
        assert err < tol, (f"{name}: relative error {err:.2e} (tolerance {tol:.0e})\n"
                           f"numeric:\n{num}\nanalytic:\n{ana}")
        worst = max(worst, err)
    return worst
