"""Property-based fuzzing: whatever a user feeds seqgen, the outcome is a result or a
SeqgenError -- never another exception, a hang, or a crash of the process (numba does not
check bounds, so a bad index reaching a kernel would be a segfault, not an exception).

What is fed:
- prototxt text: the shipped nets and a few nets using every layer type, mutated token by
  token (deleted, duplicated, swapped, replaced by other tokens, by numbers at the edges
  of their types, by random characters), and random bytes; each is parsed, built as a
  Net and run forward and backward once;
- .caffemodel bytes: random, and a real file truncated, spliced and bit-flipped;
- the Lstm, LSTM and RNN layers, called through the layer API with random sizes, wrong
  bottom shapes, clip/cont markers with NaN, inf, negative and huge values, forward without
  reshape and odd recurrent states; results with tame inputs are checked against a numpy
  reference of each layer's equations;
- Embed indices and HDF5Data batch sizes.

The normal suite runs a bounded number of examples with a fixed seed; set
SEQGEN_FUZZ_EXAMPLES=N for a longer, randomised run, e.g.

    SEQGEN_FUZZ_EXAMPLES=2000 python -m pytest -q tests/test_fuzz.py
"""
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reference import lstm_forward, rnn_forward

from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text, parse_solver_text
from seqgen.io.weights import load_weights, net_to_proto
from seqgen.layers import base as layer_base
from seqgen.net import TEST, TRAIN, Net
from seqgen.proto import caffe_pb2
from seqgen.registry import LAYERS, layer_class

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in fuzzed values

ROOT = Path(__file__).parents[1]
CAFFEMODEL = ROOT / "tests" / "golden" / "caffe-lstm" / "e2e_short_2000" / "initial.caffemodel"

LONG_RUN = int(os.environ.get("SEQGEN_FUZZ_EXAMPLES", "0") or 0)
# one example must never take this long (a hang or an unbounded allocation shows up here)
SLOW = 20.0


def fuzz(default):
    """Hypothesis settings: `default` examples in the normal suite (same examples every
    run), SEQGEN_FUZZ_EXAMPLES random ones in a long run."""
    return settings(max_examples=LONG_RUN or default, deadline=None, derandomize=not LONG_RUN,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(autouse=True, scope="module")
def small_blobs():
    """Fuzzed nets ask for any size; keep blobs small so that each example stays fast (the
    limit is the same check that refuses blobs beyond Caffe's INT_MAX in real use)."""
    saved = layer_base.MAX_BLOB_COUNT
    layer_base.MAX_BLOB_COUNT = 1 << 18
    yield
    layer_base.MAX_BLOB_COUNT = saved


class Timed:
    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        took = time.perf_counter() - self.start
        assert took < SLOW, f"one example took {took:.1f} s"
        return False


# ---------------------------------------------------------------------------------------
# prototxt text
# ---------------------------------------------------------------------------------------

ZOO = """name: "zoo"
layer { name: "words" type: "Input" top: "words" top: "cont" top: "target"
        input_param { shape { dim: 4 dim: 2 } } }
layer { name: "static" type: "Input" top: "static" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "emb" type: "Embed" bottom: "words" top: "vec"
        embed_param { num_output: 3 input_dim: 5
                      weight_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "lstm" type: "LSTM" bottom: "vec" bottom: "cont" bottom: "static" top: "h"
        recurrent_param { num_output: 4 weight_filler { type: "xavier" }
                          bias_filler { type: "constant" value: 0.1 } } }
layer { name: "rnn" type: "RNN" bottom: "vec" bottom: "cont" top: "o"
        recurrent_param { num_output: 4 weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "cat" type: "Concat" bottom: "h" bottom: "o" top: "ho" concat_param { axis: 2 } }
layer { name: "sl" type: "Slice" bottom: "ho" top: "s1" top: "s2"
        slice_param { axis: 2 slice_point: 4 } }
layer { name: "sum" type: "Eltwise" bottom: "s1" bottom: "s2" top: "e"
        eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "relu" type: "ReLU" bottom: "e" top: "e" relu_param { negative_slope: 0.1 } }
layer { name: "drop" type: "Dropout" bottom: "e" top: "e" dropout_param { dropout_ratio: 0.2 } }
layer { name: "sc" type: "Scale" bottom: "e" top: "sc" scale_param { axis: 2 bias_term: true } }
layer { name: "bi" type: "Bias" bottom: "sc" top: "bi" bias_param { axis: 2 } }
layer { name: "th" type: "TanH" bottom: "bi" top: "th" }
layer { name: "sg" type: "Sigmoid" bottom: "th" top: "sg" }
layer { name: "fl" type: "Flatten" bottom: "sg" top: "fl" flatten_param { axis: 2 } }
layer { name: "rs" type: "Reshape" bottom: "fl" top: "rs"
        reshape_param { shape { dim: 0 dim: 0 dim: -1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "rs" top: "logits"
        inner_product_param { num_output: 5 axis: 2 weight_filler { type: "msra" } } }
layer { name: "sm" type: "Softmax" bottom: "logits" top: "prob" softmax_param { axis: 2 } }
layer { name: "red" type: "Reduction" bottom: "prob" top: "red"
        reduction_param { operation: SUMSQ axis: 1 } }
layer { name: "sil" type: "Silence" bottom: "red" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "target" top: "loss"
        softmax_param { axis: 2 } include { phase: TRAIN } }
"""

EXPOSED = """name: "exposed"
input: "x" input_shape { dim: 5 dim: 2 dim: 3 }
input: "cont" input_shape { dim: 5 dim: 2 }
input: "h0" input_shape { dim: 1 dim: 2 dim: 4 }
input: "c0" input_shape { dim: 1 dim: 2 dim: 4 }
input: "y" input_shape { dim: 5 dim: 2 dim: 1 }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "h0" bottom: "c0"
        top: "h" top: "hT" top: "cT"
        recurrent_param { num_output: 4 expose_hidden: true
                          weight_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "rnn" type: "RNN" bottom: "h" bottom: "cont" bottom: "hT" top: "o" top: "oT"
        recurrent_param { num_output: 4 expose_hidden: true
                          weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "o" top: "p"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
layer { name: "sil" type: "Silence" bottom: "cT" bottom: "oT" }
"""

# the shipped nets with their sequence length (and the language models' streams and
# vocabulary) cut down: the fuzzing is about structure
SHIPPED = sorted(p for p in (ROOT / "prototxt").glob("*.prototxt") if "solver" not in p.name)
SOLVERS = sorted(p for p in (ROOT / "prototxt").glob("*.prototxt") if "solver" in p.name)
NET_SEEDS = [re.sub(r"\b6022\b", "60", re.sub(r"dim: (320|960|50|20)\b", "dim: 12",
                                              p.read_text())) for p in SHIPPED]
NET_SEEDS += [ZOO, EXPOSED]
SOLVER_SEEDS = [p.read_text() for p in SOLVERS]

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|\s+'
                    r'|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|.', re.S)

