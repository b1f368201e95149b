"""Training speed at language-model sizes, seqgen against PyTorch over a grid (issue 11).

    python benchmarks/grid_vs_torch.py [--grid full | --points "T,N,H,L,V;..."] [--iters 20]
        [--repeats 5] [--threads {1,2}] [--scaling] [--baseline GITREF] [--unfused]
        [--markdown]
    python benchmarks/grid_vs_torch.py --fork [--baseline GITREF] [--iters 500] [--repeats 5]
    python benchmarks/grid_vs_torch.py --memory [--baseline GITREF] [--iters 20000]

The net: Input(data, cont, label: T x N) -> Embed(V -> H, no bias) -> L BVLC LSTM layers of
H -> InnerProduct(V, axis 2) -> SoftmaxWithLoss(axis 2), every weight uniform in +-0.08.
One iteration is seqgen's Solver.step(1) (SGD, base_lr 0.1, fixed, no clipping) on fresh
random tokens and labels, written into the Input blobs before each step (the Input layer
keeps them; cont is 0 on row 0 of the first iteration only, so the state carries over);
PyTorch's is nn.Embedding + nn.LSTM(H, H, L) + nn.Linear + CrossEntropyLoss + SGD with the
state detached. Printed: the median ms/iteration over R repeats of K iterations after a
warm-up (numba compiles there). Each measurement runs in a fresh subprocess with the thread
settings in its environment, seqgen and PyTorch alternating. --scaling: seqgen's 1 against
2 threads. --baseline GITREF: seqgen also from a temporary worktree of GITREF, side by side.
--unfused: seqgen also with its rewrites off (SEQGEN_FUSION=off, seqgen/fusion.py).
--fork: the shipped lstm_short and deep_lstm_short solvers (bench.py's measurement).
--memory: RSS of lstm_short training after iters / 20 and after iters iterations.
Ratios: seqgen / PyTorch below 1 and GITREF / seqgen above 1 mean this tree is faster.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # children get their own thread settings

import argparse
import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from bench import median_ms  # noqa: E402  (beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PTB_SMALL = (20, 20, 200, 2, 10000)
GRID = [(50, N, H, L, 65) for N in (1, 8, 32, 64) for H in (15, 50, 128, 256, 512)
        for L in (1, 2)] + [PTB_SMALL]
# The two-thread target covers H >= 256, N >= 32; two smaller points show what
# threading gives (or costs) below it.
SCALING = [(50, 32, 256, 1, 65), (50, 32, 256, 2, 65), (50, 64, 256, 2, 65), (50, 32, 512, 1, 65),
           (50, 64, 512, 2, 65), (50, 8, 128, 1, 65), PTB_SMALL]
THREAD_VARS = ("SEQGEN_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "OMP_NUM_THREADS")


def cpu_name():
    """The CPU's model name and the wider SIMD extensions it has, from /proc/cpuinfo."""
    info = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    model, flags = info.get("model name"), set(info.get("flags", "").split())
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni") if f in flags]
    return f"{model or 'unknown CPU'} ({' '.join(simd) or 'no SIMD flags read'})"


def parse_points(text):
    """'T,N,H,L,V;...' -> [(T, N, H, L, V)]."""
    return [tuple(int(x) for x in p.split(",")) for p in text.split(";") if p.strip()]


def label(point):
    return "{} × {}, {}, {}, {}".format(*point)


