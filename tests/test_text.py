"""Character and word language models on text files: vocabulary and splits, batching in N
contiguous streams, validation with bits per character / perplexity, the test split,
early stopping, exact resume, `seqgen test`, sampling, and the one-line errors for bad
input. Small corpora and nets are made in each test."""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line, run

import seqgen.data.text as text_plan
from seqgen.data.text import Streams
from seqgen.data.tokens import EOS, Vocabulary, tokens_of
from seqgen.runs.record import RunRecord

CORPUS = ("the quick brown fox jumps over the lazy dog.\n"
          "a stitch in time saves nine; the early bird catches the worm.\n") * 40


def lm_net(V, T=16, N=8, H=8, E=6, name="lm"):
    """Embed -> LSTM -> InnerProduct (axis 2) -> SoftmaxWithLoss, inputs (T, N)."""
    u = 'type: "uniform" min: -0.1 max: 0.1'
    return f"""name: "{name}"
layer {{ name: "input" type: "Input" top: "data" top: "cont" top: "label"
  input_param {{ shape {{ dim: {T} dim: {N} }} shape {{ dim: {T} dim: {N} }}
                 shape {{ dim: {T} dim: {N} }} }} }}
layer {{ name: "embed" type: "Embed" bottom: "data" top: "embed"
  embed_param {{ input_dim: {V} num_output: {E} bias_term: false weight_filler {{ {u} }} }} }}
layer {{ name: "lstm1" type: "LSTM" bottom: "embed" bottom: "cont" top: "lstm1"
  recurrent_param {{ num_output: {H} weight_filler {{ {u} }} bias_filler {{ {u} }} }} }}
layer {{ name: "predict" type: "InnerProduct" bottom: "lstm1" top: "predict"
  inner_product_param {{ num_output: {V} axis: 2 weight_filler {{ {u} }}
                         bias_filler {{ {u} }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "predict" bottom: "label" top: "loss"
  softmax_param {{ axis: 2 }} }}
"""


def write_lm(folder, V, max_iter=40, extra="", **net):
    (folder / "lm.prototxt").write_text(lm_net(V, **net))
    solver = folder / "lm_solver.prototxt"
    solver.write_text(f'net: "lm.prototxt"\ntype: "Adam"\nbase_lr: 0.01\nmomentum: 0.9\n'
                      f'lr_policy: "fixed"\ndisplay: 0\nmax_iter: {max_iter}\n'
                      f'snapshot_prefix: "lm"\nrandom_seed: 5\nclip_gradients: 5\n{extra}')
    return solver


