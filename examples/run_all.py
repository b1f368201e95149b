"""Train and generate all four shipped configurations in both input modes.

    python examples/run_all.py [--iters N] [--jobs 2] [--out examples/results]

Writes <out>/results.md and results.csv (configuration, mode, iterations, training wall
time, generation MSE and max abs error) and <out>/all_configs.png (every generated
sequence over the true one). Each run keeps its own folder under <out>/runs/.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: two runs share 2 cores

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOTXT = os.path.join(os.path.dirname(HERE), "prototxt")
CONFIGS = ["lstm_short", "lstm_long", "deep_lstm_short", "deep_lstm_long"]
MODES = ["previous", "zero"]


def one_run(config, mode, iters, out):
    from seqgen.app.generate_run import generate_from_run
    from seqgen.app.train import train_sequence
    from seqgen.tasks.record import RunRecord

    folder = os.path.join(out, "runs", f"{config}-{mode}")
    lines = []
    start = time.perf_counter()
    train_sequence(os.path.join(PROTOTXT, f"{config}_solver.prototxt"), iters=iters, mode=mode,
                   out=folder, log=lines.append)
    wall = time.perf_counter() - start
    run = RunRecord.read(folder)
    gen = generate_from_run(weights=run.weights, log=lines.append)  # the whole sequence
    with open(os.path.join(folder, "train.log"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"config": config, "mode": mode, "iterations": run.iterations,
            "train_s": round(run.train_seconds, 1), "wall_s": round(wall, 1),
            "final_loss": run.final_loss, "mse": gen["mse"],
            "max_abs_error": gen["max_abs_error"], "csv": gen["csv"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=None, help="default: each solver's max_iter")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--configs", nargs="*", default=CONFIGS)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    jobs = [(c, m) for c in args.configs for m in MODES]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one_run, c, m, args.iters, args.out) for c, m in jobs]
        rows = []
        for fut in futures:
            row = fut.result()
            rows.append(row)
            print(f"{row['config']:16s} {row['mode']:8s} {row['iterations']:7d} it "
                  f"{row['train_s']:7.1f} s  MSE {row['mse']:.5f}  max {row['max_abs_error']:.3f}",
                  flush=True)
    write_tables(rows, args.out)
    draw(rows, os.path.join(args.out, "all_configs.png"))
    return 0


def write_tables(rows, out):
    keys = ["config", "mode", "iterations", "train_s", "final_loss", "mse", "max_abs_error"]
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow([r[k] for k in keys])
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("| configuration | input mode | iterations | training time (s) | final loss | "
                "generation MSE | max abs error |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['config']} | {r['mode']} | {r['iterations']} | {r['train_s']} | "
                    f"{r['final_loss']:.5f} | {r['mse']:.5f} | {r['max_abs_error']:.3f} |\n")


def draw(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqgen.app.plot import read_generated_csv

    fig, axes = plt.subplots(len(rows) // 2, 2, figsize=(14, 2.6 * (len(rows) // 2)),
                             squeeze=False)
    for ax, r in zip(axes.ravel(), rows):
        d = read_generated_csv(r["csv"])
        if d["true"] is not None:
            ax.plot(d["step"][:len(d["true"])], d["true"], ".", ms=2, color="tab:red",
                    label="true")
        ax.plot(d["step"], d["generated"], "-", lw=1, color="tab:blue", label="generated")
        ax.set_title(f"{r['config']} ({r['mode']}): MSE {r['mse']:.4f}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
