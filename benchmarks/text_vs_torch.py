"""seqgen and PyTorch side by side on the two shipped language models: per-epoch validation
loss and wall time of the same net, data split, batches, optimizer and clipping.

    python benchmarks/text_vs_torch.py char_rnn [--epochs 10]
    python benchmarks/text_vs_torch.py ptb_small [--epochs 13]
    python benchmarks/text_vs_torch.py char_rnn --seqgen-run RUN   # reuse a finished run

PyTorch (nn.Embedding + nn.LSTM + nn.Linear, one thread) gets exactly seqgen's batches:
the token streams come from seqgen's own Corpus/Streams, the hidden state is carried
from chunk to chunk and reset at each epoch, as seqgen's cont markers do. Runs only when
torch is importable (PyPI's wheel is large; this is not part of the test suite).

The PyTorch side trains Caffe's model and solver, not PyTorch's defaults (where the two
differ, Caffe's behaviour is the reference: seqgen is checked against recordings of real
Caffe):
- nn.LSTM's second bias, bias_hh, is 0 and frozen (requires_grad False), so the LSTM has
  Caffe's one bias per layer. (Before 2026-12, bias_hh was zeroed but trainable: it got
  the same gradient as bias_ih, so the effective bias took two RMSProp steps per iteration
  and the clipping norm counted the LSTM bias gradients twice.)
- Gates: Caffe's blocks i, f, o, g are reordered to PyTorch's i, f, g, o (caffe_order).
- Optimizer and clipping come from the solver file: RMSProp H = d*H + (1-d)*g^2, step =
  lr*g/(sqrt(H) + delta), as torch.optim.RMSprop(alpha=d, eps=delta); Caffe's
  ClipGradients (scale clip/norm when the global norm exceeds clip) written out, rather
  than clip_grad_norm_, whose clip/(norm + 1e-6) differs by ~1e-6/norm.
- Loss: SoftmaxWithLoss's mean over the T*N labels (cross_entropy's mean) times the
  net's loss_weight; truncated BPTT (the carried state is detached).
tests/test_char_lm_step.py checks one and five iterations of these functions against
seqgen and an independent float64 model of Caffe's formulas (loss, gradients, clip scale,
weights).
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
                      loss_weight=20.0, epochs=13, hold=4),
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


def torch_lm(V, E, H, layers, init):
    """PyTorch's version of the shipped nets: nn.Embedding + nn.LSTM + nn.Linear, every
    parameter uniform in [-init, init] (as the prototxts' fillers) except bias_hh.

    nn.LSTM has two biases per layer (b_ih + b_hh), Caffe's LSTM one (b_c). bias_hh is set
    to 0 and frozen (requires_grad False): left trainable it gets the same gradient as
    bias_ih, so the effective bias b_ih + b_hh would move by two optimizer steps per
    iteration (twice the rate under SGD, two full-size steps under RMSProp, whose step size
    does not depend on the gradient's scale) and the clipping norm would count the bias
    gradients twice -- a different model and optimizer from Caffe's."""
    import torch

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, layers)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, state):
            h, state = self.lstm(self.embed(x), state)
            return self.out(h), state

    model = LM()
    for p in model.parameters():
        torch.nn.init.uniform_(p, -init, init)
    for name, p in model.lstm.named_parameters():
        if name.startswith("bias_hh"):
            p.requires_grad_(False)
            with torch.no_grad():
                p.zero_()
    return model


def trainable(model):
    """The parameters the optimizer and the clipping see (bias_hh is not one)."""
    return [p for p in model.parameters() if p.requires_grad]


def caffe_order(a):
    """Caffe's LSTM gate blocks i, f, o, g <-> PyTorch's i, f, g, o (the swap is its own
    inverse)."""
    return np.concatenate([np.split(a, 4)[i] for i in (0, 1, 3, 2)])


