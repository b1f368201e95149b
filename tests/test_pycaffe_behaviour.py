"""pycaffe's behaviour where scripts rely on it, checked as pycaffe's own test suite checks it
(BVLC's python/caffe/test/test_net.py and test_solver.py), on a small recurrent net (BVLC
LSTM -> InnerProduct -> EuclideanLoss) instead of its LeNet-like net.

Values are compared with numpy formulas written here (InnerProduct, one LSTM step from a
zero state), with exact powers of two (a loss top's diff scales every gradient), or with
facts of pycaffe's API (names, indices, what forward/backward return, files written).
"""
import os
from collections import OrderedDict

import numpy as np
import pytest

import seqgen
from seqgen.errors import SeqgenError
from seqgen.net import TEST, TRAIN, Net

T, N, I, H, K = 4, 2, 3, 6, 5
RNG = np.random.default_rng(21)

NET = f"""name: 'testnet' force_backward: true
layer {{ name: 'data' type: 'Input' top: 'x' top: 'cont' top: 'target'
  input_param {{ shape {{ dim: {T} dim: {N} dim: {I} }} shape {{ dim: {T} dim: {N} }}
                shape {{ dim: {T} dim: {N} dim: {K} }} }} }}
layer {{ name: 'lstm' type: 'LSTM' bottom: 'x' bottom: 'cont' top: 'h'
  recurrent_param {{ num_output: {H} weight_filler {{ type: 'gaussian' std: 0.5 }}
                    bias_filler {{ type: 'constant' value: 0.1 }} }} }}
layer {{ name: 'ip' type: 'InnerProduct' bottom: 'h' top: 'ip_blob'
  inner_product_param {{ num_output: {K} axis: 2 weight_filler {{ type: 'gaussian' std: 0.5 }}
                        bias_filler {{ type: 'constant' value: -0.3 }} }} }}
layer {{ name: 'loss' type: 'EuclideanLoss' bottom: 'ip_blob' bottom: 'target' top: 'loss' }}
"""
DEPLOY = NET[NET.index("layer { name: 'lstm'"):NET.index("layer { name: 'loss'")].join([
    f"""name: 'deploy'
layer {{ name: 'data' type: 'Input' top: 'x' top: 'cont'
  input_param {{ shape {{ dim: {T} dim: {N} dim: {I} }} shape {{ dim: {T} dim: {N} }} }} }}
""", ""])

SOLVER = """net: '{net}'
test_iter: 2 test_interval: 10 base_lr: 0.01 momentum: 0.9
weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
display: 100 max_iter: 20 snapshot_after_train: false
{prefix}"""


def write(path, text):
    path.write_text(text)
    return str(path)


def fill(net):
    net.blobs["x"].data[...] = RNG.standard_normal((T, N, I))
    net.blobs["cont"].data[...] = 1
    net.blobs["cont"].data[0] = 0
    net.blobs["target"].data[...] = RNG.standard_normal((T, N, K))


@pytest.fixture
def net(tmp_path):
    net = Net(write(tmp_path / "net.prototxt", NET), TRAIN)
    fill(net)
    return net


def lstm_step_from_zero(net, x):
    """BVLC LSTM, one step from h = c = 0 (cont = 0): gates i, f, o, g from W_xc x + b_c."""
    W, b = (net.params["lstm"][k].data.astype(np.float64) for k in (0, 1))
    gates = x.astype(np.float64) @ W.T + b
    i, o, g = (gates[..., k * H:(k + 1) * H] for k in (0, 2, 3))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    return sig(o) * np.tanh(sig(i) * np.tanh(g))


def ip_formula(net, h):
    W, b = (net.params["ip"][k].data.astype(np.float64) for k in (0, 1))
    return h.astype(np.float64) @ W.T + b


# -- test_net.py -----------------------------------------------------------------------------
def test_layer_dict(net):
    assert list(net.layer_dict) == list(net._layer_names) == ["data", "lstm", "ip", "loss"]
    for i, name in enumerate(net._layer_names):
        assert net.layer_dict[name].type == net.layers[i].type


def test_forward_backward(net):
    net.forward()
    net.backward()


def test_forward_start_end_returns_the_tops_of_end(net):
    h = net.blobs["h"]
    h.data[...] = RNG.uniform(size=h.shape)
    out = net.forward(start="ip", end="ip")
    assert set(out) == {"ip_blob"}  # the tops of layer `end`, not the net's outputs
    np.testing.assert_allclose(out["ip_blob"], ip_formula(net, h.data), rtol=1e-5, atol=1e-6)
    assert set(net.forward(end="lstm", blobs=["x"])) == {"h", "x"}


