"""The generated caffe_pb2 module: imports and agrees with BVLC / caffe-lstm on both backends.

Each backend is checked in a fresh interpreter, because protobuf picks its implementation
once, at first import.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK_SCRIPT = textwrap.dedent(
    r'''
    import sys
    from google.protobuf import text_format
    from google.protobuf.internal import api_implementation
    from seqgen.proto import caffe_pb2 as pb

    wanted = sys.argv[1]
    assert api_implementation.Type() == wanted, (api_implementation.Type(), wanted)

    def num(msg, field):
        return msg.DESCRIPTOR.fields_by_name[field].number

    def default(msg, field):
        return msg.DESCRIPTOR.fields_by_name[field].default_value

    def top_level_fields(data):
        """(field number, wire type) of each top-level field of serialised bytes."""
        out, i = [], 0
        def varint():
            nonlocal i
            shift = value = 0
            while True:
                b = data[i]; i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return value
        while i < len(data):
            key = varint()
            field, wire = key >> 3, key & 7
            out.append((field, wire))
            if wire == 0:
                varint()
            elif wire == 1:
                i += 8
            elif wire == 2:
                length = varint()  # read first: varint() moves i
                i += length
            elif wire == 5:
                i += 4
            else:
                raise AssertionError("unexpected wire type %d" % wire)
        return out

    net = text_format.Parse("""
        name: "t"
        layer {
          name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
          lstm_param {
            num_output: 15 clipping_threshold: 0.1 batch_size: 1
            weight_filler { type: "gaussian" std: 0.1 }
          }
        }
    """, pb.NetParameter())
    layer = net.layer[0]
    assert layer.lstm_param.num_output == 15
    assert abs(layer.lstm_param.clipping_threshold - 0.1) < 1e-7
    assert num(pb.LayerParameter, "lstm_param") == 201

    # On the wire: the layer carries field 201 (length-delimited), and the
    # LSTMParameter inside it carries fields 1, 2, 5 and 3.
    layer_bytes = layer.SerializeToString()
    fields = top_level_fields(layer_bytes)
    assert (201, 2) in fields, fields
    assert b"\xca\x0c" in layer_bytes  # varint key (201 << 3) | 2
    inner = sorted(f for f, _ in top_level_fields(layer.lstm_param.SerializeToString()))
    assert inner == [1, 2, 3, 5], inner
    again = pb.NetParameter.FromString(net.SerializeToString())
    assert again == net

    # LSTMParameter defaults
    lp = pb.LSTMParameter()
    assert lp.batch_size == 1 and lp.clipping_threshold == 0.0 and not lp.HasField("num_output")

    # A few BVLC numbers and defaults
    assert num(pb.LayerParameter, "recurrent_param") == 146
    assert num(pb.LayerParameter, "inner_product_param") == 117
    assert num(pb.LayerParameter, "input_param") == 143
    assert num(pb.LayerParameter, "include") == 8 and num(pb.LayerParameter, "exclude") == 9
    assert num(pb.BlobProto, "shape") == 7 and num(pb.BlobProto, "data") == 5
    assert num(pb.BlobProto, "diff") == 6 and num(pb.BlobProto, "double_data") == 8
    assert pb.BlobShape.DESCRIPTOR.fields_by_name["dim"].GetOptions().packed
    assert num(pb.NetParameter, "layer") == 100 and num(pb.NetParameter, "layers") == 2
    assert num(pb.NetParameter, "input_shape") == 8 and num(pb.NetParameter, "input_dim") == 4

    sp = pb.SolverParameter()
    assert num(pb.SolverParameter, "type") == 40 and sp.type == "SGD"
    assert num(pb.SolverParameter, "momentum2") == 39 and abs(sp.momentum2 - 0.999) < 1e-7
    assert num(pb.SolverParameter, "delta") == 31 and abs(sp.delta - 1e-8) < 1e-15
    assert num(pb.SolverParameter, "clip_gradients") == 35 and sp.clip_gradients == -1
    assert num(pb.SolverParameter, "rms_decay") == 38 and abs(sp.rms_decay - 0.99) < 1e-7
    assert num(pb.SolverParameter, "net") == 24 and num(pb.SolverParameter, "iter_size") == 36
    assert sp.iter_size == 1 and sp.regularization_type == "L2" and sp.random_seed == -1
    assert sp.snapshot_format == pb.SolverParameter.BINARYPROTO
    assert sp.solver_mode == pb.SolverParameter.GPU
    assert pb.SolverParameter.SolverType.Value("ADAM") == 5
    assert num(pb.SolverParameter, "weights") == 42

    ss = pb.SolverState()
    fields = ("iter", "learned_net", "history", "current_step")
    assert [num(pb.SolverState, f) for f in fields] == [1, 2, 3, 4]
    assert ss.current_step == 0

    fp = pb.FillerParameter()
    assert fp.type == "constant" and fp.std == 1 and fp.max == 1 and fp.min == 0
    assert fp.value == 0 and fp.sparse == -1 and fp.variance_norm == pb.FillerParameter.FAN_IN

    ps = pb.ParamSpec()
    assert ps.lr_mult == 1 and ps.decay_mult == 1
    assert pb.ParamSpec.DimCheckMode.Value("PERMISSIVE") == 1
    assert pb.NetState().phase == pb.TEST and pb.TRAIN == 0
    assert pb.InnerProductParameter().bias_term and pb.InnerProductParameter().axis == 1
    print("ok", wanted)
    '''
)


@pytest.mark.parametrize("backend", ["python", "upb"])
def test_caffe_pb2_backend(backend):
    env = dict(os.environ)
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = backend
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        ["/usr/bin/env", f"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION={backend}",
         sys.executable, "-c", CHECK_SCRIPT, backend],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"ok {backend}"


def test_generated_module_has_no_runtime_pin():
    generated = (REPO / "seqgen" / "proto" / "caffe_pb2.py").read_text()
    assert "ValidateProtobufRuntimeVersion" not in generated
    assert (REPO / "seqgen" / "proto" / "caffe.proto").is_file()
