"""One LSTM step's recurrent product with few rows: numpy's sgemm against one sgemv per row.

    python benchmarks/gemm_rows.py [--hidden 128,256,512] [--rows 1,2,3,4,8] [--repeats 5]

The product is (M, H) x (H, 4H) with Caffe's W_h stored (4H, H), as kernels.lstm_gemm
computes it each step. Both are called through ctypes on the BLAS numpy loaded (the same
functions kernels.blas binds), alternating, one thread; printed: the median us per product
(process CPU time, so that other jobs on the machine count less). This is the measurement
behind kernels.blas.GEMV_MAX_ROWS.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from seqgen.kernels.blas import NO_TRANS, ROW_MAJOR, TRANS, _cblas_address  # noqa: E402


def functions():
    ptr, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    gemm = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, f32,
                            ptr, i64, ptr, i64, f32, ptr, i64)(_cblas_address("s", "gemm"))
    gemv = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, i64, i64, f32, ptr, i64, ptr,
                            i64, f32, ptr, i64)(_cblas_address("s", "gemv"))
    return gemm, gemv


def timed(fn, calls):
    fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--rows", default="1,2,3,4,8")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    gemm, gemv = functions()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    print(f"{cpu}; one thread; median of {args.repeats}; us per product (CPU time)")
    print("| H | rows | sgemm us | sgemv per row us | sgemm / sgemv |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for H in (int(v) for v in args.hidden.split(",")):
        G = 4 * H
        W = rng.standard_normal((G, H)).astype(np.float32)
        for M in (int(v) for v in args.rows.split(",")):
            h = rng.standard_normal((M, H)).astype(np.float32)
            out = np.zeros((M, G), np.float32)
            by_gemm = lambda: gemm(ROW_MAJOR, NO_TRANS, TRANS, M, G, H, 1.0, h.ctypes.data, H,
                                   W.ctypes.data, H, 1.0, out.ctypes.data, G)

            def by_rows():
                for i in range(M):
                    gemv(ROW_MAJOR, NO_TRANS, G, H, 1.0, W.ctypes.data, H,
                         h.ctypes.data + 4 * i * H, 1, 1.0, out.ctypes.data + 4 * i * G, 1)
            calls = max(20, int(2e8 / (2 * M * H * G)))
            a, b = [], []
            for _ in range(args.repeats):
                a.append(timed(by_gemm, calls))
                b.append(timed(by_rows, calls))
            a, b = statistics.median(a), statistics.median(b)
            print(f"| {H} | {M} | {a:.1f} | {b:.1f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
