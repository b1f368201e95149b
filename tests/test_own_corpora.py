"""A user's own text file: the vocabulary of all its splits (worked out here in plain
Python from the file), words outside a closed vocabulary as <unk>, a resume keeping its
run's vocab.txt, a file too short for one chunk, a net sized for another vocabulary (the
message, and --fit-vocab's copy of the net), and --data without chars:/words: on a text
net. Small corpora and nets made in each test."""
import json

import pytest
from helpers import one_line, run
from test_text import CORPUS, lm_net, write_lm

from seqgen.data.tokens import Vocabulary
from seqgen.io.prototxt import read_net
from seqgen.runs.record import RunRecord

# characters that only the validation and test parts hold (the example)
TAIL = "Z\u00bf\u00e9 end of it\n" * 12
TEXT = CORPUS + TAIL


def expected_vocab(text, train_fraction=0.9):
    """The rule, written out: the training part's characters sorted, then those only the
    rest of the file has, sorted."""
    cut = int(round(train_fraction * len(text)))
    train, rest = set(text[:cut]), set(text[cut:])
    return sorted(train) + sorted(rest - train)


@pytest.fixture
def cwd(cwd):
    (cwd / "own.txt").write_text(TEXT, encoding="utf-8")
    return cwd


def test_the_vocabulary_holds_characters_only_the_validation_and_test_parts_have(cwd, capsys):
    vocab = expected_vocab(TEXT)
    cut = int(round(0.9 * len(TEXT)))
    assert {"Z", "\u00bf", "\u00e9"} <= set(vocab) - set(TEXT[:cut])  # the test means it
    solver = write_lm(cwd, len(vocab), max_iter=3)
    code, out, err = run(capsys, "train", solver, "--data", "chars:own.txt", "--out", "R")
    assert code == 0, err
    assert Vocabulary.read(cwd / "R").tokens == vocab
    assert RunRecord.read(cwd / "R").text["vocabulary"] == len(vocab)
    # the ids of the training characters are their places in the sorted training set
    assert vocab[:len(set(TEXT[:cut]))] == sorted(set(TEXT[:cut]))


def test_separate_validation_and_test_files_add_their_tokens_after_the_training_files(
        cwd, capsys):
    (cwd / "train.txt").write_text(CORPUS, encoding="utf-8")
    (cwd / "val.txt").write_text(CORPUS[:300] + "QQ\n", encoding="utf-8")
    (cwd / "test.txt").write_text(CORPUS[:300] + "\u00e9X\n", encoding="utf-8")
    own = set(CORPUS)
    vocab = sorted(own) + sorted((set("QQ\n\u00e9X") | set(CORPUS[:300])) - own)
    assert vocab[-3:] == ["Q", "X", "\u00e9"]
    solver = write_lm(cwd, len(vocab), max_iter=2)
    code, _, err = run(capsys, "train", solver, "--data", "chars:train.txt", "--val",
                       "val.txt", "--test", "test.txt", "--out", "R")
    assert code == 0, err
    assert Vocabulary.read(cwd / "R").tokens == vocab


def test_words_of_a_closed_vocabulary_stay_unk(cwd, capsys):
    """A training part holding <unk> (PTB's files) keeps its vocabulary: words only the
    other parts have become <unk>, as TensorFlow's PTB reader makes them."""
    line = "the cat sat on the <unk> mat\n"
    (cwd / "w.txt").write_text(line * 60 + "a zebra sat\n" * 8, encoding="utf-8")
    words = sorted(set(line.split()) | {"<eos>"})
    assert "zebra" not in words
    solver = write_lm(cwd, len(words), max_iter=2, T=4, N=3)
    code, _, err = run(capsys, "train", solver, "--data", "words:w.txt", "--split",
                       "0.8,0.2", "--out", "R")
    assert code == 0, err
    assert Vocabulary.read(cwd / "R").tokens == words
    assert Vocabulary.of(["a", "b"], ["c", "a"]).tokens == ["a", "b", "c"]
    assert Vocabulary.of(["b", "<unk>"], ["c"]).tokens == ["<unk>", "b"]


def test_a_resume_keeps_the_runs_vocabulary(cwd, capsys):
    """The data lost a character since: the run's vocab.txt still numbers the tokens (a
    vocabulary built again would shift every id after it)."""
    vocab = expected_vocab(TEXT)
    solver = write_lm(cwd, len(vocab), max_iter=4, extra="snapshot: 2\n")
    assert run(capsys, "train", solver, "--data", "chars:own.txt", "--out", "R")[0] == 0
    before = (cwd / "R" / "vocab.txt").read_bytes()
    (cwd / "own.txt").write_text(TEXT.replace("q", "k"), encoding="utf-8")
    code, out, err = run(capsys, "train", solver, "--resume", "R/lm_iter_4.solverstate",
                         "--iters", 6, "--allow-changes")
    assert code == 0, err
    assert (cwd / "R" / "vocab.txt").read_bytes() == before
    assert "q" in Vocabulary.read(cwd / "R").tokens


def test_a_twelve_byte_file_is_too_short_not_unknown(cwd, capsys):
    (cwd / "tiny.txt").write_text("hello world\n")
    train = int(round(0.9 * 12))
    err = one_line(capsys, "train", write_lm(cwd, 30), "--data", "chars:tiny.txt")
    assert err == (f"seqgen: error: tiny.txt (training split): {train} tokens, fewer than one "
                   "chunk of the net's N x T + 1 = 8 x 16 + 1 = 129 (give a longer file, or a "
                   "net with smaller input shape (T, N))")


