"""seqgen's speed on the four shipped configurations, with PyTorch side by side if installed.

    python benchmarks/bench.py [--repeats 7] [--iters 500] [--markdown]

Prints, per configuration: seqgen's training ms/iteration (median of repeats, after warm-up,
input mode 'previous' without the feedback schedule: the solver step alone) and the same net
trained by PyTorch's nn.LSTM (one thread) with the ratio; then free-running generation time,
the wall time of `seqgen generate --steps 320` as a whole command, the N = 16 streams
throughput against N = 1, and the peak memory growth of a long lstm_short run.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the seqgen command does

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOTXT = os.path.join(ROOT, "prototxt")
CONFIGS = {  # name: (hidden sizes, sequence length, base_lr)
    "lstm_short": ([15], 320, 1e-4),
    "lstm_long": ([50], 960, 1e-4),
    "deep_lstm_short": ([7, 7, 7], 320, 1e-4),
    "deep_lstm_long": ([23, 23, 23], 960, 5e-5),
}


def median_ms(fn, iters, repeats):
    """Median ms per iteration of fn(iters): wall time, or the process's CPU time with
    SEQGEN_BENCH_CLOCK=cpu (what grid_vs_torch.py --clock cpu sets, also for --fork)."""
    clock = time.process_time if os.environ.get("SEQGEN_BENCH_CLOCK") == "cpu" else \
        time.perf_counter
    times = []
    for _ in range(repeats):
        start = clock()
        fn(iters)
        times.append((clock() - start) / iters * 1000)
    return statistics.median(times)


def seqgen_training(name, iters, repeats):
    from seqgen.data.feeder import SequenceFeeder
    from seqgen.data.sources import sinusoid
    from seqgen.solver import Solver

    solver = Solver(os.path.join(PROTOTXT, f"{name}_solver.prototxt"), log=lambda *a: None)
    solver.add_callback(SequenceFeeder(solver.net, sinusoid(CONFIGS[name][1]), "previous"))
    solver.step(200)  # warm-up: compile or load kernels, touch every buffer
    return median_ms(solver.step, iters, repeats)


def torch_training(name, iters, repeats):
    """PyTorch in a child process: importing torch here would change numba's and BLAS's
    threading for the seqgen measurements that follow."""
    out = subprocess.run([sys.executable, __file__, "--torch-only", name, "--iters", str(iters),
                          "--repeats", str(repeats)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _torch_training(name, iters, repeats):
    import torch

    torch.set_num_threads(1)
    hidden, length, lr = CONFIGS[name]
    T = 320
    from seqgen.data.sources import sinusoid

    seq = torch.tensor(sinusoid(length)).reshape(length, 1, 1)
    prev = torch.zeros_like(seq)
    prev[1:] = seq[:-1]
    lstm = torch.nn.LSTM(1, hidden[0], num_layers=len(hidden))
    head = torch.nn.Linear(hidden[0], 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.95)
    chunks = length // T
    state = {"k": 0, "hc": None}

    def step(n):
        for _ in range(n):
            k = state["k"] % chunks
            state["k"] += 1
            hc = None if k == 0 else tuple(s.detach() for s in state["hc"])
            out, state["hc"] = lstm(prev[k * T:(k + 1) * T], hc)
            loss = ((head(out) - seq[k * T:(k + 1) * T]) ** 2).sum() / (2 * T)
            opt.zero_grad()
            loss.backward()
            opt.step()

    step(50)
    return median_ms(step, iters, repeats)


def generation_ms(repeats):
    from seqgen.generation.generate import generate
    from seqgen.net import TEST, Net

    net = Net(os.path.join(PROTOTXT, "lstm_short.prototxt"), TEST)
    generate(net, 320)
    times = []
    for _ in range(max(repeats, 20)):
        start = time.perf_counter()
        generate(net, 320)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def generate_command_s(repeats):
    """Wall time of `seqgen generate --steps 320` on a trained run (kernels cached)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "seqgen"]
        subprocess.run(cmd + ["train", os.path.join(PROTOTXT, "lstm_short_solver.prototxt"),
                              "--iters", "50"], cwd=tmp, env=env, check=True,
                       capture_output=True)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd + ["generate", "--steps", "320"], cwd=tmp, env=env, check=True,
                           capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def streams_ratio(iters, repeats, N=16, H=15, T=320, threads=1):
    """Sequence-steps per second with N streams in one Lstm layer, relative to N = 1."""
    import seqgen.threads

    seqgen.threads._threads = threads  # what SEQGEN_THREADS sets
    from seqgen.io.prototxt import parse_net_text, parse_solver_text
    from seqgen.solver import Solver

    def rate(n):
        net = parse_net_text(f"""
            input: "data" input_shape {{ dim: {T * n} dim: 1 }}
            input: "clip" input_shape {{ dim: {T * n} dim: 1 }}
            input: "label" input_shape {{ dim: {T * n} dim: 1 }}
            layer {{ name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
                    lstm_param {{ num_output: {H} batch_size: {n} clipping_threshold: 0.1
                                 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
            layer {{ name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
                    inner_product_param {{ num_output: 1
                                           weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
            layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" }}""")
        sp = parse_solver_text("base_lr: 0.0001 momentum: 0.95 lr_policy: 'fixed'")
        sp.net_param.CopyFrom(net)
        solver = Solver(sp, log=lambda *a: None)
        rng = np.random.default_rng(0)
        solver.net.blobs["data"].data[...] = rng.normal(size=(T * n, 1))
        solver.net.blobs["label"].data[...] = rng.normal(size=(T * n, 1))
        clip = np.ones((T, n), np.float32)
        clip[0] = 0
        solver.net.blobs["clip"].data[...] = clip.reshape(T * n, 1)
        solver.step(50)
        ms = median_ms(solver.step, iters, repeats)
        return T * n / ms * 1000, ms

    one, ms1 = rate(1)
    many, msN = rate(N)
    return many / one, ms1, msN


