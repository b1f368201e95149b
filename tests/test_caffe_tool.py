"""`seqgen caffe ACTION -flags`, Caffe's command line (tools/caffe.cpp): gflags' spellings,
Caffe's checks and one-line refusals, and what each action prints, checked on a tiny net
whose losses are worked out by hand in the tests (x = 0 from the Input layer, so the
InnerProduct gives its bias b; EuclideanLoss over N = 2 rows of target 0 is 2 b^2 / 4;
its gradient for b is 2 b / 2, so SGD without momentum takes b to b - lr * b)."""
import re

import pytest
from helpers import run

from seqgen.app.caffe_flags import parse_flags
from seqgen.errors import SeqgenError
from seqgen.net import Net

NET = """name: "tiny"
layer { name: "input" type: "Input" top: "x" top: "y"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 1 weight_filler { type: "constant" value: 0.5 }
                        bias_filler { type: "constant" value: 2 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
"""
SOLVER = """net: "tiny.prototxt"
base_lr: 0.1
lr_policy: "fixed"
display: 1
max_iter: 4
snapshot: 2
random_seed: 1
"""
GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ([\w.]+):(\d+)\] (.*)$")


def loss_of(b):
    return 2 * b * b / 4


def messages(err):
    """The messages of the glog lines on stderr (continuation lines of a multi-line
    message left out)."""
    return [m.group(4) for m in map(GLOG.match, err.splitlines()) if m]


@pytest.fixture
def tiny(cwd):
    (cwd / "tiny.prototxt").write_text(NET)
    (cwd / "tiny_solver.prototxt").write_text(SOLVER)
    return cwd


def weights_file(path, bias):
    net = Net("tiny.prototxt", phase="TEST")
    net.params["ip"][1].data[...] = bias
    net.save(str(path))
    return path


# -- flags --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["train", "-solver=S"], ["train", "-solver", "S"],
                                  ["--solver=S", "train"], ["--solver", "S", "train"]])
def test_flags_are_read_in_every_gflags_spelling(argv):
    flags = parse_flags(argv)
    assert (flags.action, flags.solver, flags.iterations) == ("train", "S", 50)


def test_int_flags_and_stages():
    flags = parse_flags(["time", "-iterations=0x10", "-level", "-3", "-stage=a,b"])
    assert (flags.iterations, flags.level, flags.stages()) == (16, -3, ["a", "b"])