def test_backward_start_end_returns_the_bottoms_of_end(net):
    net.forward()
    dy = RNG.uniform(size=net.blobs["ip_blob"].shape).astype(np.float32)
    net.blobs["ip_blob"].diff[...] = dy
    out = net.backward(start="ip", end="ip")
    assert set(out) == {"h"}
    W = net.params["ip"][0].data.astype(np.float64)
    np.testing.assert_allclose(out["h"], dy @ W, rtol=1e-5, atol=1e-6)
    assert set(net.backward(diffs=["h"])) == {"x", "cont", "target", "h"}


def test_underscored_forward_and_backward_take_layer_indices(net):
    h = net.blobs["h"]
    h.data[...] = RNG.uniform(size=h.shape)
    ip = net._layer_names.index("ip")
    net._forward(ip, ip)
    np.testing.assert_allclose(net.blobs["ip_blob"].data, ip_formula(net, h.data), rtol=1e-5,
                               atol=1e-6)
    dy = RNG.uniform(size=h.shape[:2] + (K,)).astype(np.float32)
    net.blobs["ip_blob"].diff[...] = dy
    h.diff[...] = 0
    net._backward(ip, ip)
    np.testing.assert_allclose(h.diff, dy @ net.params["ip"][0].data.astype(np.float64),
                               rtol=1e-5, atol=1e-6)
    loss = net._forward(0, len(net.layers) - 1)  # Caffe's ForwardFromTo returns the loss
    d = net.blobs["ip_blob"].data.astype(np.float64) - net.blobs["target"].data
    assert np.isclose(loss, (d ** 2).sum() / T / 2, rtol=1e-5)
    net._forward("ip", "loss")  # seqgen's names still work
    with pytest.raises(RuntimeError, match="layer index 9 is out of range"):
        net._forward(0, 9)


def test_a_loss_diff_set_by_hand_persists(net):
    """Caffe writes loss_weight into the loss top's diff once, at setup: a diff a script
    writes there scales the gradient, and stays for later passes."""
    assert net.blobs["loss"].diff == 1
    net.forward()
    net.backward()
    g1 = [b.diff.copy() for b in net.params["ip"]]
    for scale in (2, 2):  # twice: the second backward must not reset it to 1
        net.clear_param_diffs()
        net.blobs["loss"].diff[...] = scale
        net.backward()
        for b, g in zip(net.params["ip"], g1):
            np.testing.assert_array_equal(b.diff, 2 * g)
    net.clear_param_diffs()
    net.backward()
    np.testing.assert_array_equal(net.params["ip"][0].diff, 2 * g1[0])


def test_clear_param_diffs(net):
    net.forward()
    net.backward()
    diff = net.params["ip"][0].diff
    assert np.abs(diff).max() > 0
    net.clear_param_diffs()
    assert (diff == 0).all()


def test_inputs_outputs_and_their_indices(net):
    assert net.inputs == ["x", "cont", "target"] and net.outputs == ["loss"]
    assert net._blob_names == ["x", "cont", "target", "h", "ip_blob", "loss"]
    assert net._inputs == [0, 1, 2] and net._outputs == [5]
    assert net._blobs == list(net.blobs.values())
    assert net._blob_loss_weights == [0, 0, 0, 0, 0, 1]
    assert net.blob_loss_weights["loss"] == 1
    assert net._top_ids(1) == [3] and net._bottom_ids(3) == [4, 2]


def test_top_bottom_names(net):
    assert net.top_names == OrderedDict([("data", ["x", "cont", "target"]), ("lstm", ["h"]),
                                         ("ip", ["ip_blob"]), ("loss", ["loss"])])
    assert net.bottom_names == OrderedDict([("data", []), ("lstm", ["x", "cont"]),
                                            ("ip", ["h"]), ("loss", ["ip_blob", "target"])])


def test_save_and_read(net, tmp_path):
    net.save(str(tmp_path / "w.caffemodel"))
    path = write(tmp_path / "net.prototxt", NET)
    Net(path, str(tmp_path / "w.caffemodel"), TRAIN)  # the legacy constructor
    net2 = Net(path, TRAIN, weights=str(tmp_path / "w.caffemodel"))
    for name in net.params:
        for a, b in zip(net.params[name], net2.params[name]):
            assert np.abs(a.data - b.data).sum() == 0