def memory_growth(iters):
    """Peak RSS (MB) after a short and after a long lstm_short run in one process."""
    from seqgen.data.feeder import SequenceFeeder
    from seqgen.data.sources import sinusoid
    from seqgen.solver import Solver

    solver = Solver(os.path.join(PROTOTXT, "lstm_short_solver.prototxt"), log=lambda *a: None,
                    out_dir=tempfile.mkdtemp())  # its snapshots go there, not into the cwd
    solver.add_callback(SequenceFeeder(solver.net, sinusoid(320), "previous"))
    solver.step(1000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    solver.step(iters)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return before, after


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--memory-iters", type=int, default=100000)
    ap.add_argument("--torch-only", metavar="CONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_only:
        print(_torch_training(args.torch_only, args.iters, args.repeats))
        return 0
    import importlib.util
    torch_version = None
    if importlib.util.find_spec("torch") is not None:
        torch_version = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"],
            capture_output=True, text=True).stdout.strip() or None
    print(f"machine: {os.cpu_count()} cores, {platform_name()}; numpy {np.__version__}; "
          f"PyTorch {torch_version or 'not installed'}")
    print("\n| configuration | seqgen ms/iter | PyTorch ms/iter | PyTorch / seqgen |")
    print("|---|---|---|---|")
    for name in CONFIGS:
        ours = seqgen_training(name, args.iters, args.repeats)
        if torch_version:
            theirs = torch_training(name, max(50, args.iters // 5), args.repeats)
            print(f"| {name} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x |", flush=True)
        else:
            print(f"| {name} | {ours:.3f} | - | - |", flush=True)
    print(f"\nfree-running generation, 320 steps, 1x15: {generation_ms(args.repeats):.3f} ms")
    print(f"`seqgen generate --steps 320` wall time: {generate_command_s(3):.2f} s")
    for threads in (1, 2):
        ratio, ms1, msN = streams_ratio(args.iters // 5, args.repeats, threads=threads)
        print(f"N=16 streams vs N=1, SEQGEN_THREADS={threads}: {ratio:.1f}x the sequence-steps "
              f"per second ({ms1:.3f} vs {msN:.3f} ms/iteration)")
    before, after = memory_growth(args.memory_iters)
    print(f"peak RSS after 1000 iterations {before:.1f} MB, after {args.memory_iters} more "
          f"{after:.1f} MB")
    return 0


def platform_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
