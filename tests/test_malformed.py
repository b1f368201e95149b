"""The malformed-input corpus (tests/malformed/) through the command line.

Each case is a file plus a sidecar `<case>.expect`:

    # what is wrong with the file
    args: train {file} --iters 1 --out RUN
    exit: 2                       (optional; 2 = usage/input error, 1 = runtime failure)
    expect: <file>:<line>:<col>:  (one or more fragments the message must contain)

`{file}` is the case file, copied into an empty working folder (so messages name it as a
user would see it), `{solver}` / `{net}` the shipped lstm_short solver / net. Every case
must end with its exit code, exactly one line on stderr starting "seqgen: error:" that
contains every fragment, no traceback, and no run folder left behind. Most cases run
in-process; a few representative ones run in a real subprocess (`python -m seqgen`).
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqgen.app.cli import main

HERE = Path(__file__).parent
CORPUS = HERE / "malformed"
ROOT = HERE.parent
PLACES = {"solver": str(ROOT / "prototxt" / "lstm_short_solver.prototxt"),
          "net": str(ROOT / "prototxt" / "lstm_short.prototxt")}


def load_case(expect_path):
    args, code, fragments, comment = None, 2, [], ""
    for line in expect_path.read_text().splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if line.startswith("#"):
            comment = line[1:].strip()
        elif key == "args":
            args = value
        elif key == "exit":
            code = int(value)
        elif key == "expect":
            fragments.append(value)
    name = expect_path.stem
    files = [p for p in CORPUS.glob(name + ".*") if p.suffix != ".expect"]
    assert len(files) == 1, (name, files)
    assert args and fragments, expect_path
    return {"name": name, "file": files[0], "args": args, "exit": code,
            "expect": fragments, "comment": comment}


CASES = {p.stem: load_case(p) for p in sorted(CORPUS.glob("*.expect"))}
# run through a real process too: one of each kind of input
SUBPROCESS = ["unknown_field", "solver_typo_solver", "clip_wrong_length", "data_inf",
              "weights_solverstate", "state_truncated", "weights_diverge"]


def prepare(case, folder):
    shutil.copy(case["file"], folder / case["file"].name)
    places = dict(PLACES, file=case["file"].name)
    return [arg.format(**places) for arg in case["args"].split()]


def check(case, code, out, err, folder):
    assert code == case["exit"], (case["name"], code, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, (case["name"], err)
    assert lines[0].startswith("seqgen: error: "), lines[0]
    for fragment in case["expect"]:
        assert fragment in lines[0], (case["name"], fragment, lines[0])
    # a run that cannot start leaves nothing behind
    if case["exit"] == 2:
        assert not (folder / "RUN").exists() and not (folder / "GEN").exists()


def test_corpus_is_complete():
    """Every file of the corpus has its .expect (and the other way round)."""
    inputs = {p.stem for p in CORPUS.iterdir()
              if p.suffix != ".expect" and p.name != "make_binaries.py"
              and not p.name.startswith(".") and p.name != "__pycache__"}
    assert inputs == set(CASES)
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_in_process(name, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    code = main(prepare(case, tmp_path))
    out, err = capsys.readouterr()
    check(case, code, out, err, tmp_path)


@pytest.mark.parametrize("name", SUBPROCESS)
def test_case_in_a_subprocess(name, tmp_path):
    case = CASES[name]
    proc = subprocess.run([sys.executable, "-m", "seqgen", *prepare(case, tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    check(case, proc.returncode, proc.stdout, proc.stderr, tmp_path)


def test_debug_shows_where_an_input_error_was_raised(tmp_path):
    case = CASES["clip_wrong_length"]
    proc = subprocess.run([sys.executable, "-m", "seqgen", "--debug",
                           *prepare(case, tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "SeqgenError" in proc.stderr


def test_usage_errors_exit_2_without_traceback(tmp_path, capsys):
    for argv in (["train"], ["train", "x.prototxt", "--iters", "many"],
                 ["generate", "--steps", "0"], ["frobnicate"]):
        try:  # argparse's usage errors exit; a flag's value is refused like other input
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        assert code == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error:" in err, (argv, err)


def test_info_and_train_agree_on_a_net_error(tmp_path, monkeypatch, capsys):
    """`seqgen info` reports a broken net with the same message as `seqgen train`."""
    case = CASES["cont_wrong_length"]
    monkeypatch.chdir(tmp_path)
    args = prepare(case, tmp_path)
    assert main(args) == 2
    train_err = capsys.readouterr().err
    assert main(["info", args[1]]) == 2
    info_err = capsys.readouterr().err
    fragment = case["expect"][-1]
    assert fragment in train_err and fragment in info_err


def test_a_solver_given_as_a_net_says_so():
    from seqgen.errors import SeqgenError
    from seqgen.net import Net

    with pytest.raises(SeqgenError, match=r"lstm_short_solver.prototxt:\d+:1: this is a solver "
                                          r"file, not a net definition \(it sets 'net'"):
        Net(PLACES["solver"])


def test_blob_limit_is_caffes():
    """Shapes are refused beyond Caffe's INT_MAX values per blob (the fuzz tests lower it)."""
    from seqgen.layers import base

    assert base.MAX_BLOB_COUNT == 2 ** 31 - 1