INTERESTING = [
    "0", "1", "-1", "2", "3", "7", "-0", "0.5", "1e-45", "1e30", "-1e30", "1e39", "nan", "inf",
    "-inf", "4294967295", "4294967296", "2147483647", "2147483648", "-2147483649",
    "9223372036854775807", "18446744073709551616", "0x10", "010", '""', '"\\xff"', "'x'",
    "{", "}", "<", ">", ":", ";", ",", "[", "]", "layer", "layers", "name", "type", "bottom",
    "top", "include", "exclude", "phase", "TRAIN", "TEST", "param", "loss_weight",
    "propagate_down", "num_output", "batch_size", "axis", "input", "input_shape", "input_dim",
    "dim", "expose_hidden", "true", "false", "shape", "lr_mult", "share_mode", "PERMISSIVE",
    '"data"', '"clip"', '"cont"', '"label"', '"lstm1"', '"ip1"', '"x"', '"h"', '"loss"',
    "weight_filler", "bias_filler", '"xavier"', '"msra"', '"positive_unitball"',
    '"constant"', '"uniform"', '"gaussian"', "std", "sparse", "min", "max", "value",
    "force_backward", "inner_product_param", "lstm_param", "recurrent_param", "embed_param",
    "input_param", "hdf5_data_param", "source", '"list.txt"',
] + [f'"{t}"' for t in sorted(LAYERS)]


def tokens_of(text):
    return _TOKEN.findall(text)


