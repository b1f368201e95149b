"""Surprises that used to pass without a word (issue 20, round two): each is now one clear
line -- a refusal (exit 2) or a warning -- and nothing in a run folder is lost on the way."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run, solver_file

SOLVER = ('base_lr: 0.0001\nmomentum: 0.95\nlr_policy: "fixed"\ndisplay: 0\nmax_iter: 30\n'
          'random_seed: 7\nsnapshot: 10\n')


def digests(folder):
    """sha256 of every file under `folder`, by relative path."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".seqgen.lock"}


def rows(path):
    return Path(path).read_text().splitlines()[1:]


@pytest.fixture
def trained(cwd, capsys):
    """lstm_short trained 30 iterations with a holdout test every 5, snapshots at 10, 20, 30
    in ./r."""
    solver = solver_file(cwd, "lstm_short", SOLVER + "test_interval: 5\n")
    code, _, err = run(capsys, "train", solver.name, "--data", "sinusoid:960", "--holdout", 320,
                         "--out", "r")
    assert code == 0, err
    return solver


# -- resuming an older snapshot ----------------------------------------------------------

def test_resuming_an_older_snapshot_in_place_is_refused_and_changes_nothing(trained, cwd,
                                                                               capsys):
    before = digests(cwd / "r")
    assert {"loss.csv", "test_loss.csv", "lstm_short_iter_30.solverstate"} <= set(before)
    code, out, err = run(capsys, "train", trained.name,
                         "--resume", "r/lstm_short_iter_10.solverstate")
    assert code == 2
    line = err.strip()
    assert line == (
        "seqgen: error: r/lstm_short_iter_10.solverstate: the run folder r has newer "
        "snapshots (iterations 20, 30): resuming iteration 10 there would branch off and "
        "rewrite its logs; continue from the newest with --resume "
        "r/lstm_short_iter_30.solverstate; branch into a new folder with --out DIR, or add "
        "--set-aside-newer to move the newer snapshots and the logs as they are into "
        "r/set-aside-TIMESTAMP/")
    assert digests(cwd / "r") == before


def test_set_aside_newer_keeps_the_abandoned_branch_apart(trained, cwd, capsys):
    before = digests(cwd / "r")
    old_loss, old_test = rows(cwd / "r/loss.csv"), rows(cwd / "r/test_loss.csv")
    code, out, err = run(capsys, "train", trained.name, "--resume",
                         "r/lstm_short_iter_10.solverstate", "--set-aside-newer")
    assert code == 0, err
    asides = [p for p in (cwd / "r").iterdir() if p.name.startswith("set-aside-")]
    assert len(asides) == 1
    aside = asides[0]
    assert (f"Set aside the snapshots after iteration 10 (2 of them: 20, 30) and the logs "
            f"as they were in r/{aside.name}") in out
    kept = digests(aside)
    for name in ("loss.csv", "test_loss.csv", "run.json", "lstm_short_iter_20.solverstate",
                 "lstm_short_iter_20.caffemodel", "lstm_short_iter_30.solverstate",
                 "lstm_short_iter_30.caffemodel", "lstm_short_iter_30.seqgen.npz"):
        assert kept[name] == before[name], name  # the abandoned branch, byte for byte
    # the folder's logs: the run up to iteration 10, then the new branch, no row twice
    new_loss = rows(cwd / "r/loss.csv")
    assert [r.split(",")[0] for r in new_loss] == [str(i) for i in range(30)]
    assert new_loss[:10] == old_loss[:10]
    test_its = [int(r.split(",")[0]) for r in rows(cwd / "r/test_loss.csv")]
    assert test_its == sorted(set(test_its))
    assert rows(cwd / "r/test_loss.csv")[:2] == old_test[:2]  # iterations 0 and 5
    # the new branch repeats the old one exactly (same seed, same data): nothing was mixed
    assert new_loss == old_loss
    record = json.loads((cwd / "r/run.json").read_text())
    assert record["solverstate"] == str(cwd / "r/lstm_short_iter_30.solverstate")


def test_set_aside_newer_needs_resume(trained, capsys):
    code, _, err = run(capsys, "train", trained.name, "--set-aside-newer", "--out", "q")
    assert code == 2
    assert err.strip() == ("seqgen: error: --set-aside-newer goes with --resume (of a snapshot "
                           "older than its folder's newest)")


def test_resume_without_run_json_says_where_it_writes(trained, cwd, capsys):
    os.remove(cwd / "r/run.json")
    code, out, err = run(capsys, "train", trained.name, "--resume",
                         "r/lstm_short_iter_30.solverstate", "--iters", 31)
    assert code == 0, err
    folder = next((cwd / "runs").iterdir())
    assert (f"Warning: r has no run.json (not a run folder, or its record was deleted), so "
            f"this session trains in a new run folder runs/{folder.name}; give --out r to "
            "continue in the snapshot's folder") in out


