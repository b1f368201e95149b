"""Text as char-rnn and TensorFlow's PTB reader batch it: the training tokens cut into N
contiguous streams (N, T: the net's input shape), each iteration the next T tokens of every
stream with the next token as label, cont = 1 so the state carries from chunk to chunk and 0
at the start of each epoch. The validation split is scored at test_interval (default: once
per epoch) with the TEST net's state carried over the whole split; the test split at the
end. `--early-stop K` stops when validation has not improved for K tests and keeps the best
weights as <prefix>_best.caffemodel. The vocabulary is every split's (tokens.Vocabulary.of),
the run's vocab.txt on resume; `--fit-vocab` trains a copy of the net sized to it."""
import hashlib
import math
import os
import shlex

import numpy as np
from google.protobuf import text_format

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from ..io.prototxt import read_net
from ..limits import INT32_MAX, check_whole
from ..net import TEST, Net
from ..solver.solver import STOP
from .plans import DataPlan, Option, register_plan
from .roles import inputs_by_role, require_roles
from .tokens import (
    UNK,
    VOCAB_FILE,
    Vocabulary,
    is_text_spec,
    parse_fractions,
    parse_spec,
    read_text,
    split_tokens,
    tokens_of,
)
from .vocab_size import check_vocabulary, fit_sizes, fitted_net

DEFAULT_SPLIT = "0.9,0.05,0.05"
WHOLE = "1,0,0"  # a file scored whole (seqgen test --data)


def token_reader(net_path):
    """The name of an Embed layer reading a net input in the net file (a text net), or
    None (also for a file that does not read: the net's own checks say why later)."""
    try:
        param = read_net(net_path) if net_path else None
    except SeqgenError:
        return None
    if param is None:
        return None
    inputs = set(param.input) | {top for layer in param.layer if layer.type == "Input"
                                 for top in layer.top}
    return next((layer.name for layer in param.layer if layer.type == "Embed"
                 and layer.bottom and layer.bottom[0] in inputs), None)


class Corpus:
    """The token ids of the train, val and test splits of a text spec, and the vocabulary:
    built from all the splits (Vocabulary.of), or given (a run's vocab.txt, which then
    must hold every token, or `<unk>` for words; `kept_by`: the run folder a resume keeps
    it from, named when a token has no id)."""

    def __init__(self, spec, split=None, val=None, test=None, vocab=None, kept_by=None):
        self.kind, self.path = parse_spec(spec)
        tokens = tokens_of(read_text(self.path), self.kind)
        if val is None and test is None:
            train, val_tokens, test_tokens = split_tokens(
                tokens, parse_fractions(split or DEFAULT_SPLIT), self.path)
        else:
            train = tokens
            val_tokens = tokens_of(read_text(val), self.kind) if val else []
            test_tokens = tokens_of(read_text(test), self.kind) if test else []
        if kept_by is not None:
            check_kept(vocab, Vocabulary.of(train, val_tokens + test_tokens), kept_by,
                       self.path)
        self.vocab = vocab or Vocabulary.of(train, val_tokens + test_tokens)
        self.train = self.vocab.ids(train, self.path if split == WHOLE
                                    else f"{self.path} (training split)")
        self.val = self.vocab.ids(val_tokens, f"{val or self.path} (validation split)")
        self.test = self.vocab.ids(test_tokens, f"{test or self.path} (test split)")
        self.val_path, self.test_path = val or self.path, test or self.path

    def score_name(self):
        return "bits_per_character" if self.kind == "chars" else "perplexity"

    def score(self, loss):
        """bits per character (chars) or perplexity (words) of a mean loss in nats."""
        return loss / math.log(2) if self.kind == "chars" else math.exp(min(loss, 700.0))


