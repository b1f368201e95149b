"""Measure what the exported models reproduce, for docs/export.md.

    python examples/export_check.py [--net prototxt/lstm_short.prototxt] [--weights W]

Exports the step and sequence ONNX graphs and the safetensors state dict of a trained
lstm_short (default: the test fixture's 400-iteration snapshot) into a temporary folder and
prints: free-running generation MSE by seqgen and by onnxruntime through the step graph,
the 320-step forward of the sequence graph against seqgen, the safetensors round trip,
and (when torch is installed) the PyTorch module against seqgen.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "main_run", "runs", "short",
                       "lstm_short_iter_400.caffemodel")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check(tmp)


def check(tmp):
    parser = argparse.ArgumentParser()
    parser.add_argument("--net", default=os.path.join(ROOT, "prototxt", "lstm_short.prototxt"))
    parser.add_argument("--weights", default=FIXTURE)
    args = parser.parse_args()
    import onnxruntime as ort

    from seqgen.app.cli import main as seqgen
    from seqgen.data.sources import sinusoid
    from seqgen.generation.generate import generate
    from seqgen.io.weights import read_net_binary
    from seqgen.net import TEST, Net

    path = lambda name: os.path.join(tmp, name)
    for graph in ("step", "sequence"):
        seqgen(["export", args.weights, "--net", args.net, "--format", "onnx", "--graph", graph,
                "--out", path(f"{graph}.onnx")])
    net = Net(args.net, args.weights, TEST)
    H = net.layer("lstm1").H
    true = sinusoid(320).reshape(-1, 1)
    ours = generate(net, 320, "previous")
    step = ort.InferenceSession(path("step.onnx"), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 1), np.float32)
    h, c = np.zeros((1, H), np.float32), np.zeros((1, H), np.float32)
    onnx_out = np.zeros((320, 1), np.float32)
    for i in range(320):
        x, h, c = step.run(None, {"data": x, "lstm1.h": h, "lstm1.c": c})
        onnx_out[i] = x[0]
    print(f"generation MSE: seqgen {np.mean((ours - true) ** 2):.9g}, onnxruntime step graph "
          f"{np.mean((onnx_out - true) ** 2):.9g}; max |difference| "
          f"{np.abs(ours - onnx_out).max():.3g}")
    data = np.random.default_rng(0).normal(0, 0.3, (320, 1)).astype(np.float32)
    clip = np.ones((320, 1), np.float32)
    clip[0] = 0
    want = Net(args.net, args.weights, TEST).forward(data=data, clip=clip)["ip1"]
    seq = ort.InferenceSession(path("sequence.onnx"), providers=["CPUExecutionProvider"])
    zero = np.zeros((1, H), np.float32)
    got = seq.run(["ip1"], {"data": data, "lstm1.h": zero, "lstm1.c": zero})[0]
    print(f"sequence graph, 320 steps of random input: max |difference| from seqgen "
          f"{np.abs(got - want).max():.3g} (outputs up to {np.abs(want).max():.3g})")
    seqgen(["export", args.weights, "--net", args.net, "--format", "torch", "--out",
            path("w.safetensors")])
    seqgen(["import", path("w.safetensors"), "--net", args.net, "--out", path("back.caffemodel")])
    blobs = lambda p: [np.asarray(b.data, np.float32).tobytes()
                       for lp in read_net_binary(p).layer for b in lp.blobs]
    print(f"caffemodel -> safetensors -> caffemodel: blobs identical: "
          f"{blobs(args.weights) == blobs(path('back.caffemodel'))}")
    try:
        import torch
    except ImportError:
        print("torch not installed: module comparison skipped")
        return
    sys.path.insert(0, tmp)
    from model import load

    with torch.no_grad():
        y, _ = load(path("w.safetensors"))(torch.from_numpy(data.reshape(320, 1, 1)))
    print(f"torch {torch.__version__} SeqgenNet, same input: max |difference| from seqgen "
          f"{np.abs(y.numpy().reshape(320, 1) - want).max():.3g}")
    for name in sorted(os.listdir(tmp)):
        print(f"  {name}: {os.path.getsize(path(name))} bytes")


if __name__ == "__main__":
    main()
