"""Issue 20, parts 2 and 3: input the user gives is either taken or refused in one line
(exit 2) naming the flag, variable or file at fault, never a traceback, an endless silent
run or an out-of-vocabulary crash. The import-time cases (SEQGEN_THREADS, numba's cache,
the output encoding) run `seqgen` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line, run
from test_text import write_lm

import seqgen.data.tokens as tokens
from seqgen.app.generate_run import check_sequence_size
from seqgen.data.tokens import Vocabulary
from seqgen.errors import SeqgenError
from seqgen.limits import parse_whole

ROOT = Path(__file__).resolve().parent.parent
# 9 distinct characters, one not ASCII, for a net of 24 outputs: 15 have no token
CORPUS = "abcé défg\n" * 300
OUTPUTS = 24


def seqgen(*argv, env=None, cwd=None, script=None):
    """`python -m seqgen ARGV` (or `python -c SCRIPT ARGV`) in a subprocess."""
    environ = dict(os.environ, **(env or {}))
    head = ["-c", script] if script else ["-m", "seqgen"]
    return subprocess.run([sys.executable, *head, *map(str, argv)], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def text_run(cwd, capsys):
    """A character run whose vocabulary (9 tokens) is smaller than the net's outputs."""
    (cwd / "small.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(cwd, OUTPUTS, max_iter=4)
    code, out, err = run(capsys, "train", solver, "--data", "chars:small.txt", "--split",
                         "1,0", "--out", "S")
    assert code == 0, err
    assert len(Vocabulary.read(cwd / "S")) == 9
    return cwd / "S"


# -- part 2: sampling cannot leave the vocabulary -------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--top-k", "3"], ["--temperature", "3"]])
def test_sampling_a_net_with_spare_outputs_stays_in_the_vocabulary(text_run, capsys, extra):
    """On main, every seed drew ids without a token (IndexError in Vocabulary.text)."""
    vocab = set(Vocabulary.read(text_run).tokens)
    for seed in range(8):
        code, out, err = run(capsys, "generate", "--steps", 60, "--seed", seed, *extra)
        assert code == 0, err
        text = out  # only the sample is on stdout (the notes are on stderr)
        assert len(text) == 60 + 2 and set(text) <= vocab  # (the prime, a newline, and one)
    note = "Note: the net has 24 outputs, the vocabulary 9 tokens: outputs 9-23 are never " \
           "sampled"
    assert err.splitlines().count(note) == 1, err


def test_info_names_the_spare_outputs_of_a_net_beside_its_vocabulary(text_run, capsys):
    (text_run / "lm.prototxt").write_text((text_run.parent / "lm.prototxt").read_text())
    code, out, err = run(capsys, "info", text_run / "lm.prototxt")
    assert code == 0, err
    assert ("Note: the net has 24 outputs, the vocabulary 9 tokens: outputs 9-23 are never "
            "sampled") in out.splitlines()


# -- part 3: numbers a flag may hold ---------------------------------------------------------

LIMITS = [
    (["train", "x.prototxt", "--iters", "2147483648"],
     "--iters 2147483648: must be at most 2147483647 (the solver's max_iter is a 32-bit "
     "integer)"),
    (["train", "x.prototxt", "--resume", "x.solverstate", "--iters", "1e12"],
     "--iters 1000000000000: must be at most 2147483647"),
    (["sweep", "x.prototxt", "--iters", "1e12"], "--iters 1000000000000: must be at most"),
    (["train", "x.prototxt", "--seed", "1e23"],
     "--seed 100000000000000000000000: must be at most 9223372036854775807 (seeds are 0 to "
     "2**63-1, the solver's random_seed being an int64)"),
    (["train", "x.prototxt", "--seed", "-1"], "--seed -1: must be at least 0"),
    (["generate", "--seed", "-1"],
     "--seed -1: must be at least 0 (numpy's seeds are 0 to 2**64-1)"),
    (["generate", "--seed", str(2 ** 64)], f"--seed {2 ** 64}: must be at most {2 ** 64 - 1}"),
    (["generate", "--steps", "2.5"], "--steps 2.5: expected a whole number"),
    (["generate", "--top-k", "-1"], "--top-k -1: must be at least 0"),
    (["generate", "--samples", "0"], "--samples 0: must be at least 1"),
    (["train", "x.prototxt", "--epochs", "0"], "--epochs 0: must be at least 1"),
    (["train", "x.prototxt", "--epochs", "1e10"], "--epochs 10000000000: must be at most"),
    (["sweep", "x.prototxt", "--seeds", "0"], "--seeds 0: must be at least 1"),
    (["sweep", "x.prototxt", "--workers", "0"], "--workers 0: must be at least 1"),
    (["info", "x.prototxt", "--threads", "0"], "--threads 0: must be at least 1"),
    (["info", "x.prototxt", "--threads", "two"], "--threads two: expected a whole number"),
]


@pytest.mark.parametrize("argv,message", LIMITS, ids=[" ".join(a) for a, _ in LIMITS])
def test_a_number_beyond_where_it_ends_is_refused_in_one_line(cwd, capsys, argv, message):
    line = one_line(capsys, *argv)
    assert line.startswith(f"seqgen: error: {message}"), line


def test_top_k_beyond_the_vocabulary(text_run, capsys):
    line = one_line(capsys, "generate", "--top-k", "10")
    assert line == ("seqgen: error: --top-k 10: must be at most 9 (the run's vocabulary has 9 "
                    "tokens; 0 means all)")


def test_epochs_that_overflow_max_iter(cwd, capsys):
    """--epochs fits an int32, but times the iterations of an epoch it must too."""
    (cwd / "small.txt").write_text(CORPUS, encoding="utf-8")
    solver = write_lm(cwd, OUTPUTS)
    line = one_line(capsys, "train", solver, "--data", "chars:small.txt", "--split", "1,0",
                    "--epochs", "2000000000")
    assert line.startswith("seqgen: error: --epochs 2000000000: must be at most "), line
    assert line.endswith(" iterations an epoch, and max_iter is a 32-bit integer)"), line


def test_scientific_notation_is_read_exactly(cwd, capsys):
    """1e3 is 1000 (read as a decimal, not through a float); --steps 1e9 is refused for
    what it would take, not for how it is written."""
    assert parse_whole("1e3") == 1000 and parse_whole("2.0") == 2
    assert parse_whole("9007199254740993") == 2 ** 53 + 1
    assert parse_whole("1e30") == 10 ** 30 and parse_whole("1.5") is None
    assert parse_whole("nan") is None and parse_whole("inf") is None


def test_generate_steps_beyond_the_memory_bound(text_run, capsys):
    line = one_line(capsys, "generate", "--steps", "1e9")
    assert line == ("seqgen: error: --steps 1000000000 would take about 59.6 GiB of memory, "
                    "beyond seqgen's 2.0 GiB per request; give --steps 33554432 or fewer")
    line = one_line(capsys, "generate", "--steps", "20000000", "--samples", "4")
    assert line.startswith("seqgen: error: --steps 20000000 x --samples 4 would take about "
                           "4.8 GiB"), line


def test_a_sequence_run_bounds_its_steps_too(cwd, capsys):
    check_sequence_size(10 ** 6, np.zeros((5, 1)))
    with pytest.raises(SeqgenError, match=r"^--steps 1000000000 would take about 119.2 GiB "
                                          r".*give --steps 16777216 or fewer$"):
        check_sequence_size(10 ** 9, np.zeros((5, 1)))


def test_a_sweep_of_too_many_seeds_says_what_it_would_take(cwd, capsys):
    """On main, 10**8 seeds planned silently past 575 MB and on."""
    for name in ("lstm_short.prototxt", "lstm_short_solver.prototxt"):
        (cwd / name).write_text((ROOT / "prototxt" / name).read_text())
    line = one_line(capsys, "sweep", "lstm_short_solver.prototxt", "--seeds", "1e8")
    assert line.startswith("seqgen: error: --seeds 100000000: the sweep's 100000000 runs "
                           "(100000000 seed(s) x 1 setting(s) x 1 input mode(s), "), line
    assert "beyond seqgen's 2.0 GiB per request; give --seeds (or \"seeds\")" in line
    assert not (cwd / "sweeps").exists()


def test_a_sinusoid_beyond_the_memory_bound(cwd, capsys):
    for name in ("lstm_short.prototxt", "lstm_short_solver.prototxt"):  # (not a text net)
        (cwd / name).write_text((ROOT / "prototxt" / name).read_text())
    line = one_line(capsys, "train", "lstm_short_solver.prototxt", "--data", "sinusoid:1e12")
    assert line == ("seqgen: error: data spec 'sinusoid:1e12' would take about 58.2 TiB of "
                    "memory, beyond seqgen's 2.0 GiB per request; give a length of 33554432 "
                    "or less")


def test_a_device_as_text_data_is_refused(cwd, capsys):
    """On main, chars:/dev/zero read until the memory ran out."""
    solver = write_lm(cwd, 8)
    line = one_line(capsys, "train", solver, "--data", "chars:/dev/zero")
    assert line == ("seqgen: error: /dev/zero: not a regular file (a device, pipe or socket "
                    "may never end); give a file")


def test_a_text_file_beyond_the_memory_bound_is_refused(cwd, capsys, monkeypatch):
    monkeypatch.setattr(tokens, "MEMORY_LIMIT", 32 * 1000)
    (cwd / "big.txt").write_text("ab\n" * 400)
    solver = write_lm(cwd, 8)
    line = one_line(capsys, "train", solver, "--data", "chars:big.txt")
    assert line == ("seqgen: error: big.txt: 1200 bytes, more than seqgen reads as text (1000 "
                    "bytes at most)")


# -- import time: subprocesses ---------------------------------------------------------------

def test_seqgen_threads_that_is_no_number(cwd):
    proc = seqgen("info", ROOT / "prototxt" / "lstm_short.prototxt",
                  env={"SEQGEN_THREADS": "abc"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("seqgen: error: SEQGEN_THREADS='abc': expected a whole number of "
                           "threads from 1 to 1024\n")
    proc = seqgen("info", ROOT / "prototxt" / "lstm_short.prototxt",
                  env={"SEQGEN_THREADS": "0"})
    assert proc.returncode == 2 and "SEQGEN_THREADS='0'" in proc.stderr, proc.stderr


def test_importing_seqgen_with_a_bad_seqgen_threads_warns_and_uses_one(cwd):
    proc = seqgen(env={"SEQGEN_THREADS": "-3"}, script=(
        "import os, seqgen, seqgen.threads as t; "
        "print(t.count(), os.environ['OPENBLAS_NUM_THREADS'])"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1 1\n"
    assert proc.stderr == ("seqgen: warning: SEQGEN_THREADS='-3': expected a whole number of "
                           "threads from 1 to 1024; using 1\n")


# numba can write a cache folder nowhere but under seqgen's private temporary folder: as on
# a read-only install with a read-only home (root here ignores permissions, so the refusal
# is numba's own check made to fail)
NO_CACHE = """
import os, sys, tempfile
from numba.core import caching
private = os.path.join(tempfile.gettempdir(), "seqgen-numba-")
def refuse(self, base=caching._CacheLocator.ensure_cache_path):
    if not self.get_cache_path().startswith(private):
        raise PermissionError(13, "Permission denied", self.get_cache_path())
    return base(self)
def every(cls):
    return [cls] + [s for c in cls.__subclasses__() for s in every(c)]
for cls in every(caching._CacheLocator):
    if "ensure_cache_path" in vars(cls):
        cls.ensure_cache_path = refuse
if sys.argv[1:] == ["--plain"]:
    from numba import njit
    njit(cache=True)(lambda: 1)
from seqgen.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_no_writable_numba_cache_falls_back_to_a_private_folder(cwd):
    plain = seqgen("--plain", script=NO_CACHE)  # the simulation does make numba fail
    assert plain.returncode == 1 and "no locator available" in plain.stderr, plain.stderr
    proc = seqgen("info", ROOT / "prototxt" / "lstm_short.prototxt", script=NO_CACHE)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "seqgen: warning: no writable folder for numba's cache ("), proc.stderr
    private = lines[0].split("cached in ")[1].split(" ")[0]
    assert "compiled again next time (set NUMBA_CACHE_DIR to a writable folder)" in lines[0]
    assert not os.path.exists(private)  # removed at exit


def test_output_the_encoding_cannot_hold_is_escaped(text_run, cwd):
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    proc = seqgen("info", "é.prototxt", env=ascii_only, cwd=cwd)
    assert proc.returncode == 2
    assert proc.stderr == "seqgen: error: \\xe9.prototxt: no such file\n"
    proc = seqgen("generate", "--prime", "é", "--steps", 30, "--seed", 1, env=ascii_only,
                  cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("\\xe9"), proc.stdout  # (the note is on stderr)
    assert (text_run / "generated.txt").read_text(encoding="utf-8").startswith("é")
