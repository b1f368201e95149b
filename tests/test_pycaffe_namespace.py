"""seqgen.caffe as pycaffe's `caffe`: the names `import caffe` gives, install_as_caffe's
module aliases, `seqgen pycaffe SCRIPT` (argv, sys.path, exit codes, the user's traceback),
the solver classes' update rules, caffe.io's conversions checked against values written
out here, caffe.draw, and the example examples/pycaffe_lstm.py run as a user runs it."""
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import seqgen.caffe as caffe_ns
from seqgen.app.cli import main
from seqgen.caffe import io as cio
from seqgen.errors import SeqgenError
from seqgen.proto import caffe_pb2

ROOT = Path(__file__).parents[1]
NAMES = ("Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
         "AdaDeltaSolver", "AdamSolver", "get_solver", "TRAIN", "TEST", "Layer", "NetSpec",
         "layers", "params", "to_proto", "proto", "io", "draw", "set_mode_cpu",
         "set_mode_gpu", "set_device", "set_random_seed", "layer_type_list", "init_log",
         "log", "__version__")

NET = """
layer { name: "input" type: "Input" top: "data" top: "cont" top: "label"
        input_param { shape { dim: 5 dim: 2 dim: 1 } shape { dim: 5 dim: 2 }
                      shape { dim: 5 dim: 2 dim: 1 } } }
layer { name: "lstm1" type: "LSTM" bottom: "data" bottom: "cont" top: "lstm1"
        recurrent_param { num_output: 3 weight_filler { type: "uniform" min: -0.3 max: 0.3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
        inner_product_param { num_output: 1 axis: 2
                              weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""


@pytest.fixture
def solver_file(cwd):
    (cwd / "net.prototxt").write_text(NET)
    path = cwd / "solver.prototxt"
    path.write_text('net: "net.prototxt"\ntype: "SGD"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                    "momentum: 0.9\nmax_iter: 10\nrandom_seed: 3\n")
    return path


def test_every_name_pycaffe_gives_is_there():
    missing = [n for n in NAMES if not hasattr(caffe_ns, n)]
    assert not missing
    assert caffe_ns.TRAIN == caffe_pb2.TRAIN and caffe_ns.TEST == caffe_pb2.TEST
    assert caffe_ns.proto.caffe_pb2 is caffe_pb2
    assert {"LSTM", "Lstm", "RNN", "InnerProduct", "Input"} <= set(caffe_ns.layer_type_list())
    assert caffe_ns.layer_type_list() == sorted(caffe_ns.layer_type_list())


def test_image_helpers_are_refused_by_name():
    with pytest.raises(SeqgenError, match="caffe.Classifier classifies images"):
        _ = caffe_ns.Classifier
    with pytest.raises(SeqgenError, match="caffe.io.Transformer is for images"):
        _ = cio.Transformer
    with pytest.raises(AttributeError):
        _ = caffe_ns.no_such_name


def test_install_as_caffe_makes_every_import_form_resolve_to_seqgen(monkeypatch):
    for name in [m for m in sys.modules if m == "caffe" or m.startswith("caffe.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "caffe", None)  # restored (removed) after the test
    caffe_ns.install_as_caffe()
    for sub in caffe_ns.SUBMODULES:
        monkeypatch.setitem(sys.modules, "caffe." + sub, sys.modules["caffe." + sub])
    namespace = {}
    exec("import caffe\nimport caffe.proto.caffe_pb2\nfrom caffe import layers as L, "
         "params as P\nfrom caffe.proto import caffe_pb2\nimport caffe.io\n"
         "from caffe.net_spec import NetSpec\n", namespace)
    assert namespace["caffe"] is caffe_ns
    assert namespace["caffe_pb2"] is caffe_pb2
    assert namespace["caffe"].proto.caffe_pb2 is caffe_pb2
    assert namespace["L"] is caffe_ns.layers and namespace["P"] is caffe_ns.params
    assert namespace["NetSpec"] is caffe_ns.NetSpec


@pytest.mark.parametrize("cls, kind", [("SGDSolver", "SGD"), ("NesterovSolver", "Nesterov"),
                                       ("AdaGradSolver", "AdaGrad"),
                                       ("RMSPropSolver", "RMSProp"),
                                       ("AdaDeltaSolver", "AdaDelta"),
                                       ("AdamSolver", "Adam")])
def test_each_solver_class_trains_with_its_own_rule_whatever_the_file_says(solver_file, cls,
                                                                           kind):
    # the file names another type, without momentum (which AdaGrad and RMSProp refuse)
    text = solver_file.read_text().replace('"SGD"', '"Nesterov"')
    solver_file.write_text(text.replace("momentum: 0.9\n", ""))
    solver = getattr(caffe_ns, cls)(str(solver_file))
    assert solver.param.type == kind
    assert isinstance(solver, caffe_ns.SGDSolver)
    assert len(solver.history) == (10 if kind in ("AdaDelta", "Adam") else 5)


def test_sgd_solver_class_steps_as_the_sgd_formula(solver_file):
    """One SGD step with momentum from zero history: W -= lr * dW (a numpy formula)."""
    solver = caffe_ns.SGDSolver(str(solver_file))
    net = solver.net
    net.blobs["data"].data[...] = np.linspace(-1, 1, 10).reshape(5, 2, 1)
    net.blobs["label"].data[...] = 0.5
    net.blobs["cont"].data[...] = 1
    net.blobs["cont"].data[0] = 0
    before = [b.data.copy() for b in net.params["ip1"]]
    net.clear_param_diffs()
    net.forward()
    net.backward()
    grads = [b.diff.copy() for b in net.params["ip1"]]
    solver.step(1)
    for w0, g, b in zip(before, grads, net.params["ip1"]):
        np.testing.assert_allclose(b.data, w0 - 0.1 * g, rtol=1e-6, atol=1e-7)


def test_get_solver_gives_the_class_the_file_names(solver_file):
    solver_file.write_text(solver_file.read_text().replace('"SGD"', '"Adam"'))
    solver = caffe_ns.get_solver(str(solver_file))
    assert type(solver) is caffe_ns.AdamSolver and solver.param.type == "Adam"


def test_gpu_calls_warn_once_and_stay_on_the_cpu(monkeypatch):
    monkeypatch.setattr("seqgen.caffe.runtime._warned", [False])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caffe_ns.set_mode_gpu()
        caffe_ns.set_device(0)
        caffe_ns.set_mode_cpu()
    assert len(caught) == 1 and "runs on the CPU only" in str(caught[0].message)


def test_set_random_seed_makes_fillers_repeat(cwd):
    (cwd / "net.prototxt").write_text(NET)
    caffe_ns.set_random_seed(7)
    a = caffe_ns.Net("net.prototxt", caffe_ns.TEST).params["lstm1"][0].data.copy()
    caffe_ns.set_random_seed(7)
    b = caffe_ns.Net("net.prototxt", caffe_ns.TEST).params["lstm1"][0].data
    caffe_ns.set_random_seed(8)
    c = caffe_ns.Net("net.prototxt", caffe_ns.TEST).params["lstm1"][0].data
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_log_writes_glog_lines(capsys):
    caffe_ns.init_log()
    caffe_ns.log("hello")
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ pycaffe\.py:0\] hello\n",
                        capsys.readouterr().err)
    caffe_ns.init_log(1)
    caffe_ns.log("quiet")
    caffe_ns.init_log(0)
    assert capsys.readouterr().err == ""


def test_io_conversions_as_pycaffe():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = cio.array_to_blobproto(arr, diff=-arr)
    assert list(blob.shape.dim) == [2, 3, 4] and list(blob.data)[:3] == [0.0, 1.0, 2.0]
    assert np.array_equal(cio.blobproto_to_array(blob), arr)
    assert np.array_equal(cio.blobproto_to_array(blob, return_diff=True), -arr)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=[1, 2, 3, 4, 5, 6])
    assert cio.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    text = cio.arraylist_to_blobprotovector_str([arr, arr[:1]])
    back = cio.blobprotovector_str_to_arraylist(text)
    assert [a.shape for a in back] == [(2, 3, 4), (1, 3, 4)] and np.array_equal(back[0], arr)
    assert cio.arraylist_to_blobprotovecor_str is cio.arraylist_to_blobprotovector_str
    img = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    datum = cio.array_to_datum(img, label=4)
    assert datum.data == bytes(range(6)) and datum.label == 4 and not datum.float_data
    assert np.array_equal(cio.datum_to_array(datum), img)
    floats = cio.array_to_datum(img.astype(np.float32) / 2)
    assert list(floats.float_data) == [0, 0.5, 1, 1.5, 2, 2.5] and not floats.HasField("label")
    assert cio.datum_to_array(floats).dtype == np.float64
    with pytest.raises(ValueError):
        cio.array_to_datum(arr[0])


def test_draw_writes_png_and_svg(cwd):
    from google.protobuf import text_format

    param = text_format.Parse(NET, caffe_pb2.NetParameter())
    caffe_ns.draw.draw_net_to_file(param, "net.png", "LR")
    assert (cwd / "net.png").read_bytes().startswith(b"\x89PNG")
    svg = caffe_ns.draw.draw_net(param, "TB", ext="svg", phase=caffe_ns.TEST)
    assert b"<svg" in svg and b"lstm1" in svg
    with pytest.raises(SeqgenError, match="writes .png or .svg"):
        caffe_ns.draw.draw_net_to_file(param, "net.pdf")


def test_python_layer_base():
    layer = caffe_ns.Layer(caffe_pb2.LayerParameter(name="p", type="Python"))
    assert layer.type == "Python" and layer.param_str == "" and layer.blobs == []
    blob = layer.blobs.add_blob(2, 3)
    assert blob.data.shape == (2, 3) and layer.blobs[0] is blob and not blob.data.any()
    layer.setup([], [])
    with pytest.raises(NotImplementedError, match="must define forward"):
        layer.forward([], [])


SCRIPT = """import sys
import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2
import helper_module
print("argv", sys.argv[1:], caffe.__name__, helper_module.VALUE, P.Eltwise.PROD)
if "fail" in sys.argv:
    def deep():
        raise ValueError("the user's own error")
    deep()
