"""BVLC's examples/coco_caption language model (LRCN) without Caffe: a net and solver with
its layer structure (tests/fixtures/lrcn: three HDF5Data layers selected by phase and
stage, Dropout by stage, Accuracy in TEST, two test_state nets) trained through
`seqgen train` on small HDF5 files in LRCN's layout (cont_sentence, input_sentence,
target_sentence, each T_total x N, padded with -1 as LRCN pads: inputs too)."""
import re
import shutil

import numpy as np
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.net import TEST, TRAIN, Net
from seqgen.proto import caffe_pb2

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

h5py = pytest.importorskip("h5py")

FIXTURES = ROOT / "tests" / "fixtures" / "lrcn"
N, T, ROWS, VOCAB = 3, 5, 20, 11  # streams, batch_size (T), rows per file, words (+ EOS 0)


def lrcn_streams(rng, n_sentences):
    """N streams of sentences packed back to back as LRCN's hdf5_sequence_generator does
    for its unaligned batches: per sentence s, cont [0, 1, ...], input [EOS] + s, target
    s + [EOS]; words are 1..VOCAB, EOS is 0."""
    streams = []
    for _ in range(N):
        cont, inp, tgt = [], [], []
        for _ in range(n_sentences):
            # a toy grammar with something to learn: each word is followed by its successor
            start = int(rng.integers(1, VOCAB + 1))
            s = [(start + k - 1) % VOCAB + 1 for k in range(int(rng.integers(2, 6)))]
            cont += [0] + [1] * len(s)
            inp += [0] + s
            tgt += s + [0]
        streams.append((cont, inp, tgt))
    return streams


def write_split(folder, split, files, seed):
    """`files` HDF5 files of ROWS x N rows and their hdf5_chunk_list.txt. A stream that runs
    out before the last row is padded as LRCN pads: cont 0, input -1 and target -1 (Caffe's
    Embed reads outside its table at input -1; seqgen's gives zeros there)."""
    out = folder / "h5_data" / "buffer_3" / f"{split}_unaligned_batches"
    out.mkdir(parents=True)
    total = files * ROWS
    arrays = {"cont_sentence": np.zeros((total, N)), "input_sentence": np.full((total, N), -1.0),
              "target_sentence": np.full((total, N), -1.0)}
    for i, stream in enumerate(lrcn_streams(np.random.default_rng(seed), 8)):
        for name, values in zip(arrays, stream):
            values = values[:total - 2 - i]  # the streams run out at different rows
            arrays[name][:len(values), i] = values
    names = []
    for k in range(files):
        path = out / f"batch_{k}.h5"
        with h5py.File(path, "w") as f:
            for name, array in arrays.items():
                f[name] = array[k * ROWS:(k + 1) * ROWS]
        names.append(f"./h5_data/buffer_3/{split}_unaligned_batches/batch_{k}.h5")
    (out / "hdf5_chunk_list.txt").write_text("\n".join(names) + "\n")
    return arrays