def test_save_hdf5(net, tmp_path):
    net.save_hdf5(str(tmp_path / "w.h5"))
    net2 = Net(write(tmp_path / "net.prototxt", NET), TRAIN)
    net2.load_hdf5(str(tmp_path / "w.h5"))
    for name in net.params:
        for a, b in zip(net.params[name], net2.params[name]):
            assert np.abs(a.data - b.data).sum() == 0
    import h5py
    with h5py.File(tmp_path / "w.h5") as f:  # Caffe's layout: data/<layer>/<index>
        assert sorted(f["data"]) == ["data", "ip", "loss", "lstm"]
        assert sorted(f["data/lstm"]) == ["0", "1", "2"]


# -- blobs -------------------------------------------------------------------------------------
def test_blob_legacy_accessors(net):
    x = net.blobs["x"]
    assert (x.num, x.channels, x.height, x.width, x.count) == (T, N, I, 1, T * N * I)
    assert tuple(x.shape) == (T, N, I)
    loss = net.blobs["loss"]
    assert (loss.num, loss.channels, loss.height, loss.width, loss.count) == (1, 1, 1, 1, 1)
    x.reshape(1, 1, 1, 1, 2)
    with pytest.raises(RuntimeError, match="at most 4 axes"):
        x.channels  # noqa: B018


def test_blob_data_and_diff_cannot_be_assigned(net):
    blob = net.params["ip"][0]
    for attr in ("data", "diff"):
        with pytest.raises(AttributeError, match=rf"can't set attribute.*blob.{attr}\[\.\.\.\]"):
            setattr(blob, attr, np.zeros(blob.shape, np.float32))
    before = blob.data.copy()
    blob.data += 1  # in place, as in numpy: allowed
    np.testing.assert_array_equal(blob.data, before + 1)


def test_blobvec_add_blob(net):
    blobs = net.layer_dict["ip"].blobs
    assert blobs is net.params["ip"]
    blobs.add_blob(2, 3)
    assert len(blobs) == 3 and tuple(blobs[2].shape) == (2, 3) and not blobs[2].data.any()
    blobs.pop()
    with pytest.raises(RuntimeError, match="no keyword"):
        blobs.add_blob(2, shape=3)


# -- batches -------------------------------------------------------------------------------------
def test_forward_all_batches_along_axis_0_and_cuts_the_padding(tmp_path):
    net = Net(write(tmp_path / "deploy.prototxt", DEPLOY), TEST)
    assert net.inputs == ["x", "cont"]
    rows = 2 * T + 2  # two full batches and a padded one
    x = RNG.standard_normal((rows, N, I)).astype(np.float32)
    out = net.forward_all(x=x, cont=np.zeros((rows, N)))  # every step starts from zero
    assert set(out) == {"ip_blob"} and out["ip_blob"].shape == (rows, N, K)
    want = ip_formula(net, lstm_step_from_zero(net, x))
    np.testing.assert_allclose(out["ip_blob"], want, rtol=1e-4, atol=1e-5)


def test_forward_backward_all(tmp_path):
    net = Net(write(tmp_path / "deploy.prototxt", "force_backward: true\n" + DEPLOY), TEST)
    rows = T + 1
    x = RNG.standard_normal((rows, N, I)).astype(np.float32)
    d = RNG.standard_normal((rows, N, K)).astype(np.float32)
    outs, diffs = net.forward_backward_all(x=x, cont=np.zeros((rows, N)), ip_blob=d)
    assert outs["ip_blob"].shape == (rows, N, K) and diffs["x"].shape == (rows, N, I)
    net.forward(x=x[:T], cont=np.zeros((T, N)))  # the first batch alone
    np.testing.assert_array_equal(diffs["x"][:T], net.backward(ip_blob=d[:T])["x"])


def test_set_input_arrays_needs_memory_data(net):
    with pytest.raises(RuntimeError, match="MemoryDataLayer"):
        net.set_input_arrays(np.zeros((T, 1, 1, 1)), np.zeros(T))


def test_errors_are_runtime_errors(tmp_path):
    assert issubclass(SeqgenError, RuntimeError)
    with pytest.raises(RuntimeError):
        Net(write(tmp_path / "bad.prototxt", "layer { name: 'a' type: 'NoSuchType' }"), TEST)


