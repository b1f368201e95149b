"""Scoring and exporting a text run: `seqgen test` on the test split, or the validation
split when there is none (said on the line), or on another file given as FILE or
KIND:FILE, against a float64 numpy language model written here (Embed -> BVLC LSTM ->
InnerProduct -> softmax cross-entropy over N contiguous streams, state carried); a run
shorter than an epoch ends with one validation score; the shipped char_rnn net exports to
ONNX (against seqgen's forward in onnxruntime) and to safetensors with its vocabulary."""
import json
import math
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import ROOT, one_line, run
from reference import lstm_forward
from test_text import CORPUS, V_CHARS, write_lm

from seqgen.data.tokens import Vocabulary
from seqgen.net import TEST, Net
from seqgen.runs.record import RunRecord


@pytest.fixture
def cwd(cwd):
    (cwd / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return cwd


def reference_loss(run_dir, ids, N=8, T=16):
    """The mean next-token cross-entropy (nats) of the run's last weights over `ids` cut
    into N streams walked in chunks of T, the state carried from chunk to chunk."""
    record = RunRecord.read(run_dir)
    params = Net(record.net, record.weights, TEST).params
    L = (len(ids) - 1) // N
    steps = (L // T) * T
    x = np.stack([ids[n * L:n * L + steps] for n in range(N)], 1)
    y = np.stack([ids[n * L + 1:n * L + steps + 1] for n in range(N)], 1)
    table = params["embed"][0].data.astype(np.float64)
    W_x, b, W_h = (blob.data.astype(np.float64) for blob in params["lstm1"])
    W, b_out = (blob.data.astype(np.float64) for blob in params["predict"])
    cont = np.ones((steps, N))
    cont[0] = 0
    H = W_h.shape[1]
    h, _, _ = lstm_forward(table[x], cont, W_x, b, W_h, np.zeros((N, H)), np.zeros((N, H)))
    logits = h[1:] @ W.T + b_out
    top = logits.max(-1, keepdims=True)
    log_z = (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(logits, y[..., None], -1)[..., 0]
    return float((log_z - picked).mean())


def ids_of(text, run_dir):
    index = {t: i for i, t in enumerate(Vocabulary.read(run_dir).tokens)}
    return np.array([index[c] for c in text])


def score_line(out):
    """(where, tokens, loss, bits per character) of `seqgen test`'s line."""
    head, tail = out.strip().rsplit(": loss = ", 1)
    loss, bpc = tail.split(", bits_per_character = ")
    return head, float(loss), float(bpc)


def test_a_run_without_test_split_is_scored_on_its_validation_split(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=12)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--split", "0.95,0.05",
               "--out", "R")[0] == 0
    code, out, err = run(capsys, "test", "R")
    assert code == 0, err
    cut = int(round(0.95 * len(CORPUS)))
    val = CORPUS[cut:]
    head, loss, bpc = score_line(out)
    assert head == f"the run's validation split ({len(val)} tokens; the run has no test split)"
    ref = reference_loss(cwd / "R", ids_of(val, cwd / "R"))
    assert loss == pytest.approx(ref, rel=1e-5)
    assert bpc == pytest.approx(ref / math.log(2), rel=1e-5)


def test_test_split_and_another_file_as_a_plain_path(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=12)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")[0] == 0
    code, out, err = run(capsys, "test", "R")
    assert code == 0, err
    test = CORPUS[int(round(0.95 * len(CORPUS))):]
    head, loss, _ = score_line(out)
    assert head == f"the run's test split ({len(test)} tokens)"
    assert loss == pytest.approx(reference_loss(cwd / "R", ids_of(test, cwd / "R")), rel=1e-5)
    (cwd / "other.txt").write_text(CORPUS[:900], encoding="utf-8")
    code, plain, err = run(capsys, "test", "R", "--data", "other.txt")
    assert code == 0, err
    assert run(capsys, "test", "R", "--data", "chars:other.txt")[1] == plain
    head, loss, _ = score_line(plain)
    assert head == "other.txt (900 tokens)"
    assert loss == pytest.approx(reference_loss(cwd / "R", ids_of(CORPUS[:900], cwd / "R")),
                                 rel=1e-5)
    err = one_line(capsys, "test", "R", "--data", "words:other.txt")
    assert err == ("seqgen: error: --data words:other.txt: the run was trained on "
                   "chars:corpus.txt; score it on chars:FILE (or just FILE)")


def test_a_run_with_neither_split_gives_a_hint_that_works(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=2)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--split", "1,0",
               "--out", "R")[0] == 0
    err = one_line(capsys, "test", "R")
    assert err == ("seqgen: error: R: the run has no test or validation split (trained with "
                   "--split 1,0); score it on another file with --data FILE")
    assert run(capsys, "test", "R", "--data", "corpus.txt")[0] == 0


@pytest.mark.parametrize("max_iter, extra, tested", [
    (3, "", [0, 3]),                    # shorter than an epoch: tested at its end
    (10, "test_interval: 5\n", [0, 5, 10]),  # the end on test_interval: tested once there
])
def test_a_run_ends_with_one_validation_score(cwd, capsys, max_iter, extra, tested):
    solver = write_lm(cwd, V_CHARS, max_iter=max_iter, extra=extra)
    code, out, err = run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")
    assert code == 0, err
    chunks = RunRecord.read(cwd / "R").text["iterations_per_epoch"]
    assert max_iter < chunks
    rows = np.loadtxt(cwd / "R" / "test_loss.csv", delimiter=",", skiprows=1, ndmin=2)
    assert rows[:, 0].astype(int).tolist() == tested
    val = CORPUS[int(round(0.9 * len(CORPUS))):int(round(0.95 * len(CORPUS)))]
    assert rows[-1, 1] == pytest.approx(reference_loss(cwd / "R", ids_of(val, cwd / "R")),
                                        rel=1e-5)


# -- export -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def char_rnn_run(tmp_path_factory):
    """One iteration of the shipped char_rnn net on 60,000 characters of tiny-shakespeare."""
    folder = tmp_path_factory.mktemp("char_rnn")
    text = (ROOT / "examples" / "data" / "tinyshakespeare.txt").read_text()[:60000]
    (folder / "shakespeare.txt").write_text(text, encoding="utf-8")
    from seqgen.app.cli import main

    assert main(["train", str(ROOT / "prototxt" / "char_rnn_solver.prototxt"), "--data",
                 f"chars:{folder / 'shakespeare.txt'}", "--iters", "1", "--out",
                 str(folder / "R")]) == 0
    return folder / "R", text


def test_the_char_rnn_run_exports_to_onnx_with_its_vocabulary(char_rnn_run, tmp_path, capsys):
    run_dir, text = char_rnn_run
    out = tmp_path / "lm.onnx"
    code, printed, err = run(capsys, "export", run_dir, "--format", "onnx", "--out", out)
    assert code == 0, err
    assert f"Wrote {tmp_path / 'vocab.txt'} (" in err  # notes go to stderr
    assert (tmp_path / "vocab.txt").read_bytes() == (run_dir / "vocab.txt").read_bytes()
    model = onnx.load(out)
    meta = {p.key: p.value for p in model.metadata_props}
    cut = int(round(0.9 * len(text)))
    vocab = sorted(set(text[:cut])) + sorted(set(text[cut:]) - set(text[:cut]))
    assert json.loads(meta["vocab"]) == vocab and meta["tokens"] == "chars"
    session = ort.InferenceSession(str(out))
    names = [i.name for i in session.get_inputs()]
    assert names == ["data", "lstm1.h", "lstm1.c", "lstm2.h", "lstm2.c"]  # no label, no cont
    assert session.get_outputs()[0].name == "predict"
    # stepped against seqgen's forward on the same tokens from a zero state
    record = RunRecord.read(run_dir)
    net = Net(record.net, record.weights, TEST)
    T, N = net.blobs["data"].shape
    tokens = np.random.default_rng(0).integers(0, len(vocab), (T, N))
    net.blobs["data"].data[...] = tokens
    net.blobs["cont"].data[...] = 1
    net.blobs["cont"].data[0] = 0
    expected = np.array(net.forward(blobs=["predict"])["predict"])
    state = {n: np.zeros((N, 128), np.float32) for n in names[1:]}
    for t in range(5):
        got = session.run(None, {"data": tokens[t:t + 1].astype(np.float32), **state})
        np.testing.assert_allclose(got[0].reshape(N, -1), expected[t], rtol=1e-4, atol=1e-5)
        state = dict(zip(names[1:], got[1:]))


def test_the_char_rnn_run_exports_to_safetensors_with_its_vocabulary(char_rnn_run, tmp_path,
                                                                     capsys):
    from safetensors import safe_open

    run_dir, _ = char_rnn_run
    out = tmp_path / "lm.safetensors"
    code, printed, err = run(capsys, "export", run_dir, "--format", "torch", "--out", out)
    assert code == 0, err
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
        shapes = {k: f.get_tensor(k).shape for k in f.keys()}
    assert json.loads(meta["vocab"]) == Vocabulary.read(run_dir).tokens
    assert meta["tokens"] == "chars" and json.loads(meta["seqgen"])["embed"]["num"] == 65
    assert shapes["embed.weight"] == (65, 128) and shapes["out.weight"] == (65, 128)
    assert (tmp_path / "vocab.txt").read_bytes() == (run_dir / "vocab.txt").read_bytes()


def test_a_different_vocab_txt_beside_the_export_needs_force(char_rnn_run, tmp_path, capsys):
    run_dir, _ = char_rnn_run
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    err = one_line(capsys, "export", run_dir, "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert err == (f"seqgen: error: --out {tmp_path / 'x.onnx'}: beside it, "
                   f"{tmp_path / 'vocab.txt'}: the file exists; seqgen writes over it only "
                   "with --force")
    assert not (tmp_path / "x.onnx").exists()
    shutil.copy(run_dir / "vocab.txt", tmp_path / "vocab.txt")  # the same text: no --force
    assert run(capsys, "export", run_dir, "--format", "onnx", "--out", tmp_path / "x.onnx")[0] \
        == 0


def test_words_outside_the_vocabulary_are_unk_in_a_scored_file(cwd, capsys):
    line = "the cat sat on the <unk> mat\n"
    (cwd / "w.txt").write_text(line * 60, encoding="utf-8")
    words = sorted(set(line.split()) | {"<eos>"})
    solver = write_lm(cwd, len(words), max_iter=2, T=4, N=3)
    assert run(capsys, "train", solver, "--data", "words:w.txt", "--split", "0.8,0.2",
               "--out", "W")[0] == 0
    (cwd / "new.txt").write_text("the zebra sat on the mat\n" * 4, encoding="utf-8")
    (cwd / "unk.txt").write_text("the <unk> sat on the mat\n" * 4, encoding="utf-8")
    code, out, err = run(capsys, "test", "W", "--data", "new.txt")
    assert code == 0, err
    assert out.startswith("new.txt (28 tokens): loss = ")  # 6 words and <eos>, 4 lines
    assert out.replace("new.txt", "unk.txt") == run(capsys, "test", "W", "--data",
                                                    "unk.txt")[1]


def test_characters_outside_the_vocabulary_in_a_scored_file_are_named(cwd, capsys):
    solver = write_lm(cwd, V_CHARS, max_iter=2)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")[0] == 0
    (cwd / "odd.txt").write_text(CORPUS[:500] + "\u00e9", encoding="utf-8")
    err = one_line(capsys, "test", "R", "--data", "odd.txt")
    assert err == "seqgen: error: odd.txt: 1 token(s) not in the vocabulary: '\u00e9'"
