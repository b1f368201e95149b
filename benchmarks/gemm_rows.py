"""One LSTM step's recurrent product with few rows: sgemm, one sgemv per row, and the
16- or 32-column panels of kernels.panels (with its default register tile, and with the
4-row tile as well where the default is the 8-row one).

    python benchmarks/gemm_rows.py [--hidden 128,256,512] [--rows 1,2,3,4,8,16,32,64]
                                   [--repeats 5] [--backward]

The forward product is (M, H) x (H, 4H) with Caffe's W_h stored (4H, H), as
kernels.bvlc_lstm_gemm computes it each step; --backward times the step's dh product
(M, 4H) x (4H, H) instead. sgemm and sgemv are called through ctypes on the BLAS numpy
loaded (the functions kernels.blas binds), panel_gemm from a compiled loop over a weight
packed once (the packing is timed on its own), alternating, one thread. Printed: the median
us per product (process CPU time, so that other jobs on the machine count less). This is
the measurement behind kernels.blas.GEMV_MAX_ROWS and bvlc_lstm_path.PANEL_MAX_ROWS.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from seqgen.kernels.blas import NO_TRANS, ROW_MAJOR, TRANS, _blas_libraries, _cblas_address  # noqa: E402
from seqgen.kernels.panels import ROWS, WIDTH, pack_panels, panel_count, panel_gemm  # noqa: E402


def functions():
    ptr, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    libraries = _blas_libraries()
    gemm = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, f32,
                            ptr, i64, ptr, i64, f32, ptr, i64)(
        _cblas_address("s", libraries, "gemm")[0])
    gemv = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, i64, i64, f32, ptr, i64, ptr,
                            i64, f32, ptr, i64)(_cblas_address("s", libraries, "gemv")[0])
    return gemm, gemv


@njit(cache=True)
def _panel_calls(A, P, C, rows, calls):
    for _ in range(calls):
        panel_gemm(A, P, 1.0, C, rows)


@njit(cache=True)
def _pack_calls(W, trans, P, calls):
    for _ in range(calls):
        pack_panels(W, trans, P)


def timed(fn, calls):
    fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def compiled(fn, calls, *args):
    fn(*args, 1)
    start = time.process_time()
    fn(*args, calls)
    return (time.process_time() - start) / calls * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--rows", default="1,2,3,4,8,16,32,64")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backward", action="store_true", help="the dh product (M, 4H) x (4H, H)")
    args = ap.parse_args()
    gemm, gemv = functions()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    what = "(M, 4H) x (4H, H)" if args.backward else "(M, H) x (H, 4H)"
    print(f"{cpu}; one thread; {what}; median of {args.repeats}; us per product (CPU time); "
          f"panels {WIDTH} columns wide, {ROWS}-row tile")
    four = ROWS != 4  # also time the 4-row tile
    print("| H | rows | sgemm | sgemv a row | panels | sgemm / panels | pack once |"
          + (" panels, 4-row tile | 4-row / default |" if four else ""))
    print("|---|---|---|---|---|---|---|" + ("---|---|" if four else ""))
    rng = np.random.default_rng(0)
    for H in (int(v) for v in args.hidden.split(",")):
        G = 4 * H
        W = rng.standard_normal((G, H)).astype(np.float32)
        K, cols = (G, H) if args.backward else (H, G)
        P = np.empty((panel_count(cols), K, WIDTH), np.float32)
        trans = not args.backward
        pack = statistics.median(compiled(_pack_calls, 20, W, trans, P)
                                 for _ in range(args.repeats))
        for M in (int(v) for v in args.rows.split(",")):
            x = rng.standard_normal((M, K)).astype(np.float32)
            out = np.zeros((M, cols), np.float32)
            tb = TRANS if trans else NO_TRANS
            by_gemm = lambda: gemm(ROW_MAJOR, NO_TRANS, tb, M, cols, K, 1.0, x.ctypes.data, K,
                                   W.ctypes.data, H, 1.0, out.ctypes.data, cols)

            def by_rows():
                for i in range(M):
                    gemv(ROW_MAJOR, NO_TRANS if trans else TRANS, G, H, 1.0, W.ctypes.data, H,
                         x.ctypes.data + 4 * i * K, 1, 1.0, out.ctypes.data + 4 * i * cols, 1)
            calls = max(20, int(2e8 / (2 * M * H * G)))
            a, b, c, d = [], [], [], []
            for _ in range(args.repeats):
                a.append(timed(by_gemm, calls))
                b.append(timed(by_rows, calls))
                c.append(compiled(_panel_calls, calls, x, P, out, ROWS))
                if four:
                    d.append(compiled(_panel_calls, calls, x, P, out, 4))
            a, b, c = statistics.median(a), statistics.median(b), statistics.median(c)
            row = f"| {H} | {M} | {a:.1f} | {b:.1f} | {c:.1f} | {a / c:.2f} | {pack:.0f} |"
            if four:
                d = statistics.median(d)
                row += f" {d:.1f} | {d / c:.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