def write_solver(folder, point):
    """The grid's net and its SGD solver as prototxt files in `folder`; the solver's path."""
    T, N, H, L, V = point
    uniform = 'weight_filler { type: "uniform" min: -0.08 max: 0.08 }'
    bias = uniform.replace("weight", "bias")
    layers = [f'layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"\n'
              f'  input_param {{ {f"shape {{ dim: {T} dim: {N} }} " * 3}}} }}',
              f'layer {{ name: "embed" type: "Embed" bottom: "data" top: "embed"\n'
              f'  embed_param {{ input_dim: {V} num_output: {H} bias_term: false {uniform} }} }}']
    for k in range(1, L + 1):
        prev = "embed" if k == 1 else f"lstm{k - 1}"
        layers.append(f'layer {{ name: "lstm{k}" type: "LSTM" bottom: "{prev}" '
                      f'bottom: "cont" top: "lstm{k}"\n'
                      f'  recurrent_param {{ num_output: {H} {uniform} {bias} }} }}')
    layers += [f'layer {{ name: "predict" type: "InnerProduct" bottom: "lstm{L}" top: "predict"\n'
               f'  inner_product_param {{ num_output: {V} axis: 2 {uniform} {bias} }} }}',
               'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "predict" bottom: "label"\n'
               '  top: "loss" softmax_param { axis: 2 } }']
    with open(os.path.join(folder, "net.prototxt"), "w") as f:
        f.write(f'name: "grid_{T}x{N}_{H}_{L}_{V}"\n' + "\n".join(layers) + "\n")
    path = os.path.join(folder, "solver.prototxt")
    with open(path, "w") as f:
        f.write('net: "net.prototxt"\ntype: "SGD"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                'display: 0\nmax_iter: 100000000\nsnapshot: 0\nrandom_seed: 1\n')
    return path


# -- the measurements, each run in a child process ---------------------------------------
def seqgen_ms(point, iters, repeats, threads):
    """seqgen's ms per Solver.step(1), the inputs written into the Input blobs each time."""
    import seqgen

    T, N, H, L, V = point
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        solver = seqgen.get_solver(write_solver(tmp, point), log=lambda *a: None, out_dir=tmp)
        blobs = solver.net.blobs
        cont = np.ones((T, N), np.float32)
        cont[0] = 0  # the first iteration starts the streams; later ones carry the state

        def step(n):
            for _ in range(n):
                blobs["data"].data[...] = rng.integers(0, V, (T, N))
                blobs["label"].data[...] = rng.integers(0, V, (T, N))
                blobs["cont"].data[...] = cont
                solver.step(1)
                cont[0] = 1

        step(3)  # warm-up: numba compiles (or loads its cache), buffers are touched
        return median_ms(step, iters, repeats)


def torch_ms(point, iters, repeats, threads):
    """PyTorch's ms per iteration of the same net, batches and optimizer."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    T, N, H, L, V = point
    embed, lstm, out = torch.nn.Embedding(V, H), torch.nn.LSTM(H, H, L), torch.nn.Linear(H, V)
    params = [*embed.parameters(), *lstm.parameters(), *out.parameters()]
    for p in params:
        torch.nn.init.uniform_(p, -0.08, 0.08)
    opt, loss_fn = torch.optim.SGD(params, lr=0.1), torch.nn.CrossEntropyLoss()
    rng, state = np.random.default_rng(0), [None]

    def step(n):
        for _ in range(n):
            x = torch.from_numpy(rng.integers(0, V, (T, N)))
            y = torch.from_numpy(rng.integers(0, V, T * N))
            hc = None if state[0] is None else tuple(s.detach() for s in state[0])
            h, state[0] = lstm(embed(x), hc)
            loss = loss_fn(out(h).reshape(-1, V), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    step(3)
    return median_ms(step, iters, repeats)


def memory_mb(iters):
    """VmRSS (MB) of lstm_short training after iters // 20 and after iters iterations, and
    the peak (VmHWM)."""
    from seqgen.data.feeder import SequenceFeeder
    from seqgen.data.sources import sinusoid
    from seqgen.solver import Solver

    def rss(field="VmRSS"):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024

    with tempfile.TemporaryDirectory() as tmp:  # the solver's snapshots go there
        solver = Solver(os.path.join(ROOT, "prototxt", "lstm_short_solver.prototxt"),
                        log=lambda *a: None, out_dir=tmp)
        solver.add_callback(SequenceFeeder(solver.net, sinusoid(320), "previous"))
        first = max(1, iters // 20)
        solver.step(first)
        early = rss()
        solver.step(iters - first)
        late = rss()
    return [first, early, late, rss("VmHWM")]


def child(args):
    """Run one measurement and print it (with where seqgen came from) as JSON."""
    if args.child == "memory":
        value = memory_mb(args.iters)
    elif args.child == "fork":  # this tree's bench.py times the shipped solver's step
        import bench

        value = bench.seqgen_training(args.points, args.iters, args.repeats)
    else:
        fn = seqgen_ms if args.child == "seqgen" else torch_ms
        value = fn(parse_points(args.points)[0], args.iters, args.repeats, args.threads)
    spec = importlib.util.find_spec("seqgen")
    print(json.dumps({"value": value, "seqgen": spec.origin if spec else None}))


# -- the parent: runs children, prints tables --------------------------------------------
def run(kind, what, args, tree, threads=None):
    """One child measurement with seqgen from `tree` and the thread variables set; kind
    "unfused" is seqgen with SEQGEN_FUSION=off."""
    threads = threads or args.threads
    env = dict(os.environ, PYTHONPATH=tree, **{v: str(threads) for v in THREAD_VARS})
    if kind == "unfused":
        kind, env["SEQGEN_FUSION"] = "seqgen", "off"
    cmd = [sys.executable, __file__, "--child", kind, "--points", what, "--iters",
           str(args.iters), "--repeats", str(args.repeats), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{kind} {what} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if kind != "torch" and not result["seqgen"].startswith(os.path.join(tree, "")):
        sys.exit(f"seqgen came from {result['seqgen']}, not from {tree}")
    return result["value"]


@contextlib.contextmanager
def worktree(ref):
    """A detached git worktree of `ref` in a temporary folder, removed afterwards."""
    tmp = tempfile.mkdtemp(prefix="seqgen-baseline-")
    path = os.path.join(tmp, "tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, ref], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", path],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def commit(tree):
    out = subprocess.run(["git", "-C", tree, "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def header(cells, markdown):
    """Print a table's header; returns the column widths for plain text."""
    widths = [max(len(c), 9) for c in cells]
    widths[0] = max(widths[0], 22)
    row(cells, markdown, widths)
    if markdown:
        print("|" + "---|" * len(cells))
    return widths


def row(cells, markdown, widths):
    if markdown:
        print("| " + " | ".join(cells) + " |", flush=True)
    else:
        print(cells[0].ljust(widths[0]) + "  "
              + "  ".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:])), flush=True)


