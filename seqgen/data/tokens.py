"""Text to train language models on: `chars:FILE` (one token per character) or `words:FILE`
(whitespace-separated words, each newline an `<eos>` token, as TensorFlow's PTB reader
reads it), UTF-8; the vocabulary of all the splits (saved as vocab.txt, one token a line)
and the token ids of every split."""
import os
from dataclasses import dataclass

import numpy as np

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text
from ..io.reading import read_bytes
from ..limits import MEMORY_LIMIT

KINDS = ("chars", "words")
EOS, UNK = "<eos>", "<unk>"
VOCAB_FILE = "vocab.txt"
# vocab.txt holds one token a line: the characters that would break that are escaped
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r"}


def is_text_spec(spec):
    return isinstance(spec, str) and spec.split(":", 1)[0] in KINDS and ":" in spec


def parse_spec(spec):
    """(kind, path) of `chars:FILE` / `words:FILE`."""
    kind, _, path = spec.partition(":")
    if kind not in KINDS or not path:
        raise SeqgenError(f"--data {spec}: text data is chars:FILE or words:FILE")
    return kind, path


#: what a byte of text holds while read, tokenised and turned into ids: the text (up to 4
#: bytes a character), the token list (8), the ids (8), the streams' copies (8): 32 bytes
BYTES_PER_TEXT_BYTE = 32


def read_text(path):
    """The file's text; one-line errors for a missing, non-UTF-8, empty or too large file
    (beyond what fits seqgen's memory limit once tokenised)."""
    raw = read_bytes(path, MEMORY_LIMIT // BYTES_PER_TEXT_BYTE, "text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeqgenError(f"{path}: not UTF-8 text: byte 0x{raw[e.start]:02x} at byte offset "
                          f"{e.start} cannot be decoded") from None
    if not text:
        raise SeqgenError(f"{path}: the file is empty")
    if not text.strip():
        lines = len(text.splitlines())
        raise SeqgenError(f"{path}: no text, only whitespace ({len(text)} character(s) on "
                          f"{lines} blank line(s))")
    return text


def tokens_of(text, kind):
    """The token list of a text: its characters, or its words with <eos> for each line."""
    if kind == "chars":
        return list(text)
    out = []
    for line in text.splitlines():
        out.extend(line.split())
        out.append(EOS)
    return out


def split_tokens(tokens, fractions, path):
    """The train, val and test parts of `tokens`, taken in order by `fractions`."""
    n = len(tokens)
    bounds = np.cumsum([0] + list(fractions))
    cuts = [int(round(b * n)) for b in bounds]
    parts = [tokens[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    while len(parts) < 3:
        parts.append([])
    return parts


def parse_fractions(text):
    """--split TRAIN,VAL[,TEST] as floats that sum to at most 1."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise SeqgenError(f"--split {text}: expected two or three fractions, such as "
                          "0.9,0.05,0.05") from None
    if not 2 <= len(values) <= 3 or any(v < 0 for v in values) or values[0] <= 0 \
            or sum(values) > 1 + 1e-9:
        raise SeqgenError(f"--split {text}: expected two or three fractions >= 0 (the first "
                          "> 0) that add up to at most 1, such as 0.9,0.05,0.05")
    return values


@dataclass
class Vocabulary:
    """Token <-> id; ids are positions in the token list (see `of`)."""
    tokens: list

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    @classmethod
    def of(cls, tokens, others=()):
        """The training split's tokens sorted, then the tokens only the other splits have,
        sorted (char-rnn and nanoGPT take every split's characters: a character only in
        the validation part is no error). Sorted training tokens first, because seqgen
        0.2 numbered those alone so, and its runs keep their ids. A training split
        holding `<unk>` is a corpus with a closed vocabulary (PTB): words outside it are
        `<unk>` there, as TensorFlow's reader makes them, not new ids no step trains."""
        own = set(tokens)
        if UNK in own:
            return cls(sorted(own))
        return cls(sorted(own) + sorted(set(others) - own))

    def ids(self, tokens, where):
        """Token ids; unknown tokens become <unk> when the vocabulary has it, else an
        error naming them."""
        unk = self.index.get(UNK)
        missing = {t for t in set(tokens) if t not in self.index}
        if missing and unk is None:
            shown = ", ".join(repr(t) for t in sorted(missing)[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise SeqgenError(f"{where}: {len(missing)} token(s) not in the vocabulary: "
                              f"{shown}{more}")
        return np.array([self.index.get(t, unk) for t in tokens], np.int64)

    def text(self, ids, kind):
        """Ids back to text: characters joined, or words joined by spaces with <eos> as a
        line break."""
        tokens = [self.tokens[i] for i in ids]
        if kind == "chars":
            return "".join(tokens)
        lines, line = [], []
        for token in tokens:  # (no space next to a line break, at either end too)
            if token == EOS:
                lines.append(" ".join(line))
                line = []
            else:
                line.append(token)
        return "\n".join(lines + [" ".join(line)])

    def file_text(self):
        """vocab.txt's text: one token a line, in id order, newlines and backslashes
        escaped."""
        lines = ["".join(_ESCAPES.get(c, c) for c in t) for t in self.tokens]
        return "\n".join(lines) + "\n"

    def write(self, folder):
        atomic_write_text(os.path.join(folder, VOCAB_FILE), self.file_text())

    @classmethod
    def read(cls, folder):
        path = os.path.join(folder, VOCAB_FILE)
        try:
            with open(path, encoding="utf-8", newline="\n") as f:
                lines = f.read().split("\n")[:-1]
        except FileNotFoundError:
            raise SeqgenError(f"{folder}: the text run has no {VOCAB_FILE} (it was deleted?); "
                              "without it the net's token ids mean nothing") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SeqgenError(f"{path}: cannot read the vocabulary ({e})") from None
        return cls([_unescape(line) for line in lines])


def _unescape(line):
    out, i = [], 0
    while i < len(line):
        pair = line[i:i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out)