# -- test_solver.py ----------------------------------------------------------------------------
@pytest.fixture
def solver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "net.prototxt", NET)
    path = write(tmp_path / "solver.prototxt",
                 SOLVER.format(net="net.prototxt", prefix='snapshot_prefix: "model"'))
    solver = seqgen.get_solver(path, log=lambda *a: None)
    fill(solver.net)
    fill(solver.test_nets[0])
    return solver


def test_solve(solver):
    assert solver.iter == 0
    solver.solve()
    assert solver.iter == 20


def test_apply_update(solver):
    data = solver.net.layers[2].blobs[0].data
    data[...] = 0
    solver.net.layers[2].blobs[0].diff[...] = 1
    solver.apply_update()  # the first rate is base_lr
    assert np.abs(data - -0.01).max() < 1e-7


def test_net_memory(solver):
    nets = [solver.net] + list(solver.test_nets)
    assert len(nets) == 2


def test_snapshot(solver, tmp_path):
    solver.snapshot()
    for name in ("model_iter_0.caffemodel", "model_iter_0.solverstate"):
        assert (tmp_path / name).is_file()


def test_lr_is_the_rate_of_the_current_iteration(solver):
    assert solver.lr == pytest.approx(0.01)
    solver.step(3)
    assert solver.lr == pytest.approx(0.01 * (1 + 0.0001 * 3) ** -0.75, rel=1e-6)


def test_add_callback_with_pycaffe_two_functions(solver):
    calls = []
    W = solver.net.params["ip"][0]

    def on_start():
        calls.append(("start", solver.iter, bool(W.diff.any())))

    def on_gradients_ready():
        calls.append(("ready", solver.iter, bool(W.diff.any())))

    solver.add_callback(on_start, on_gradients_ready)
    solver.step(2)
    # on_start before the passes (diffs cleared), on_gradients_ready before the update
    assert calls == [("start", 0, False), ("ready", 0, True),
                     ("start", 1, False), ("ready", 1, True)]
    with pytest.raises(TypeError, match="two functions"):
        solver.add_callback(on_start, 3)


def test_share_weights(solver, tmp_path):
    net = Net(str(tmp_path / "net.prototxt"), TEST)
    solver.share_weights(net)
    solver.step(1)
    for name in solver.net.params:
        for a, b in zip(solver.net.params[name], net.params[name]):
            assert np.shares_memory(a.data, b.data)


def test_no_test_iter_gives_no_test_nets(tmp_path):
    write(tmp_path / "net.prototxt", NET)
    text = SOLVER.format(net=tmp_path / "net.prototxt", prefix="").replace(
        "test_iter: 2 test_interval: 10", "")
    solver = seqgen.get_solver(write(tmp_path / "s.prototxt", text), log=lambda *a: None)
    assert len(solver.test_nets) == 0


def test_default_snapshot_prefix_is_the_solver_path_without_extension(tmp_path, monkeypatch):
    """Caffe's UpgradeSnapshotPrefixProperty: no prefix -> the solver file's path minus its
    extension; a folder -> the folder and the solver file's stem."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp").mkdir()
    (tmp_path / "snaps").mkdir()
    write(tmp_path / "exp" / "net.prototxt", NET)
    for prefix, want in (("", "exp/lstm_solver_iter_0"),
                         ('snapshot_prefix: "snaps"', "snaps/lstm_solver_iter_0")):
        path = write(tmp_path / "exp" / "lstm_solver.prototxt",
                     SOLVER.format(net="net.prototxt", prefix=prefix))
        solver = seqgen.get_solver(os.path.join("exp", "lstm_solver.prototxt"),
                                   log=lambda *a: None)
        model, state = solver.snapshot()
        assert (model, state) == (want + ".caffemodel", want + ".solverstate")
        assert (tmp_path / model).is_file()
        assert path


def test_restore_of_a_changed_solver_warns_in_the_pycaffe_api(solver, tmp_path):
    solver.step(2)
    _, state = solver.snapshot()
    changed = write(tmp_path / "changed.prototxt",
                    SOLVER.format(net="net.prototxt", prefix="").replace("0.01", "0.02"))
    lines = []
    other = seqgen.get_solver(changed, log=lines.append)
    other.restore(state)
    assert other.iter == 2
    assert len(lines) == 1 and lines[0].startswith(f"Warning: {state}: resuming although "
                                                   "the solver changed")
    strict = seqgen.get_solver(changed, log=lines.append, pycaffe=False)
    with pytest.raises(RuntimeError, match="cannot resume"):
        strict.restore(state)
