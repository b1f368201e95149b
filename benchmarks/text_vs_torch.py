"""seqgen and PyTorch side by side on the two shipped language models: per-epoch validation
loss and wall time of the same net, data split, batches, optimizer and clipping.

    python benchmarks/text_vs_torch.py char_rnn [--epochs 10]
    python benchmarks/text_vs_torch.py ptb_small [--epochs 30]
    python benchmarks/text_vs_torch.py char_rnn --seqgen-run RUN   # reuse a finished run

PyTorch (nn.Embedding + nn.LSTM + nn.Linear, one thread) gets exactly seqgen's batches:
the token streams come from seqgen's own Corpus/Streams, the hidden state is carried
from chunk to chunk and reset at each epoch, as seqgen's cont markers do. Runs only when
torch is importable (PyPI's wheel is large; this is not part of the test suite).
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "char_rnn": dict(data="chars:" + str(ROOT / "examples/data/tinyshakespeare.txt"),
                     split="0.95,0.05", val=None, test=None, E=128, H=128, layers=2,
                     init=0.08, optimizer="rmsprop", lr=2e-3, loss_weight=1.0,
                     epochs=10),
    "ptb_small": dict(data="words:" + str(ROOT / "examples/data/ptb/ptb.valid.txt"),
                      split=None, val=str(ROOT / "examples/data/ptb/ptb.test.first_half.txt"),
                      test=str(ROOT / "examples/data/ptb/ptb.test.second_half.txt"),
                      E=200, H=200, layers=2, init=0.1, optimizer="sgd", lr=1.0,
                      loss_weight=20.0, epochs=30, hold=20),
}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                flags = open("/proc/cpuinfo").read()
                simd = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
                return f"{line.split(':', 1)[1].strip()} ({simd})"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def seqgen_run(name, cfg, epochs, folder):
    """Train with `seqgen train`; returns [(epoch, validation loss, seconds so far)]."""
    from seqgen.app.train import train_sequence

    stamps = []
    start = time.perf_counter()

    def log(line):
        if line.startswith("    Test net output #0"):
            stamps.append((float(line.split("= ")[1].split()[0]), time.perf_counter() - start))
        print(line, flush=True)

    options = dict(data=cfg["data"], out=folder, epochs=epochs, log=log,
                   weights=cfg.get("weights"))
    for key in ("split", "val", "test"):
        if cfg[key]:
            options[key] = cfg[key]
    train_sequence(str(ROOT / "prototxt" / f"{name}_solver.prototxt"), **options)
    # the first test is the untrained net's (test_initialization); then one per epoch
    return [(e, loss, t) for e, (loss, t) in enumerate(stamps)]


def read_seqgen_run(folder, loss_weight):
    """test_loss.csv holds the weighted loss (Caffe's "* loss_weight = ..."): undo it."""
    rows = np.loadtxt(Path(folder) / "test_loss.csv", delimiter=",", skiprows=1, ndmin=2)
    return [(e, float(loss) / loss_weight, float("nan")) for e, (_, loss) in enumerate(rows)]


def seqgen_initial_weights(name, folder):
    """The weights seqgen train starts from (the solver's random_seed fills the net), as
    a .caffemodel, for both frameworks to start from."""
    from seqgen.solver import Solver

    solver = Solver(str(ROOT / "prototxt" / f"{name}_solver.prototxt"), log=lambda *a: None)
    path = os.path.join(folder, "initial.caffemodel")
    solver.net.save(path)
    return solver.net


def copy_weights(model, net):
    """seqgen's Embed/LSTM/InnerProduct weights into the PyTorch module. Caffe's LSTM gates
    are i, f, o, g; PyTorch's i, f, g, o; Caffe's one bias goes to bias_ih (bias_hh = 0)."""
    import torch

    params = net.params
    order = lambda a: np.concatenate([np.split(a, 4)[i] for i in (0, 1, 3, 2)])
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(params["embed"][0].data))
        for k, name in enumerate(n for n in params if n.startswith("lstm")):
            W_x, b, W_h = (blob.data for blob in params[name])
            getattr(model.lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(order(W_x)))
            getattr(model.lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(order(W_h)))
            getattr(model.lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(order(b)))
            getattr(model.lstm, f"bias_hh_l{k}").zero_()
        model.out.weight.copy_(torch.from_numpy(params["predict"][0].data))
        model.out.bias.copy_(torch.from_numpy(params["predict"][1].data))


