"""Issue 24 exploration: would probe selection help? For a sweep folder whose runs kept a
snapshot every 2000 iterations, every pair and triple of its seeds stands for one run that
trained probes from those seeds and continued the one with the lowest free-running MSE at
2k..10k iterations; prints how often the continued run ends above Caffe's 0.0042:
python examples/results/recipe/probe_sim.py SWEEP_FOLDER"""
import glob
import itertools
import os
import sys

import numpy as np

from seqgen import TEST, Net
from seqgen.data.sources import resolve_source
from seqgen.generation.generate import generate
from seqgen.runs.record import RunRecord

PROBES = (2000, 4000, 6000, 8000, 10000)
FINAL = 100000


def mse(net, true):
    g = generate(net, len(true), "previous", true, 0)
    return float(np.mean((np.asarray(g, np.float64).reshape(-1) - true) ** 2))


def curves(sweep):
    """{seed: [MSE at each of PROBES, then at FINAL]}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(sweep, "*", "run.json"))):
        folder = os.path.dirname(path)
        rec = RunRecord.read(folder)
        _, true = resolve_source(rec.get("data_abs", rec.data) or "sinusoid:320")
        true = np.asarray(true, np.float64).reshape(-1)
        prefix = os.path.join(folder, f"{rec.name}_iter_")
        out[rec.random_seed] = [mse(Net(rec.net, f"{prefix}{it}.caffemodel", TEST), true)
                                for it in (*PROBES, FINAL)]
    return out


def main(sweep):
    rows = curves(sweep)
    finals = np.array([r[-1] for r in rows.values()])
    print(f"no probes: median {np.median(finals):.5f}, P(> 0.0042) {(finals > 0.0042).mean():.3f}")
    for j, it in enumerate(PROBES):
        for k in (2, 3):
            chosen = np.array([rows[min(c, key=lambda s: rows[s][j])][-1]
                               for c in itertools.combinations(sorted(rows), k)])
            print(f"best of {k} at {it}: median {np.median(chosen):.5f}, "
                  f"P(> 0.0042) {(chosen > 0.0042).mean():.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
