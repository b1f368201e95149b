"""Issue 24: what --keep-best would make of finished sweeps, from their snapshots. A check
does not change the training, so the best of a run's snapshots (every 20000 iterations for
the shipped solvers) is exactly what `--keep-best 0.2` reports for that run. Prints, per
seed, each snapshot's free-running MSE (seqgen generate's), the last and the best:

    python examples/results/recipe/checks_sim.py SWEEP_FOLDER [SWEEP_FOLDER ...]

Its output over this session's sweeps is keep_best_simulated.txt."""
import glob
import os
import re
import sys
import tempfile

import numpy as np

from seqgen.app.generate_run import generate_from_run


def iteration(path):
    return int(re.findall(r"_iter_(\d+)\.caffemodel", path)[-1])


def seed(path):
    return int(re.findall(r"seed(\d+)", path)[-1])


def snapshot_mse(path):
    with tempfile.TemporaryDirectory() as out:
        try:
            return generate_from_run(weights=path, out=out, log=lambda *a, **k: None)["mse"]
        except Exception:  # (a diverged output counts as not kept)
            return float("nan")


for sweep in sys.argv[1:]:
    print("#", sweep)
    finals, bests = [], []
    for run in sorted(glob.glob(sweep + "/*/run.json"), key=seed):
        folder = os.path.dirname(run)
        snaps = sorted(glob.glob(folder + "/*_iter_*.caffemodel"), key=iteration)
        out = [snapshot_mse(s) for s in snaps]
        finals.append(out[-1])
        bests.append(np.nanmin(out))
        each = " ".join(f"{iteration(s) // 1000}k:{m:.5f}" for s, m in zip(snaps, out))
        print(f"seed{seed(folder)} {each} | final {out[-1]:.5f} best {bests[-1]:.5f}",
              flush=True)
    print(f"final median {np.median(finals):.5f} worst {max(finals):.5f} | best-of median "
          f"{np.median(bests):.5f} worst {max(bests):.5f}")
