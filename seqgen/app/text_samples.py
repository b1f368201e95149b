"""A text run's samples on file: generated.txt holds the samples as `seqgen generate` prints
them (a line of dashes between two, as nanoGPT's sample.py prints them) and generated.json
beside it everything that draws them again (run, snapshot, net, seed and every decoding
setting), written together; and the seed sampling starts from when none is given.

The rule that keeps a sample: a generated.txt is replaced only when generated.json is its
record (the record holds the text's sha256). An earlier generated.txt without one (an earlier
seqgen's, an edit, a sample whose record was never written) is kept under a new name,
generated-unrecorded-TIMESTAMP.txt, and the command says so.
"""
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping

from .. import __version__
from ..io.atomic import atomic_write_text
from ..runs.pick import shown

#: the sampling seed without --seed: char-rnn's (sample.lua's -seed 123), so the same command
#: draws the same text; --seed S draws another
DEFAULT_SEED = 123
#: the line between two samples, on stdout and in generated.txt (nanoGPT prints 15 dashes)
SEPARATOR = "-" * 15
TEXT_FILE = "generated.txt"
RECORD_FILE = "generated.json"
#: what generated.json's "kind" says: a text sample's record, not a sequence generation's
KIND = "text samples"


def join_samples(texts):
    """The samples as printed and written: each ends with a newline, SEPARATOR between two."""
    return f"{SEPARATOR}\n".join(f"{text}\n" for text in texts)


def settings_dict(settings):
    """The decoding settings as a plain dict: a dataclass (asdict) or any mapping, so that a
    setting added to them reaches the record with no code here."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    if isinstance(settings, Mapping):
        return dict(settings)
    raise TypeError(f"settings: a dataclass or a mapping, not {type(settings).__name__}")


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample_record(text, settings, run=None, snapshot=None, net=None):
    """generated.json's contents for the samples `text` (as joined) drawn with `settings`."""
    absolute = lambda path: None if path is None else os.path.abspath(path)
    return {"kind": KIND, "run": absolute(run), "snapshot": absolute(snapshot),
            "net": absolute(net), **settings_dict(settings), "text_sha256": digest(text),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seqgen": __version__}


def recorded(folder):
    """Whether generated.txt in `folder` is the one generated.json records (or absent)."""
    text_path = os.path.join(folder, TEXT_FILE)
    try:
        with open(text_path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    try:
        with open(os.path.join(folder, RECORD_FILE), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("text_sha256") == digest(text)


def keep_unrecorded(folder, log):
    """Move an unrecorded generated.txt out of the way (generated-unrecorded-TIMESTAMP.txt);
    returns its new path, or None when there was nothing to keep."""
    if recorded(folder):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept, k = os.path.join(folder, f"generated-unrecorded-{stamp}.txt"), 1
    while os.path.exists(kept):
        k += 1
        kept = os.path.join(folder, f"generated-unrecorded-{stamp}-{k}.txt")
    os.replace(os.path.join(folder, TEXT_FILE), kept)
    log(f"Kept the earlier {TEXT_FILE}, which {RECORD_FILE} does not record, as "
        f"{shown(kept)}")
    return kept


def write_samples(folder, texts, settings, run=None, snapshot=None, net=None, log=print):
    """Write generated.txt and its record generated.json into `folder` (kept: an earlier
    unrecorded generated.txt); returns (the joined text, generated.txt's path)."""
    text = join_samples(texts)
    os.makedirs(folder, exist_ok=True)
    keep_unrecorded(folder, log)
    path = os.path.join(folder, TEXT_FILE)
    record = sample_record(text, settings, run, snapshot, net)
    atomic_write_text(path, text)
    atomic_write_text(os.path.join(folder, RECORD_FILE),
                      json.dumps(record, indent=2, default=str) + "\n")
    return text, path