def torch_run(cfg, epochs, seed=1, start=None):
    """The same training in PyTorch (from seqgen's Net `start`'s weights when given);
    returns [(epoch, validation loss, seconds so far)]."""
    import torch

    from seqgen.tasks.text_plan import Corpus, Streams

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    corpus = Corpus(cfg["data"], cfg["split"], cfg["val"], cfg["test"])
    V = len(corpus.vocab)
    T, N = (50, 50) if cfg["optimizer"] == "rmsprop" else (20, 20)
    train, val = Streams(corpus.train, N, T, "train"), Streams(corpus.val, N, T, "val")

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, cfg["E"])
            self.lstm = torch.nn.LSTM(cfg["E"], cfg["H"], cfg["layers"])
            self.out = torch.nn.Linear(cfg["H"], V)

        def forward(self, x, state):
            h, state = self.lstm(self.embed(x), state)
            return self.out(h), state

    model = LM()
    for p in model.parameters():
        torch.nn.init.uniform_(p, -cfg["init"], cfg["init"])
    with torch.no_grad():  # seqgen's LSTM has one bias; PyTorch's second one stays 0
        for name, p in model.lstm.named_parameters():
            if name.startswith("bias_hh"):
                p.zero_()
    if start is not None:
        copy_weights(model, start)
    if cfg["optimizer"] == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=cfg["lr"], alpha=0.95, eps=1e-8)
        schedule = None
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
        hold = cfg["hold"]
        schedule = lambda epoch: 1.0 if epoch < hold else 0.5 ** (epoch - hold + 1)
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate(streams):
        model.eval()
        total, state = 0.0, None
        with torch.no_grad():
            for k in range(streams.chunks):
                x = torch.from_numpy(streams.x[k * T:(k + 1) * T])
                y = torch.from_numpy(streams.y[k * T:(k + 1) * T])
                logits, state = model(x, state)
                total += float(loss_fn(logits.reshape(-1, V), y.reshape(-1)))
        model.train()
        return total / streams.chunks

    out = [(0, evaluate(val), 0.0)]
    start = time.perf_counter()
    for epoch in range(epochs):
        if schedule is not None:
            for group in opt.param_groups:
                group["lr"] = cfg["lr"] * schedule(epoch)
        state = None
        for k in range(train.chunks):
            x = torch.from_numpy(train.x[k * T:(k + 1) * T])
            y = torch.from_numpy(train.y[k * T:(k + 1) * T])
            if state is not None:
                state = tuple(s.detach() for s in state)
            logits, state = model(x, state)
            loss = cfg["loss_weight"] * loss_fn(logits.reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        out.append((epoch + 1, evaluate(val), time.perf_counter() - start))
        print(f"torch epoch {epoch + 1}: validation loss {out[-1][1]:.4f} "
              f"({out[-1][2]:.0f} s)", flush=True)
    if len(corpus.test):
        loss = evaluate(Streams(corpus.test, N, T, "test"))
        print(f"torch test split: loss = {loss:.6g}, perplexity = {math.exp(loss):.6g}, "
              f"bits_per_character = {loss / math.log(2):.6g}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", choices=sorted(CONFIGS))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seqgen-run", help="a finished seqgen run folder to read instead")
    parser.add_argument("--same-init", action="store_true",
                        help="both start from the same weights (seqgen's, given to PyTorch)")
    parser.add_argument("--torch-json", help="PyTorch's results: read them from this file if it "
                                             "exists, else train and write them there")
    args = parser.parse_args()
    cfg = CONFIGS[args.config]
    epochs = args.epochs or cfg["epochs"]
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed (pip install torch==2.13.0 takes a CPU build)")
    start = None
    if args.same_init:
        folder = tempfile.mkdtemp(prefix="seqgen-init-")
        start = seqgen_initial_weights(args.config, folder)
        cfg = dict(cfg, weights=os.path.join(folder, "initial.caffemodel"))
    if args.seqgen_run:
        ours = read_seqgen_run(args.seqgen_run, cfg["loss_weight"])
    elif args.torch_json and not os.path.exists(args.torch_json):
        ours = None  # PyTorch alone now; seqgen's run is read later with --seqgen-run
    else:
        ours = seqgen_run(args.config, cfg, epochs, tempfile.mkdtemp(prefix="seqgen-lm-"))
    if args.torch_json and os.path.exists(args.torch_json):
        theirs = [tuple(r) for r in json.load(open(args.torch_json))]
    else:
        theirs = torch_run(cfg, epochs, start=start)
        if args.torch_json:
            json.dump(theirs, open(args.torch_json, "w"))
    if ours is None:
        return
    word = cfg["optimizer"] == "sgd"
    print(f"\n{args.config}, {epochs} epochs, on {cpu_name()}; one thread each")
    print("| epoch | seqgen val loss | PyTorch val loss | difference | seqgen s | PyTorch s |")
    print("|---|---|---|---|---|---|")
    for (e, a, ta), (_, b, tb) in zip(ours, theirs):
        print(f"| {e} | {a:.4f} | {b:.4f} | {a - b:+.4f} | {ta:.0f} | {tb:.0f} |")
    if word:
        print(f"perplexity after the last epoch: seqgen {math.exp(ours[-1][1]):.2f}, "
              f"PyTorch {math.exp(theirs[-1][1]):.2f}")


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