@st.composite
def mutated_text(draw, seeds):
    tokens = tokens_of(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        solid = [i for i, t in enumerate(tokens) if t.strip() and not t.startswith("#")]
        if not solid:
            break
        i = draw(st.sampled_from(solid))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "same", "interesting",
                                   "interesting", "number", "chars", "block"]))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i] + " ")
        elif op == "swap":
            j = draw(st.sampled_from(solid))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "same":
            tokens[i] = draw(st.sampled_from([tokens[j] for j in solid]))
        elif op == "interesting":
            tokens[i] = " " + draw(st.sampled_from(INTERESTING)) + " "
        elif op == "number":
            tokens[i] = " " + str(draw(st.one_of(
                st.integers(-3, 40), st.integers(-2 ** 64, 2 ** 64),
                st.floats(allow_nan=True, allow_infinity=True)))) + " "
        elif op == "chars":
            tokens[i] = draw(st.text(max_size=6))
        else:  # duplicate or drop a run of tokens (whole fields, blocks)
            j = draw(st.integers(i, min(len(tokens), i + 40)))
            if draw(st.booleans()):
                tokens[i:i] = tokens[i:j]
            else:
                del tokens[i:j]
    return "".join(tokens)


# -- mutations of the parsed net: every field set to values at the edges of its type ------

_FD = FieldDescriptor
_NUMBERS = {
    _FD.CPPTYPE_INT32: st.integers(-3, 40) | st.sampled_from([-2 ** 31, 2 ** 31 - 1, 100000]),
    _FD.CPPTYPE_UINT32: st.integers(0, 40) | st.sampled_from([2 ** 31, 2 ** 32 - 1, 100000]),
    _FD.CPPTYPE_INT64: st.integers(-3, 40) | st.sampled_from([-2 ** 63, 2 ** 63 - 1, 2 ** 40]),
    _FD.CPPTYPE_UINT64: st.integers(0, 40) | st.sampled_from([2 ** 64 - 1, 2 ** 40]),
    _FD.CPPTYPE_FLOAT: st.floats(-5, 5, width=32) | st.sampled_from(
        [0.0, -0.0, math.nan, math.inf, -math.inf, 1e30, -1e30, 1e-40, 3e38]),
    _FD.CPPTYPE_DOUBLE: st.floats(-5, 5) | st.sampled_from(
        [0.0, math.nan, math.inf, -math.inf, 1e300, -1e300, 5e-324]),
    _FD.CPPTYPE_BOOL: st.booleans(),
}


def _messages(message, out):
    out.append(message)
    for fd, value in message.ListFields():
        if fd.cpp_type == _FD.CPPTYPE_MESSAGE:
            for sub in (value if fd.is_repeated else [value]):
                _messages(sub, out)
    return out


def _strings(message):
    """Every string value in the net (blob, layer and type names) plus all layer types."""
    found = set(LAYERS) | {""}
    for m in _messages(message, []):
        for fd, value in m.ListFields():
            if fd.cpp_type == _FD.CPPTYPE_STRING:
                found.update(value if fd.is_repeated else [value])
    return sorted(found)


def _scalar(draw, fd, names):
    if fd.cpp_type == _FD.CPPTYPE_ENUM:
        return draw(st.sampled_from([v.number for v in fd.enum_type.values]))
    if fd.cpp_type == _FD.CPPTYPE_STRING:
        return draw(st.sampled_from(names) | st.text(max_size=4))
    return draw(_NUMBERS[fd.cpp_type])


def _mutate_field(draw, message, clear, names):
    """Clear a field of `message`, or set / append / drop a value of one of its fields
    (mostly fields already set; sometimes any field of the message type)."""
    present = [fd for fd, _ in message.ListFields()]
    if clear:
        if present:
            message.ClearField(draw(st.sampled_from(present)).name)
        return
    every = list(message.DESCRIPTOR.fields)
    fd = draw(st.sampled_from(present)) if present and draw(st.integers(0, 9)) < 7 \
        else draw(st.sampled_from(every))
    field = getattr(message, fd.name)
    if fd.cpp_type == _FD.CPPTYPE_MESSAGE:
        if fd.is_repeated:
            if len(field) and draw(st.booleans()):
                del field[draw(st.integers(0, len(field) - 1))]
            else:
                added = field.add()
                if len(field) > 1 and draw(st.booleans()):
                    added.CopyFrom(field[draw(st.integers(0, len(field) - 2))])
        else:
            field.SetInParent()
    elif fd.is_repeated:
        if len(field) and draw(st.booleans()):
            k = draw(st.integers(0, len(field) - 1))
            if draw(st.booleans()):
                del field[k]
            else:
                field[k] = _scalar(draw, fd, names)
        else:
            field.append(_scalar(draw, fd, names))
    else:
        setattr(message, fd.name, _scalar(draw, fd, names))


