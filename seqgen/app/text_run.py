"""What `seqgen generate` and `seqgen test` do for a text run: sample text from the trained
language model, and score it on its test split or on another file. The run's vocab.txt
maps token ids to text."""
import os

import numpy as np

from ..data.roles import inputs_by_role
from ..data.text import WHOLE, Corpus, SplitScorer
from ..data.tokens import EOS, UNK, Vocabulary, is_text_spec, parse_spec
from ..data.vocab_size import check_vocabulary
from ..errors import SeqgenError
from ..generation.decoding import Decoding, sample
from ..generation.sample import spare_outputs, token_inputs
from ..limits import MEMORY_LIMIT, check_memory, check_whole
from ..net import TEST, Net
from ..runs.pick import Picked, pick_run
from .text_samples import DEFAULT_SEED, write_samples


def text_kind(record):
    return parse_spec(record.data)[0]


def load_text_run(folder, record, weights=None, net=None):
    """(TEST net with the run's weights, vocabulary) of a text run, checked together."""
    vocab = Vocabulary.read(folder)
    net = Net(net or record.net, weights or record.weights, TEST)
    roles = inputs_by_role(net)
    check_vocabulary(net, roles, vocab, os.path.join(folder, "vocab.txt"))
    return net, vocab


def prime_ids(vocab, prime, kind):
    """The prime's token ids; characters or words not in the vocabulary are named (words
    become <unk> when the vocabulary has it)."""
    tokens = list(prime) if kind == "chars" else prime.split()
    if not tokens:
        raise SeqgenError("--prime: give some text to start from (e.g. --prime 'The ')")
    missing = sorted({t for t in tokens if t not in vocab.index})
    if missing and (kind == "chars" or UNK not in vocab.index):
        shown = ", ".join(repr(t) for t in missing[:10])
        raise SeqgenError(f"--prime: {len(missing)} {'character' if kind == 'chars' else 'word'}"
                          f"(s) not in the run's vocabulary: {shown}")
    return vocab.ids(tokens, "--prime")


#: what one sampled token holds until generated.txt is written: its id and uniform (8 + 8
#: bytes), the id as a Python int in a list (about 36), its place in the token list (8) and
#: its text (up to 4 bytes a character, more for a word): about 64 bytes
BYTES_PER_TOKEN = 64


def check_sample_size(steps, samples):
    """Refuse --steps x --samples beyond what seqgen holds in memory for one request."""
    fits = MEMORY_LIMIT // (BYTES_PER_TOKEN * samples)
    what = f"--steps {steps}" + (f" x --samples {samples}" if samples > 1 else "")
    check_memory(what, steps * samples * BYTES_PER_TOKEN,
                 f"give --steps {fits} or fewer" if fits else "give fewer --samples")


def read_prime_file(path):
    """The prime held in a file (nanoGPT's --start=FILE:), as UTF-8 text."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise SeqgenError(f"--prime-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SeqgenError(f"--prime-file {path}: cannot read it as UTF-8 text ({e})") from None
    if not text:
        raise SeqgenError(f"--prime-file {path}: the file is empty; give some text to start "
                          "from")
    return text


def static_input(net, path):
    """(input name, values) for --static FILE.npy: the net's static input (what a recurrent
    layer reads as x_static), checked against the file's shape."""
    roles = inputs_by_role(net)
    name = roles.get("static")
    if name is None:
        raise SeqgenError(f"--static {path}: the net has no static input (an Input read by "
                          f"a recurrent layer as x_static; inputs: {', '.join(net.inputs)})")
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SeqgenError(f"--static {path}: cannot read it as a .npy array ({e})") from None
    want = tuple(net.blobs[name].shape[1:])
    if values.shape not in (want, (1,) + want) or values.dtype.kind not in "iuf":
        raise SeqgenError(f"--static {path}: an array of shape {values.shape} "
                          f"({values.dtype}), but the net's static input '{name}' takes "
                          f"numbers of shape {want} (or {(1,) + want})")
    return name, np.asarray(values, np.float32)


def _decoded_texts(results, ids, vocab, kind, beam):
    """The texts of decoded samples (prime included); a beam's each headed by its
    log-probability."""
    texts = []
    for i, result in enumerate(results):
        text = vocab.text(list(ids) + result.ids.tolist(), kind)
        if beam:
            text = (f"[beam {i + 1}: log-probability {result.logprob:.4f}, score "
                    f"{result.score:.4f}]\n{text}")
        texts.append(text)
    return texts


