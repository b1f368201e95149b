"""Characters per second of compiled text sampling: a char-rnn sized net (V = 65, Embed 65,
two LSTM layers of 128, InnerProduct 65) with random weights.

    python benchmarks/sampling.py [--steps 100000] [--repeats 5] [--stepwise 2000]
                                  [--samples 64]

Prints the CPU and its vector flags, then the median over repeats (after a warm-up call
that compiles or loads the kernels), alternating in one run: the one-stream kernel called
directly (`lstm_stack_sample`, as the sampler called it before batching), the sampler as
seqgen runs it now for one stream (`draw_streams` with one seed, which calls that kernel),
and --samples streams in one batched pass (the rows kernel; chars of all streams
together), with the ratio of the last to one stream now; then the
Net.forward path's for scale. Per CPU second is printed too: on a shared machine the wall
figure depends on the load, and the CPU figure is the one the ratios use.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the seqgen command does

import argparse
import statistics
import time

import numpy as np
from bench import platform_name  # the CPU model (this folder is on sys.path)

NET = """input: "x" input_shape {{ dim: 1 dim: 1 }}
input: "cont" input_shape {{ dim: 1 dim: 1 }}
layer {{ name: "embed" type: "Embed" bottom: "x" top: "embed"
        embed_param {{ input_dim: {V} num_output: {E}
                       weight_filler {{ type: "gaussian" std: 1 }} }} }}
layer {{ name: "lstm1" type: "LSTM" bottom: "embed" bottom: "cont" top: "lstm1"
        recurrent_param {{ num_output: {H} }} }}
layer {{ name: "lstm2" type: "LSTM" bottom: "lstm1" bottom: "cont" top: "lstm2"
        recurrent_param {{ num_output: {H} }} }}
layer {{ name: "logits" type: "InnerProduct" bottom: "lstm2" top: "logits"
        inner_product_param {{ num_output: {V} axis: 2 }} }}
layer {{ name: "prob" type: "Softmax" bottom: "logits" top: "prob" softmax_param {{ axis: 2 }} }}
"""


def build(V=65, E=65, H=128, seed=0):
    from seqgen.io.prototxt import parse_net_text
    from seqgen.net import TEST, Net

    net = Net(parse_net_text(NET.format(V=V, E=E, H=H)), TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.normal(0, 1 / np.sqrt(blob.shape[-1]), blob.shape)
    return net


def cpu_flags():
    """The vector extensions /proc/cpuinfo lists for the first CPU (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    return " ".join(f for f in flags if f.startswith(("avx", "fma", "sse4")))


def _timed(fn, chars):
    """(chars per wall second, chars per CPU second of this process) for one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return chars / wall, chars / cpu


def before(net, steps):
    """The one-stream kernel (kept as the reference the rows kernel is tested against)."""
    from seqgen.generation.sample import sample_plan
    from seqgen.kernels.sample import lstm_stack_sample

    plan = sample_plan(net, "x", "cont")
    uniforms = np.random.default_rng(1).random(steps)
    out, first = np.zeros(steps, np.int64), np.zeros(65)
    return lambda: lstm_stack_sample(*plan, np.array([0, 1, 2]), uniforms, 65, 1.0, 0, 1.0,
                                     False, out, first)


def streams(net, steps, samples, compiled=True):
    from seqgen.generation.sample import draw_streams

    seeds = list(range(1, samples + 1))
    return lambda: draw_streams(net, [0, 1, 2], steps, seeds, compiled=compiled)


def report(name, runs, chars, base=None):
    wall = [r[0] for r in runs]
    cpu = statistics.median(r[1] for r in runs)
    ratio = f"; {cpu / base:.2f}x one stream per CPU second" if base else ""
    print(f"{name}: {statistics.median(wall):,.0f} chars/s (median of {len(runs)} x {chars} "
          f"chars; min {min(wall):,.0f}, max {max(wall):,.0f}; {cpu:,.0f} per CPU "
          f"second{ratio})")
    return cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--stepwise", type=int, default=2000,
                    help="steps for the Net.forward path (0: skip it)")
    args = ap.parse_args()
    print(f"CPU: {platform_name()} ({os.cpu_count()} logical CPUs; {cpu_flags()})")
    print("net: V = 65, Embed 65, 2 x LSTM 128, InnerProduct 65; one thread")
    net = build()
    batch_steps = max(1, args.steps // args.samples)
    cases = {"one stream, kernel alone": (before(net, args.steps), args.steps),
             "one stream, now": (streams(net, args.steps, 1), args.steps),
             f"{args.samples} streams in one pass": (
                 streams(net, batch_steps, args.samples), batch_steps * args.samples)}
    for fn, _ in cases.values():  # compile or load the cached kernels
        fn()
    runs = {name: [] for name in cases}
    for i in range(args.repeats):  # alternating (in turn reversed), so that a change of
        order = list(cases.items())   # load or clock hits every case alike
        for name, (fn, chars) in order[::-1] if i % 2 else order:
            runs[name].append(_timed(fn, chars))
    base = None
    for name, (_, chars) in cases.items():
        cpu = report(name, runs[name], chars, base if name.endswith("pass") else None)
        base = cpu if name.endswith("now") else base
    if args.stepwise:
        report("Net.forward path", [_timed(streams(net, args.stepwise, 1, False),
                                           args.stepwise)], args.stepwise)


if __name__ == "__main__":
    main()
