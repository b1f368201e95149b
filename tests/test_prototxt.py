"""seqgen.io.prototxt: reading nets and solvers, upgrades, and phase filtering."""

import os

import pytest

from seqgen.errors import SeqgenError
from seqgen.io.prototxt import (
    filter_net,
    parse_net_text,
    parse_solver_text,
    read_net,
    read_solver,
    state_meets_rule,
)
from seqgen.proto import caffe_pb2

LSTM_NET = """\
name: "LSTM"
input: "data"
input_shape { dim: 320 dim: 1 }
input: "clip"
input_shape { dim: 320 dim: 1 }
input: "label"
input_shape { dim: 320 dim: 1 }
layer {
  name: "Silence"
  type: "Silence"
  bottom: "label"
  include: { phase: TEST }
}
layer {
  name: "lstm1"
  type: "Lstm"
  bottom: "data"
  bottom: "clip"
  top: "lstm1"
  lstm_param {
    num_output: 15
    clipping_threshold: 0.1
    weight_filler { type: "gaussian" std: 0.1 }
    bias_filler { type: "constant" }
  }
}
layer {
  name: "ip1"
  type: "InnerProduct"
  bottom: "lstm1"
  top: "ip1"
  inner_product_param { num_output: 1 }
}
layer {
  name: "loss"
  type: "EuclideanLoss"
  bottom: "ip1"
  bottom: "label"
  top: "loss"
  include: { phase: TRAIN }
}
"""


def _write(path, text):
    path.write_text(text)
    return path


# ---- parsing and error positions ---------------------------------------------------------


def test_read_net_upgrades_input_shape(tmp_path):
    net = read_net(_write(tmp_path / "net.prototxt", LSTM_NET))
    assert not net.input and not net.input_shape and not net.input_dim
    names = [l.name for l in net.layer]
    assert names == ["data", "clip", "label", "Silence", "lstm1", "ip1", "loss"]
    for blob in ("data", "clip", "label"):
        layer = net.layer[names.index(blob)]
        assert layer.type == "Input"
        assert list(layer.top) == [blob] and not layer.bottom
        assert [list(s.dim) for s in layer.input_param.shape] == [[320, 1]]
    assert net.layer[4].lstm_param.num_output == 15


def test_input_dim_becomes_input_layers():
    net = parse_net_text(
        'input: "a" input: "b"\n'
        "input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4\n"
        "input_dim: 5 input_dim: 6 input_dim: 7 input_dim: 8\n"
        'layer { name: "x" type: "Silence" bottom: "a" bottom: "b" }\n'
    )
    assert [l.type for l in net.layer] == ["Input", "Input", "Silence"]
    dims = [list(l.input_param.shape[0].dim) for l in net.layer[:2]]
    assert dims == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert not net.input_dim and not net.input


@pytest.mark.parametrize(
    "text",
    [
        'input: "a" input: "b" input_shape { dim: 1 }',
        'input: "a" input_dim: 1 input_dim: 2',
        'input: "a" input_shape { dim: 1 } input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1',
        'input: "a"',
        "input_shape { dim: 1 }",
    ],
)
def test_inconsistent_inputs_are_refused(tmp_path, text):
    path = _write(tmp_path / "bad_inputs.prototxt", text)
    with pytest.raises(SeqgenError) as err:
        read_net(path)
    assert str(err.value).startswith(f"{path}: ")


def test_parse_error_has_file_line_col(tmp_path):
    path = _write(tmp_path / "typo.prototxt", 'name: "x"\nlayer {\n  nme: "a"\n}\n')
    with pytest.raises(SeqgenError) as err:
        read_net(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:3:3: ")
    assert 'no field named "nme"' in msg
    assert "3:3 :" not in msg  # the location is not repeated


def test_parse_error_bad_enum_value():
    with pytest.raises(SeqgenError) as err:
        parse_net_text('layer {\n  include { phase: TRAINING }\n}\n', name="n.prototxt")
    assert str(err.value).startswith("n.prototxt:2:")
    assert "TRAINING" in str(err.value)


def test_missing_file_names_file(tmp_path):
    path = tmp_path / "nope.prototxt"
    with pytest.raises(SeqgenError) as err:
        read_net(path)
    assert str(path) in str(err.value)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"\n\x03abc\xff\xfe\x00")
    with pytest.raises(SeqgenError) as err:
        read_net(path)
    assert str(err.value).startswith(f"{path}:2:5: not UTF-8 text")  # the 0xff byte


