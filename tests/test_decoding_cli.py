"""`seqgen generate`'s decoding flags on small trained text runs: --beam's K texts with their
log-probabilities, --samples M as the streams drawn alone, --stop, <eos> ending a word
model's sample, --prime-file, --static; the one-line messages and exit codes of bad values,
and sequence runs refusing the text-only flags."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line, run
from test_text import CORPUS, V_CHARS, lm_net, write_lm

from seqgen.data.tokens import Vocabulary, tokens_of
from seqgen.generation.sample import sample_tokens, stream_seeds
from seqgen.net import TEST, Net

STATIC = ('layer { name: "feats" type: "Input" top: "feats" '
          'input_param { shape { dim: 8 dim: 3 } } }\n')


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char run (C), a word run (W) and a char run whose LSTM reads a static input (ST),
    trained briefly in one folder."""
    folder = tmp_path_factory.mktemp("decoding")
    old = os.getcwd()
    os.chdir(folder)
    try:
        (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
        solver = write_lm(folder, V_CHARS, max_iter=60)
        from seqgen.app.cli import main

        assert main(["train", str(solver), "--data", "chars:corpus.txt", "--out", "C"]) in (0,
                                                                                           None)
        words = sorted(set(tokens_of(CORPUS, "words")))
        net = folder / "words.prototxt"
        net.write_text(lm_net(len(words), T=5, N=3, name="words"))
        (folder / "w_solver.prototxt").write_text(
            solver.read_text().replace("lm.prototxt", "words.prototxt").replace(
                "max_iter: 60", "max_iter: 30"))
        main(["train", "w_solver.prototxt", "--data", "words:corpus.txt", "--out", "W"])
        static = lm_net(V_CHARS).replace('layer { name: "embed"', STATIC + 'layer { name: '
                                         '"embed"', 1).replace(
            'bottom: "embed" bottom: "cont"', 'bottom: "embed" bottom: "cont" bottom: "feats"')
        (folder / "st.prototxt").write_text(static)
        (folder / "st_solver.prototxt").write_text(
            solver.read_text().replace("lm.prototxt", "st.prototxt"))
        main(["train", "st_solver.prototxt", "--data", "chars:corpus.txt", "--out", "ST"])
    finally:
        os.chdir(old)
    return folder


@pytest.fixture
def here(runs, monkeypatch):
    monkeypatch.chdir(runs)
    return runs


def weights(folder, name):
    return str(next((folder / name).glob("*.caffemodel")))


def texts(out):
    """The sample blocks printed on stdout (the notes go to stderr), a line of 15 dashes
    between two."""
    return out.rstrip("\n").split("\n" + "-" * 15 + "\n")


def generate(capsys, folder, *argv):
    code, out, err = run(capsys, "generate", "--weights", weights(folder, "C"), *argv)
    assert code == 0, err
    return out


def test_beam_prints_k_texts_with_their_log_probabilities(here, capsys):
    out = generate(capsys, here, "--prime", "the ", "--steps", 12, "--beam", 3)
    blocks = [b for b in out.split("[beam ")[1:]]
    assert len(blocks) == 3
    scores = []
    for i, block in enumerate(blocks):
        head, text = block.split("\n", 1)
        assert head.startswith(f"{i + 1}: log-probability -")
        scores.append(float(head.split("score ")[1].rstrip("]")))
        assert text.startswith("the ")
    assert scores == sorted(scores, reverse=True)
    assert "[beam 1:" in (here / "C" / "generated.txt").read_text()


def test_samples_are_the_streams_drawn_alone(here, capsys):
    batch = texts(generate(capsys, here, "--prime", "a ", "--steps", 30, "--samples", 3,
                           "--seed", 5, "--top-p", 0.9))
    batch = [t for t in batch if not set(t) <= {"-"}]
    assert len(batch) == 3
    alone = texts(generate(capsys, here, "--prime", "a ", "--steps", 30, "--seed", 5,
                           "--top-p", 0.9))
    assert alone[0] == batch[0]
    vocab = Vocabulary.read(here / "C")
    net = Net(str(here / "lm.prototxt"), weights(here, "C"), TEST)
    third = sample_tokens(net, vocab.ids(list("a "), "prime"), 30, seed=stream_seeds(5, 3)[2],
                          top_p=0.9, vocab_size=len(vocab))
    assert batch[2] == "a " + vocab.text(third, "chars")


def test_stop_ends_a_sample_at_the_string(here, capsys):
    full = texts(generate(capsys, here, "--prime", "the", "--steps", 300, "--seed", 1))[0]
    generated = full[3:]
    stop = generated[150:152]
    cut = generated.index(stop) + 2
    got = texts(generate(capsys, here, "--prime", "the", "--steps", 300, "--seed", 1,
                         "--stop", "@@", "--stop", stop))[0]
    assert got == "the" + generated[:cut]


def test_eos_ends_a_word_models_sample(here, capsys):
    code, out, err = run(capsys, "generate", "--weights", weights(here, "W"), "--prime", "the",
                         "--steps", 400, "--seed", 3)
    assert code == 0, err
    text = out.split("(most recent run)\n", 1)[-1].split("\nWrote ")[0]
    body = text.rstrip("\n")
    assert "\n" not in body and len(body.split()) < 400  # one line: it ended at <eos>


def test_prime_file(here, capsys):
    (here / "prime.txt").write_text("a stitch", encoding="utf-8")
    a = generate(capsys, here, "--prime-file", "prime.txt", "--steps", 20, "--argmax")
    b = generate(capsys, here, "--prime", "a stitch", "--steps", 20, "--argmax")
    assert a == b and texts(a)[0].startswith("a stitch")


@pytest.mark.parametrize("argv,message", [
    (["--top-p", "0"], r"--top-p must be a number in (0, 1] (1 keeps every token), got '0'"),
    (["--top-p", "1.5"], "--top-p must be a number in (0, 1]"),
    (["--top-p", "x"], "--top-p must be a number in (0, 1]"),
    (["--beam", "0"], "--beam 0: must be at least 1"),
    (["--beam", str(V_CHARS + 1)],
     f"--beam must be an integer from 1 to {V_CHARS} (the vocabulary's size), got "
     f"{V_CHARS + 1}"),
    (["--beam", "2", "--samples", "2"], "--beam searches for the most likely texts"),
    (["--beam", "2", "--beam-alpha", "-1"], "--beam-alpha must be a finite number >= 0"),
    (["--prime-file", "missing.txt"], "--prime-file missing.txt: no such file"),
    (["--prime-file", "empty.txt"], "--prime-file empty.txt: the file is empty"),
    (["--prime-file", "empty.txt", "--prime", "a"], "--prime and --prime-file: give one"),
    (["--static", "f3.npy"], "--static f3.npy: the net has no static input"),
    (["--stop", ""], "--stop: give a non-empty string"),
])
def test_bad_values_are_one_line(here, capsys, argv, message):
    (here / "empty.txt").write_text("")
    np.save(here / "f3.npy", np.ones(3, np.float32))
    err = one_line(capsys, "generate", "--weights", weights(here, "C"), *argv)
    assert message in err


def test_static_input_conditions_the_sample(here, capsys):
    np.save(here / "f3.npy", np.array([3.0, -2.0, 1.0], np.float32))
    np.save(here / "g3.npy", np.array([[-3.0, 2.0, -1.0]], np.float32))
    base = ["generate", "--weights", weights(here, "ST"), "--prime", "the", "--steps", 60,
            "--seed", 2]
    a = run(capsys, *base, "--static", "f3.npy")
    b = run(capsys, *base, "--static", "g3.npy")
    assert a[0] == b[0] == 0, a[2] + b[2]
    assert texts(a[1])[0] != texts(b[1])[0]
    np.save(here / "f4.npy", np.ones((2, 3)))
    err = one_line(capsys, *base, "--static", "f4.npy")
    assert err.endswith("--static f4.npy: an array of shape (2, 3) (float64), but the net's "
                        "static input 'feats' takes numbers of shape (3,) (or (1, 3))")
    code, out, err = run(capsys, *base, "--static", "f3.npy", "--beam", "2")
    assert code == 0 and out.count("[beam ") == 2, err


def test_sequence_runs_refuse_the_decoding_flags(cwd, capsys):
    shutil.copy(Path(__file__).parents[1] / "prototxt" / "lstm_short.prototxt", cwd)
    assert run(capsys, "train", "lstm_short.prototxt", "--iters", 2, "--out", "Q")[0] == 0
    for flags in (["--top-p", "0.5"], ["--beam", "2"], ["--stop", "x"],
                  ["--prime-file", "p.txt"], ["--static", "s.npy"]):
        err = one_line(capsys, "generate", *flags)
        assert f"{flags[0]}: for text runs" in err