def grid_report(args, trees, has_torch):
    """seqgen (and baseline) against PyTorch, point by point, the order flipped each point."""
    names = [name for name, _ in trees]
    cols = ["T × N, H, L, V", "seqgen ms/iter"]
    if len(trees) > 1:
        cols += [f"{names[1]} ms/iter", f"{names[1]} / seqgen"]
    if args.unfused:
        cols += ["unfused ms/iter", "unfused / seqgen"]
    if has_torch:
        cols += ["PyTorch ms/iter", "seqgen / PyTorch"]
    widths = header(cols, args.markdown)
    for i, point in enumerate(args.points):
        what = ",".join(map(str, point))
        jobs = [("seqgen", tree) for _, tree in trees] + ([("torch", ROOT)] if has_torch else [])
        jobs += [("unfused", ROOT)] if args.unfused else []
        ms = {}
        for kind, tree in (jobs if i % 2 == 0 else jobs[::-1]):
            ms[kind, tree] = run(kind, what, args, tree)
        ours = ms["seqgen", trees[0][1]]
        cells = [label(point), f"{ours:.3f}"]
        if len(trees) > 1:
            base = ms["seqgen", trees[1][1]]
            cells += [f"{base:.3f}", f"{base / ours:.2f}x"]
        if args.unfused:
            plain = ms["unfused", ROOT]
            cells += [f"{plain:.3f}", f"{plain / ours:.2f}x"]
        if has_torch:
            cells += [f"{ms['torch', ROOT]:.3f}", f"{ours / ms['torch', ROOT]:.2f}"]
        row(cells, args.markdown, widths)