@pytest.fixture
def cwd(cwd):
    """conftest's working directory, with the corpus in it."""
    (cwd / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return cwd


V_CHARS = len(set(CORPUS[:int(len(CORPUS) * 0.9)]))


# -- data ----------------------------------------------------------------------------------

def test_words_end_lines_with_eos_and_unknown_words_become_unk():
    assert tokens_of("a b\n c\n", "words") == ["a", "b", "<eos>", "c", "<eos>"]
    vocab = Vocabulary.of(["b", "<unk>", "a"])
    assert vocab.tokens == ["<unk>", "a", "b"]  # sorted
    assert list(vocab.ids(["a", "zebra", "b"], "x")) == [1, 0, 2]


def test_vocabulary_file_keeps_newlines_and_backslashes(tmp_path):
    vocab = Vocabulary.of(list("ab\n\\ \r"))
    vocab.write(tmp_path)
    assert Vocabulary.read(tmp_path).tokens == vocab.tokens
    assert len((tmp_path / "vocab.txt").read_text().split("\n")) == len(vocab) + 1


def test_streams_are_contiguous_and_labels_are_the_next_token():
    ids = np.arange(50)
    s = Streams(ids, N=3, T=4, where="x")
    assert s.length == 16 and s.chunks == 4
    for k in range(s.chunks):
        for t in range(4):
            for n in range(3):
                assert s.x[k * 4 + t, n] == n * 16 + k * 4 + t
                assert s.y[k * 4 + t, n] == n * 16 + k * 4 + t + 1


class FakeNet:
    def __init__(self, T, N):
        from seqgen.blob import Blob

        self.blobs = {n: Blob((T, N)) for n in ("x", "c", "y")}


def test_cont_is_zero_only_at_the_first_step_of_an_epoch():
    s = Streams(np.arange(50), N=3, T=4, where="x")
    net, roles = FakeNet(4, 3), {"tokens": "x", "cont": "c", "labels": "y"}
    s.write(net, roles, 0)
    assert (net.blobs["c"].data[0] == 0).all() and (net.blobs["c"].data[1:] == 1).all()
    s.write(net, roles, 1)
    assert (net.blobs["c"].data == 1).all()
    assert (net.blobs["x"].data[:, 1] == [20, 21, 22, 23]).all()


# -- training, validation, test ------------------------------------------------------------

def test_char_model_trains_validates_and_scores_its_test_split(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=60)
    code, out, err = run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")
    assert code == 0, err
    assert "Epoch 1 (iteration 0)" in out and "Epoch 2 " in out
    assert "Test net output #1: bits_per_character = " in out
    run_dir = cwd / "R"
    assert Vocabulary.read(run_dir).tokens == sorted(set(CORPUS[:int(len(CORPUS) * 0.9)]))
    record = RunRecord.read(run_dir)
    assert record.data_kind == "text" and record.text["iterations_per_epoch"] > 0
    tests = np.loadtxt(run_dir / "test_loss.csv", delimiter=",", skiprows=1)
    assert tests.shape[0] >= 2 and tests[-1, 1] < tests[0, 1]  # validation improved
    assert tests[0, 1] == pytest.approx(math.log(V_CHARS), rel=0.05)  # untrained: uniform
    bpc = record.scores["bits_per_character"]
    assert bpc == pytest.approx(record.scores["test_split_loss"] / math.log(2))
    code, out, err = run(capsys, "test", "R")
    assert code == 0, err
    assert f"bits_per_character = {bpc:.6g}" in out


def test_epochs_bound_the_run(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=10 ** 6)
    code, out, err = run(capsys, "train", solver, "--data", "chars:corpus.txt", "--epochs", 2,
                         "--out", "R")
    assert code == 0, err
    record = RunRecord.read(cwd / "R")
    assert record.iterations == 2 * record.text["iterations_per_epoch"] == record.max_iter


def test_word_model_reports_perplexity(cwd, capsys):
    words = sorted(set(tokens_of(CORPUS, "words")))
    solver = write_lm(cwd, len(words), max_iter=20, T=5, N=3)
    code, out, err = run(capsys, "train", solver, "--data", "words:corpus.txt", "--split",
                         "0.8,0.1,0.1", "--out", "W")
    assert code == 0, err
    assert "Test net output #1: perplexity = " in out
    scores = RunRecord.read(cwd / "W").scores
    assert scores["perplexity"] == pytest.approx(math.exp(scores["test_split_loss"]))


def test_resume_continues_a_text_run_exactly(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=50, extra="snapshot: 25\n")
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "A")[0] == 0
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--iters", 25,
               "--out", "B")[0] == 0
    code, out, err = run(capsys, "train", solver, "--resume", "B/lm_iter_25.solverstate",
                         "--iters", 50)
    assert code == 0, err
    assert (cwd / "A" / "lm_iter_50.caffemodel").read_bytes() == \
        (cwd / "B" / "lm_iter_50.caffemodel").read_bytes()
    assert (cwd / "A" / "loss.csv").read_text() == (cwd / "B" / "loss.csv").read_text()


