"""A net with BVLC Caffe's LSTM layer trains and generates through the same commands."""
import numpy as np
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.app.plot import read_generated_csv
from seqgen.net import TEST, Net

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics


def test_bvlc_lstm_trains_generates_and_gets_the_forget_bias(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = ROOT / "prototxt" / "bvlc_lstm_short_solver.prototxt"
    solver = tmp_path / "solver.prototxt"  # the shipped solver with a fixed seed
    solver.write_text(shipped.read_text().replace(
        'net: "bvlc_lstm_short.prototxt"', f'net: "{shipped.parent / "bvlc_lstm_short.prototxt"}"')
        + "random_seed: 7\n")
    assert main(["train", str(solver), "--iters", "300", "--out", "run"]) == 0
    assert main(["generate", "--steps", "100"]) == 0
    d = read_generated_csv(tmp_path / "run" / "generated.csv")
    assert d["generated"].shape == (100,) and np.isfinite(d["generated"]).all()
    losses = np.loadtxt(tmp_path / "run" / "loss.csv", delimiter=",", skiprows=1)[:, 1]
    assert losses[-20:].mean() < 0.5 * losses[:20].mean()  # it learns
    # the snapshot's b_c starts from the fork driver's forget-gate bias 5 (moved a little)
    net = Net(ROOT / "prototxt" / "bvlc_lstm_short.prototxt",
              tmp_path / "run" / "bvlc_lstm_short_iter_300.caffemodel", TEST)
    b_c = net.params["lstm1"][1].data
    assert np.all(np.abs(b_c[15:30] - 5) < 0.5) and np.all(np.abs(b_c[:15]) < 0.5)