def scaling_report(args, trees):
    """seqgen's two-thread throughput against its one-thread throughput, per tree."""
    cols = ["T × N, H, L, V"]
    for name, _ in trees:
        cols += [f"{name} 1 thread ms", f"{name} 2 threads ms", "throughput 2/1"]
    widths = header(cols, args.markdown)
    for point in args.points:
        cells = [label(point)]
        for _, tree in trees:
            one, two = (run("seqgen", ",".join(map(str, point)), args, tree, t) for t in (1, 2))
            cells += [f"{one:.3f}", f"{two:.3f}", f"{one / two:.2f}x"]
        row(cells, args.markdown, widths)


def fork_report(args, trees):
    """The shipped fork configurations' solver step, this tree against the baseline."""
    cols = ["configuration"] + [f"{name} ms/iter" for name, _ in trees]
    cols += [f"{trees[1][0]} / seqgen"] if len(trees) > 1 else []
    widths = header(cols, args.markdown)
    for i, config in enumerate(("lstm_short", "deep_lstm_short")):
        order = trees if i % 2 == 0 else trees[::-1]
        ms = {tree: run("fork", config, args, tree) for _, tree in order}
        values = [ms[tree] for _, tree in trees]
        cells = [config] + [f"{v:.3f}" for v in values]
        cells += [f"{values[1] / values[0]:.2f}x"] if len(trees) > 1 else []
        row(cells, args.markdown, widths)


def memory_report(args, trees):
    """Resident memory of a long lstm_short run, per tree."""
    first = max(1, args.iters // 20)
    widths = header(["tree", f"RSS after {first} MB", f"RSS after {args.iters} MB", "growth MB",
                     "peak MB"], args.markdown)
    for name, tree in trees:
        _, early, late, peak = run("memory", "-", args, tree)
        row([name, f"{early:.1f}", f"{late:.1f}", f"{late - early:+.1f}", f"{peak:.1f}"],
            args.markdown, widths)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", choices=["full"], default="full")
    ap.add_argument("--points", help='"T,N,H,L,V;..." instead of the grid')
    ap.add_argument("--iters", type=int, help="K iterations a repeat (default 20; --fork 500; "
                                              "--memory 20000 in all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, choices=[1, 2], default=1)
    ap.add_argument("--scaling", action="store_true", help="seqgen, 1 thread against 2")
    ap.add_argument("--baseline", metavar="GITREF", help="seqgen from GITREF side by side")
    ap.add_argument("--fork", action="store_true", help="lstm_short, deep_lstm_short solvers")
    ap.add_argument("--memory", action="store_true", help="RSS of a long lstm_short run")
    ap.add_argument("--unfused", action="store_true",
                    help="seqgen with SEQGEN_FUSION=off too, side by side")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: count the process's CPU time (one thread, loaded machine)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    os.environ["SEQGEN_BENCH_CLOCK"] = args.clock  # the children read it
    args.iters = args.iters or (500 if args.fork else 20000 if args.memory else 20)
    args.points = parse_points(args.points) if args.points else \
        SCALING if args.scaling else GRID
    torch_found = importlib.util.find_spec("torch") is not None
    has_torch = torch_found and not (args.fork or args.memory or args.scaling)
    version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True).stdout.strip() if has_torch else ""
    print(f"{cpu_name()}, {os.cpu_count()} cores; numpy {np.__version__}; "
          f"PyTorch {version or 'not compared'}; seqgen {commit(ROOT)}; "
          f"{'1 vs 2' if args.scaling else args.threads} thread(s)"
          + ("" if args.memory else f"; median of {args.repeats} x {args.iters} iterations"))
    if not (args.fork or args.memory or args.scaling or torch_found):
        print("PyTorch is not importable: seqgen's columns alone")
    with (worktree(args.baseline) if args.baseline else contextlib.nullcontext()) as base:
        trees = [("seqgen", ROOT)] + ([(args.baseline, base)] if base else [])
        if base:
            print(f"baseline: {args.baseline} = {commit(base)}")
        print()
        if args.memory:
            memory_report(args, trees)
        elif args.fork:
            fork_report(args, trees)
        elif args.scaling:
            scaling_report(args, trees)
        else:
            grid_report(args, trees, has_torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