# -- a text run whose vocabulary changed ---------------------------------------------------

def test_resume_refuses_a_vocabulary_that_shifts_ids_even_with_allow_changes(cwd, capsys):
    from test_text import CORPUS, V_CHARS, write_lm

    (cwd / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(cwd, V_CHARS + 4, max_iter=20, extra="snapshot: 10\n")
    code, _, err = run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")
    assert code == 0, err
    before = digests(cwd / "R")
    (cwd / "corpus.txt").write_text("QZ" + CORPUS, encoding="utf-8")
    code, _, err = run(capsys, "train", solver, "--resume", "R/lm_iter_10.solverstate",
                       "--iters", 30, "--allow-changes")
    assert code == 2
    assert err.strip() == (  # (--data taken back from the run: its file's absolute path)
        f"seqgen: error: {cwd / 'corpus.txt'}: its vocabulary differs from the run's R/vocab.txt "
        "(2 token(s) added: 'Q', 'Z'): the run's net has no ids for them, so this resume is "
        "refused even with --allow-changes; start a new run on "
        "this data")
    assert digests(cwd / "R") == before


# -- run.json's data path ------------------------------------------------------------------

def test_a_text_run_is_scored_from_another_folder_and_after_a_move(cwd, capsys, monkeypatch):
    from test_text import CORPUS, V_CHARS, write_lm

    project = cwd / "project"
    project.mkdir()
    (project / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(project, V_CHARS, max_iter=10)
    monkeypatch.chdir(project)
    code, _, err = run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")
    assert code == 0, err
    record = json.loads((project / "R/run.json").read_text())
    assert record["data"] == "chars:corpus.txt"  # as given
    assert record["data_abs"] == f"chars:{project / 'corpus.txt'}"
    monkeypatch.chdir(cwd)
    code, out, err = run(capsys, "test", "project/R")
    assert code == 0, err
    assert "test split" in out.lower()
    os.rename(project, cwd / "moved")
    code, out2, err = run(capsys, "test", "moved/R")
    assert code == 0, err
    assert out2 == out


# -- data files that are not what they seem ------------------------------------------------

@pytest.mark.parametrize("spec, name, content, line", [
    ("chars:nl.txt", "nl.txt", "\n" * 1000,
     "nl.txt: no text, only whitespace (1000 character(s) on 1000 blank line(s))"),
    ("nl.csv", "nl.csv", "\n" * 1000, "nl.csv: contains no data rows, only 1000 blank lines"),
    ("gap.csv", "gap.csv", "x\n1\n2\n\n3\n4\n\n",
     "gap.csv: line 4: blank line between data rows (a missing step?); remove it or give its "
     "values"),
])
def test_data_files_of_blank_lines_are_named_for_what_they_are(cwd, capsys, spec, name,
                                                               content, line):
    solver = solver_file(cwd, "lstm_short", SOLVER)
    (cwd / name).write_text(content)
    code, _, err = run(capsys, "train", solver.name, "--data", spec, "--out", "q")
    assert code == 2
    assert err.strip() == f"seqgen: error: {line}"
    assert not (cwd / "q").exists()


def test_a_csv_with_trailing_blank_lines_still_reads(cwd):
    from seqgen.data.sources import load_sequence

    (cwd / "ok.csv").write_text("x\n1\n2\n\n\n")
    assert load_sequence(cwd / "ok.csv").ravel().tolist() == [1.0, 2.0]


@pytest.mark.parametrize("argv, line", [
    (["--val", "v.txt"], "--val is for text data (chars:FILE or words:FILE); it is not used "
                         "with the default data (no --data given)"),
    (["--data", "sinusoid:640", "--epochs", 2], "--epochs is for text data (chars:FILE or "
     "words:FILE); it is not used with sinusoid:640"),
])
def test_text_options_on_a_sequence_run_are_refused(cwd, capsys, argv, line):
    solver = solver_file(cwd, "lstm_short", SOLVER)
    code, _, err = run(capsys, "train", solver.name, *argv, "--out", "q")
    assert code == 2
    assert err.strip() == f"seqgen: error: {line}"


# -- NaN weights -----------------------------------------------------------------------------

def test_import_refuses_nan_weights_as_weights_does(cwd, capsys):
    st = pytest.importorskip("safetensors.numpy")
    root = Path(__file__).parents[1]
    weights = root / "tests/fixtures/main_run/runs/short/lstm_short_iter_400.caffemodel"
    net = root / "prototxt/lstm_short.prototxt"
    assert run(capsys, "export", weights, "--net", net, "--format", "torch", "--out",
               "s.safetensors")[0] == 0
    sd = st.load_file("s.safetensors")
    sd["rnn.weight_hh_l0"][0, 3] = np.nan
    st.save_file(sd, "nan.safetensors", metadata={"seqgen": "{}"})
    code, _, err = run(capsys, "import", "nan.safetensors", "--net", net, "--out",
                       "n.caffemodel")
    assert code == 2
    assert err.strip() == ("seqgen: error: nan.safetensors: rnn.weight_hh_l0 holds 1 "
                           "non-finite value(s) (nan at index 3); the weights were saved from "
                           "a diverged model")
    assert not (cwd / "n.caffemodel").exists()


def test_copy_from_refuses_nan_weights(cwd):
    from seqgen import Net, SeqgenError

    root = Path(__file__).parents[1]
    net = Net(str(root / "prototxt/lstm_short.prototxt"), phase="TEST")
    net.params["ip1"][0].data[0, 2] = np.nan
    net.save("nan.caffemodel")
    fresh = Net(str(root / "prototxt/lstm_short.prototxt"), phase="TEST")
    with pytest.raises(SeqgenError) as e:
        fresh.copy_from("nan.caffemodel")
    assert str(e.value) == ("nan.caffemodel: layer 'ip1' blob 0 (W): holds 1 non-finite "
                            "value(s) (nan at index 2); the weights were saved from a diverged "
                            "run")


# -- the Python API --------------------------------------------------------------------------

@pytest.fixture
def api_solver(cwd):
    import seqgen

    solver = solver_file(cwd, "lstm_short", SOLVER)
    return seqgen.get_solver(str(solver))


@pytest.mark.parametrize("iters", [2.5, "5", -1, True, None])
def test_solver_step_refuses_what_is_not_a_count(api_solver, iters):
    from seqgen import SeqgenError

    with pytest.raises(SeqgenError) as e:
        api_solver.step(iters)
    assert str(e.value) == (f"solver.step({iters!r}): the number of iterations must be a "
                            "whole number >= 0")
    assert api_solver.iter == 0


def test_solver_step_takes_numpy_integers(api_solver):
    api_solver.step(np.int64(2))
    assert api_solver.iter == 2


def test_solver_restore_none_is_one_line(api_solver):
    from seqgen import SeqgenError

    with pytest.raises(SeqgenError) as e:
        api_solver.restore(None)
    assert str(e.value) == "solver.restore(None): give the path of a .solverstate file"


@pytest.mark.parametrize("shape, shown", [((-1, 1), "-1, 1"), (((2, -1),), "(2, -1)"),
                                          ((2.5,), "2.5"), (("3",), "'3'")])
def test_blob_reshape_refuses_negative_and_fractional_dimensions(shape, shown):
    from seqgen import SeqgenError
    from seqgen.blob import Blob

    blob = Blob((2, 3))
    with pytest.raises(SeqgenError) as e:
        blob.reshape(*shape)
    assert str(e.value) == (f"Blob.reshape({shown}): every dimension must be a whole number "
                            ">= 0 (a blob has no -1 dimension to infer)")
    assert blob.shape == (2, 3)
    blob.reshape(np.int64(4), 1)
    blob.reshape([5, 2])
    assert blob.shape == (5, 2)


def test_a_lone_newer_caffemodel_does_not_make_a_branch(trained, cwd, capsys):
    """A snapshot whose .solverstate could not be written (a full disk) is not a newer
    snapshot: resuming the last complete one continues the same run, as the disk-full
    message says."""
    for it in (20, 30):
        os.remove(cwd / f"r/lstm_short_iter_{it}.solverstate")
    code, out, err = run(capsys, "train", trained.name, "--resume",
                         "r/lstm_short_iter_10.solverstate")
    assert code == 0, err
    assert "Set aside" not in out
    assert (cwd / "r/lstm_short_iter_30.solverstate").exists()


def test_a_record_without_data_abs_finds_its_text_beside_the_run(cwd, capsys, monkeypatch):
    """Runs written before data_abs covered chars:FILE keep the file relative to where
    training ran: it is looked for beside the run folder."""
    from test_text import CORPUS, V_CHARS, write_lm

    project = cwd / "project"
    project.mkdir()
    (project / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(project, V_CHARS, max_iter=10)
    monkeypatch.chdir(project)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "R")[0] == 0
    record = json.loads((project / "R/run.json").read_text())
    del record["data_abs"]
    (project / "R/run.json").write_text(json.dumps(record))
    monkeypatch.chdir(cwd)
    code, out, err = run(capsys, "test", "project/R")
    assert code == 0, err