def test_v1_net_is_refused_with_line(tmp_path):
    text = (
        'name: "old"\n'
        "# layers in a comment do not count\n"
        'input: "data"\n'
        "  layers {\n"
        '  name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip"\n'
        "}\n"
    )
    path = _write(tmp_path / "v1.prototxt", text)
    with pytest.raises(SeqgenError) as err:
        read_net(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:4:3: V1-style 'layers {{ }}' blocks are not supported")
    assert "upgrade_net_proto_text" in msg


def test_v1_net_with_unparseable_type_is_still_reported_as_v1():
    # LSTM is not a V1 enum value, so parsing fails; the V1 message is more useful.
    text = 'layers {\n  name: "l" type: LSTM\n}\n'
    with pytest.raises(SeqgenError) as err:
        parse_net_text(text, name="v1.prototxt")
    assert str(err.value).startswith("v1.prototxt:1:1: V1-style")


def test_required_field_missing():
    with pytest.raises(SeqgenError) as err:
        parse_net_text('layer { name: "c" type: "Clip" clip_param { min: 0 } }', name="c.prototxt")
    assert "clip_param.max" in str(err.value)


# ---- include / exclude filtering ---------------------------------------------------------


def test_filter_train_and_test():
    net = parse_net_text(LSTM_NET)
    train = filter_net(net, caffe_pb2.TRAIN)
    test = filter_net(net, caffe_pb2.TEST)
    assert [l.name for l in train.layer] == ["data", "clip", "label", "lstm1", "ip1", "loss"]
    assert [l.name for l in test.layer] == ["data", "clip", "label", "Silence", "lstm1", "ip1"]
    assert train.state.phase == caffe_pb2.TRAIN and test.state.phase == caffe_pb2.TEST
    assert len(net.layer) == 7  # the input is not modified
    assert [l.name for l in filter_net(net, "train").layer] == [l.name for l in train.layer]


def test_filter_levels_stages_and_exclude():
    net = parse_net_text(
        """
        state { stage: "deploy" }
        layer { name: "always" type: "Silence" }
        layer { name: "lvl" type: "Silence" include { min_level: 1 max_level: 2 } }
        layer { name: "stg" type: "Silence" include { stage: "a" stage: "b" } }
        layer { name: "notstg" type: "Silence" include { phase: TEST not_stage: "deploy" } }
        layer { name: "either" type: "Silence" include { stage: "a" } include { phase: TRAIN } }
        layer { name: "ex" type: "Silence" exclude { phase: TEST } }
        """
    )
    names = lambda n: [l.name for l in n.layer]
    assert names(filter_net(net, caffe_pb2.TEST)) == ["always"]
    assert names(filter_net(net, caffe_pb2.TRAIN, level=1)) == ["always", "lvl", "either", "ex"]
    staged = filter_net(net, caffe_pb2.TEST, level=3, stages=["a", "b"])
    assert names(staged) == ["always", "stg", "either"]
    net.ClearField("state")
    assert names(filter_net(net, caffe_pb2.TEST)) == ["always", "notstg"]


def test_filter_refuses_include_and_exclude():
    net = parse_net_text('layer { name: "x" include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(SeqgenError, match="'x'"):
        filter_net(net, caffe_pb2.TRAIN)


def test_state_meets_rule_defaults():
    assert state_meets_rule(caffe_pb2.NetState(), caffe_pb2.NetStateRule())
    train_only = caffe_pb2.NetStateRule(phase=caffe_pb2.TRAIN)
    assert not state_meets_rule(caffe_pb2.NetState(), train_only)


# ---- solvers -----------------------------------------------------------------------------


def test_solver_net_is_relative_to_solver_file(tmp_path, monkeypatch):
    sub = tmp_path / "exp"
    sub.mkdir()
    _write(sub / "lstm_short.prototxt", LSTM_NET)
    solver_path = _write(
        sub / "solver.prototxt",
        'net: "lstm_short.prototxt"\ntest_net: "t.prototxt"\nbase_lr: 0.0001\n'
        'momentum: 0.95\nlr_policy: "fixed"\nsolver_mode: CPU\n',
    )
    monkeypatch.chdir(tmp_path)  # the solver is read from another folder
    solver = read_solver(os.path.join("exp", "solver.prototxt"))
    assert os.path.samefile(solver.net, sub / "lstm_short.prototxt")
    assert os.path.normpath(solver.test_net[0]) == os.path.join("exp", "t.prototxt")
    assert solver.type == "SGD" and not solver.HasField("type")
    assert read_net(solver.net).layer[4].type == "Lstm"
    assert read_solver(solver_path).net == str(sub / "lstm_short.prototxt")


def test_solver_absolute_net_untouched(tmp_path):
    solver = parse_solver_text('net: "/abs/n.prototxt"', base_dir=tmp_path)
    assert solver.net == "/abs/n.prototxt"


@pytest.mark.parametrize(
    "legacy, name",
    [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
     ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")],
)
def test_legacy_solver_type(legacy, name):
    solver = parse_solver_text(f"solver_type: {legacy}\nbase_lr: 0.1\n")
    assert solver.type == name
    assert not solver.HasField("solver_type")


def test_explicit_type_conflicting_with_solver_type():
    assert parse_solver_text('type: "Adam" solver_type: ADAM').type == "Adam"
    with pytest.raises(SeqgenError) as err:
        parse_solver_text('type: "Adam"\nsolver_type: NESTEROV', name="s.prototxt")
    assert str(err.value).startswith("s.prototxt:2:1: ")


def test_solver_parse_error_and_inline_net(tmp_path):
    path = _write(tmp_path / "s.prototxt", 'base_lr: 0.1\nmomentum: fast\n')
    with pytest.raises(SeqgenError) as err:
        read_solver(path)
    assert str(err.value).startswith(f"{path}:2:")
    solver = parse_solver_text(
        'net_param { input: "x" input_shape { dim: 2 dim: 3 } '
        'layer { name: "s" type: "Silence" bottom: "x" } }'
    )
    assert [l.type for l in solver.net_param.layer] == ["Input", "Silence"]
