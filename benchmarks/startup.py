"""How long a warm `seqgen generate --steps 320` takes, start to exit, on an lstm_long run.

    python benchmarks/startup.py [--repeats 9] [--steps 320] [--iters 50] [--cpu N]
                                 [--baseline GITREF]

A tiny lstm_long run is trained first (`seqgen train prototxt/lstm_long_solver.prototxt
--iters 50`, in a temporary folder), then `seqgen generate --steps 320` is run in that
folder as a user runs it (as `python -m seqgen`, the same command): one process, from
start to exit, its wall time measured around the subprocess (and its CPU time, user +
system, from the children's rusage: less moved by other work on a shared machine). Each
tree runs twice first, untimed: numba compiles or loads its kernels into the tree's cache,
and Python writes the tree's bytecode (the benchmark lets it, whatever
PYTHONDONTWRITEBYTECODE says, as an installed seqgen has its .pyc files), so every timed
run is warm.

--baseline GITREF runs an earlier commit's seqgen beside this one: its tree is exported
(`git archive`, no worktree registered) into the temporary folder and put first on
PYTHONPATH, so that `python -m seqgen` imports it. Runs alternate between the trees
(a, b, a, b, ...), so load on the machine hits both alike, and the two trees' output
(stdout, stderr, generated.csv, generated.json, generated.png) is compared byte for byte.
--cpu N pins the benchmark and its children to core N.

--breakdown times the parts of one generate inside a process of this tree (medians over
--repeats processes): the interpreter's start (`python -c pass`), numpy, numba's import,
numba's compiler context (which its first kernel loaded from the cache sets up), seqgen's
modules, matplotlib's, and in the command itself the drawing of generated.png and the rest
(run, net, generation, CSV and JSON), then the process's exit (as the command ends it).
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLVER = ROOT / "prototxt" / "lstm_long_solver.prototxt"
OUTPUTS = ("generated.csv", "generated.json", "generated.png")


def cpu_description():
    """(model name, the vector flags) from /proc/cpuinfo; the platform's name elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    vector = [f for f in fields.get("flags", "").split()
              if f.startswith(("avx", "fma", "sse4", "amx"))]
    return fields.get("model name", platform.machine()), " ".join(vector)


def seqgen_command():
    """`python -m seqgen`: the `seqgen` script's work, from whichever tree PYTHONPATH names
    (the installed script names its entry function, which an older tree may not have)."""
    return [sys.executable, "-m", "seqgen"]


def environment(tree):
    """The environment running `tree`'s seqgen: first on PYTHONPATH, bytecode written."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def check_imported_from(tree):
    """Make sure `tree`'s seqgen is the one its environment imports."""
    # (from a neutral folder, as the timed runs run from their run folder: `python -c`
    # puts the current folder first on sys.path, and in a source checkout that is its seqgen)
    where = subprocess.run([sys.executable, "-c", "import seqgen.app.cli as m; print(m.__file__)"],
                           env=environment(tree), capture_output=True, text=True, check=True,
                           cwd=tempfile.gettempdir())
    if not Path(where.stdout.strip()).is_relative_to(tree):
        sys.exit(f"seqgen imported from {where.stdout.strip()}, not from {tree}")


def export_tree(ref, into):
    """Write commit `ref`'s files into the folder `into` (git archive); returns it."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    tar = into.with_suffix(".tar")
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        if hasattr(tarfile, "data_filter"):  # (Python 3.12, and 3.11.4 on)
            t.extractall(into, filter="data")
        else:
            t.extractall(into)
    tar.unlink()
    return into


def run(command, env, cwd):
    """(wall seconds, CPU seconds, stdout, stderr) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout, done.stderr


def outputs(work, printed):
    """What one generate left: its stdout and stderr, and its files' bytes."""
    run_folder = next((work / "runs").iterdir())
    return {"stdout/stderr": printed, **{name: (run_folder / name).read_bytes()
                                         for name in OUTPUTS}}


def measure(trees, work, steps, repeats):
    """{tree name: [(wall, cpu)]}, alternating; checks that every tree wrote the same."""
    command = seqgen_command() + ["generate", "--steps", str(steps)]
    seen = {}
    for name, tree in trees.items():
        check_imported_from(tree)
        for _ in range(2):  # warm: numba's cache and Python's bytecode written
            _, _, out, err = run(command, environment(tree), work)
        seen[name] = outputs(work, (out, err))
    first = next(iter(seen.values()))
    for name, got in list(seen.items())[1:]:
        differ = [k for k in first if got[k] != first[k]]
        print(f"output of {name} against {next(iter(seen))}: "
              + (f"DIFFERS in {', '.join(differ)}" if differ else
                 "identical (stdout, stderr, " + ", ".join(OUTPUTS) + ")"))
    times = {name: [] for name in trees}
    for _ in range(repeats):
        for name, tree in trees.items():
            times[name].append(run(command, environment(tree), work)[:2])
    return times