@pytest.mark.parametrize("argv, said", [
    (["train", "-solvr=S"], "caffe: unknown command line flag 'solvr'"),
    (["test", "-iterations=ten"], "caffe: illegal value 'ten' specified for int32 flag "
                                  "'iterations'"),
    (["test", "-iterations=4294967296"], "illegal value '4294967296'"),
    (["train", "-solver"], "caffe: flag 'solver' is missing its argument"),
    (["brew"], "caffe: Unknown action: brew"),
    ([], "caffe: give one action"),
    (["train", "test"], "got 2 actions (train test)"),
])
def test_bad_flags_are_one_line_exit_2(argv, said, capsys):
    code, out, err = run(capsys, "caffe", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and said in err, err


@pytest.mark.parametrize("argv, said", [
    (["train"], "Need a solver definition to train"),
    (["train", "-solver=tiny_solver.prototxt", "-weights=a", "-snapshot=b"],
     "Give a snapshot to resume training or weights to finetune but not both."),
    (["train", "-solver=tiny_solver.prototxt", "-sigint_effect=pause"],
     'Invalid signal effect "pause" was specified'),
    (["test", "-weights=w"], "Need a model definition to score"),
    (["test", "-model=tiny.prototxt"], "Need model weights to score"),
    (["time"], "Need a model definition to time"),
    (["time", "-model=tiny.prototxt", "-phase=VAL"], 'phase must be "TRAIN" or "TEST"'),
])
def test_caffes_checks_are_one_line_exit_2(tiny, argv, said, capsys):
    code, out, err = run(capsys, "caffe", *argv)
    assert code == 2 and err.count("\n") == 1 and said in err, err


def test_help_prints_the_usage(capsys):
    code, out, _ = run(capsys, "caffe", "-help")
    assert code == 0 and "usage: seqgen caffe <command> <args>" in out and "-weights" in out


# -- train --------------------------------------------------------------------------------

def test_train_logs_as_caffe_and_snapshots_at_the_solver_path(tiny, capsys):
    code, out, err = run(capsys, "caffe", "train", "--solver", "tiny_solver.prototxt")
    assert code == 0 and out == ""
    said = messages(err)
    assert said[0] == "snapshot_prefix was not specified and is set to tiny_solver"
    assert said[1] == "Use CPU."
    assert said.index("Solving tiny") < said.index("Learning Rate Policy: fixed")
    b = 2.0
    for it in range(4):
        line = next(s for s in said if s.startswith(f"Iteration {it} ("))
        assert re.fullmatch(rf"Iteration {it} \([\d.e+-]+ iter/s, [\d.e+-]+s/1 iters\), "
                            r"loss = ([\d.e+-]+)", line), line
        assert float(line.rsplit("= ", 1)[1]) == pytest.approx(loss_of(b), rel=1e-5)
        assert f"Iteration {it}, lr = 0.1" in said
        b -= 0.1 * b
    # Solve's last forward pass shows the loss after the 4th update (display divides 4)
    assert float(said[-3].split("= ")[1]) == pytest.approx(loss_of(b), rel=1e-5)
    assert said[-3].startswith("Iteration 4, loss = ")
    assert said[-2:] == ["Optimization Done.", "Optimization Done."]
    for k in (2, 4):
        assert (tiny / f"tiny_solver_iter_{k}.caffemodel").exists()
        assert f"Snapshotting to binary proto file tiny_solver_iter_{k}.caffemodel" in said
    assert "Train net output #0: loss = 2 (* 1 = 2 loss)" in "\n".join(said)


def test_train_tags_its_lines_with_caffes_files(tiny, capsys):
    _, _, err = run(capsys, "caffe", "train", "-solver=tiny_solver.prototxt")
    tags = {}
    for m in map(GLOG.match, err.splitlines()):
        if m:
            tags.setdefault(m.group(4), []).append(f"{m.group(2)}:{m.group(3)}")
    assert tags["Solving tiny"] == ["solver.cpp:289"]
    assert tags["Creating Layer ip"] == ["net.cpp:86"]
    assert tags["Iteration 1, lr = 0.1"] == ["sgd_solver.cpp:112"]
    assert tags["Optimization Done."] == ["solver.cpp:332", "caffe.cpp:250"]


def test_weights_are_copied_in_order_and_snapshot_resumes(tiny, capsys):
    weights_file(tiny / "w3.caffemodel", 3.0)
    weights_file(tiny / "w1.caffemodel", 1.0)
    code, _, err = run(capsys, "caffe", "train", "-solver=tiny_solver.prototxt",
                       "-weights=w3.caffemodel,w1.caffemodel")
    said = messages(err)
    assert code == 0
    assert said.index("Finetuning from w3.caffemodel") < said.index(
        "Finetuning from w1.caffemodel")
    first = next(s for s in said if s.startswith("Iteration 0 ("))
    assert float(first.rsplit("= ", 1)[1]) == pytest.approx(loss_of(1.0), rel=1e-5)
    code, _, err = run(capsys, "caffe", "train", "-solver=tiny_solver.prototxt",
                       "-snapshot=tiny_solver_iter_2.solverstate")
    said = messages(err)
    assert code == 0 and "Resuming from tiny_solver_iter_2.solverstate" in said
    third = next(s for s in said if s.startswith("Iteration 2 ("))
    assert float(third.rsplit("= ", 1)[1]) == pytest.approx(loss_of(0.81), rel=1e-5)
    assert not any(s.startswith("Iteration 0 (") for s in said)


def test_gpu_is_one_warning_then_the_cpu(tiny, capsys):
    code, _, err = run(capsys, "caffe", "train", "-solver=tiny_solver.prototxt", "-gpu=0")
    warnings = [line for line in err.splitlines() if line.startswith("W")]
    assert code == 0 and len(warnings) == 2  # -gpu, and the Input blobs left as zeros
    assert "-gpu 0: seqgen runs on the CPU" in warnings[0]


def test_snapshot_prefix_folder_must_exist(tiny, capsys):
    (tiny / "s.prototxt").write_text(SOLVER + 'snapshot_prefix: "nowhere/tiny"\n')
    code, _, err = run(capsys, "caffe", "train", "-solver=s.prototxt")
    assert code == 2 and "Cannot write to snapshot prefix 'nowhere/tiny'" in err


# -- test, time, device_query ----------------------------------------------------------------

def test_test_prints_each_batch_and_the_means(tiny, capsys):
    weights_file(tiny / "w.caffemodel", 3.0)
    code, _, err = run(capsys, "caffe", "test", "-model", "tiny.prototxt",
                       "-weights", "w.caffemodel", "-iterations", "3")
    said = messages(err)
    assert code == 0 and "Running for 3 iterations." in said
    assert [s for s in said if s.startswith("Batch")] == [
        f"Batch {i}, loss = 4.5" for i in range(3)]
    assert said[-2:] == ["Loss: 4.5", "loss = 4.5 (* 1 = 4.5 loss)"]


def test_time_prints_every_layer_and_the_totals(tiny, capsys):
    code, _, err = run(capsys, "caffe", "time", "-model=tiny.prototxt", "-iterations=3")
    said = messages(err)
    assert code == 0 and said[said.index("Performing Forward") + 1] == "Initial loss: 2"
    assert [s.split(" forward")[0] for s in said if s.startswith("Iteration: ")] == [
        f"Iteration: {j}" for j in (1, 2, 3)]
    per_layer = said[said.index("Average time per layer: ") + 1:][:6]
    for line, (name, way) in zip(per_layer, [(n, w) for n in ("input", "ip", "loss")
                                             for w in ("forward", "backward")]):
        assert re.fullmatch(rf" *{name}\t{way}: [\d.e+-]+ ms\.", line) and \
            len(line.split("\t")[0]) == 10, line
    assert [s.split(":")[0] for s in said[-5:]] == [
        "Average Forward pass", "Average Backward pass", "Average Forward-Backward",
        "Total Time", "*** Benchmark ends ***"]


def test_device_query_says_there_is_no_gpu(capsys):
    code, _, err = run(capsys, "caffe", "device_query")
    assert code == 0 and "No GPU: seqgen runs on the CPU only" in err
    code, _, _ = run(capsys, "caffe", "device_query", "-gpu", "0")
    assert code == 1


def test_test_refuses_a_missing_weights_file(tiny, capsys):
    code, _, err = run(capsys, "caffe", "test", "-model=tiny.prototxt", "-weights=none.caffemodel")
    assert code == 2 and "none.caffemodel: no such file" in err


def test_a_fraction_is_no_int32_flag():
    with pytest.raises(SeqgenError, match="illegal value '1.5' specified for int32 flag"):
        parse_flags(["train", "-level=1.5"])
