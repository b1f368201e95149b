"""Issue 24 exploration: free-running MSE of each run's final weights against the uniform
average of its last snapshots (Polyak averaging over the tail of the run), for every run of a
sweep folder: python examples/results/recipe/tail_average.py SWEEP_FOLDER"""
import glob
import os
import re
import sys

import numpy as np

from seqgen import TEST, Net
from seqgen.data.sources import resolve_source
from seqgen.generation.generate import generate
from seqgen.runs.record import RunRecord


def mse(net, true):
    g = generate(net, len(true), "previous", true, 0)
    return float(np.mean((np.asarray(g, np.float64).reshape(-1) - true.reshape(-1)) ** 2))

rows = []
for run in sorted(glob.glob(sys.argv[1] + "/*/run.json")):
    folder = os.path.dirname(run)
    rec = RunRecord.read(folder)
    snaps = sorted(glob.glob(folder + "/*_iter_*.caffemodel"),
                   key=lambda p: int(re.findall(r"_iter_(\d+)", p)[-1]))
    its = [int(re.findall(r"_iter_(\d+)", p)[-1]) for p in snaps]
    _, true = resolve_source(rec.get("data_abs", rec.data) or "sinusoid:320")
    true = np.asarray(true, np.float64)
    out = [os.path.basename(folder), mse(Net(rec.net, snaps[-1], TEST), true)]
    for frac in (0.1, 0.2, 0.3):
        keep = [p for p, i in zip(snaps, its) if i > its[-1] * (1 - frac)]
        nets = [Net(rec.net, p, TEST) for p in keep]
        avg = nets[0]
        for name, blobs in avg.params.items():
            for k, b in enumerate(blobs):
                b.data[...] = np.mean([n.params[name][k].data for n in nets], axis=0)
        out.append(mse(avg, true))
    rows.append(out)
    print(" ".join(f"{x:.5f}" if isinstance(x, float) else x for x in out), flush=True)
a = np.array([r[1:] for r in rows])
for j, name in enumerate(["final", "avg10%", "avg20%", "avg30%"]):
    print(f"{name}: median {np.median(a[:, j]):.5f} max {a[:, j].max():.5f} "
          f"n>0.0042 {(a[:, j] > 0.0042).sum()}")