def test_early_stop_keeps_the_best_weights(cwd, capsys, monkeypatch):
    losses = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2])
    real = text_plan.SplitScorer.__call__

    def scripted(self, solver=None):  # the validation losses the test scripts
        results = real(self, solver)
        results[0] = (results[0][0], next(losses), results[0][2])
        return results

    monkeypatch.setattr(text_plan.SplitScorer, "__call__", scripted)
    solver = write_lm(cwd, V_CHARS, max_iter=10 ** 5, extra="test_interval: 5\n")
    code, out, err = run(capsys, "train", solver, "--data", "chars:corpus.txt",
                         "--early-stop", 2, "--out", "E")
    assert code == 0, err
    assert ("Early stop: the validation loss has not improved for 2 tests (best 2 at "
            "iteration 5, kept as E/lm_best.caffemodel)") in out
    assert (cwd / "E" / "lm_best.caffemodel").is_file()
    assert RunRecord.read(cwd / "E").iterations == 16  # the stop comes after iteration 15


# -- sampling ------------------------------------------------------------------------------

@pytest.fixture
def trained(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=60)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "S")[0] == 0
    return cwd / "S"


def test_sampling_reproduces_the_prime_and_repeats_with_a_seed(trained, capsys):
    vocab = set(Vocabulary.read(trained).tokens)
    code, out, err = run(capsys, "generate", "--prime", "the quick", "--steps", 80, "--seed",
                         7, "--temperature", 0.8)
    assert code == 0, err
    assert "Using S (latest run)" in err
    text = out  # only the sample is on stdout
    assert text.startswith("the quick") and set(text.rstrip("\n")) <= vocab
    assert len(text.rstrip("\n")) == len("the quick") + 80
    assert run(capsys, "generate", "--prime", "the quick", "--steps", 80, "--seed", 7,
               "--temperature", 0.8)[1] == out
    assert (trained / "generated.txt").read_text().startswith("the quick")
    cold = run(capsys, "generate", "--prime", "the", "--steps", 40, "--temperature", 1e-6,
               "--seed", 1)[1]
    argmax = run(capsys, "generate", "--prime", "the", "--steps", 40, "--argmax")[1]
    assert cold == argmax


def test_several_samples(trained, capsys):
    code, out, err = run(capsys, "generate", "--prime", "a", "--steps", 30, "--samples", 3,
                         "--seed", 2)
    assert code == 0, err
    assert (trained / "generated.txt").read_text().count("\n---------------\n") == 2
    assert out == (trained / "generated.txt").read_text()


# -- bad input -----------------------------------------------------------------------------

def test_text_that_is_not_utf8_names_the_byte_offset(cwd, capsys):
    (cwd / "bad.txt").write_bytes(b"hello \xff world")
    err = one_line(capsys, "train", write_lm(cwd, 30), "--data", "chars:bad.txt")
    assert "bad.txt: not UTF-8 text: byte 0xff at byte offset 6" in err
    assert not (cwd / "runs").exists()


def test_an_empty_text_file(cwd, capsys):
    (cwd / "empty.txt").write_text("")
    err = one_line(capsys, "train", write_lm(cwd, 30), "--data", "words:empty.txt")
    assert "empty.txt: the file is empty" in err
    (cwd / "blank.txt").write_text("\n\n")  # not empty: say what it holds
    err = one_line(capsys, "train", write_lm(cwd, 30), "--data", "words:blank.txt")
    assert "blank.txt: no text, only whitespace (2 character(s) on 2 blank line(s))" in err


def test_fewer_tokens_than_one_chunk_gives_both_numbers(cwd, capsys):
    (cwd / "tiny.txt").write_text("abcdefghij" * 3)
    err = one_line(capsys, "train", write_lm(cwd, 30), "--data", "chars:tiny.txt")
    assert ("tiny.txt (training split): 27 tokens, fewer than one chunk of the net's N x T + 1 "
            "= 8 x 16 + 1 = 129") in err


def test_a_vocabulary_larger_than_the_embedding_names_the_layer(cwd, capsys):
    err = one_line(capsys, "train", write_lm(cwd, 10), "--data", "chars:corpus.txt")
    assert f"has {V_CHARS} distinct tokens, but layer 'embed' (Embed) takes 10" in err