#: what --breakdown runs in one process: the parts in the order the command meets them
BREAKDOWN = """
import sys, time
laps, t = {}, time.perf_counter()
def lap(name):
    global t
    now = time.perf_counter(); laps[name] = now - t; t = now
import numpy; lap("numpy")
from seqgen.app.imports import as_the_command, imports_at_once, matplotlib_figure
as_the_command()  # (as the seqgen command does)
with imports_at_once():
    import numba; lap("numba import")
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh(); lap("numba's compiler context")
    import seqgen.app.generate_run as g; lap("seqgen's modules")
matplotlib_figure(); lap("matplotlib import")
import seqgen.app.generation_record as r
draw = r.plot_generation
def timed(*a, **k):
    start = time.perf_counter(); out = draw(*a, **k)
    laps["drawing generated.png"] = time.perf_counter() - start; return out
r.plot_generation = timed
g.generate_command(steps=int(sys.argv[1]), log=lambda m: None); lap("the command")
laps["the command"] -= laps["drawing generated.png"]
print(repr(laps), time.monotonic(), flush=True)
from seqgen.app.quick_exit import leave_now
leave_now(0)
"""


def breakdown(work, steps, repeats):
    """Medians of the parts of one generate (BREAKDOWN) over `repeats` processes."""
    env = environment(ROOT)
    parts = {"interpreter start": []}
    for _ in range(repeats):
        parts["interpreter start"].append(run([sys.executable, "-c", "pass"], env, work)[0])
        printed = run([sys.executable, "-c", BREAKDOWN, str(steps)], env, work)[2].decode()
        laps, ended = printed.rsplit(" ", 1)
        laps = dict(eval(laps), exit=time.monotonic() - float(ended))
        for name, seconds in laps.items():
            parts.setdefault(name, []).append(seconds)
    print(f"\nparts of one generate --steps {steps} (median seconds of {repeats} processes):")
    for name, samples in parts.items():
        print(f"  {name:28s} {statistics.median(samples):7.3f}")
    print(f"  {'sum':28s} {sum(statistics.median(s) for s in parts.values()):7.3f}")


def report(times, steps):
    print(f"\nseqgen generate --steps {steps}, warm, {len(next(iter(times.values())))} runs "
          "each (seconds):")
    print(f"{'tree':28s} {'wall median':>12s} {'wall min':>9s} {'CPU median':>11s}")
    medians = {}
    for name, samples in times.items():
        walls, cpus = [w for w, _ in samples], [c for _, c in samples]
        medians[name] = statistics.median(walls), statistics.median(cpus)
        print(f"{name:28s} {medians[name][0]:12.3f} {min(walls):9.3f} {medians[name][1]:11.3f}")
    if len(medians) == 2:
        (a, (wa, ca)), (b, (wb, cb)) = medians.items()
        print(f"{b} / {a}: wall {wb / wa:.2f}, CPU {cb / ca:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per tree")
    ap.add_argument("--steps", type=int, default=320)
    ap.add_argument("--iters", type=int, default=50, help="training iterations of the run")
    ap.add_argument("--baseline", metavar="GITREF", help="also time this commit's seqgen")
    ap.add_argument("--cpu", type=int, metavar="N", help="pin to core N")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time the parts of one generate (this tree)")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    name, flags = cpu_description()
    print(f"CPU: {name}; vector flags: {flags or '(none listed)'}")
    pinned = f", pinned to core {args.cpu}" if args.cpu is not None else ""
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; Python {platform.python_version()}; "
          f"{os.cpu_count()} cores{pinned}")
    with tempfile.TemporaryDirectory(prefix="seqgen-startup-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        trees = {}
        if args.baseline:
            label = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                    args.baseline], capture_output=True, text=True,
                                   check=True).stdout.strip()
            trees[f"baseline {label}"] = export_tree(args.baseline, Path(tmp) / "baseline")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "seqgen"], capture_output=True, text=True).stdout.strip()
        trees[f"this tree ({head or '?'}{' + changes' if dirty else ''})"] = ROOT
        run(seqgen_command() + ["train", str(SOLVER), "--iters", str(args.iters)],
            environment(ROOT), work)
        report(measure(trees, work, args.steps, args.repeats), args.steps)
        if args.breakdown:
            breakdown(work, args.steps, args.repeats)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
