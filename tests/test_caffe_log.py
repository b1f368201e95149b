"""caffe.log, Caffe's log of a `seqgen train` run: every line in glog's documented format
(`Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg`), with the messages Caffe's
tools/extra/parse_log.py looks for ("Solving" first, then "Iteration N", "Train net output
#k: name = v", "lr = v", "Test net output #k: name = v"), their values the run's own
loss.csv and test_loss.csv, and a resumed run appending to it. The regexes here are
written from those documented formats."""
import datetime
import re

import helpers
import numpy as np
import pytest
from helpers import run

from seqgen.app.glog import cnum, glog_line

GLOG = re.compile(r"^([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) "
                  r"([\w.]+):(\d+)\] (.*)$")
HEADER = ["Log file created at: ", "Running on machine: ",
          "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg"]
TRAIN = re.compile(r"Train net output #(\d+): (\S+) = ([.\deE+-]+)")
TEST = re.compile(r"Test net output #(\d+): (\S+) = ([.\deE+-]+)")
ITERATION = re.compile(r"Iteration (\d+)")
LR = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def test_a_line_is_glogs_format():
    now = datetime.datetime(2026, 12, 6, 21, 0, 0, 123456)
    assert glog_line("I", "solver.cpp:218", "Solving x", now, 12345) == \
        "I1206 21:00:00.123456 12345 solver.cpp:218] Solving x\n"
    assert glog_line("W", "net.cpp:1", "m", now, 42) == \
        "W1206 21:00:00.123456    42 net.cpp:1] m\n"


@pytest.mark.parametrize("value, text", [(0.1, "0.1"), (1e-5, "1e-05"), (2.0, "2"),
                                         (123456789.0, "1.23457e+08"), (0.000123, "0.000123"),
                                         (np.float32(0.1), "0.1"), (float("nan"), "nan")])
def test_numbers_print_as_cs_percent_g(value, text):
    assert cnum(value) == text


def train(capsys, cwd, *extra):
    solver = helpers.solver_file(
        cwd, "lstm_short", 'base_lr: 0.0001\nmomentum: 0.95\nlr_policy: "fixed"\n'
        "display: 10\naverage_loss: 1\nmax_iter: 40\nsnapshot: 20\nrandom_seed: 3\n"
        "test_interval: 20\ntest_iter: 1\ntest_initialization: true\n")
    code, out, err = run(capsys, "train", solver, "--data", "sinusoid:1280", "--holdout",
                         "320", "--out", "run", *extra)
    assert code == 0, err
    return out


def parsed(path):
    """(glog matches, header lines) of a caffe.log; every other line must continue a
    multi-line message (the solver's and net's parameters), and none is empty."""
    matches, header = [], []
    lines = path.read_text().splitlines()
    for line in lines:
        assert line.strip(), "an empty line (parse_log.py fails on one)"
        m = GLOG.match(line)
        if m:
            matches.append(m)
        elif any(line.startswith(h) for h in HEADER):
            header.append(line)
        else:
            assert matches and matches[-1].group(11).endswith("parameters: "), line
    return matches, header


def test_caffe_log_holds_the_runs_losses_in_caffes_lines(cwd, capsys):
    train(capsys, cwd)
    matches, header = parsed(cwd / "run" / "caffe.log")
    assert [h.split(":")[0] for h in header] == ["Log file created at", "Running on machine",
                                                 "Log line format"]
    said = [m.group(11) for m in matches]
    solving = next(i for i, s in enumerate(said) if "Solving" in s)
    first = next(i for i, s in enumerate(said) if ITERATION.search(s))
    assert said[solving] == "Solving LSTM" and solving < first
    assert said[solving + 1] == "Learning Rate Policy: fixed"
    loss = dict(np.loadtxt(cwd / "run" / "loss.csv", delimiter=",", skiprows=1))
    tests = dict(np.atleast_2d(np.loadtxt(cwd / "run" / "test_loss.csv", delimiter=",",
                                          skiprows=1)))
    iteration, trains, tested, lrs = None, {}, {}, {}
    for s in said:
        if ITERATION.search(s):
            iteration = int(ITERATION.search(s).group(1))
        if TRAIN.search(s):
            trains[iteration] = float(TRAIN.search(s).group(3))
        if TEST.search(s):
            tested[iteration] = float(TEST.search(s).group(3))
        if LR.search(s):
            lrs[iteration] = float(LR.search(s).group(1))
    assert sorted(trains) == [0, 10, 20, 30] and sorted(lrs) == [0, 10, 20, 30]
    for it, value in trains.items():
        assert value == pytest.approx(loss[it], rel=1e-5)
    assert list(lrs.values()) == [1e-4] * 4
    assert sorted(tested) == [0, 20, 40]
    for it, value in tested.items():
        assert value == pytest.approx(tests[it], rel=1e-5)
    assert said[-1] == "Optimization Done."
    tags = {s: f"{m.group(9)}:{m.group(10)}" for s, m in zip(said, matches)}
    assert tags["Solving LSTM"] == "solver.cpp:289"
    assert tags["Snapshotting to binary proto file run/lstm_short_iter_20.caffemodel"] == \
        "solver.cpp:464"
    assert "Memory required for data: 3840" in said  # 3 Input blobs of 320 floats


def test_a_resumed_run_appends_to_its_log(cwd, capsys):
    out = train(capsys, cwd, "--iters", "20")
    first = (cwd / "run" / "caffe.log").read_text()
    train(capsys, cwd, "--resume", "run/lstm_short_iter_20.solverstate", "--iters", "40")
    text = (cwd / "run" / "caffe.log").read_text()
    assert text.startswith(first) and text.count("Log file created at") == 1
    said = [m.group(11) for m in parsed(cwd / "run" / "caffe.log")[0]]
    assert said.count("Solving LSTM") == 2 and said.count("Optimization Done.") == 2
    assert "Resuming from run/lstm_short_iter_20.solverstate" in said
    assert "Iteration 30, lr = 0.0001" in said and "Run folder" not in text
    assert "Solving" not in out  # the console output is seqgen's own
