"""Characters per second of compiled text sampling: a char-rnn sized net (V = 65, Embed 65,
two LSTM layers of 128, InnerProduct 65) with random weights, one stream.

    python benchmarks/sampling.py [--steps 100000] [--repeats 5] [--stepwise 2000]

Prints the CPU, then the median over repeats of the compiled sampler's chars/s (after a
warm-up call that compiles or loads the kernel), and the Net.forward path's for scale.
Per CPU second is printed too: on a shared machine the wall figure depends on the load.
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


def chars_per_second(net, steps, compiled):
    from seqgen.generation.sample import sample_tokens

    """(chars per wall second, chars per CPU second of this process) for one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    ids = sample_tokens(net, [0, 1, 2], steps, temperature=1.0, seed=1, compiled=compiled)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(ids) == steps
    return steps / wall, steps / cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stepwise", type=int, default=2000,
                    help="steps for the Net.forward path (0: skip it)")
    args = ap.parse_args()
    print(f"CPU: {platform_name()} ({os.cpu_count()} logical CPUs)")
    net = build()
    chars_per_second(net, 10, True)  # compile or load the cached kernel
    runs = [chars_per_second(net, args.steps, True) for _ in range(args.repeats)]
    wall = [r[0] for r in runs]
    cpu = statistics.median(r[1] for r in runs)
    print(f"compiled: {statistics.median(wall):,.0f} chars/s (median of {args.repeats} x "
          f"{args.steps} steps; min {min(wall):,.0f}, max {max(wall):,.0f}; "
          f"{cpu:,.0f} per CPU second); V = 65, 2 x LSTM 128, one thread")
    if args.stepwise:
        wall, cpu = chars_per_second(net, args.stepwise, False)
        print(f"Net.forward path: {wall:,.0f} chars/s ({cpu:,.0f} per CPU second; "
              f"{args.stepwise} steps)")


if __name__ == "__main__":
    main()
