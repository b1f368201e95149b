"""`seqgen generate [RUN]` and the samples it leaves: which run (a folder, a snapshot in one,
--weights RUNDIR, the latest run, never a sweep's child), the default seed and the record
generated.json, no sample replaced without its record, only the result on stdout, a closed
pipe, and the compile notice. Checked against the files and lines the commands leave, and
the messages written out here."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ROOT, one_line, run
from test_text import CORPUS, V_CHARS, write_lm

import seqgen
from seqgen.app.text_samples import write_samples
from seqgen.kernels.notice import NOTICE

SEPARATOR = "\n---------------\n"  # 15 dashes, as nanoGPT's sample.py prints them


@pytest.fixture
def trained(cwd, capsys):
    """A small character model trained into S (the working directory's latest run)."""
    (cwd / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(cwd, V_CHARS, max_iter=60)
    assert run(capsys, "train", solver, "--data", "chars:corpus.txt", "--out", "S")[0] == 0
    return cwd / "S"


@pytest.fixture
def sequence_run(cwd, capsys):
    """lstm_short trained for 2 iterations into Q."""
    shutil.copy(ROOT / "prototxt" / "lstm_short.prototxt", cwd)
    assert run(capsys, "train", "lstm_short.prototxt", "--iters", 2, "--out", "Q")[0] == 0
    return cwd / "Q"


def seqgen_process(*argv, cwd, **kwargs):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "seqgen", *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, **kwargs)


def notes(stderr):
    """stderr's lines but the compile notice (said only when numba compiles)."""
    return [line for line in stderr.splitlines() if line != NOTICE]


def record_of(folder):
    return json.loads((folder / "generated.json").read_text(encoding="utf-8"))


# -- which run ------------------------------------------------------------------------------

def test_a_folder_a_snapshot_in_it_and_weights_rundir_are_the_same_run(trained, capsys):
    sample = ("--prime", "the", "--steps", 30)
    code, out, err = run(capsys, "generate", "S", *sample)
    assert code == 0, err
    assert "latest run" not in err and out.startswith("the")
    snapshot = trained / "lm_iter_60.caffemodel"
    assert run(capsys, "generate", "S/lm_iter_60.caffemodel", *sample)[1:] == (out, err)
    assert run(capsys, "generate", "--weights", "S", *sample)[1:] == (out, err)
    record = record_of(trained)
    assert record["run"] == str(trained) and record["snapshot"] == str(snapshot)


def test_without_a_run_the_latest_is_used_and_said_on_stderr(trained, capsys):
    code, out, err = run(capsys, "generate", "--prime", "the", "--steps", 10)
    assert code == 0, err
    assert err.splitlines()[0] == "Using S (latest run)"


def test_without_the_pointer_the_newest_run_under_runs(trained, capsys):
    for name in ("a", "b"):
        shutil.copytree(trained, trained.parent / "runs" / name)
    os.remove(".seqgen_last_run")
    os.utime("runs/b/run.json", (1e9, 1e9))  # a's record changed last
    code, out, err = run(capsys, "generate", "--prime", "the", "--steps", 10)
    assert code == 0, err
    assert err.splitlines()[0] == "Using runs/a (latest run)"
    assert (trained.parent / "runs" / "a" / "generated.txt").is_file()


def test_a_run_argument_that_names_no_run_is_one_line(trained, capsys):
    assert one_line(capsys, "generate", "nope") == \
        "seqgen: error: nope: no such run folder or snapshot"
    os.mkdir("E")
    assert one_line(capsys, "generate", "E") == (
        "seqgen: error: E: not a run folder (no run.json); give a run folder, or a .caffemodel "
        "(with --net NET.prototxt outside a run)")
    assert one_line(capsys, "generate", "S", "--weights", "S") == (
        "seqgen: error: --weights S is a folder, and S names the run already; give --weights "
        "FILE.caffemodel, or the run once")
    snapshot = "S/lm_iter_60.caffemodel"
    assert one_line(capsys, "generate", snapshot, "--weights", snapshot) == (
        f"seqgen: error: {snapshot} names a snapshot already; leave out --weights {snapshot}")
    assert one_line(capsys, "generate", "--weights", "gone.caffemodel") == (
        "seqgen: error: gone.caffemodel: no such snapshot file (--weights FILE.caffemodel)")


@pytest.mark.parametrize("command", ["generate", "test", "plot"])
def test_a_folder_of_runs_says_to_pick_one(trained, capsys, command):
    for name in ("r2", "r1"):
        shutil.copytree(trained, trained.parent / "many" / name)
    assert one_line(capsys, command, "many") == (
        f"seqgen: error: many: a folder of 2 run(s), not one run; pick one, e.g. seqgen "
        f"{command} many/r1 (its runs: r1, r2)")


def test_a_run_without_a_snapshot_and_no_run_at_all(trained, capsys):
    shutil.copytree(trained, "N")
    record = json.loads(Path("N/run.json").read_text())
    del record["weights"]
    Path("N/run.json").write_text(json.dumps(record))
    assert one_line(capsys, "generate", "N") == ("seqgen: error: N: the run has no snapshot "
                                                 "yet (train it longer, or give --weights "
                                                 "FILE.caffemodel)")
    os.mkdir("elsewhere")
    os.chdir("elsewhere")
    assert one_line(capsys, "generate") == (
        "seqgen: error: no training run found under ./runs/ (run `seqgen train` first, or "
        "name a run folder or a .caffemodel, with --net outside a run)")


def test_test_reads_a_run_argument_the_same_way(trained, capsys):
    code, by_folder, err = run(capsys, "test", "S")
    assert code == 0, err
    assert by_folder.startswith("the run's test split (") and err == ""
    assert run(capsys, "test", "S/lm_iter_60.caffemodel")[1:] == (by_folder, "")
    shutil.copy(trained / "lm_iter_60.caffemodel", "loose.caffemodel")
    code, out, err = run(capsys, "test", "--weights", "loose.caffemodel")  # the latest run's
    assert code == 0 and out == by_folder, err
    assert err == "Using S (latest run)\n"


def test_export_takes_a_snapshot_of_a_run_without_net(sequence_run, capsys):
    code, out, err = run(capsys, "export", "Q/lstm_short_iter_2.caffemodel", "--format",
                         "onnx", "--out", "q.onnx")
    assert code == 0, err
    assert Path("q.onnx").is_file() and out == ""


def test_a_sweep_leaves_the_latest_run_alone(trained, capsys):
    pointer = Path(".seqgen_last_run").read_text()
    code, out, err = run(capsys, "sweep", ROOT / "prototxt" / "lstm_short_solver.prototxt",
                         "--iters", 2, "--workers", 1, "--out", "sw")
    assert code == 0, (out, err)
    assert Path(".seqgen_last_run").read_text() == pointer
    code, out, err = run(capsys, "generate", "--prime", "the", "--steps", 10)  # (ROMEO: is
    # not in this corpus's vocabulary)
    assert code == 0, err
    assert err.splitlines()[0] == "Using S (latest run)"
    child = "lstm_short-seed1"
    assert one_line(capsys, "generate", "sw") == (
        f"seqgen: error: sw: a folder of 1 run(s), not one run; pick one, e.g. seqgen "
        f"generate sw/{child} (its runs: {child})")
    # a sweep's run noted by an earlier seqgen is not taken for the latest run
    Path(".seqgen_last_run").write_text(str(trained.parent / "sw" / child) + "\n")
    shutil.copytree(trained, "runs/T")
    code, out, err = run(capsys, "generate", "--prime", "the", "--steps", 10)
    assert code == 0, err
    assert err.splitlines()[0] == "Using runs/T (latest run)"


def test_a_text_prime_on_a_sequence_run_names_the_run(sequence_run, capsys):
    assert one_line(capsys, "generate", "Q", "--prime", "ROMEO:") == (
        "seqgen: error: --prime 'ROMEO:': Q is a sequence run, whose --prime is a number of "
        "true steps to feed first (text runs take a text); name a text run: seqgen generate "
        "RUN --prime TEXT")


# -- reproducible samples and their record ----------------------------------------------------

def test_the_default_seed_is_123_said_and_recorded(trained, capsys):
    sample = ("generate", "--prime", "the", "--steps", 60)
    code, first, err = run(capsys, *sample)
    assert code == 0, err
    assert "Seed 123 (the default; --seed S draws other samples)" in err.splitlines()
    assert record_of(trained)["seed"] == 123
    assert run(capsys, *sample)[1] == first  # the same text twice
    assert run(capsys, *sample, "--seed", 123)[1] == first
    code, other, err = run(capsys, *sample, "--seed", 124)
    assert other != first and "Seed" not in err
    code, three, err = run(capsys, *sample, "--samples", 3)  # the first is the same sample
    assert three.split(SEPARATOR)[0] + "\n" == first and three.count(SEPARATOR) == 2


def test_generated_json_records_every_setting(trained, capsys):
    code, out, err = run(capsys, "generate", "S", "--prime", "the q", "--steps", 25,
                         "--temperature", 0.7, "--top-k", 5, "--samples", 2, "--seed", 9)
    assert code == 0, err
    text = (trained / "generated.txt").read_bytes()
    record = record_of(trained)
    written = record.pop("written")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", written)
    assert record == {
        "kind": "text samples", "run": str(trained),
        "snapshot": str(trained / "lm_iter_60.caffemodel"),
        "net": str(trained.parent / "lm.prototxt"), "prime": "the q", "steps": 25,
        "temperature": 0.7, "top_k": 5, "seed": 9, "samples": 2, "argmax": False,
        "top_p": 1.0, "beam": 0, "alpha": 1.0, "stop": [], "stop_ids": [],
        "prime_file": None, "static": None,
        "text_sha256": hashlib.sha256(text).hexdigest(), "seqgen": seqgen.__version__}
    assert err.splitlines()[-1] == "Wrote S/generated.txt and its record generated.json"


@dataclass
class Decoding:
    """Settings as the decoding code may hold them: a dataclass with fields of its own."""
    prime: str = "a"
    steps: int = 3
    top_p: float = 0.9
    beam: int = 2
    stop: list = field(default_factory=lambda: ["\n\n"])


def test_every_setting_of_a_dataclass_or_mapping_reaches_the_record(tmp_path):
    text, path = write_samples(str(tmp_path), ["ab", "cd"], Decoding(), run="R",
                               snapshot="R/w.caffemodel", net="n.prototxt", log=print)
    assert text == "ab\n---------------\ncd\n" == Path(path).read_text()
    record = record_of(tmp_path)
    assert {k: record[k] for k in ("prime", "steps", "top_p", "beam", "stop")} == \
        {"prime": "a", "steps": 3, "top_p": 0.9, "beam": 2, "stop": ["\n\n"]}
    assert record["run"] == os.path.abspath("R")
    write_samples(str(tmp_path), ["x"], {"top_p": 0.5, "beam": 1}, log=print)
    assert record_of(tmp_path)["top_p"] == 0.5 and record_of(tmp_path)["beam"] == 1
    with pytest.raises(TypeError, match="settings: a dataclass or a mapping, not list"):
        write_samples(str(tmp_path), ["x"], [("top_p", 1)])


def test_a_sample_is_never_replaced_without_its_record(trained, capsys):
    sample = ("generate", "S", "--prime", "the", "--steps", 20)
    (trained / "generated.txt").write_text("my own notes\n")
    code, out, err = run(capsys, *sample)
    assert code == 0, err
    kept = sorted(trained.glob("generated-unrecorded-*.txt"))
    assert [p.read_text() for p in kept] == ["my own notes\n"]
    assert (f"Kept the earlier generated.txt, which generated.json does not record, as "
            f"S/{kept[0].name}") in err.splitlines()
    assert run(capsys, *sample)[0] == 0  # recorded: replaced, nothing more kept
    assert len(list(trained.glob("generated-unrecorded-*.txt"))) == 1
    with open(trained / "generated.txt", "a") as f:
        f.write("an edit\n")  # no longer the text its record holds
    assert run(capsys, *sample)[0] == 0
    assert len(list(trained.glob("generated-unrecorded-*.txt"))) == 2
    (trained / "generated.json").unlink()  # a sample without any record
    assert run(capsys, *sample)[0] == 0
    kept = sorted(trained.glob("generated-unrecorded-*.txt"))
    assert len(kept) == 3 and sum(p.read_text() == out for p in kept) == 1


# -- stdout, stderr, pipes ---------------------------------------------------------------------

def test_stdout_holds_the_samples_only_separated_by_a_line(trained):
    done = seqgen_process("generate", "--prime", "the", "--steps", 40, "--samples", 3,
                          cwd=trained.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (trained / "generated.txt").read_text()
    assert done.stdout.count(SEPARATOR) == 2 and done.stdout.startswith("the")
    assert notes(done.stderr) == ["Using S (latest run)",
                                  "Seed 123 (the default; --seed S draws other samples)",
                                  "Wrote S/generated.txt and its record generated.json"]


def test_other_commands_keep_notes_off_stdout(sequence_run, capsys):
    code, out, err = run(capsys, "generate", "Q", "--steps", 30)
    assert code == 0, err
    assert re.fullmatch(r"Generated 30 steps: MSE [0-9.e+-]+, max abs error [0-9.e+-]+\n", out)
    assert err == "Wrote Q/generated.csv and Q/generated.png\n"
    code, out, err = run(capsys, "plot", "Q")
    assert code == 0 and out == "", err
    assert err == "Wrote Q/generated.png\nWrote Q/loss.png\n"


@pytest.mark.parametrize("argv", [("generate", "--prime", "the", "--steps", 3000,
                                   "--samples", 4), ("info", "lm.prototxt")])
def test_a_closed_pipe_ends_quietly(trained, argv):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "seqgen", *map(str, argv)],
                            cwd=trained.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before seqgen writes a line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err


def test_a_shell_pipe_into_head(trained):
    # 100,000 characters, beyond what a pipe buffers (64 KiB): head leaves before the end
    done = subprocess.run(["bash", "-c", f"set -o pipefail; '{sys.executable}' -m seqgen "
                           "generate --prime the --steps 20000 --samples 5 | head -1"],
                          cwd=trained.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == (trained / "generated.txt").read_text().split("\n")[0] + "\n"


# -- the compile notice -------------------------------------------------------------------------

PROBE = """from numba import njit


@njit(cache=True)
def twice(x):
    return 2 * x
"""
SCRIPT = """import sys
sys.path.insert(0, ".")
from seqgen.kernels.notice import listen
listen(sys.argv[1])
import probe_kernels
print(probe_kernels.twice(21))
"""


def test_the_compile_notice_only_when_numba_compiles(tmp_path):
    (tmp_path / "probe_kernels.py").write_text(PROBE)
    (tmp_path / "script.py").write_text(SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def probe(package):
        done = subprocess.run([sys.executable, "script.py", package], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout == "42\n", done.stderr
        return done.stderr

    assert probe("probe_kernels") == NOTICE + "\n"  # compiled: said once
    assert probe("probe_kernels") == ""  # loaded from numba's cache: nothing to say
    shutil.rmtree(tmp_path / "cache")
    assert probe("other_package") == ""  # compiled, but not the package's kernels


def test_no_compile_notice_once_the_kernels_are_cached(trained):
    for _ in range(2):
        done = seqgen_process("generate", "--prime", "the", "--steps", 20, cwd=trained.parent)
        assert done.returncode == 0, done.stderr
    assert "Compiling" not in done.stderr and done.stdout.startswith("the")