@st.composite
def mutated_net(draw, seeds):
    net = parse_net_text(draw(st.sampled_from(seeds)))
    names = _strings(net)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["field"] * 6 + ["clear", "layer"]))
        if op == "layer" and len(net.layer):
            layers = list(net.layer)
            i = draw(st.integers(0, len(layers) - 1))
            how = draw(st.sampled_from(["delete", "duplicate", "swap", "type"]))
            if how == "delete":
                del layers[i]
            elif how == "duplicate":
                layers.insert(draw(st.integers(0, len(layers))), layers[i])
            elif how == "swap":
                j = draw(st.integers(0, len(layers) - 1))
                layers[i], layers[j] = layers[j], layers[i]
            else:
                layers[i].type = draw(st.sampled_from(sorted(LAYERS)))
            copies = []
            for lp in layers:
                copies.append(caffe_pb2.LayerParameter())
                copies[-1].CopyFrom(lp)
            del net.layer[:]
            net.layer.extend(copies)
            continue
        _mutate_field(draw, draw(st.sampled_from(_messages(net, []))), op == "clear", names)
    return text_format.MessageToString(net)


def build_and_run(param, phase):
    """Build, forward and backward; the only exception allowed is SeqgenError."""
    try:
        net = Net(param, phase=phase)
    except SeqgenError as e:
        event(f"build refused: {_kind_of(e)}")
        return
    try:
        net.forward()
        net.backward()
        net.forward()  # a second pass reuses the carried recurrent state
    except SeqgenError as e:
        event(f"run refused: {_kind_of(e)}")
        return
    event("ran")


def _kind_of(error):
    """A short label of an error message for hypothesis' statistics."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\[[^]]*\]|[-+]?\d[\d.e+-]*", "_", str(error))
    return text.split(": ", 1)[-1][:60]


@fuzz(500)
@given(text=mutated_net(NET_SEEDS) | mutated_text(NET_SEEDS),
       phase=st.sampled_from([TRAIN, TEST]))
def test_mutated_prototxt_builds_or_raises_seqgen_error(text, phase):
    with Timed():
        try:
            param = parse_net_text(text, "fuzz.prototxt")
        except SeqgenError:
            event("parse refused")
            return
        build_and_run(param, phase)


@fuzz(100)
@given(text=mutated_text(SOLVER_SEEDS))
def test_mutated_solver_text_parses_or_raises_seqgen_error(text):
    with Timed():
        try:
            parse_solver_text(text, "fuzz_solver.prototxt", base_dir=str(ROOT / "prototxt"))
        except SeqgenError:
            pass


_TMP = Path(tempfile.mkdtemp(prefix="seqgen-fuzz-"))


@fuzz(200)
@given(data=st.one_of(st.binary(max_size=400),
                      st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
                      mutated_text(NET_SEEDS).map(lambda s: s.encode("utf-8", "surrogatepass"))),
       phase=st.sampled_from([TRAIN, TEST]))
def test_random_bytes_as_prototxt_file(data, phase):
    path = _TMP / "fuzz.prototxt"
    path.write_bytes(data)
    with Timed():
        build_and_run(str(path), phase)


@fuzz(200)
@given(data=st.data(), seed=st.sampled_from(NET_SEEDS), phase=st.sampled_from([TRAIN, TEST]))
def test_inputs_of_any_shape_and_value(data, seed, phase):
    """Net.forward(**inputs) with inputs reshaped at will and filled with anything: every
    layer re-validates its bottoms when an input's shape changes."""
    net = Net(parse_net_text(seed), phase=phase)
    draw = data.draw
    with Timed():
        for _ in range(draw(st.integers(1, 3))):
            inputs = {}
            for name in draw(st.lists(st.sampled_from(net.inputs), min_size=1, unique=True)):
                shape = net.blobs[name].shape
                if draw(st.booleans()):
                    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
                fill = draw(st.sampled_from(["zeros", "ints", "values"]))
                if fill == "zeros":
                    inputs[name] = np.zeros(shape, np.float32)
                elif fill == "ints":
                    inputs[name] = np.asarray(draw(st.lists(
                        st.integers(-2, 6), min_size=int(np.prod(shape)),
                        max_size=int(np.prod(shape)))), np.float32).reshape(shape)
                else:
                    inputs[name] = _array(draw, shape, VALUES)
            try:
                net.forward(**inputs)
                net.backward()
            except SeqgenError as e:
                event(f"refused: {_kind_of(e)}")
                continue
            event("ran")


def test_every_seed_net_is_valid():
    """The seeds themselves build and run (else the mutations explore little)."""
    for text in NET_SEEDS:
        for phase in (TRAIN, TEST):
            net = Net(parse_net_text(text), phase=phase)
            net.forward()
            net.backward()


# ---------------------------------------------------------------------------------------
# .caffemodel bytes
# ---------------------------------------------------------------------------------------