sys.exit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
"""


def write_script(folder):
    folder.mkdir()
    (folder / "helper_module.py").write_text("VALUE = 42\n")
    (folder / "script.py").write_text(SCRIPT)
    return folder / "script.py"


def test_seqgen_pycaffe_runs_a_script_with_its_argv_folder_and_exit_code(cwd, capsys):
    script = write_script(cwd / "scripts")
    argv, path = list(sys.argv), list(sys.path)
    assert main(["pycaffe", str(script), "3", "--flag", "x"]) == 3
    assert capsys.readouterr().out == "argv ['3', '--flag', 'x'] seqgen.caffe 42 0\n"
    assert sys.argv == argv and sys.path == path
    assert main(["pycaffe", str(script)]) == 0


def test_seqgen_pycaffe_shows_the_users_traceback(cwd, capsys):
    script = write_script(cwd / "scripts")
    assert main(["pycaffe", str(script), "fail"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n  File \"" + str(script))
    assert "in deep" in err and err.endswith("ValueError: the user's own error\n")
    assert "runpy" not in err and "/seqgen/" not in err  # no frame of runpy or seqgen


def test_a_missing_script_is_one_line(cwd, capsys):
    assert main(["pycaffe", "nope.py"]) == 2
    assert capsys.readouterr().err == "seqgen: error: nope.py: no such script\n"


def test_python_m_seqgen_caffe(cwd):
    script = write_script(cwd / "scripts")
    done = subprocess.run([sys.executable, "-m", "seqgen.caffe", str(script), "5"],
                          capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 5 and done.stdout.startswith("argv ['5']")


def test_the_example_runs_through_seqgen_pycaffe(cwd):
    """examples/pycaffe_lstm.py as a user runs it: the training loss falls tenfold and the
    free-running deploy net follows the wave better than predicting zeros would."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "seqgen", "pycaffe",
                           str(ROOT / "examples" / "pycaffe_lstm.py"), "out"],
                          capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    first, last = map(float, re.search(r"first loss ([\d.]+), last loss ([\d.]+)",
                                       done.stdout).groups())
    error = float(re.search(r"RMS error over 50 steps: ([\d.]+)", done.stdout).group(1))
    assert last < first / 10 and error < 0.5
    assert {"lstm_train.prototxt", "lstm_deploy.prototxt", "lstm_solver.prototxt",
            "lstm.caffemodel"} <= set(os.listdir(cwd / "out"))


def test_importing_caffe_layer_builds_no_net():
    """The core's Python layer type may import caffe.Layer: that loads no Net, no layers."""
    code = ("import sys, seqgen.caffe.python_layer, seqgen.caffe\n"
            "print(sorted(m for m in ('seqgen.net', 'seqgen.layers', 'numba', 'matplotlib') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "[]\n", done.stderr