def sample_from_run(folder, record, prime, steps=None, temperature=1.0, top_k=0, seed=None,
                    samples=1, argmax=False, weights=None, net=None, out=None, log=print,
                    top_p=1.0, beam=0, alpha=1.0, stop=(), static=None, prime_file=None):
    """Sample `samples` texts of `steps` tokens after `prime` (or the `beam` best; seed:
    DEFAULT_SEED when None); writes generated.txt and its record generated.json in the run
    folder (or `out`) and returns (the texts as joined for printing, the path). A word
    model's sample ends at <eos> when its vocabulary has it."""
    kind = text_kind(record)
    test, vocab = load_text_run(folder, record, weights, net)
    ids = prime_ids(vocab, prime, kind)
    check_whole("--top-k", top_k, 0, len(vocab), f"the run's vocabulary has {len(vocab)} "
                "tokens; 0 means all")
    steps = steps or 500
    check_sample_size(steps, max(samples, beam))
    spare = spare_outputs(test.blobs[token_inputs(test)[2]].shape[-1], len(vocab))
    if spare:
        log(f"Note: {spare}")
    default_seed = seed is None
    seed = DEFAULT_SEED if default_seed else seed
    eos = (vocab.index[EOS],) if kind == "words" and EOS in vocab.index else ()
    decoding = Decoding(steps, temperature, top_k, top_p, argmax, samples, seed, beam, alpha,
                        tuple(stop), eos)
    results = sample(test, ids, decoding, len(vocab), lambda t: vocab.text(t, kind),
                     static_input(test, static) if static else None)
    texts = _decoded_texts(results, ids, vocab, kind, beam)
    if default_seed and not (beam or argmax):  # (said once the settings were taken)
        log(f"Seed {seed} (the default; --seed S draws other samples)")
    settings = {"prime": prime, "prime_file": prime_file, "static": static,
                **decoding.as_dict()}
    return write_samples(out or folder, texts, settings, run=folder,
                         snapshot=weights or record.weights, net=net or record.net, log=log)


def scored_file(data, record):
    """The text spec of --data for a text run: FILE as the run's kind (chars or words), or
    chars:FILE / words:FILE of that kind."""
    kind = text_kind(record)
    if not is_text_spec(data):
        return f"{kind}:{data}"
    if parse_spec(data)[0] != kind:
        raise SeqgenError(f"--data {data}: the run was trained on {record.data}; score it on "
                          f"{kind}:FILE (or just FILE)")
    return data


def run_split(folder, record, vocab):
    """(corpus, ids, where) of the split a run is scored on by default: its test split, or
    its validation split when it has none (the README's --split 0.95,0.05)."""
    text = record.get("text") or {}
    corpus = Corpus(record.get("data_abs", record.data), text.get("split"), text.get("val"),
                    text.get("test"), vocab=vocab)
    if len(corpus.test):
        return corpus, corpus.test, "the run's test split"
    if len(corpus.val):
        return corpus, corpus.val, "the run's validation split"
    raise SeqgenError(f"{folder}: the run has no test or validation split (trained with "
                      "--split 1,0); score it on another file with --data FILE")


def score_run(folder, record, data=None, weights=None, log=print):
    """Mean loss and perplexity / bits per character of a text run on its test split (its
    validation split when it has none), or on the file `data` (FILE, chars:FILE or
    words:FILE, scored whole), with the run's vocabulary."""
    net, vocab = load_text_run(folder, record, weights)
    if data is not None:
        corpus = Corpus(scored_file(data, record), WHOLE, vocab=vocab)
        ids, where = corpus.train, corpus.path
    else:
        corpus, ids, where = run_split(folder, record, vocab)
    results = SplitScorer(net, corpus, ids, where)()
    note = "; the run has no test split" if where == "the run's validation split" else ""
    return {"loss": results[0][1], corpus.score_name(): results[-1][1], "tokens": len(ids),
            "scored_on": where, "note": note}


def test_command(run=None, data=None, weights=None, log=print):
    """`seqgen test`: the lines that report a text run's scores (`log` gets the notes)."""
    picked = pick_run(run, weights, say=log, command="test")
    if picked.folder is None:  # loose --weights: with the latest run's net and vocabulary
        latest = pick_run(say=log, command="test")
        picked = Picked(latest.folder, latest.record, picked.weights)
    folder, record, weights = picked.folder, picked.record, picked.weights
    if record.data_kind != "text":
        raise SeqgenError(f"{folder}: seqgen test scores text runs; this run was trained on "
                          f"{record.data or 'its own data layers'} (its test loss is in "
                          "test_loss.csv)")
    scores = score_run(folder, record, data, weights)
    name = "bits_per_character" if "bits_per_character" in scores else "perplexity"
    return [f"{scores['scored_on']} ({scores['tokens']} tokens{scores['note']}): loss = "
            f"{scores['loss']:.6g}, "
            f"{name} = {scores[name]:.6g}"]