REAL_MODEL = CAFFEMODEL.read_bytes()
LSTM_SHORT = parse_net_text((ROOT / "prototxt" / "lstm_short.prototxt").read_text())


@st.composite
def mutated_bytes(draw, original):
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["truncate", "flip", "byte", "delete", "insert", "splice"]))
        if op == "truncate":
            del raw[i:]
        elif op == "flip":
            raw[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            raw[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del raw[i:i + draw(st.integers(1, 64))]
        elif op == "insert":
            raw[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            j = draw(st.integers(0, len(raw) - 1))
            raw[i:i] = raw[j:j + draw(st.integers(1, 200))]
    return bytes(raw)


@pytest.fixture(scope="module")
def lstm_short_net():
    return Net(LSTM_SHORT, phase=TRAIN)


@fuzz(300)
@given(data=st.one_of(st.binary(max_size=600), mutated_bytes(REAL_MODEL)))
def test_random_and_mutated_caffemodel_loads_or_raises_seqgen_error(lstm_short_net, data):
    path = _TMP / "fuzz.caffemodel"
    path.write_bytes(data)
    net = lstm_short_net
    before = [b.data.copy() for blobs in net.params.values() for b in blobs]
    with Timed():
        try:
            load_weights(net, str(path))
        except SeqgenError:
            # nothing is half loaded: every blob is checked before any is written
            after = [b.data for blobs in net.params.values() for b in blobs]
            assert all(np.array_equal(a, b) for a, b in zip(before, after))
            return
        net.forward()
        net.backward()


@pytest.fixture(scope="module")
def weight_seeds():
    """(net, its weights as a NetParameter) for nets with every kind of parameter blob."""
    seeds = []
    for text in (NET_SEEDS[0], ZOO, EXPOSED):
        net = Net(parse_net_text(text), phase=TRAIN)
        seeds.append((net, net_to_proto(net)))
    return seeds


@fuzz(200)
@given(data=st.data())
def test_weights_with_mutated_blobs(weight_seeds, data):
    """Weights files whose blobs have other shapes (new-style and legacy num/channels/
    height/width), too many or too few values, double_data, other layer names..."""
    draw = data.draw
    net, param = draw(st.sampled_from(weight_seeds))
    mutated = caffe_pb2.NetParameter()
    mutated.CopyFrom(param)
    names = _strings(mutated)
    for _ in range(draw(st.integers(1, 3))):
        messages = _messages(mutated, [])
        blobs = [m for m in messages if isinstance(m, (caffe_pb2.BlobProto, caffe_pb2.BlobShape))]
        pool = blobs if blobs and draw(st.integers(0, 9)) < 8 else messages
        _mutate_field(draw, draw(st.sampled_from(pool)), draw(st.integers(0, 5)) == 0, names)
    path = _TMP / "mutated.caffemodel"
    path.write_bytes(mutated.SerializePartialToString())
    with Timed():
        try:
            load_weights(net, str(path))
        except SeqgenError as e:
            event(f"refused: {_kind_of(e)}")
            return
        event("loaded")
        net.forward()
        net.backward()


@pytest.fixture(scope="module")
def snapshotted_solver():
    """A Solver for lstm_short and the bytes of a .solverstate it wrote."""
    from seqgen.io.prototxt import read_solver
    from seqgen.solver import Solver

    folder = Path(tempfile.mkdtemp(dir=_TMP))
    solver = Solver(read_solver(ROOT / "prototxt" / "lstm_short_solver.prototxt"),
                    out_dir=str(folder), log=lambda *a, **k: None)
    solver.iter = 3
    _, state = solver.snapshot()
    return solver, Path(state).read_bytes(), folder


@fuzz(150)
@given(data=st.data())
def test_random_and_mutated_solverstate(snapshotted_solver, data):
    """--resume with a damaged .solverstate: restored, or SeqgenError."""
    draw = data.draw
    solver, raw, folder = snapshotted_solver
    if draw(st.booleans()):
        state = caffe_pb2.SolverState.FromString(raw)
        for _ in range(draw(st.integers(1, 3))):
            _mutate_field(draw, draw(st.sampled_from(_messages(state, []))),
                          draw(st.integers(0, 5)) == 0,
                          ["", "lstm_short_iter_3.caffemodel", "nope.caffemodel", "/", "."])
        mutated = state.SerializePartialToString()
    else:
        mutated = draw(mutated_bytes(raw))
    path = folder / "fuzz.solverstate"
    path.write_bytes(mutated)
    with Timed():
        try:
            solver.restore(str(path))
        except SeqgenError as e:
            event(f"refused: {_kind_of(e)}")
            return
        event("restored")


def test_solverstate_naming_non_utf8_weights(snapshotted_solver):
    solver, raw, folder = snapshotted_solver
    state = caffe_pb2.SolverState.FromString(raw)
    state.ClearField("learned_net")
    path = folder / "non_utf8.solverstate"
    path.write_bytes(state.SerializeToString() + b"\x12\x02\xff\xfe")  # learned_net = ff fe
    with pytest.raises(SeqgenError):
        solver.restore(str(path))


def test_the_real_caffemodel_loads(lstm_short_net):
    assert load_weights(lstm_short_net, str(CAFFEMODEL)) == 2


# ---------------------------------------------------------------------------------------
# Recurrent layers through the layer API, against numpy references
# ---------------------------------------------------------------------------------------

MARKERS = [0.0, 1.0, 1.0, 1.0, 0.5, -1.0, 2.0, np.nan, np.inf, -np.inf, 1e30, -1e-30]
VALUES = st.floats(-4, 4, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0])


def blob_of(array):
    array = np.asarray(array, np.float32)
    blob = Blob(array.shape)
    blob.data[...] = array
    return blob


def _array(draw, shape, elements):
    n = int(np.prod(shape))
    flat = draw(st.lists(elements, min_size=n, max_size=n))
    return np.asarray(flat, np.float32).reshape(shape)


def _layer(text):
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    return layer_class(lp.type)(lp, TRAIN)


def _tame(*arrays):
    return all(np.all(np.isfinite(a)) and np.all(np.abs(a) <= 4) for a in arrays)


def _maybe_wrong(draw, shape):
    """The shape, or (sometimes) one with a dimension off by one or an axis added/dropped."""
    shape = list(shape)
    kind = draw(st.sampled_from(["ok"] * 6 + ["off", "add", "drop"]))
    if kind == "off" and shape:
        k = draw(st.integers(0, len(shape) - 1))
        shape[k] = max(0, shape[k] + draw(st.sampled_from([-1, 1])))
    elif kind == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 2)))
    elif kind == "drop" and shape:
        del shape[draw(st.integers(0, len(shape) - 1))]
    return tuple(shape)