class Streams:
    """N contiguous streams of token ids walked in chunks of T (inputs, next-token labels,
    cont 0 only at a stream's start)."""

    def __init__(self, ids, N, T, where, hint=""):
        if len(ids) < N * T + 1:
            raise SeqgenError(f"{where}: {len(ids)} tokens, fewer than one chunk of the net's "
                              f"N x T + 1 = {N} x {T} + 1 = {N * T + 1}"
                              + (f" ({hint})" if hint else ""))
        self.N, self.T = N, T
        self.length = (len(ids) - 1) // N  # tokens per stream (one more for the labels)
        starts = np.arange(N) * self.length
        self.x = np.stack([ids[s:s + self.length] for s in starts], axis=1)
        self.y = np.stack([ids[s + 1:s + self.length + 1] for s in starts], axis=1)
        self.chunks = self.length // T

    def write(self, net, roles, k):
        """Chunk k into the net's token, cont and label inputs."""
        T = self.T
        blobs = net.blobs
        blobs[roles["tokens"]].data[...] = self.x[k * T:(k + 1) * T]
        cont = blobs[roles["cont"]].data
        cont[...] = 1.0
        if k == 0:
            cont[0] = 0.0
        if "labels" in roles:
            blobs[roles["labels"]].data[...] = self.y[k * T:(k + 1) * T]


def net_shape(net, roles):
    """(T, N) of the net's token input."""
    shape = net.blobs[roles["tokens"]].shape
    if len(shape) != 2:
        raise SeqgenError(f"{net.source}: the token input '{roles['tokens']}' has shape "
                          f"{shape}; a language model's inputs are (T, N)")
    return shape


class SplitScorer:
    """The TEST net's mean loss over a whole split, its state carried across the chunks."""

    def __init__(self, net, corpus, ids, where, hint=""):
        self.net, self.corpus = net, corpus
        self.roles = inputs_by_role(net)
        require_roles(net, self.roles, ("tokens", "cont", "labels"), "scoring text")
        T, N = net_shape(net, self.roles)
        self.streams = Streams(ids, N, T, where, hint)
        weights = net.blob_loss_weights
        self.losses = [o for o in net.outputs if weights.get(o)]

    def __call__(self, solver=None):
        net = self.net
        saved = net.get_state()
        net.reset_state()
        sums = np.zeros(len(self.losses))
        try:
            for k in range(self.streams.chunks):
                self.streams.write(net, self.roles, k)
                outputs = net.forward()
                sums += [float(np.asarray(outputs[o]).ravel()[0]) for o in self.losses]
        finally:
            net.set_state(saved)
        means = sums / max(1, self.streams.chunks)
        weights = net.blob_loss_weights
        results = [(o, float(v), weights[o]) for o, v in zip(self.losses, means)]
        if results:
            results.append((self.corpus.score_name(), self.corpus.score(results[0][1]), 0.0))
        return results