@pytest.fixture
def lrcn(tmp_path, monkeypatch):
    """A folder holding the fixture net and solver and LRCN-layout data; the working
    directory (LRCN's paths are relative to it)."""
    for name in ("lstm_language_model.prototxt", "lstm_lm_solver.prototxt"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    train = write_split(tmp_path, "train", 2, seed=0)
    val = write_split(tmp_path, "val", 1, seed=1)
    return tmp_path, train, val


TEST_LINE = re.compile(r"    Test net output #(\d): (\w+) = (\S+)(?: \(\* (\S+) = (\S+) loss\))?$")


def test_the_lrcn_language_model_trains_with_both_test_nets(lrcn, capsys):
    folder, _, val = lrcn
    assert main(["train", "lstm_lm_solver.prototxt", "--out", "RUN"]) == 0
    log = capsys.readouterr().out.splitlines()
    headers = [line for line in log if "Testing net" in line]
    # test_initialization, test_interval 2, and Caffe's Solve after max_iter 4
    assert headers == [f"Iteration {k}, Testing net (#{i})" for k in (0, 2, 4) for i in (0, 1)]
    for header in headers:
        at = log.index(header)
        outputs = [TEST_LINE.match(line) for line in log[at + 1:at + 3]]
        assert [m.group(1, 2) for m in outputs] == [("0", "accuracy"),
                                                   ("1", "cross_entropy_loss")]
        assert outputs[0].group(4) is None  # no loss weight on the accuracy
        loss, weight, weighted = (float(outputs[1].group(g)) for g in (3, 4, 5))
        assert weight == 20 and weighted == pytest.approx(20 * loss, rel=1e-4)
        assert 0 <= float(outputs[0].group(3)) <= 1
    # the last test of net #1 (test-on-val) recomputed from the snapshot: the TEST net in
    # stage test-on-val, test_iter 2 batches of its own data
    net = Net(str(folder / "lstm_language_model.prototxt"), TEST,
              weights=str(folder / "RUN" / "lstm_lm_iter_4.caffemodel"), stages=["test-on-val"])
    means = np.mean([[float(v) for v in net.forward().values()] for _ in range(2)], axis=0)
    last = [TEST_LINE.match(line) for line in log[log.index(headers[-1]) + 1:][:2]]
    assert [float(m.group(3)) for m in last] == pytest.approx(list(means), rel=1e-5)
    # the training loss of every iteration (display: 1), weighted by 20
    shown = [re.match(r"Iteration (\d+)\b.*, loss = ", line) for line in log]
    assert [int(m.group(1)) for m in shown if m] == [0, 1, 2, 3]


def test_stages_select_the_layers_of_each_net(lrcn):
    import seqgen

    solver = seqgen.get_solver("lstm_lm_solver.prototxt", log=lambda *a: None)
    assert {"embed-drop", "lstm-drop"} <= set(solver.net.layer_names)
    assert "accuracy" not in solver.net.layer_names
    assert len(solver.test_nets) == 2 == len(solver.testers)
    sources = []
    for net in solver.test_nets:
        assert net.phase == TEST and "accuracy" in net.layer_names
        assert not {"embed-drop", "lstm-drop"} & set(net.layer_names)
        assert net.params["predict"][0].data is solver.net.params["predict"][0].data
        sources.append(net.layer("data").param.hdf5_data_param.source)
    assert ["train" in sources[0], "val" in sources[1]] == [True, True]


def test_hdf5_rows_become_t_by_n_batches(lrcn):
    """batch_size T along axis 0 of T_total x N: T rows of the N streams per forward pass,
    on into the next file; the (T, N) tops feed Embed, the LSTM's cont and the loss."""
    _, train, _ = lrcn
    net = Net("lstm_language_model.prototxt", TRAIN)
    for k in range(2 * ROWS // T + 1):  # past the end of both files: back to the first
        net.forward()
        rows = slice((k * T) % (2 * ROWS), (k * T) % (2 * ROWS) + T)
        for name in ("cont_sentence", "input_sentence", "target_sentence"):
            np.testing.assert_array_equal(net.blobs[name].data, train[name][rows])
    assert net.blobs["embedded_input_sentence"].shape == (T, N, 8)
    assert net.blobs["lstm1"].shape == (T, N, 8) and net.blobs["predict"].shape == (T, N, 12)


def test_loss_with_ignore_label_and_loss_weight_20_as_caffe(lrcn):
    """SoftmaxWithLoss over axis 2, ignore_label -1, VALID normalization (the default):
    the mean of -log p(target) over the non-ignored targets; loss_weight 20 scales the
    loss and the gradient; ignored positions get no gradient."""
    net = Net("lstm_language_model.prototxt", TRAIN)
    for _ in range(2 * ROWS // T):  # to the last batch, which holds padding (-1 targets)
        net.forward()
    target = net.blobs["target_sentence"].data.astype(int)
    assert (target == -1).any()
    predict = net.blobs["predict"].data.astype(np.float64)
    p = np.exp(predict - predict.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    valid = target != -1
    picked = np.take_along_axis(p, np.where(valid, target, 0)[..., None], 2)[..., 0]
    want = -np.log(picked[valid]).sum() / valid.sum()
    assert float(net.blobs["cross_entropy_loss"].data) == pytest.approx(want, rel=1e-5)
    net.backward()
    grad = net.blobs["predict"].diff
    onehot = np.eye(12)[np.where(valid, target, 0)]
    np.testing.assert_allclose(grad[valid], (20 * (p - onehot) / valid.sum())[valid],
                               rtol=1e-4, atol=1e-7)
    assert not grad[~valid].any()
    assert net.blob_loss_weights["cross_entropy_loss"] == 20


def test_solver_file_paths_and_caffe_numbers(lrcn):
    """The solver fixture is BVLC's apart from paths and iteration counts."""
    from seqgen.io.prototxt import read_solver

    p = read_solver("lstm_lm_solver.prototxt")
    assert list(p.train_state.stage) == ["embed-drop", "lstm-drop"]
    assert [list(s.stage) for s in p.test_state] == [["test-on-train"], ["test-on-val"]]
    assert (p.base_lr, p.lr_policy, p.gamma, p.stepsize, p.momentum, p.clip_gradients,
            p.random_seed, p.average_loss) == (pytest.approx(0.1), "step", 0.5, 20000,
                                               pytest.approx(0.9), 10, 1701, 100)
    assert p.solver_mode == caffe_pb2.SolverParameter.GPU


def test_lrcn_input_padding_gives_zero_rows_and_no_gradient(lrcn, capsys):
    """An input of -1 (LRCN's padding) embeds to a zero row (no bias either) and adds
    nothing to the table's or the bias's gradient, against numpy's gather and scatter-add
    over the other positions; one warning names the layer and the count."""
    from seqgen.layers import embed

    embed.WARNED_PADDING.discard("embedding")
    net = Net("lstm_language_model.prototxt", TRAIN)
    for _ in range(2 * ROWS // T):  # to the last batch, which holds the padding
        net.forward()
    x = net.blobs["input_sentence"].data.astype(int)
    pad = x == -1
    assert pad.any() and (x[~pad] >= 0).all()
    W = net.params["embedding"][0].data
    np.testing.assert_array_equal(net.blobs["embedded_input_sentence"].data,
                                  np.where(pad[..., None], 0, W[np.where(pad, 0, x)]))
    net.clear_param_diffs()
    net.backward()
    dy = net.blobs["embedded_input_sentence"].diff.astype(np.float64)
    want = np.zeros(W.shape)
    np.add.at(want, x[~pad], dy[~pad])
    np.testing.assert_allclose(net.params["embedding"][0].diff, want, rtol=1e-5, atol=1e-7)
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert (f"layer 'embedding' (Embed): bottom 'input_sentence' holds {pad.sum()} padding "
            "indices -1" in err)
    net.forward()  # warned once per run
    assert "warning" not in capsys.readouterr().err


def test_other_negative_embed_inputs_are_still_refused():
    from seqgen.errors import SeqgenError
    from seqgen.io.prototxt import parse_net_text

    net = Net(parse_net_text("""
        layer { name: "in" type: "Input" top: "input_sentence"
                input_param { shape { dim: 2 dim: 1 } } }
        layer { name: "embedding" type: "Embed" bottom: "input_sentence" top: "e"
                embed_param { input_dim: 3 num_output: 2 } }"""), TEST)
    with pytest.raises(SeqgenError, match=r"holds -2 at \(1, 0\); embedding indices must be "
                                          r"integers in \[0, 3\).*or -1 for padding"):
        net.forward(input_sentence=np.array([[0.0], [-2.0]]))


def test_info_shows_a_stage_s_net(lrcn, capsys):
    def info(*args):
        code = main(["info", "lstm_language_model.prototxt", *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, out = info("--phase", "TEST", "--stage", "test-on-val")
    assert code == 0 and "(TEST phase, stages test-on-val)" in out
    assert "Creating Layer accuracy (Accuracy)" in out and "embed-drop" not in out
    code, out = info("--stage", "embed-drop", "--stage", "lstm-drop")
    assert code == 0 and "Creating Layer embed-drop (Dropout)" in out
    assert "Creating Layer lstm-drop (Dropout)" in out
    # the TEST phase without a stage has no data layer, as in Caffe
    code, out = info("--phase", "TEST")
    assert code != 0 and "needs bottom 'input_sentence', which no earlier layer produces" in out