def _run_layer(layer, bottom, top, propagate):
    """setup/reshape/forward/backward; returns False if a SeqgenError stopped it."""
    try:
        layer.setup(bottom, top)
        layer.reshape(bottom, top)
    except SeqgenError as e:
        event(f"refused: {_kind_of(e)}")
        return False
    event("ran")
    layer.forward(bottom, top)
    for t in top:
        t.diff[...] = 0.5
    layer.backward(top, propagate, bottom)
    return True


def _then_abuse(draw, layer, bottom, top):
    """Misuse after a good run: new bottom shapes without reshape, odd states. Each must
    be refused with SeqgenError (or work), never reach a kernel with bad shapes."""
    k = draw(st.integers(0, len(bottom) - 1))
    shape = _maybe_wrong(draw, bottom[k].shape)
    if shape != bottom[k].shape:
        bottom[k].set_arrays(np.ones(shape, np.float32), np.zeros(shape, np.float32))
        with pytest.raises(SeqgenError):
            layer.forward(bottom, top)
        with pytest.raises(SeqgenError):
            layer.backward(top, [True] * len(bottom), bottom)
        try:
            layer.reshape(bottom, top)  # after reshape: a result or an error
            layer.forward(bottom, top)
        except SeqgenError:
            pass
    state = draw(st.sampled_from([None, {}, {"h": 1}, {"h": np.zeros(3), "c": "x"}, [1, 2],
                                  "state", {"h": np.zeros((9, 9)), "c": np.zeros((9, 9))}]))
    try:
        layer.set_state(state)
        layer.forward(bottom, top)
    except SeqgenError:
        pass


