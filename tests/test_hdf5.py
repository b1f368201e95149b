"""`HDF5Data` (seqgen/layers/hdf5_data.py): rows of datasets named after the tops, cycled
through rows and files as Caffe's HDF5DataLayer does. Skips when h5py is not installed
(it is an optional extra); importing seqgen must not need it.
"""
import subprocess
import sys

import numpy as np
import pytest

from seqgen import fillers
from seqgen.app.cli import main
from seqgen.app.info import net_info
from seqgen.errors import SeqgenError
from seqgen.extras import install_hint
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net

N, I = 2, 3


def net_text(source, batch_size=4, shuffle=False, tops=("x", "cont")):
    top_lines = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "h5"\nlayer {{ name: "data" type: "HDF5Data" {top_lines}\n'
            f'  hdf5_data_param {{ source: "{source}" batch_size: {batch_size} '
            f'shuffle: {"true" if shuffle else "false"} }} }}\n')


def test_importing_seqgen_does_not_import_h5py():
    code = ("import sys, seqgen; from seqgen.registry import layer_class; "
            "layer_class('HDF5Data'); print('h5py' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_missing_h5py_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(SeqgenError) as e:
        Net(parse_net_text(net_text(tmp_path / "list.txt"), "h5"), TRAIN)
    msg = str(e.value)
    assert "'data' (HDF5Data)" in msg and "h5py" in msg and install_hint("hdf5") in msg


h5py = pytest.importorskip("h5py")


def write_h5(path, rows, start=0, **extra):
    """x[r] = start + r (in every element), cont[r] = row number within the file."""
    x = (start + np.arange(rows, dtype=np.float32))[:, None, None] * np.ones((1, N, I), np.float32)
    cont = np.repeat(np.arange(rows, dtype=np.float32)[:, None], N, axis=1)
    with h5py.File(path, "w") as f:
        f["x"] = x
        f["cont"] = cont
        for k, v in extra.items():
            f[k] = v
    return x, cont


@pytest.fixture
def two_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_h5(folder / "a.h5", 5, start=0)
    write_h5(folder / "b.h5", 3, start=100)
    (folder / "list.txt").write_text("a.h5\n  b.h5\n\n")  # relative to the list's folder
    return folder


def served(net, passes):
    rows = []
    for _ in range(passes):
        net.forward()
        x = net.blobs["x"].data
        assert x.shape == (4, N, I)
        rows.append(x[:, 0, 0].astype(int).tolist())
    return rows


def test_rows_cycle_through_files_as_caffe(two_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # neither the net's folder nor the list's
    net = Net(parse_net_text(net_text(two_files / "list.txt"), "h5"), TRAIN)
    assert net.inputs == [] and net.outputs == ["cont", "x"]
    assert net.blobs["cont"].shape == (4, N)
    # 5 rows of a, then 3 of b, then a again: batches run across file boundaries
    assert served(net, 4) == [[0, 1, 2, 3], [4, 100, 101, 102], [0, 1, 2, 3],
                              [4, 100, 101, 102]]
    net.forward()
    assert net.blobs["cont"].data[:, 1].tolist() == [0, 1, 2, 3]


def test_shuffle_permutes_rows_and_files_reproducibly(tmp_path):
    folder = tmp_path
    write_h5(folder / "a.h5", 8, start=0)
    write_h5(folder / "b.h5", 8, start=100)
    (folder / "list.txt").write_text("a.h5 b.h5")

    def first_epochs(seed):
        fillers.seed(seed)
        net = Net(parse_net_text(net_text(folder / "list.txt", shuffle=True), "h5"), TRAIN)
        return served(net, 8)

    epochs = first_epochs(3)
    flat = sum(epochs[:4], [])
    assert sorted(flat) == list(range(8)) + list(range(100, 108))  # every row once per epoch
    assert flat != sorted(flat)
    assert first_epochs(3) == epochs  # the solver's random_seed makes it repeatable
    assert first_epochs(4) != epochs


def test_source_beside_the_net_and_files_beside_the_list(two_files, tmp_path, monkeypatch):
    (two_files / "net.prototxt").write_text(net_text("list.txt"))
    monkeypatch.chdir(tmp_path)
    net = Net(str(two_files / "net.prototxt"), TRAIN)
    assert served(net, 1) == [[0, 1, 2, 3]]
    # Caffe's rule first: a path relative to the working directory
    monkeypatch.chdir(two_files.parent)
    net = Net(parse_net_text(net_text("data/list.txt"), "h5"), TRAIN)
    assert served(net, 1) == [[0, 1, 2, 3]]


def layer_error(text):
    with pytest.raises(SeqgenError) as e:
        Net(parse_net_text(text, "h5"), TRAIN)
    msg = str(e.value)
    assert "layer 'data' (HDF5Data)" in msg and "\n" not in msg
    return msg


def test_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "source list 'nope.txt' not found" in layer_error(net_text("nope.txt"))
    (tmp_path / "list.txt").write_text("a.h5\n")
    msg = layer_error(net_text("list.txt"))
    assert "lists 'a.h5', which does not exist" in msg
    write_h5(tmp_path / "a.h5", 5)
    msg = layer_error(net_text("list.txt", tops=("x", "label")))
    assert "a.h5 has no dataset 'label' (datasets: cont, x)" in msg
    assert "batch_size must be > 0" in layer_error(net_text("list.txt", batch_size=0))
    (tmp_path / "empty.txt").write_text("\n")
    assert "names no files" in layer_error(net_text("empty.txt"))
    write_h5(tmp_path / "rows.h5", 5, label=np.zeros((4, N)))
    (tmp_path / "rows.txt").write_text("rows.h5")
    msg = layer_error(net_text("rows.txt", tops=("x", "label")))
    assert "dataset 'label' has 4 rows but 'x' has 5" in msg
    (tmp_path / "text.h5").write_text("not hdf5")
    (tmp_path / "text.txt").write_text("text.h5")
    assert "cannot read" in layer_error(net_text("text.txt"))


def test_files_with_other_row_shapes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_h5(tmp_path / "a.h5", 4)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"] = np.zeros((4, N, I + 1), np.float32)
        f["cont"] = np.zeros((4, N), np.float32)
    (tmp_path / "list.txt").write_text("a.h5 b.h5")
    net = Net(parse_net_text(net_text("list.txt"), "h5"), TRAIN)
    # the 4 rows of a.h5 fill the first batch; then b.h5 is loaded, as Caffe does
    with pytest.raises(SeqgenError, match=r"b.h5: dataset 'x' has rows of shape \(2, 4\), "
                                          r"but .*a.h5 has \(2, 3\)"):
        net.forward()


TRAINABLE = """
name: "h5_train"
layer { name: "data" type: "HDF5Data" top: "x" top: "cont" top: "label"
        hdf5_data_param { source: "list.txt" batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "silence" type: "Silence" bottom: "cont" }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "label" top: "loss" }
"""


def trainable(folder):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, N, I)).astype(np.float32)
    label = (x @ np.array([0.5, -1.0, 0.25], np.float32))[..., None]
    with h5py.File(folder / "train.h5", "w") as f:
        f["x"], f["cont"], f["label"] = x, np.ones((12, N), np.float32), label
    (folder / "list.txt").write_text("train.h5\n")
    (folder / "h5_train.prototxt").write_text(TRAINABLE)
    (folder / "h5_train_solver.prototxt").write_text(
        'net: "h5_train.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\n'
        'display: 0\nmax_iter: 60\nrandom_seed: 2\nsnapshot_prefix: "h5_train"\n')
    return folder / "h5_train.prototxt"


def test_train_a_net_that_reads_its_own_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "model").mkdir()
    net = trainable(tmp_path / "model")
    monkeypatch.chdir(tmp_path)  # the list is found beside the net
    assert main(["train", str(net), "--out", "RUN"]) == 0
    out = capsys.readouterr().out
    assert "on the data its own layers read (HDF5Data)" in out
    losses = np.loadtxt(tmp_path / "RUN" / "loss.csv", delimiter=",", skiprows=1)[:, 1]
    assert len(losses) == 60 and losses[-3:].mean() < 0.1 * losses[:3].mean()
    assert main(["generate"]) == 2
    assert "trained on its own data layers" in capsys.readouterr().err
    # and `seqgen info` shows what the layer serves
    text = net_info(str(net))
    assert "data -> label" in text and "Top shape: 4 2 3 (24)" in text


def test_solver_api_with_hdf5_data(tmp_path, monkeypatch):
    import seqgen

    trainable(tmp_path)
    monkeypatch.chdir(tmp_path)
    solver = seqgen.get_solver("h5_train_solver.prototxt", log=lambda *a: None)
    solver.step(3)  # 12 rows, batches of 4: three different batches
    assert solver.iter == 3
    assert np.isfinite(float(solver.net.blobs["loss"].data))
