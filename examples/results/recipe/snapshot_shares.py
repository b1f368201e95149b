"""Issue 24: the free-running MSE, as a share of the sequence's variance, of each run's
snapshots at 20k, 40k, 60k, 80k and 100k iterations, for every run of a sweep folder (what
the restart checks see): python examples/results/recipe/snapshot_shares.py SWEEP_FOLDER PREFIX
(PREFIX: the snapshots' name, lstm_short). Columns: seed, the five shares, the variance."""
import glob
import os
import re
import sys

import numpy as np

from seqgen import TEST, Net
from seqgen.data.sources import resolve_source
from seqgen.generation.generate import generate
from seqgen.runs.record import RunRecord

its = (20000, 40000, 60000, 80000, 100000)
runs = glob.glob(sys.argv[1] + "/*/run.json")
for run in sorted(runs, key=lambda p: int(re.findall(r"seed(\d+)", p)[-1])):
    folder = os.path.dirname(run)
    rec = RunRecord.read(folder)
    _, true = resolve_source(rec.get("data_abs", rec.data) or "sinusoid:320")
    true = np.asarray(true, np.float64).reshape(-1)
    prefix = sys.argv[2]
    out = []
    for it in its:
        net = Net(rec.net, f"{folder}/{prefix}_iter_{it}.caffemodel", TEST)
        got = generate(net, len(true), rec.get("input", "previous"), true, 0)
        got = np.asarray(got, np.float64).reshape(-1)
        out.append(np.mean((got - true) ** 2) / true.var())
    print(re.findall(r"seed(\d+)", folder)[-1], " ".join(f"{x:.5f}" for x in out),
          f"{true.var():.5f}", flush=True)