@fuzz(300)
@given(data=st.data())
def test_fork_lstm_layer(data):
    draw = data.draw
    N = draw(st.integers(1, 3))
    T = draw(st.integers(1, 5))
    H = draw(st.integers(1, 5))
    I = draw(st.integers(1, 3))
    with_clip = draw(st.booleans())
    x_shape = _maybe_wrong(draw, (T * N, I))
    clip_shape = _maybe_wrong(draw, (T * N,))
    x = _array(draw, x_shape, VALUES)
    clip = _array(draw, clip_shape, st.sampled_from(MARKERS))
    # a layer built from Python may have no bottom/top names at all
    names = draw(st.booleans())
    blobs = ('bottom: "x" ' + ('bottom: "clip" ' if with_clip else "") + 'top: "h"') * names
    layer = _layer(f'name: "l" type: "Lstm" {blobs}'
                   f' lstm_param {{ num_output: {H} batch_size: {N} '
                   f'clipping_threshold: {draw(st.sampled_from([0, 0.1, 10]))} '
                   'weight_filler { type: "uniform" min: -0.5 max: 0.5 } '
                   'bias_filler { type: "uniform" min: -0.5 max: 0.5 } }')
    bottom = [blob_of(x)] + ([blob_of(clip)] if with_clip else [])
    top = [Blob()]
    with Timed():
        if not _run_layer(layer, bottom, top, [True] + [False] * with_clip):
            return
        if _tame(x) and (not with_clip or np.all(np.isfinite(clip))):
            W_x, W_h, b = (blob.data.astype(np.float64) for blob in layer.blobs)
            R = x.shape[0]
            cont = clip.reshape(R // N, N) if with_clip else \
                np.concatenate([np.zeros((1, N)), np.ones((R // N - 1, N))])
            h, _, _ = lstm_forward(x.reshape(R // N, N, -1).astype(np.float64), cont != 0,
                                   W_x, b, W_h, np.zeros((N, H)), np.zeros((N, H)))
            want = h[1:]
            np.testing.assert_allclose(top[0].data.reshape(want.shape), want, rtol=1e-4,
                                       atol=1e-5)
        _then_abuse(draw, layer, bottom, top)


@fuzz(300)
@given(data=st.data(), kind=st.sampled_from(["LSTM", "RNN"]))
def test_bvlc_recurrent_layers(data, kind):
    draw = data.draw
    N = draw(st.integers(1, 3))
    T = draw(st.integers(1, 5))
    H = draw(st.integers(1, 4))
    I = draw(st.integers(1, 3))
    S = draw(st.integers(1, 2))
    expose = draw(st.booleans())
    static = draw(st.booleans())
    states = ("h", "c") if kind == "LSTM" else ("h",)
    shapes = [_maybe_wrong(draw, (T, N, I)), _maybe_wrong(draw, (T, N))]
    if static:
        shapes.append(_maybe_wrong(draw, (N, S)))
    if expose:
        shapes += [_maybe_wrong(draw, (1, N, H)) for _ in states]
    if draw(st.integers(0, 9)) == 0:  # a bottom too many or too few
        shapes = shapes[:-1] if draw(st.booleans()) else shapes + [(T, N)]
    arrays = [_array(draw, s, VALUES if i != 1 else st.sampled_from(MARKERS))
              for i, s in enumerate(shapes)]
    n_tops = 1 + (len(states) if expose else 0)
    if draw(st.integers(0, 9)) == 0:
        n_tops += draw(st.sampled_from([-1, 1]))
    layer = _layer(f'name: "r" type: "{kind}" recurrent_param {{ num_output: {H} '
                   f'expose_hidden: {str(expose).lower()} '
                   'weight_filler { type: "uniform" min: -0.5 max: 0.5 } '
                   'bias_filler { type: "uniform" min: -0.5 max: 0.5 } }')
    bottom = [blob_of(a) for a in arrays]
    top = [Blob() for _ in range(max(0, n_tops))]
    with Timed():
        if not _run_layer(layer, bottom, top, [True] * len(bottom)):
            return
        T, N = bottom[0].shape[:2]
        x = arrays[0].reshape(T, N, -1).astype(np.float64)
        cont = arrays[1]
        if _tame(*arrays[:1], *arrays[2:]) and np.all(np.isfinite(cont)) \
                and np.all(np.abs(cont) <= 4):
            w = [blob.data.astype(np.float64) for blob in layer.blobs]
            xs = arrays[2].reshape(N, -1) if layer.static else None
            first = layer._first_state
            init = [arrays[first + k].reshape(N, H) if expose else np.zeros((N, H))
                    for k in range(len(states))]
            static = xs @ w[2].T if layer.static else 0
            if kind == "LSTM":
                h, _, _ = lstm_forward(x, cont, w[0], w[1], w[-1], *init, static)
                want = h[1:]
            else:
                h, want = rnn_forward(x, cont, w[0], w[1], w[-3], w[-2], w[-1], init[0], static)
            np.testing.assert_allclose(top[0].data, want, rtol=1e-4, atol=1e-5)
            if expose:
                np.testing.assert_allclose(top[1].data[0], h[-1], rtol=1e-4, atol=1e-5)
        _then_abuse(draw, layer, bottom, top)


@fuzz(60)
@given(data=st.data())
def test_compiled_generation_matches_stepping(data):
    """The jitted generator of LSTM stacks gets its sizes from the layers: random stacks
    give the same predictions as stepping the Net one forward at a time (or both raise
    SeqgenError when the output diverges)."""
    from seqgen.generation.generate import generate

    draw = data.draw
    D = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    std = draw(st.sampled_from([0.1, 0.5, 3.0]))
    text = (f'input: "data" input_shape {{ dim: 4 dim: {D} }}\n'
            'input: "clip" input_shape { dim: 4 dim: 1 }\n')
    below = "data"
    for k, H in enumerate(sizes):
        text += (f'layer {{ name: "lstm{k}" type: "Lstm" bottom: "{below}" bottom: "clip" '
                 f'top: "lstm{k}" lstm_param {{ num_output: {H} '
                 f'weight_filler {{ type: "gaussian" std: {std} }} '
                 f'bias_filler {{ type: "uniform" min: -1 max: 1 }} }} }}\n')
        below = f"lstm{k}"
    text += (f'layer {{ name: "out" type: "InnerProduct" bottom: "{below}" top: "out" '
             f'inner_product_param {{ num_output: {D} weight_filler {{ type: "gaussian" '
             f'std: {std} }} }} }}\n')
    net = Net(parse_net_text(text), phase=TEST)
    steps = draw(st.integers(1, 30))
    mode = draw(st.sampled_from(["previous", "zero"]))
    true = _array(draw, (draw(st.integers(0, 12)), D), st.floats(-2, 2, width=32))
    prime = draw(st.integers(0, len(true)))
    outcomes = []
    with Timed():
        for compiled in (True, False):
            try:
                outcomes.append(generate(net, steps, mode, true if len(true) else None,
                                         prime, compiled=compiled))
            except SeqgenError as e:
                outcomes.append(type(e))
    fast, slow = outcomes
    if isinstance(fast, np.ndarray) and isinstance(slow, np.ndarray):
        # both sum in float32 in different orders; with large weights the fed-back
        # predictions are chaotic and those last-bit differences grow step by step
        rows = len(fast) if std < 1 else 3
        np.testing.assert_allclose(fast[:rows], slow[:rows], rtol=1e-3, atol=1e-4)
    else:
        assert fast is slow, outcomes


# ---------------------------------------------------------------------------------------
# Embed indices, HDF5Data batches
# ---------------------------------------------------------------------------------------

@fuzz(100)
@given(data=st.data())
def test_embed_indices(data):
    draw = data.draw
    K = draw(st.integers(1, 6))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    idx = _array(draw, shape, st.integers(-2, K + 1).map(float) | st.sampled_from(
        [0.5, -0.0, np.nan, np.inf, -np.inf, 1e30, 2.0 ** 63, -2.0 ** 63]))
    layer = _layer(f'name: "e" type: "Embed" bottom: "i" top: "v" embed_param {{ num_output: 2 '
                   f'input_dim: {K} weight_filler {{ type: "gaussian" std: 1 }} }}')
    bottom, top = [blob_of(idx)], [Blob()]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    try:
        layer.forward(bottom, top)
    except SeqgenError:
        assert not np.all((idx >= 0) & (idx < K) & (idx == np.floor(idx)))
        return
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data[idx.astype(np.int64)])


@fuzz(30)
@given(rows=st.integers(0, 7), batch=st.integers(-1, 9), extra=st.integers(0, 3),
       passes=st.integers(1, 4))
def test_hdf5_batches(rows, batch, extra, passes):
    h5py = pytest.importorskip("h5py")
    folder = Path(tempfile.mkdtemp(dir=_TMP))
    x = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    with h5py.File(folder / "a.h5", "w") as f:
        f["x"] = x
        f["y"] = np.arange(rows + (extra == 3), dtype=np.float32)
    (folder / "list.txt").write_text(str(folder / "a.h5") + "\n")
    text = (f'layer {{ name: "d" type: "HDF5Data" top: "x" top: "y" hdf5_data_param {{ '
            f'source: "{folder / "list.txt"}" batch_size: {batch} }} }}')
    try:
        net = Net(parse_net_text(text), phase=TRAIN)
    except SeqgenError:
        assert rows == 0 or batch <= 0 or extra == 3
        return
    for k in range(passes):
        out = net.forward()
        want = np.arange(k * batch, (k + 1) * batch) % rows
        np.testing.assert_array_equal(out["x"], x[want])
