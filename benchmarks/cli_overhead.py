"""What `seqgen train` costs per iteration beyond `Solver.step`, on lstm_short and lstm_long.

    python benchmarks/cli_overhead.py [--repeats 5] [--iters 2000] [--nets lstm_short,lstm_long]
                                      [--no-kernels]

Per net, interleaved (a, b, c, a, b, c, ...) so that load on the machine hits all alike:
  (a) solver: `seqgen.get_solver(solver file)` with a SequenceFeeder (sinusoid, input mode
      "previous") as before_forward, and `solver.step(iters)`;
  (b) train:  `train_sequence(solver file, iters=iters, feedback=False)`, the driver with the
      same data and no feedback schedule: its cost beyond (a) is the CLI's overhead;
  (c) train + feedback: the driver as `seqgen train` runs by default; regenerating the
      sequence every 20 iterations is real work, so c/a is reported, not held to 5%.
What is timed is the one `Solver.step` call of each run, wrapped at class level by the same
timer for all three: the driver's start-up (net build, run folder, run.json) and its ending
(final snapshot, logs, plot) lie outside that call, while everything it runs per iteration
(the plan's feeding, the RunBook, Progress, the resume-state capture before the first
snapshot) lies inside. Kernels are compiled (or loaded from numba's cache) by a warm-up run
of each kind first; numba's compile seconds inside the timed calls are checked to be zero,
and the garbage the start-up left is collected before the clock starts. (a) and (b) must end
at the same loss (the same computation). The CPU-time column (the thread's) is less moved
by other work on the machine than the wall-clock ones.
--no-kernels replaces Net.forward_backward by a constant loss: what is left is the loop's
Python work, so "(b) - (a)" is the driver's overhead alone, resolved below the noise that
other work on a shared machine puts into the full iterations.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the seqgen command does

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import seqgen  # noqa: E402
from seqgen.app.progress import compile_seconds  # noqa: E402
from seqgen.app.train import train_sequence  # noqa: E402
from seqgen.data.feeder import SequenceFeeder  # noqa: E402
from seqgen.data.sequence import FORK_FORGET_BIAS, default_data_spec  # noqa: E402
from seqgen.data.sources import sinusoid  # noqa: E402
from seqgen.io.prototxt import read_solver  # noqa: E402
from seqgen.net import Net  # noqa: E402
from seqgen.solver.solver import Solver  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOTXT = os.path.join(ROOT, "prototxt")
KINDS = ("a", "b", "c")
SEED = 1
LABELS = {"a": "(a) Solver.step", "b": "(b) train, --no-feedback",
          "c": "(c) train, feedback on"}


@contextlib.contextmanager
def timed_steps(calls):
    """Wrap Solver.step: each call appends (wall seconds, CPU seconds of the thread,
    iterations, compile seconds, loss)."""
    original = Solver.step

    def step(self, iters):
        gc.collect()  # the garbage of the start-up, collected here rather than in the loop
        start_iter, compiled = self.iter, compile_seconds()
        start, cpu = time.perf_counter(), time.thread_time()
        loss = original(self, iters)
        seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
        calls.append((seconds, cpu, self.iter - start_iter, compile_seconds() - compiled, loss))
        return loss

    Solver.step = step
    try:
        yield
    finally:
        Solver.step = original


def run_solver(solver_path, length, iters):
    """(a): the bare solver with the driver's seed, data and forget-gate bias (so that it
    computes exactly what (b) does)."""
    param = read_solver(solver_path)
    param.random_seed = SEED
    solver = seqgen.get_solver(param, source=solver_path, log=lambda *a: None)
    for layer in solver.net.layers:
        layer.set_forget_bias(FORK_FORGET_BIAS)
    solver.add_callback(SequenceFeeder(solver.net, sinusoid(length), "previous"))
    solver.step(iters)


def run_train(solver_path, iters, feedback, tmp):
    """(b)/(c): the `seqgen train` driver in a fresh run folder."""
    out = tempfile.mkdtemp(dir=tmp)
    train_sequence(solver_path, iters=iters, out=out, log=lambda *a: None,
                   feedback=feedback, seed=SEED)


def measure(name, iters, repeats, tmp):
    """{kind: [(wall, CPU) ms/iteration per repeat]} for one net, kinds interleaved."""
    solver_path = os.path.join(PROTOTXT, f"{name}_solver.prototxt")
    length = int(default_data_spec(os.path.join(PROTOTXT, f"{name}.prototxt")).split(":")[1])
    runs = {"a": lambda n: run_solver(solver_path, length, n),
            "b": lambda n: run_train(solver_path, n, False, tmp),
            "c": lambda n: run_train(solver_path, n, True, tmp)}
    for kind in KINDS:  # warm-up: compile or load every kernel, touch the code paths
        runs[kind](60)
    results = {kind: [] for kind in KINDS}
    for _ in range(repeats):
        losses = {}
        for kind in KINDS:
            calls = []
            with timed_steps(calls):
                runs[kind](iters)
            (seconds, cpu, done, compiling, losses[kind]), = calls
            if done != iters or compiling > 0:
                raise RuntimeError(f"{name} ({kind}): {done} iterations, {compiling:.3f} s "
                                   "compiling in the timed call")
            results[kind].append((seconds / done * 1000, cpu / done * 1000))
        if losses["a"] != losses["b"]:  # the same computation, or the comparison is moot
            raise RuntimeError(f"{name}: (a) ends at loss {losses['a']!r}, (b) at "
                               f"{losses['b']!r}")
    return results


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        import platform
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in lines
                  if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f") if f in flags]
    return f"{model} ({os.cpu_count()} cores, {'/'.join(simd) or 'no avx2/avx512'})"


def print_table(table, iters, repeats):
    print(f"CPU: {cpu_name()}; {repeats} interleaved repeats of {iters} iterations")
    print("\n| net | run | median ms/iter | min ms/iter | median / (a) | min / (a) "
          "| CPU-time median / (a) | median - (a), us |")
    print("|---|---|---|---|---|---|---|---|")
    for name, results in table.items():
        wall = {k: [w for w, _ in v] for k, v in results.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
        med_a, min_a = statistics.median(wall["a"]), min(wall["a"])
        for kind in KINDS:
            med, low = statistics.median(wall[kind]), min(wall[kind])
            print(f"| {name} | {LABELS[kind]} | {med:.4f} | {low:.4f} | "
                  f"{med / med_a:.3f} | {low / min_a:.3f} | {cpu[kind] / cpu['a']:.3f} | "
                  f"{(med - med_a) * 1000:+.1f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--nets", default="lstm_short,lstm_long")
    ap.add_argument("--no-kernels", action="store_true",
                    help="time the loop's Python work alone (forward/backward replaced)")
    args = ap.parse_args(argv)
    if args.no_kernels:
        print("--no-kernels: Net.forward_backward replaced by a constant loss")
        Net.forward_backward = lambda net: 0.5
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets.split(","):
            table[name] = measure(name, args.iters, args.repeats, tmp)
    print_table(table, args.iters, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
