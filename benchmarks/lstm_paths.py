"""The BVLC LSTM layer's two kernel paths side by side: forward + backward ms per call.

    python benchmarks/lstm_paths.py [--points "T,N,H;..."] [--repeats 5] [--threads 2]

For each shape, times one forward and backward of a single `LSTM` layer (I = H, float32,
one thread) on the axpy-loop path and on the GEMM path, alternating so machine noise hits
both, and prints the ratio with the path `choose_path` picks. This is the measurement
behind `kernels.bvlc_lstm_path.GEMM_MIN_STEP_WORK`.

--threads 2: the GEMM path with a budget of 2 threads, its recurrence unsplit (BLAS
threads the step products) against split over 2 stream groups, next to the one-thread
GEMM path, with the split `split_parts` picks: the measurement behind
`kernels.bvlc_lstm_path.SPLIT_MIN_ROWS` and `SPLIT_MIN_PART_WORK`.
"""
import os
import sys

_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)
os.environ.setdefault("SEQGEN_THREADS", _threads)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from seqgen import threads  # noqa: E402
from seqgen.blob import Blob  # noqa: E402
from seqgen.kernels.bvlc_lstm_path import FORCED, choose_path, split_parts  # noqa: E402
from seqgen.layers.recurrent import LSTMLayer  # noqa: E402
from seqgen.proto import caffe_pb2  # noqa: E402

DEFAULT = ("50,1,7;50,1,15;50,4,15;50,1,32;50,8,15;50,1,50;50,2,50;50,8,32;50,8,50;"
           "50,1,128;50,32,15;50,32,128;20,20,200")


def cpu_name():
    text = open("/proc/cpuinfo").read()
    model = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name"))
    return f"{model} ({'avx512' if 'avx512f' in text else 'avx2' if 'avx2' in text else 'sse'})"


def rig(T, N, H, path, split=None):
    lp = caffe_pb2.LayerParameter(name="lstm", type="LSTM", bottom=["x", "cont"], top=["h"])
    lp.recurrent_param.num_output = H
    FORCED.path, FORCED.parts = path, split
    bottom, top = [Blob((T, N, H)), Blob((T, N))], [Blob((0,))]
    layer = LSTMLayer(lp, caffe_pb2.TRAIN)
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    rng = np.random.default_rng(0)
    for blob in layer.blobs:
        blob.data[...] = 0.1 * rng.standard_normal(blob.shape)
    bottom[0].data[...] = rng.standard_normal((T, N, H))
    bottom[1].data[...] = 1
    top[0].diff[...] = rng.standard_normal((T, N, H))
    return lambda: (layer.forward(bottom, top), layer.backward(top, [True, False], bottom))


def timed(fn, seconds=0.2):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads > 1:
        return split_table(args)
    print(f"{cpu_name()}; one thread; median of {args.repeats}")
    print("| T × N, H | N·H·4H | loops ms | gemm ms | gemm / loops | chosen |")
    print("|---|---|---|---|---|---|")
    for point in args.points.split(";"):
        T, N, H = (int(v) for v in point.split(","))
        fns = {path: rig(T, N, H, path) for path in ("loops", "gemm")}
        times = {path: [] for path in fns}
        for _ in range(args.repeats):
            for path, fn in fns.items():
                times[path].append(timed(fn))
        a, b = (float(np.median(times[p])) for p in ("loops", "gemm"))
        print(f"| {T} × {N}, {H} | {N * H * 4 * H} | {a:.3f} | {b:.3f} | {b / a:.2f} | "
              f"{choose_path(N, H)} |", flush=True)


def split_table(args):
    threads.set_threads(args.threads)
    n = threads.count()
    print(f"{cpu_name()}; GEMM path; median of {args.repeats}")
    print(f"| T × N, H | 1 thread ms | {n} threads unsplit ms | {n} threads split ms | "
          f"1 / unsplit | 1 / split | chosen parts |")
    print("|---|---|---|---|---|---|---|")
    for point in args.points.split(";"):
        T, N, H = (int(v) for v in point.split(","))
        fns = {"unsplit": rig(T, N, H, "gemm", 1), "split": rig(T, N, H, "gemm", n)}
        fns["one"] = rig(T, N, H, "gemm", 1)
        times = {k: [] for k in fns}
        for _ in range(args.repeats):
            for key, fn in fns.items():
                if key == "one":
                    threads.set_threads(1)
                times[key].append(timed(fn))
                threads.set_threads(n)
        one, unsplit, split = (float(np.median(times[k])) for k in ("one", "unsplit", "split"))
        print(f"| {T} × {N}, {H} | {one:.3f} | {unsplit:.3f} | {split:.3f} | "
              f"{one / unsplit:.2f}x | {one / split:.2f}x | {split_parts(N, H, T)} |", flush=True)


if __name__ == "__main__":
    main()