def test_a_validation_part_too_short_says_how_to_lengthen_it(cwd, capsys):
    vocab = expected_vocab(TEXT)
    err = one_line(capsys, "train", write_lm(cwd, len(vocab)), "--data", "chars:own.txt",
                   "--split", "0.98,0.01,0.01")
    val = int(round(0.99 * len(TEXT))) - int(round(0.98 * len(TEXT)))
    assert err == (f"seqgen: error: own.txt (validation split): {val} tokens, fewer than one "
                   "chunk of the net's N x T + 1 = 8 x 16 + 1 = 129 (give a larger validation "
                   "fraction in --split, or a --val FILE)")


# -- a net sized for another vocabulary ------------------------------------------------------

def test_a_net_too_small_names_both_layers_both_sizes_and_the_value(cwd, capsys):
    V = len(expected_vocab(TEXT))
    solver = write_lm(cwd, 12)
    err = one_line(capsys, "train", solver, "--data", "chars:own.txt")
    assert err == (f"seqgen: error: own.txt has {V} distinct tokens, but layer 'embed' (Embed) "
                   "takes 12 (embed_param.input_dim), layer 'predict' (InnerProduct) scores 12 "
                   f"(inner_product_param.num_output): set input_dim and num_output to {V} in "
                   f"{cwd / 'lm.prototxt'} (or train with --fit-vocab: the run gets a copy of "
                   "the net with that size)")


def test_fit_vocab_trains_a_copy_of_the_net_sized_to_the_vocabulary(cwd, capsys):
    V = len(expected_vocab(TEXT))
    solver = write_lm(cwd, 12, max_iter=3)
    original = (cwd / "lm.prototxt").read_bytes()
    code, out, err = run(capsys, "train", solver, "--data", "chars:own.txt", "--fit-vocab",
                         "--out", "R")
    assert code == 0, err
    copy = cwd / "R" / f"lm_vocab{V}.prototxt"
    assert f"--fit-vocab: training R/lm_vocab{V}.prototxt" in out
    assert (cwd / "lm.prototxt").read_bytes() == original
    record = RunRecord.read(cwd / "R")
    assert record.net == str(copy) and record.text["fit_vocab"] is True
    layers = {layer.name: layer for layer in read_net(copy).layer}
    assert layers["embed"].embed_param.input_dim == V
    assert layers["predict"].inner_product_param.num_output == V
    assert run(capsys, "test", "R")[0] == 0
    code, out, err = run(capsys, "generate", "--prime", "the", "--steps", 5, "--seed", 1)
    assert code == 0, err
    assert json.loads((cwd / "R" / "run.json").read_text())["net"] == str(copy)


def test_fit_vocab_is_taken_back_on_resume(cwd, capsys):
    solver = write_lm(cwd, 12, max_iter=2)
    assert run(capsys, "train", solver, "--data", "chars:own.txt", "--fit-vocab", "--out",
               "R")[0] == 0
    code, out, err = run(capsys, "train", solver, "--resume", "R/lm_iter_2.solverstate",
                         "--iters", 4)
    assert code == 0, err
    assert "--fit-vocab" in out.split("Resuming with the snapshot's run's settings:")[1] \
        .splitlines()[0]
    assert RunRecord.read(cwd / "R").iterations == 4


def test_a_net_with_more_outputs_than_tokens_trains_as_it_is(cwd, capsys):
    V = len(expected_vocab(TEXT))
    solver = write_lm(cwd, V + 7, max_iter=2)
    code, _, err = run(capsys, "train", solver, "--data", "chars:own.txt", "--out", "R")
    assert code == 0, err
    assert RunRecord.read(cwd / "R").net == str(cwd / "lm.prototxt")


# -- --data on a text net --------------------------------------------------------------------

def test_data_without_kind_on_a_text_net_suggests_chars_and_words(cwd, capsys):
    solver = write_lm(cwd, 40)
    err = one_line(capsys, "train", solver, "--data", "own.txt")
    assert err == (f"seqgen: error: --data own.txt: {cwd / 'lm.prototxt'} is a text net (layer "
                   "'embed' (Embed) reads token ids); give --data chars:own.txt (a token a "
                   "character) or --data words:own.txt (whitespace-separated words)")
    assert not (cwd / "runs").exists()


def test_no_data_on_a_text_net_says_it_needs_text(cwd, capsys):
    solver = write_lm(cwd, 40)
    err = one_line(capsys, "train", solver)
    assert err == (f"seqgen: error: {cwd / 'lm.prototxt'} is a text net (layer 'embed' (Embed) "
                   "reads token ids): it needs --data chars:FILE (a token a character) or "
                   "words:FILE")


def test_the_shipped_char_rnn_net_with_a_plain_file(cwd, capsys):
    from helpers import ROOT

    err = one_line(capsys, "train", ROOT / "prototxt" / "char_rnn_solver.prototxt", "--data",
                   "own.txt")
    assert "give --data chars:own.txt (a token a character) or --data words:own.txt" in err


def test_lm_net_has_its_layers_where_the_messages_say():
    """(The messages above name 'embed' and 'predict': the test net's layers.)"""
    text = lm_net(5)
    assert 'name: "embed" type: "Embed"' in text and 'name: "predict"' in text
