"""Forward+backward time of the layers around the LSTM in a language model, and the update.

    python benchmarks/dense_layers.py [--hidden 256] [--repeats 7] [--calls 20]

Cases: 400 rows (T x N = 20 x 20) over V = 10000 classes and 1600 rows (50 x 32) over
V = 65. Per layer (Embed, InnerProduct axis 2, SoftmaxWithLoss axis 2, Dropout) one call is
reshape-free forward then backward with float32 blobs; the update is Solver.apply_update on
the parameters of Embed(V, H) -> LSTM(H) -> InnerProduct(V) with clip_gradients and
weight_decay. Prints the median and the fastest of the repeats in ms per call (the fastest
says more on a loaded machine), and the tracemalloc peak of one more call (what a call
allocates). Runs against whichever seqgen is on PYTHONPATH.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the seqgen command does

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from seqgen.blob import Blob  # noqa: E402
from seqgen.io.prototxt import parse_net_text, parse_solver_text  # noqa: E402
from seqgen.net import TRAIN  # noqa: E402
from seqgen.proto import caffe_pb2  # noqa: E402
from seqgen.registry import layer_class  # noqa: E402
from seqgen.solver import Solver  # noqa: E402

CASES = [(20, 20, 10000), (50, 32, 65)]  # (T, N, V)


def build(text, arrays, n_tops=1):
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    layer = layer_class(lp.type)(lp, TRAIN)
    bottom = []
    for a in arrays:
        b = Blob(a.shape, np.float32)
        b.data[...] = a
        bottom.append(b)
    top = [Blob((0,), np.float32) for _ in range(n_tops)]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    rng = np.random.default_rng(0)
    layer.forward(bottom, top)
    for t in top:
        t.diff[...] = rng.normal(size=t.shape) if t.data.ndim else 1.0
    down = [i not in layer.no_grad_bottoms for i in range(len(bottom))]

    def call():
        layer.forward(bottom, top)
        layer.backward(top, down, bottom)
    return call


def layer_calls(T, N, V, H):
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, V, (T, N)).astype(np.float32)
    labels = tokens.copy()
    labels[-1, : N // 4] = -1  # some ignored targets, as padded batches have
    filler = 'weight_filler { type: "uniform" min: -0.1 max: 0.1 }'
    return {
        "Embed": build(f'type: "Embed" embed_param {{ num_output: {H} input_dim: {V} '
                       f'{filler} }}', [tokens]),
        "InnerProduct": build(f'type: "InnerProduct" inner_product_param {{ num_output: {V} '
                              f'axis: 2 {filler} }}', [rng.normal(size=(T, N, H))]),
        "SoftmaxWithLoss": build('type: "SoftmaxWithLoss" softmax_param { axis: 2 } '
                                 'loss_param { ignore_label: -1 }',
                                 [rng.normal(size=(T, N, V)), labels]),
        "Dropout": build('type: "Dropout" dropout_param { dropout_ratio: 0.5 }',
                         [rng.normal(size=(T, N, H))]),
    }


def update_calls(T, N, V, H):
    net = f"""
    layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"
      input_param {{ shape {{ dim: {T} dim: {N} }} shape {{ dim: {T} dim: {N} }}
                    shape {{ dim: {T} dim: {N} }} }} }}
    layer {{ name: "embed" type: "Embed" bottom: "data" top: "embed"
      embed_param {{ num_output: {H} input_dim: {V} bias_term: false
        weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
    layer {{ name: "lstm" type: "LSTM" bottom: "embed" bottom: "cont" top: "lstm"
      recurrent_param {{ num_output: {H}
        weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
    layer {{ name: "ip" type: "InnerProduct" bottom: "lstm" top: "predict"
      inner_product_param {{ num_output: {V} axis: 2
        weight_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "predict" bottom: "label"
      top: "loss" softmax_param {{ axis: 2 }} }}"""
    calls = {}
    for kind in ("SGD", "Adam"):
        extra = "momentum: 0.9" if kind == "SGD" else "momentum: 0.9 momentum2: 0.999"
        sp = parse_solver_text(f"type: '{kind}' base_lr: 0.01 lr_policy: 'fixed' {extra} "
                               "clip_gradients: 5 weight_decay: 1e-4 random_seed: 1")
        sp.net_param.CopyFrom(parse_net_text(net, "lm"))
        solver = Solver(sp, log=lambda *a: None)
        solver.net.flat_diff[...] = np.random.default_rng(2).normal(
            0, 1e-3, solver.net.flat_diff.shape)
        calls[f"update {kind}"] = solver.apply_update
    return calls


def measure(call, calls, repeats):
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls * 1000)
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), min(times), peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    H = args.hidden
    print(f"{'case':>24} {'layer':>16} {'median ms':>10} {'min ms':>9} {'peak alloc MB':>14}")
    for T, N, V in CASES:
        calls = {**layer_calls(T, N, V, H), **update_calls(T, N, V, H)}
        for name, call in calls.items():
            ms, fastest, peak = measure(call, args.calls, args.repeats)
            print(f"{f'{T * N} rows, V={V}, H={H}':>24} {name:>16} {ms:10.3f} {fastest:9.3f} "
                  f"{peak / 1e6:14.2f}", flush=True)


if __name__ == "__main__":
    main()