@register_plan
class TextPlan(DataPlan):
    """chars:FILE / words:FILE, see the module docstring."""

    kind = "text"
    described = "text data (chars:FILE or words:FILE)"
    options = (
        Option("split", "--split", "text: the fractions of the file taken in order for "
               "training, validation and test (default 0.9,0.05,0.05)",
               metavar="TRAIN,VAL[,TEST]", recorded="text.split"),
        Option("val", "--val", "text: a separate validation file", metavar="FILE",
               recorded="text.val"),
        Option("test", "--test", "text: a separate test file", metavar="FILE",
               recorded="text.test"),
        Option("epochs", "--epochs", "text: train E passes over the training split (sets "
               "max_iter)", int, "E"),
        Option("fit_vocab", "--fit-vocab", "text: train a copy of the net whose Embed "
               "input_dim and output num_output are the vocabulary's size, written into the "
               "run folder (the net file is not changed)", switch=True, switch_to=True,
               recorded="text.fit_vocab"),
        Option("early_stop", "--early-stop", "text: stop when the validation loss has not "
               "improved for K tests; the best weights are kept as PREFIX_best.caffemodel",
               int, "K", recorded="text.early_stop"),
    )

    @classmethod
    def accepts(cls, spec, has_inputs):
        return is_text_spec(spec)

    @classmethod
    def misread(cls, spec, net_path):
        """A net whose Embed reads token ids from an input trains on text: a plain file or
        no --data is refused with the spec to give."""
        if is_text_spec(spec):
            return None
        reader = token_reader(net_path)
        if reader is None:
            return None
        read = f"{net_path} is a text net (layer '{reader}' (Embed) reads token ids)"
        if spec is None:
            return f"{read}: it needs --data chars:FILE (a token a character) or words:FILE"
        file = spec if os.path.isfile(spec) else "FILE"
        return (f"--data {spec}: {read}; give --data chars:{file} (a token a character) or "
                f"--data words:{file} (whitespace-separated words)")

    @classmethod
    def refusal(cls, flag, value, options):
        if flag == "--input":
            return (f"--input {value} is for sequence data; a text run feeds token ids and "
                    "its labels are the next tokens")
        if flag == "--holdout":
            return ("--holdout is for sequence data; a text run is validated on its "
                    "validation split (--split or --val)")
        return (f"{flag} is for sequence data in input mode previous (the feedback "
                "schedule); a text run feeds the true tokens")

    def __init__(self, options, net_path, log):
        super().__init__(options, net_path, log)
        kept, folder = kept_vocabulary(options)
        self.corpus = Corpus(options.data, options.split, options.val, options.test,
                             options.vocab or kept, kept_by=folder if kept else None)
        self.early = {"best": None, "best_iter": None, "since": 0}
        self.tester = None
        self.fitted = None  # (NetParameter, its file in the run folder) with --fit-vocab

    def bind(self, solver):
        net = solver.net
        self.roles = inputs_by_role(net)
        require_roles(net, self.roles, ("tokens", "cont", "labels"), "training on text")
        check_vocabulary(net, self.roles, self.corpus.vocab, self.corpus.path,
                         "or train with --fit-vocab: the run gets a copy of the net with that "
                         "size")
        T, N = net_shape(net, self.roles)
        self.streams = Streams(self.corpus.train, N, T, f"{self.corpus.path} (training split)",
                               "give a longer file, or a net with smaller input shape (T, N)")
        self.passes = 0
        p = solver.param
        if self.options.epochs:
            chunks = self.streams.chunks
            check_whole("--epochs", self.options.epochs, 1, INT32_MAX // chunks,
                        f"{chunks} iterations an epoch, and max_iter is a 32-bit integer")
            p.max_iter = self.options.epochs * chunks
        if len(self.corpus.val):
            self.tester = SplitScorer(self._test_net(solver), self.corpus, self.corpus.val,
                                      f"{self.corpus.val_path} (validation split)",
                                      split_hint(self.options, "validation", "--val"))
            if not p.test_interval:
                p.test_interval = self.streams.chunks  # once per epoch
        if len(self.corpus.test):  # checked now, not after the training
            Streams(self.corpus.test, N, T, f"{self.corpus.test_path} (test split)",
                    split_hint(self.options, "test", "--test"))
        self.prefix = solver.snapshot_prefix()
        return self

    def adapted_net(self, net_path, folder):
        if not self.options.fit_vocab:
            return None
        param, sizes = fit_sizes(net_path, len(self.corpus.vocab))
        stem = os.path.splitext(os.path.basename(net_path))[0]
        copy = os.path.join(folder, f"{stem}_vocab{len(self.corpus.vocab)}.prototxt")
        if os.path.abspath(copy) == os.path.abspath(net_path):  # never the net file itself
            copy = os.path.join(folder, f"{stem}_fitted.prototxt")
        header = (f"# seqgen train --fit-vocab: {net_path} with "
                  + ", ".join(f"layer '{k}' sized {v}" for k, v in sizes.items())
                  + f" (the vocabulary of {self.corpus.path})\n")
        self.fitted = (fitted_net(param, sizes), copy, header)
        self.log(f"--fit-vocab: training {copy}, a copy of {net_path} with "
                 + ", ".join(f"'{k}' sized {v}" for k, v in sizes.items()))
        return self.fitted[:2]

    def _test_net(self, solver):
        net = Net(self.fitted[0] if self.fitted else self.net_path, TEST,
                  options=solver.options)
        net.share_weights(solver.net)
        return net

    # -- the solver callback -----------------------------------------------------------
    def before_forward(self, solver):
        k = self.passes % self.streams.chunks
        if k == 0:
            self.log(f"Epoch {self.passes // self.streams.chunks + 1} (iteration "
                     f"{solver.iter})")
        self.streams.write(solver.net, self.roles, k)
        self.passes += 1

    def after_test(self, solver, results):
        loss = results[0][1] if results else float("nan")
        if self.early["best"] is None or loss < self.early["best"]:
            self.early.update(best=loss, best_iter=solver.iter, since=0)
            if self.options.early_stop:
                solver.net.save(self.best_path())
        else:
            self.early["since"] += 1
        K = self.options.early_stop
        if K and self.early["since"] >= K and solver.iter < solver.param.max_iter:
            self.log(f"Early stop: the validation loss has not improved for {K} tests (best "
                     f"{self.early['best']:.6g} at iteration {self.early['best_iter']}, kept "
                     f"as {self.best_path()})")
            solver.request(STOP)

    def best_path(self):
        return f"{self.prefix}_best.caffemodel"

    def snapshot_state(self, solver):
        return {"passes": int(self.passes), "early_stop": dict(self.early)}, {}

    def restore_state(self, solver, meta, arrays):
        self.passes = int(meta.get("passes", 0))
        self.early.update(meta.get("early_stop") or {})

    def restore_without_sidecar(self, solver):
        self.passes = solver.iter * max(1, solver.param.iter_size)

    # -- what the driver asks ----------------------------------------------------------
    def describe(self):
        c, s = self.corpus, self.streams
        return (f"{c.path} ({c.kind}: {len(c.train)} training, {len(c.val)} validation, "
                f"{len(c.test)} test tokens; vocabulary {len(c.vocab)}; {s.N} streams of "
                f"{s.length} tokens in chunks of {s.T}, {s.chunks} iterations an epoch)")

    def identity(self):
        h = hashlib.sha256(np.ascontiguousarray(self.corpus.train).tobytes())
        h.update("\n".join(self.corpus.vocab.tokens).encode())
        return h.hexdigest()[:16]

    def record(self):
        o = self.options
        return {"text": {"split": o.split if o.val is None and o.test is None
                         else None, "val": _abs(o.val), "test": _abs(o.test),
                         "early_stop": o.early_stop, "vocabulary": len(self.corpus.vocab),
                         "iterations_per_epoch": self.streams.chunks,
                         **({"fit_vocab": True} if o.fit_vocab else {})}}

    def prepare_folder(self, folder):
        self.corpus.vocab.write(folder)
        if self.fitted:
            net_param, copy, header = self.fitted
            atomic_write_text(copy, header + text_format.MessageToString(net_param))

    def finish_test_due(self, solver):
        return self.tester is not None

    def final_scores(self, solver):
        """The test split scored with the best (early stopping) or the final weights."""
        if not len(self.corpus.test):
            return {}
        if self.options.early_stop and os.path.exists(self.best_path()):
            solver.net.copy_from(self.best_path())
        scorer = SplitScorer(self._test_net(solver), self.corpus, self.corpus.test,
                             f"{self.corpus.test_path} (test split)",
                             split_hint(self.options, "test", "--test"))
        results = scorer()
        loss, score = results[0][1], results[-1][1]
        self.log(f"Test split: loss = {loss:.6g}, {self.corpus.score_name()} = {score:.6g}")
        return {"test_split_loss": loss, self.corpus.score_name(): score}

    def next_hint(self, folder):
        first = self.corpus.vocab.text(self.corpus.train[:4 if self.corpus.kind == "chars"
                                                          else 2], self.corpus.kind)
        return (f"seqgen generate --prime {shlex.quote(first)} --steps 500 "
                "--temperature 0.8")