def copy_weights(model, net):
    """seqgen's Embed/LSTM/InnerProduct weights into the PyTorch module (gates reordered by
    caffe_order; Caffe's one bias goes to bias_ih, bias_hh stays 0 and frozen)."""
    import torch

    params = net.params
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(params["embed"][0].data))
        for k, name in enumerate(n for n in params if n.startswith("lstm")):
            W_x, b, W_h = (blob.data for blob in params[name])
            getattr(model.lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(caffe_order(W_x)))
            getattr(model.lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(caffe_order(W_h)))
            getattr(model.lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(caffe_order(b)))
            getattr(model.lstm, f"bias_hh_l{k}").zero_()
        model.out.weight.copy_(torch.from_numpy(params["predict"][0].data))
        model.out.bias.copy_(torch.from_numpy(params["predict"][1].data))


def torch_optimizer(model, sp):
    """Caffe's solver `sp` (a SolverParameter, weight_decay 0, momentum 0) in PyTorch.
    RMSProp: H = d*H + (1-d)*g^2, step = lr*g/(sqrt(H) + delta), both frameworks (eps
    outside the square root, history starting at 0)."""
    import torch

    assert sp.weight_decay == 0 and sp.momentum == 0 and sp.iter_size == 1, sp
    if sp.type == "RMSProp":
        return torch.optim.RMSprop(trainable(model), lr=sp.base_lr, alpha=sp.rms_decay,
                                   eps=sp.delta)
    assert sp.type == "SGD", sp.type
    return torch.optim.SGD(trainable(model), lr=sp.base_lr)


def torch_forward_backward(model, opt, x, y, state, loss_weight):
    """One chunk: the loss (SoftmaxWithLoss = the mean over T*N, times loss_weight) and its
    gradients, from the carried `state` (detached: truncated BPTT as Caffe's); returns
    (loss, the final state)."""
    import torch

    if state is not None:
        state = tuple(s.detach() for s in state)
    logits, state = model(torch.from_numpy(np.asarray(x, np.int64)), state)
    loss = loss_weight * torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        torch.from_numpy(np.asarray(y, np.int64)).reshape(-1))
    opt.zero_grad()
    loss.backward()
    return float(loss.detach()), state


def torch_update(model, opt, clip):
    """Caffe's ClipGradients, then the update: when the global L2 norm of the gradients
    exceeds `clip` (>= 0), every gradient is scaled by clip/norm. (clip_grad_norm_ would
    scale by clip/(norm + 1e-6): 2e-7 relative less at norm 5, 4e-6 at norm 0.25.)
    Returns the norm before clipping."""
    import torch

    grads = [p.grad for p in trainable(model) if p.grad is not None]
    norm = float(torch.sqrt(sum(torch.sum(g.double() ** 2) for g in grads)))
    if 0 <= clip < norm:
        for g in grads:
            g.mul_(clip / norm)
    opt.step()
    return norm


def torch_run(cfg, solver, epochs, seed=1, start=None):
    """The same training in PyTorch (from seqgen's Net `start`'s weights when given) with
    the solver file's optimizer and clipping; returns [(epoch, validation loss, seconds so
    far)]."""
    import torch

    from seqgen.data.text import Corpus, Streams
    from seqgen.io.prototxt import read_solver

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    sp = read_solver(solver)
    corpus = Corpus(cfg["data"], cfg["split"], cfg["val"], cfg["test"])
    V = len(corpus.vocab)
    T, N = (50, 50) if cfg["optimizer"] == "rmsprop" else (20, 20)
    train, val = Streams(corpus.train, N, T, "train"), Streams(corpus.val, N, T, "val")
    model = torch_lm(V, cfg["E"], cfg["H"], cfg["layers"], cfg["init"])
    if start is not None:
        copy_weights(model, start)
    opt = torch_optimizer(model, sp)
    schedule = None
    if cfg["optimizer"] == "sgd":
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
                group["lr"] = sp.base_lr * schedule(epoch)
        state = None  # seqgen's cont[0] = 0 at the first chunk of each epoch
        for k in range(train.chunks):
            _, state = torch_forward_backward(model, opt, train.x[k * T:(k + 1) * T],
                                              train.y[k * T:(k + 1) * T], state,
                                              cfg["loss_weight"])
            torch_update(model, opt, sp.clip_gradients)
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
        theirs = torch_run(cfg, str(ROOT / "prototxt" / f"{args.config}_solver.prototxt"),
                           epochs, start=start)
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
