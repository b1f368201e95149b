"""Issue 24 exploration: would averaging the weights (Polyak) help lstm_long `previous`?
For a sweep folder whose runs kept a snapshot every 1000 iterations, prints per run the
free-running MSE of the last weights, the best of the keep-best checks (every 2000 from
10000, and the end), and the uniform running average of the snapshots after iteration S at
the end ("avgS") and as one more candidate at every check ("best+avgS"):
python examples/results/recipe/average_sim.py SWEEP_FOLDER"""
import glob
import json
import os
import re
import sys

import numpy as np

from seqgen import TEST, Net
from seqgen.data.sources import resolve_source
from seqgen.generation.generate import generate
from seqgen.runs.record import RunRecord

STARTS = (50000, 70000, 80000, 90000)


def mse(net, true):
    g = generate(net, len(true), "previous", true, 0)
    return float(np.mean((np.asarray(g, np.float64).reshape(-1) - true.reshape(-1)) ** 2))


def scores(folder):
    rec = RunRecord.read(folder)
    paths = {int(re.findall(r"_iter_(\d+)", p)[-1]): p
             for p in glob.glob(folder + "/*_iter_*.caffemodel")}
    its = sorted(paths)
    _, true = resolve_source(rec.get("data_abs", rec.data))
    true = np.asarray(true, np.float64)
    nets = {i: Net(rec.net, paths[i], TEST) for i in its}
    raw = {i: mse(nets[i], true) for i in its}
    checks = [i for i in its if i >= 10000 and (i % 2000 == 0 or i == its[-1])]
    out = {"final": raw[its[-1]], "best": min(raw[i] for i in checks)}
    avg = Net(rec.net, paths[its[-1]], TEST)
    for start in STARTS:
        total, k, best, last = None, 0, out["best"], None
        for i in (i for i in its if i > start):
            flat = [b.data.astype(np.float64) for v in nets[i].params.values() for b in v]
            total = flat if total is None else [a + b for a, b in zip(total, flat)]
            k += 1
            if i in checks:
                for b, s in zip((b for v in avg.params.values() for b in v), total):
                    b.data[...] = s / k
                last = mse(avg, true)
                best = min(best, last)
        out[f"avg{start // 1000}k"], out[f"best+avg{start // 1000}k"] = last, best
    return out


rows = []
for run in sorted(glob.glob(os.path.join(sys.argv[1], "*", "run.json"))):
    if "final_loss" not in json.load(open(run)):
        continue  # not finished
    rows.append(scores(os.path.dirname(run)))
    print(os.path.basename(os.path.dirname(run)),
          " ".join(f"{k}={v:.5f}" for k, v in rows[-1].items()), flush=True)
for key in rows[0]:
    a = np.array([r[key] for r in rows])
    print(f"{key}: median {np.median(a):.5f} max {a.max():.5f} n>0.0042 {(a > 0.0042).sum()}")
