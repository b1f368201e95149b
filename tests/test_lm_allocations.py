"""An iteration of a small language model (Embed -> Dropout -> LSTM -> InnerProduct on axis 2
-> SoftmaxWithLoss with ignored targets, V = 10000) allocates no large array once its shapes
are set: over a later iteration (forward, backward, clipping, weight decay, update)
tracemalloc's peak stays far below one rows x V float32 array.

numpy reports its data buffers to tracemalloc (the first test shows it sees one rows x V
array and one matmul temporary); numba's kernels allocate nothing here, and OpenBLAS keeps
its own buffers from the first call on, so what the peak misses would be neither."""
import tracemalloc

import numpy as np
import pytest

from seqgen.io.prototxt import parse_net_text, parse_solver_text
from seqgen.solver import Solver

T, N, V, H = 5, 4, 10000, 16
ROWS_BY_V = T * N * V * 4  # bytes of one (rows x V) float32 array

NET = f"""
layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"
  input_param {{ shape {{ dim: {T} dim: {N} }} shape {{ dim: {T} dim: {N} }}
                shape {{ dim: {T} dim: {N} }} }} }}
layer {{ name: "embed" type: "Embed" bottom: "data" top: "embed"
  embed_param {{ num_output: {H} input_dim: {V}
    weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
layer {{ name: "drop" type: "Dropout" bottom: "embed" top: "embed"
  dropout_param {{ dropout_ratio: 0.2 }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "embed" bottom: "cont" top: "lstm"
  recurrent_param {{ num_output: {H} weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
layer {{ name: "predict" type: "InnerProduct" bottom: "lstm" top: "predict"
  inner_product_param {{ num_output: {V} axis: 2
    weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "predict" bottom: "label" top: "loss"
  loss_param {{ ignore_label: -1 }} softmax_param {{ axis: 2 }} }}
"""

SOLVERS = {
    "SGD": "type: 'SGD' momentum: 0.9",
    "Adam": "type: 'Adam' momentum: 0.9 momentum2: 0.999",
    "AdaDelta": "type: 'AdaDelta' momentum: 0.95 delta: 1e-6",
    "Nesterov, L1, lr_mult": "type: 'Nesterov' momentum: 0.9 regularization_type: 'L1'",
}


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tracemalloc_sees_numpy_arrays():
    a = np.ones((T * N, H), np.float32)
    b = np.ones((H, V), np.float32)
    assert peak_bytes(lambda: np.empty((T * N, V), np.float32)) >= ROWS_BY_V
    assert peak_bytes(lambda: a @ b) >= ROWS_BY_V


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_a_training_iteration_allocates_no_large_array(solver):
    net = NET
    if "lr_mult" in solver:  # per-element multipliers
        net = net.replace('name: "predict" type: "InnerProduct" bottom: "lstm" top: "predict"',
                          'name: "predict" type: "InnerProduct" bottom: "lstm" top: "predict" '
                          'param { lr_mult: 2 decay_mult: 0 } param { lr_mult: 1 }')
    sp = parse_solver_text(f"{SOLVERS[solver]} base_lr: 0.01 lr_policy: 'fixed' "
                           "clip_gradients: 0.5 weight_decay: 1e-4 random_seed: 1")
    sp.net_param.CopyFrom(parse_net_text(net, "lm"))
    s = Solver(sp, log=lambda *a: None)
    rng = np.random.default_rng(0)
    s.net.blobs["data"].data[...] = rng.integers(0, V, (T, N))
    s.net.blobs["cont"].data[...] = 1
    s.net.blobs["cont"].data[0] = 0
    label = rng.integers(0, V, (T, N)).astype(np.float32)
    label[-1, :2] = -1
    s.net.blobs["label"].data[...] = label
    s.step(2)  # shapes set, buffers made, kernels compiled
    before = s.net.flat_data.copy()
    peak = peak_bytes(lambda: s.step(1))
    assert not np.array_equal(before, s.net.flat_data)  # the iteration did train
    assert np.isfinite(s.last_loss)
    assert peak < ROWS_BY_V / 8, f"{peak} bytes at the peak of one iteration"
