"""One decoding request for a token language model: every setting in one `Decoding` (so a
record can store it with dataclasses.asdict), and `sample`, the entry point the command
line uses: M sampled streams in one batched pass, or beam search, each ended at a stop
string or stop id.

Stream i draws with seed `stream_seeds(seed, M)[i]`, which does not depend on M, so
sample i's text is the same drawn alone (`sample_tokens(..., seed=that seed)`) or in a
batch. A stop string ends a sample at the token that completes it in the generated text
(the prime is not searched); the sample keeps that token. A stop id (a word model's
<eos>) ends it at that token, kept too.
"""
import dataclasses
import math
import numbers

import numpy as np

from ..errors import SeqgenError
from .beam import beam_search
from .sample import draw_streams, drawable, stream_seeds, token_inputs


@dataclasses.dataclass
class Decoding:
    """How to decode: sampling (temperature, top_k, top_p, or argmax; `samples` streams
    from `seed`) or beam search (beam > 0: the `beam` best texts, length-normalised with
    `alpha`), ended after `steps` tokens, at a stop string or at a stop id."""
    steps: int = 500
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    argmax: bool = False
    samples: int = 1
    seed: int | None = None
    beam: int = 0
    alpha: float = 1.0
    stop: tuple = ()
    stop_ids: tuple = ()

    def as_dict(self):
        """The settings as plain JSON values."""
        d = dataclasses.asdict(self)
        d["stop"], d["stop_ids"] = list(self.stop), [int(i) for i in self.stop_ids]
        return d

    def check(self, n):
        """Refuse settings that cannot decode a vocabulary of n tokens, in one line."""
        if not (isinstance(self.top_p, numbers.Real) and 0 < self.top_p <= 1):
            raise SeqgenError(f"--top-p must be in (0, 1] (1 keeps every token), got "
                              f"{self.top_p!r}")
        if not isinstance(self.beam, numbers.Integral) or not 0 <= self.beam <= n:
            raise SeqgenError(f"--beam must be an integer from 1 to {n} (the vocabulary's "
                              f"size), got {self.beam!r}")
        if not (isinstance(self.alpha, numbers.Real) and math.isfinite(self.alpha)
                and self.alpha >= 0):
            raise SeqgenError(f"--beam-alpha must be a finite number >= 0, got {self.alpha!r}")
        if not isinstance(self.samples, numbers.Integral) or self.samples < 1:
            raise SeqgenError(f"--samples must be a positive integer, got {self.samples!r}")
        if any(not s for s in self.stop):
            raise SeqgenError("--stop: give a non-empty string")
        bad = [i for i in self.stop_ids if not 0 <= i < n]
        if bad:
            raise SeqgenError(f"stop id {bad[0]} is outside [0, {n}) (the vocabulary)")
        if self.beam and (self.samples > 1 or self.argmax or self.top_k or self.top_p < 1
                          or self.temperature != 1.0):
            raise SeqgenError("--beam searches for the most likely texts; it takes none of "
                              "--samples, --temperature, --top-k, --top-p, --argmax")


@dataclasses.dataclass
class Sample:
    """One decoded text: the generated ids (after the prime), why it ended ("steps",
    "stop" or "stop_id"), its stream seed (sampling) or its log-probability and
    length-normalised score (beam search)."""
    ids: np.ndarray
    ended: str = "steps"
    seed: int | None = None
    logprob: float | None = None
    score: float | None = None


def stop_at(ids, decoding, text=None):
    """(the length of ids up to and including the first stop, what ended it): a stop id,
    or the first token whose text completes a stop string. text(ids) -> str is needed
    for stop strings; a stop string spans at most len(stop) + 1 tokens' text."""
    ids = [int(i) for i in ids]
    stop_ids = set(int(i) for i in decoding.stop_ids)
    span = max((len(s) for s in decoding.stop), default=0) + 1
    for t, token in enumerate(ids):
        if token in stop_ids:
            return t + 1, "stop_id"
        if decoding.stop:
            window = text(ids[max(0, t + 1 - span):t + 1])
            if any(s in window for s in decoding.stop):
                return t + 1, "stop"
    return len(ids), "steps"


def sample(net, prime_ids, decoding, vocab_size=None, text=None, static=None,
           compiled=True):
    """Decode after prime_ids with a TEST language-model net: a list of Sample, one per
    stream (sampling) or the `beam` best (beam search), each cut at its first stop.
    vocab_size: ids from it on are never produced; text(ids) -> str: needed for stop
    strings; static: (input name, values) of a net's static input."""
    if decoding.stop and text is None:
        raise SeqgenError("stop strings need the vocabulary's text (give text=...)")
    decoding.check(drawable(vocab_size, net.blobs[token_inputs(net)[2]].shape[-1]))
    if decoding.beam:
        return beam_search(net, prime_ids, decoding, vocab_size, text, static)
    seeds = stream_seeds(decoding.seed, decoding.samples)
    rows, _ = draw_streams(net, prime_ids, decoding.steps, seeds, decoding.temperature,
                           decoding.top_k, decoding.top_p, decoding.argmax, compiled,
                           vocab_size, static)
    out = []
    for seed, ids in zip(seeds, rows):
        end, ended = stop_at(ids, decoding, text)
        out.append(Sample(ids[:end], ended, seed))
    return out
