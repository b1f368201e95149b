"""The `Python` layer, checked as pycaffe's python/caffe/test/test_python_layer.py checks
it (a x10 layer chained three times: forward, backward, reshape; an exception in setup;
parameters added with add_blob, saved and loaded; the phase), plus param_str, a plain
class that derives from nothing, the module found beside the net file, a Python layer on
top of an LSTM against finite differences, and the user's traceback under the layer's
name."""
import sys
import textwrap
import uuid

import numpy as np
import pytest
from gradcheck import numeric_gradient

from seqgen.app.cli import main
from seqgen.errors import SeqgenError
from seqgen.layers.python import PythonLayerError
from seqgen.net import TEST, TRAIN, Net

LAYERS = '''
import numpy as np


class SimpleLayer:
    """A layer that just multiplies by ten (a plain class: no caffe.Layer needed)."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer:
    def setup(self, bottom, top):
        raise RuntimeError("setup failed on purpose")


class ForwardFails(SimpleLayer):
    def forward(self, bottom, top):
        helper(bottom)


def helper(bottom):
    return {}["no such key"]


class ParameterLayer:
    def __init__(self, param):
        self.layer_name = param.name

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer:
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class ParamStrLayer(PhaseLayer):
    def forward(self, bottom, top):
        top[0].data[()] = float(self.param_str)


class HalfSquaredDistance:
    """A loss in pycaffe's examples/pycaffe style: count, num, reshape(1), loss_weight."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("two bottoms, please")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError("bottoms differ in size")
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.d = bottom[0].data - bottom[1].data
        top[0].data[...] = (self.d ** 2).sum() / bottom[0].num / 2

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * top[0].diff[0] * self.d / bottom[i].num


class Counter(PhaseLayer):
    """A data layer in the style that loads its next item in reshape."""

    def setup(self, bottom, top):
        self.n = 0

    def reshape(self, bottom, top):
        self.n += 1
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.n


class ScaledTanh:
    """y = a * tanh(x) with a learnable a; propagate_down says whether x wants a diff."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * np.tanh(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        t = np.tanh(bottom[0].data)
        self.blobs[0].diff[0] += (top[0].diff * t).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data[0] * (1 - t * t)
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A module of user layers under a fresh name, importable from sys.path."""
    name = f"user_layers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def net_file(folder, body):
    path = folder / f"net_{uuid.uuid4().hex[:8]}.prototxt"
    path.write_text(textwrap.dedent(body))
    return str(path)


def layer(name, cls, module, bottom="", top="", param_str=""):
    bottom = f"bottom: '{bottom}'" if bottom else ""
    ps = f"param_str: '{param_str}'" if param_str else ""
    return (f"layer {{ type: 'Python' name: '{name}' {bottom} top: '{top or name}' "
            f"python_param {{ module: '{module}' layer: '{cls}' {ps} }} }}\n")


INPUT = ("name: 'pythonnet' force_backward: true\n"
         "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n")


@pytest.fixture
def simple_net(tmp_path, module):
    body = INPUT + "".join(layer(n, "SimpleLayer", module, b) for n, b in
                           (("one", "data"), ("two", "one"), ("three", "two")))
    return Net(net_file(tmp_path, body), TRAIN)


def test_forward(simple_net):
    simple_net.blobs["data"].data[...] = 8
    simple_net.forward()
    assert (simple_net.blobs["three"].data == 10 ** 3 * 8).all()


def test_backward(simple_net):
    simple_net.forward()
    simple_net.blobs["three"].diff[...] = 7
    simple_net.backward()
    assert (simple_net.blobs["data"].diff == 10 ** 3 * 7).all()


def test_reshape(simple_net):
    simple_net.blobs["data"].reshape(4, 4, 4, 4)
    simple_net.forward()
    for blob in simple_net.blobs.values():
        assert blob.data.shape == (4, 4, 4, 4)


def test_exception_names_the_layer_then_shows_the_users_traceback(tmp_path, module):
    path = net_file(tmp_path, INPUT + layer("layer", "ExceptionLayer", module, "data", "top"))
    with pytest.raises(RuntimeError) as info:
        Net(path, TEST)
    assert isinstance(info.value, SeqgenError)
    head, *rest = str(info.value).splitlines()
    assert head.endswith(f"layer 'layer' (Python): {module}.ExceptionLayer.setup raised "
                         "RuntimeError")
    assert head.startswith(path)  # the net file's line, as every setup error
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: setup failed on purpose"
    assert f"{module}.py" in rest[1] and "in setup" in rest[1]
    assert not any("seqgen" in line for line in rest)


def test_an_error_in_forward_shows_every_user_frame_and_no_seqgen_frame(tmp_path, module):
    path = net_file(tmp_path, INPUT + layer("fails", "ForwardFails", module, "data"))
    net = Net(path, TRAIN)
    with pytest.raises(PythonLayerError) as info:
        net.forward()
    lines = str(info.value).splitlines()
    assert lines[0] == f"layer 'fails' (Python): {module}.ForwardFails.forward raised KeyError"
    frames = [line for line in lines if line.startswith("  File ")]
    assert [f.split(", in ")[-1] for f in frames] == ["forward", "helper"]
    assert lines[-1] == "KeyError: 'no such key'"


def test_the_command_line_prints_the_traceback_under_the_layer(tmp_path, module, capsys):
    body = INPUT + layer("bad", "ExceptionLayer", module, "data")
    code = main(["info", net_file(tmp_path, body)])
    err = capsys.readouterr().err
    assert code == 1
    assert "layer 'bad' (Python): " in err.splitlines()[0]
    assert "RuntimeError: setup failed on purpose" in err


def test_parameter(tmp_path, module):
    path = net_file(tmp_path, INPUT + layer("layer", "ParameterLayer", module, "data", "top"))
    net = Net(path, TRAIN)
    net.forward()
    net.backward()
    blobs = net.params["layer"]
    assert blobs[0].data[0] == 0 and blobs[0].diff[0] == 1
    blobs[0].data[0] += blobs[0].diff[0]
    assert blobs[0].data[0] == 1
    assert net.layer("layer").impl.layer_name == "layer"  # constructed with its LayerParameter
    # saving and loading
    net.save(str(tmp_path / "p.caffemodel"))
    blobs[0].data[0] = -1
    net.copy_from(str(tmp_path / "p.caffemodel"))
    assert blobs[0].data[0] == 1
    # weight sharing
    net2 = Net(path, TRAIN)
    net2.share_weights(net)
    assert net2.params["layer"][0].data[0] == 1


def test_phase(tmp_path, module):
    path = net_file(tmp_path, "name: 'p'\n" + layer("layer", "PhaseLayer", module, top="phase"))
    for phase in (TRAIN, TEST):
        assert Net(path, phase).forward()["phase"] == phase


def test_param_str(tmp_path, module):
    path = net_file(tmp_path, layer("layer", "ParamStrLayer", module, top="v", param_str="2.5"))
    assert Net(path, TRAIN).forward()["v"] == 2.5


def test_the_module_is_found_beside_the_net_file(tmp_path, monkeypatch):
    """Not on sys.path: the net file's folder is tried (as a script's folder would be)."""
    name = f"beside_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "nets"
    folder.mkdir()
    (folder / f"{name}.py").write_text(LAYERS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    try:
        path = net_file(folder, INPUT + layer("one", "SimpleLayer", name, "data"))
        net = Net(path, TRAIN)
        net.blobs["data"].data[...] = 1
        assert (net.forward()["one"] == 10).all()
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("python_param, msg", [
    ("module: 'no_such_module_here' layer: 'X'",
     "python_param.module 'no_such_module_here' not found on sys.path nor in"),
    ("module: 'MODULE' layer: 'Nope'", "module 'MODULE' (.*) has no 'Nope'"),
    ("layer: 'X'", "python_param needs both module and layer"),
])
def test_bad_python_param_is_one_line(tmp_path, module, python_param, msg):
    body = INPUT + ("layer { type: 'Python' name: 'pl' bottom: 'data' top: 'out' "
                    f"python_param {{ {python_param.replace('MODULE', module)} }} }}")
    msg = msg.replace("MODULE", module)
    with pytest.raises(SeqgenError, match=r"layer 'pl' \(Python\): " + msg) as info:
        Net(net_file(tmp_path, body), TRAIN)
    assert "\n" not in str(info.value)


def test_a_python_layer_on_an_lstm_against_finite_differences(tmp_path, module):
    """A recurrent net: LSTM -> Python (a learnable a * tanh) -> EuclideanLoss; the
    gradients of the LSTM's weights and of the Python layer's parameter against central
    differences of the net's loss in float32."""
    body = f"""
    layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "target"
      input_param {{ shape {{ dim: 3 dim: 2 dim: 2 }} shape {{ dim: 3 dim: 2 }}
                    shape {{ dim: 3 dim: 2 dim: 3 }} }} }}
    layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
      recurrent_param {{ num_output: 3 weight_filler {{ type: "uniform" min: -1 max: 1 }}
                        bias_filler {{ type: "uniform" min: -1 max: 1 }} }} }}
    {layer("act", "ScaledTanh", module, "h")}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "act" bottom: "target" }}
    """
    net = Net(net_file(tmp_path, body), TRAIN)
    rng = np.random.default_rng(0)
    feed = {"x": rng.normal(size=(3, 2, 2)), "cont": np.array([[0, 0], [1, 1], [0, 1.0]]),
            "target": rng.normal(size=(3, 2, 3))}
    feed = {k: v.astype(np.float32) for k, v in feed.items()}

    def loss():
        net.reset_state()
        return float(net.forward(**feed)["loss"])

    loss()
    net.clear_param_diffs()
    net.backward()
    for name in ("act", "lstm"):
        for blob in net.params[name]:
            num = numeric_gradient(loss, blob.data, 1e-2)
            np.testing.assert_allclose(blob.diff, num, rtol=2e-2, atol=2e-3)


def test_a_python_loss_with_loss_weight_as_caffe_s_euclidean_loss(tmp_path, module):
    """A Python loss (loss_weight 3) gives what the built-in EuclideanLoss gives, and the
    Net seeds its top diff with the weight as for any loss."""
    body = f"""
    force_backward: true
    layer {{ name: "in" type: "Input" top: "a" top: "b"
      input_param {{ shape {{ dim: 4 dim: 3 }} shape {{ dim: 4 dim: 3 }} }} }}
    layer {{ name: "py" type: "Python" bottom: "a" bottom: "b" top: "py" loss_weight: 3
      python_param {{ module: "{module}" layer: "HalfSquaredDistance" }} }}
    """
    net = Net(net_file(tmp_path, body), TRAIN)
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(2))
    loss = float(net.forward(a=a, b=b)["py"][0])
    assert loss == pytest.approx(((a - b) ** 2).sum() / 8, rel=1e-6)
    net.backward()
    np.testing.assert_allclose(net.blobs["a"].diff, 3 * (a - b) / 4, rtol=1e-6)
    np.testing.assert_allclose(net.blobs["b"].diff, -3 * (a - b) / 4, rtol=1e-6)


def test_reshape_runs_before_every_forward_as_in_caffe(tmp_path, module):
    """Caffe's Layer::Forward calls Reshape first: once per forward, whether or not the
    net's inputs changed, after the one in the net's setup (so 2, 3, 4 as in Caffe)."""
    net = Net(net_file(tmp_path, layer("count", "Counter", module, top="n")), TRAIN)
    assert [float(net.forward()["n"]) for _ in range(3)] == [2, 3, 4]
