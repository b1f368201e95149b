"""How fast one training iteration of a grid point could be at best: its matrix products at
the best rate numpy's sgemm reaches on this core, plus the LSTM's elementwise passes as
seqgen runs them today.

    python benchmarks/product_bound.py [--points "T,N,H,L,V;..."] [--torch-table FILE]

The net is grid_vs_torch.py's (Embed of H -> L BVLC LSTM layers of H -> InnerProduct V ->
SoftmaxWithLoss). Its products, in multiply-adds an iteration (T·N tokens, G = 4H):
- the first layer's input: 3·V·H·G when the Embed is fused into it (V < T·N, seqgen/fusion.py:
  the table product, dW_x and the Embed's dW), else 3·T·N·H·G (projection, dW_x, dx);
- every layer's recurrence: 3·T·N·H·G (the step products forward, the dh products
  backward, dW_h);
- every later layer's input: 3·T·N·H·G;
- the output layer: 3·T·N·H·V.
"products at best" divides their sum by numpy's sgemm rate on 2048 x 2048 x 2048
(float32, one thread, best of 5, process CPU time), which an iteration's products reach
at best (its per-step products have only N rows). "elementwise" is the time of seqgen's
own gate passes over the point's shapes, per layer: the activations and cell of the
forward (`bvlc_lstm_gemm._activate`) and the step gradients of the backward
(`bvlc_lstm.step_gradients`), best of 5 × 5 calls; the output layer, the loss, the
Embed and the update are left out, so the sum is a lower bound on what a float32 iteration
with Caffe's arithmetic can cost here.

--torch-table FILE reads the markdown table `grid_vs_torch.py --markdown` printed (a file
holding it, or a page quoting it) and adds PyTorch's time, the bound over it, and the
issue's target for the point (0.6 of PyTorch's time up to H = 256, 0.75 above).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from grid_vs_torch import GRID, cpu_name, label, parse_points  # noqa: E402
from numba import njit  # noqa: E402

from seqgen.kernels.bvlc_lstm import step_gradients  # noqa: E402
from seqgen.kernels.bvlc_lstm_gemm import JIT, _activate  # noqa: E402
from seqgen.kernels.target import wide_function  # noqa: E402


@njit(**JIT)
def _forward_passes(bias, cont, c, h, gates, tanh_c):
    wide_function()  # as the GEMM path's recurrences run them
    T, N, G = gates.shape
    for t in range(T):
        for n in range(N):
            _activate(gates, bias, cont, c, h, tanh_c, t, n, G // 4)


@njit(**JIT)
def _backward_passes(top_diff, cont, c, gates, tanh_c, dpre, dh, dc):
    wide_function()
    T, N, G = dpre.shape
    for t in range(T - 1, -1, -1):
        for n in range(N):
            step_gradients(top_diff, cont, c, gates, tanh_c, dpre, dh, dc, t, n, G // 4)


def best_seconds(fn, calls=5, repeats=5):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) / calls)
    return best


def sgemm_rate():
    """numpy's float32 matmul on 2048³, in multiply-adds a second."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    out = np.empty_like(a)
    return 2048 ** 3 / best_seconds(lambda: np.matmul(a, a, out=out), calls=1)


def product_macs(T, N, H, L, V):
    """The iteration's multiply-adds in matrix products (the module docstring's count)."""
    TN, G = T * N, 4 * H
    first = 3 * V * H * G if V < TN else 3 * TN * H * G
    return first + L * 3 * TN * H * G + (L - 1) * 3 * TN * H * G + 3 * TN * H * V


def elementwise_seconds(T, N, H):
    """One LSTM layer's gate passes, forward and backward, at these shapes."""
    rng = np.random.default_rng(0)
    f, G = np.float32, 4 * H
    pre = rng.standard_normal((T, N, G)).astype(f)
    gates = pre.copy()
    bias = np.zeros((N, G), f)
    cont = np.ones((T, N), f)
    h, c = np.zeros((T + 1, N, H), f), np.zeros((T + 1, N, H), f)
    tanh_c, dpre = np.zeros((T, N, H), f), np.zeros((T, N, G), f)
    top_diff = rng.standard_normal((T, N, H)).astype(f)
    dh, dc = np.zeros((N, H), f), np.zeros((N, H), f)
    copy = best_seconds(lambda: np.copyto(gates, pre))
    forward = best_seconds(lambda: (np.copyto(gates, pre),
                                    _forward_passes(bias, cont, c, h, gates, tanh_c))) - copy
    backward = best_seconds(lambda: _backward_passes(top_diff, cont, c, gates, tanh_c, dpre,
                                                     dh, dc))
    return max(forward, 0.0) + backward


def torch_times(path):
    """(T, N, H, L, V) -> PyTorch ms/iter from the first markdown table in `path` whose
    header has a "PyTorch ms" column (as grid_vs_torch.py --markdown prints it)."""
    times, column = {}, None
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if column is None:
            column = next((i for i, c in enumerate(cells) if c.startswith("PyTorch ms")), None)
            continue
        m = re.match(r"(\d+) × (\d+), (\d+), (\d+), (\d+)", cells[0])
        if m:
            times[tuple(int(v) for v in m.groups())] = float(cells[column])
        elif times:
            break  # the table has ended
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", help='"T,N,H,L,V;..." (default: the grid of grid_vs_torch.py)')
    parser.add_argument("--torch-table", help="a file with grid_vs_torch.py's markdown table")
    args = parser.parse_args()
    points = parse_points(args.points) if args.points else GRID
    torch = torch_times(args.torch_table) if args.torch_table else {}
    rate = sgemm_rate()
    print(f"{cpu_name()}; one thread; numpy sgemm 2048³: {rate / 1e9:.1f} G multiply-adds/s")
    print()
    head = ("| T × N, H, L, V | products, G multiply-adds | products at best, ms | "
            "elementwise, ms | sum, ms |")
    rule = "|---|---|---|---|---|"
    if torch:
        head += " PyTorch ms | sum / PyTorch | target |"
        rule += "---|---|---|"
    print(head)
    print(rule)
    for T, N, H, L, V in points:
        macs = product_macs(T, N, H, L, V)
        products = macs / rate * 1e3
        elementwise = L * elementwise_seconds(T, N, H) * 1e3
        total = products + elementwise
        row = (f"| {label((T, N, H, L, V))} | {macs / 1e9:.3f} | {products:.2f} | "
               f"{elementwise:.2f} | {total:.2f} |")
        if (T, N, H, L, V) in torch:
            theirs = torch[T, N, H, L, V]
            row += f" {theirs:.2f} | {total / theirs:.2f} | {0.6 if H <= 256 else 0.75} |"
        elif torch:
            row += " | | |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