def split_hint(options, part, flag):
    """How to give a split more tokens."""
    if options.val is None and options.test is None:
        return f"give a larger {part} fraction in --split, or a {flag} FILE"
    return f"give a longer {flag} file"


def check_kept(kept, fresh, folder, path):
    """A resume keeps its run's vocabulary (so every id means what the weights learnt);
    a token the data has and that vocabulary lacks has no id, and is refused even with
    --allow-changes (words become `<unk>` when it has one)."""
    added = [t for t in fresh.tokens if t not in kept.index]
    if not added or UNK in kept.index:
        return
    raise SeqgenError(
        f"{path}: its vocabulary differs from the run's "
        f"{os.path.join(os.path.relpath(folder), VOCAB_FILE)} ({len(added)} token(s) added: "
        f"{_shown(sorted(added))}): the run's net has no ids for them, so this resume is "
        "refused even with --allow-changes; start a new run on this data")


def kept_vocabulary(options):
    """(vocabulary, folder) a resume keeps: the resumed snapshot's run's vocab.txt; (None,
    None) when not resuming or the folder has none."""
    if not options.resuming:
        return None, None
    folder = os.path.dirname(os.path.abspath(str(options.resuming)))
    if not os.path.exists(os.path.join(folder, VOCAB_FILE)):
        return None, None
    return Vocabulary.read(folder), folder


def _shown(tokens, most=10):
    more = f" and {len(tokens) - most} more" if len(tokens) > most else ""
    return ", ".join(repr(t) for t in tokens[:most]) + more


def _abs(path):
    return os.path.abspath(path) if path else None
