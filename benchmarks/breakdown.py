"""Where one lstm_short training iteration spends its time.

    python benchmarks/breakdown.py [--iters 5000]

Wraps the Lstm kernels (the backward one includes the weight gradients), the
forward/backward pass and the solver update with timers (the wrappers add about a
microsecond each) and prints the per-iteration average of each.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the seqgen command does

import argparse  # noqa: E402
import time  # noqa: E402

import seqgen.layers.fork_lstm as lstm_layer  # noqa: E402
from seqgen.data.feeder import SequenceFeeder  # noqa: E402
from seqgen.data.sources import sinusoid  # noqa: E402
from seqgen.solver import Solver  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(times, name, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
        return result
    return wrapper


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=5000)
    args = ap.parse_args()
    solver = Solver(os.path.join(ROOT, "prototxt", "lstm_short_solver.prototxt"),
                    log=lambda *a: None)
    solver.add_callback(SequenceFeeder(solver.net, sinusoid(320), "previous"))
    solver.step(300)  # warm-up
    times = {}
    for name in ("lstm_forward", "lstm_backward"):
        setattr(lstm_layer, name, timed(times, name, getattr(lstm_layer, name)))
    solver.apply_update = timed(times, "solver update", solver.apply_update)
    solver.net.forward_backward = timed(times, "forward+backward, all layers",
                                        solver.net.forward_backward)
    start = time.perf_counter()
    solver.step(args.iters)
    total = time.perf_counter() - start
    for name, seconds in times.items():
        print(f"{name:32s} {seconds / args.iters * 1e6:7.1f} us")
    print(f"{'whole iteration':32s} {total / args.iters * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
