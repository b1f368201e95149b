"""The Accuracy layer against a hand-written formula (Caffe's accuracy_layer.cpp): top_k
with Caffe's tie rule, axis, ignore_label, the per-class top, and its errors."""
import numpy as np
import pytest
from google.protobuf import text_format

from seqgen.blob import Blob
from seqgen.errors import SeqgenError
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TEST, Net
from seqgen.proto import caffe_pb2
from seqgen.registry import layer_class

ACC = 'name: "acc" type: "Accuracy" bottom: "x" bottom: "y" top: "a" %s'


def run(params, x, y, n_tops=1):
    lp = text_format.Parse(ACC % params + (' top: "per"' if n_tops > 1 else ""),
                           caffe_pb2.LayerParameter())
    layer = layer_class("Accuracy")(lp, TEST)
    bottom = [Blob(np.shape(a), np.float32) for a in (x, y)]
    bottom[0].data[...], bottom[1].data[...] = x, y
    top = [Blob((0,), np.float32) for _ in range(n_tops)]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def by_hand(x, y, axis, top_k, ignore=None):
    """Caffe's rule written out: correct when fewer than top_k other classes score at least
    the true class's score (ties count against the true class)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    y = np.asarray(y).reshape(x.shape[:-1]).astype(int)
    hits = seen = 0
    per_hit, per_seen = np.zeros(x.shape[-1]), np.zeros(x.shape[-1])
    for idx in np.ndindex(y.shape):
        label = y[idx]
        if ignore is not None and label == ignore:
            continue
        scores = x[idx]
        better = sum(1 for k in range(len(scores)) if k != label and scores[k] >= scores[label])
        ok = better < top_k
        hits += ok
        seen += 1
        per_hit[label] += ok
        per_seen[label] += 1
    per = np.divide(per_hit, per_seen, out=np.zeros_like(per_hit), where=per_seen > 0)
    return (hits / seen if seen else 0.0), per


@pytest.mark.parametrize("axis, top_k, ignore", [(1, 1, None), (1, 2, None), (2, 1, -1),
                                                  (2, 3, -1), (-1, 2, 0)])
def test_accuracy_matches_the_formula(axis, top_k, ignore):
    rng = np.random.default_rng(top_k)
    shape = (4, 5, 6)
    C = shape[axis]
    # few distinct values: many ties, so the tie rule is exercised
    x = rng.integers(0, 3, shape).astype(np.float32)
    label_shape = tuple(d for i, d in enumerate(shape) if i != axis % 3)
    y = rng.integers(-1 if ignore == -1 else 0, C, label_shape).astype(np.float32)
    params = f"accuracy_param {{ axis: {axis} top_k: {top_k}" + (
        f" ignore_label: {ignore}" if ignore is not None else "") + " }"
    acc, per = run(params, x, y, n_tops=2)
    want, want_per = by_hand(x, y, axis, top_k, ignore)
    assert acc.shape == () and per.shape == (C,)
    np.testing.assert_allclose(acc, want, rtol=1e-6)
    np.testing.assert_allclose(per, want_per, rtol=1e-6)


def test_a_tie_with_the_true_class_is_wrong():
    x = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0]], np.float32)
    (acc,) = run("", x, np.array([0.0, 0.0]))
    assert acc == pytest.approx(0.5)  # row 0: class 1 ties the true class 0
    # top_k 2: row 0's tie fits; in row 1 classes 0, 1 and 2 all score >= 1, so label 1
    # is not among the top 2 although only class 0 scores higher
    (acc,) = run("accuracy_param { top_k: 2 }", x, np.array([0.0, 1.0]))
    assert acc == pytest.approx(0.5)


def test_all_ignored_gives_zero():
    (acc,) = run("accuracy_param { ignore_label: -1 }", np.ones((2, 3), np.float32),
                 np.array([-1.0, -1.0]))
    assert acc == 0


@pytest.mark.parametrize("params, y, message", [
    ("", np.zeros(3), r"layer 'acc' \(Accuracy\): bottom 'y' has 3 labels but 'x' \(2, 4\) "
                      r"makes 2 predictions"),
    ("accuracy_param { top_k: 5 }", np.zeros(2), r"top_k 5 is more than the 4 classes"),
    ("", np.array([0.0, 4.0]), r"bottom 'y' holds label 4 at \(1,\); labels must be in "
                               r"\[0, 4\)"),
])
def test_errors(params, y, message):
    with pytest.raises(SeqgenError, match=message):
        run(params, np.zeros((2, 4), np.float32), y)


def test_no_gradient_even_with_force_backward():
    net = Net(parse_net_text("""
        force_backward: true
        layer { name: "in" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "s"
                inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
        layer { name: "acc" type: "Accuracy" bottom: "s" bottom: "y" top: "a" }
    """), TEST)
    out = net.forward(x=np.ones((2, 3)), y=np.array([0.0, 2.0]))
    assert out["a"].shape == ()
    diffs = net.backward()
    assert not np.any(diffs["x"]) and not np.any(net.params["ip"][0].diff)