def test_a_vocabulary_larger_than_the_output_names_the_layer(cwd, capsys):
    net = lm_net(V_CHARS + 5).replace(f"num_output: {V_CHARS + 5} axis: 2",
                                      "num_output: 12 axis: 2")
    (cwd / "lm.prototxt").write_text(net)
    solver = write_lm(cwd, V_CHARS)
    (cwd / "lm.prototxt").write_text(net)
    err = one_line(capsys, "train", solver, "--data", "chars:corpus.txt")
    assert (f"corpus.txt has {V_CHARS} distinct tokens, but layer 'embed' (Embed) takes "
            f"{V_CHARS + 5} (embed_param.input_dim), layer 'predict' (InnerProduct) scores 12 "
            f"(inner_product_param.num_output): set num_output to {V_CHARS} in ") in err
    assert err.endswith("lm.prototxt (or train with --fit-vocab: the run gets a copy of the "
                        "net with that size)")


def test_input_mode_and_holdout_are_refused_for_text(cwd, capsys):
    solver = write_lm(cwd, V_CHARS)
    err = one_line(capsys, "train", solver, "--data", "chars:corpus.txt", "--input", "previous")
    assert "--input previous is for sequence data" in err
    err = one_line(capsys, "train", solver, "--data", "chars:corpus.txt", "--holdout", "8")
    assert "--holdout is for sequence data" in err


def test_prime_characters_not_in_the_vocabulary_are_named(trained, capsys):
    err = one_line(capsys, "generate", "--prime", "the ZQ", "--steps", 5)
    assert "--prime: 2 character(s) not in the run's vocabulary: 'Q', 'Z'" in err


def test_text_prime_on_a_sequence_run(cwd, capsys):
    shutil.copy(Path(__file__).parents[1] / "prototxt" / "lstm_short.prototxt", cwd)
    assert run(capsys, "train", "lstm_short.prototxt", "--iters", 2, "--out", "Q")[0] == 0
    err = one_line(capsys, "generate", "--prime", "hello")
    assert "--prime 'hello': " in err and "Q is a sequence run, whose --prime is a number" in err
    err = one_line(capsys, "generate", "--temperature", "0.5")
    assert "--temperature: for text runs" in err


def test_a_missing_or_mismatched_vocabulary(trained, capsys):
    vocab = trained / "vocab.txt"
    saved = vocab.read_text()
    vocab.unlink()
    err = one_line(capsys, "generate", "--prime", "the")
    assert "the text run has no vocab.txt" in err
    vocab.write_text(saved + "".join(f"extra{i}\n" for i in range(10)))
    err = one_line(capsys, "generate", "--prime", "the")
    assert "vocab.txt has" in err and "but layer 'embed' (Embed) takes" in err


def test_sampling_finds_inputs_by_what_reads_them_not_by_name():
    """LRCN names its inputs input_sentence / cont_sentence / target_sentence."""
    from seqgen.generation.sample import sample_tokens
    from seqgen.io.prototxt import parse_net_text
    from seqgen.net import TEST, Net

    text = lm_net(12)
    for old, new in (('"data"', '"input_sentence"'), ('"cont"', '"cont_sentence"'),
                     ('"label"', '"target_sentence"')):
        text = text.replace(old, new)
    ids = sample_tokens(Net(parse_net_text(text), TEST), [1, 2, 3], 20, seed=3)
    assert len(ids) == 20 and ids.min() >= 0 and ids.max() < 12


def test_word_text_has_no_space_beside_a_line_break():
    """<eos> reads as a line end, never with a space before or after it (a sample that ends
    at <eos> ends with the line, as the corpus's own lines do)."""
    vocab = Vocabulary(["a", "b", EOS])
    assert vocab.text([0, 1, 2], "words") == "a b\n"
    assert vocab.text([2, 0, 1], "words") == "\na b"
    assert vocab.text([0, 2, 1, 2, 2, 0], "words") == "a\nb\n\na"
