"""Training and generating on a user's own multi-column sequence file, through the CLI."""
import numpy as np

from seqgen.app.cli import main
from seqgen.app.plot import read_generated_csv

NET = """
input: "data" input_shape { dim: 40 dim: 2 }
input: "clip" input_shape { dim: 40 dim: 1 }
input: "label" input_shape { dim: 40 dim: 2 }
layer { name: "Silence" type: "Silence" bottom: "label" include { phase: TEST } }
layer { name: "lstm1" type: "Lstm" bottom: "data" bottom: "clip" top: "lstm1"
        lstm_param { num_output: 5 clipping_threshold: 0.1
                     weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss"
        include { phase: TRAIN } }
"""


def test_two_column_csv_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    t = np.arange(130) * 0.1
    seq = np.stack([np.sin(t), np.cos(0.5 * t)], axis=1)
    with open("seq.csv", "w") as f:
        f.write("a,b\n")
        for row in seq:
            f.write(f"{row[0]:.6f},{row[1]:.6f}\n")
    (tmp_path / "two.prototxt").write_text(NET)
    assert main(["train", "two.prototxt", "--data", "seq.csv", "--iters", "20",
                 "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "120 steps in chunks of 40" in out and "last 10 steps" in out
    assert main(["generate", "--steps", "60"]) == 0
    d = read_generated_csv(tmp_path / "run" / "generated.csv")
    assert d["generated"].shape == (60, 2)
    # the true columns are the file's first 60 rows (3 chunks of 40 were used for training)
    np.testing.assert_allclose(d["true"], seq[:60], atol=1e-6)
    assert (tmp_path / "run" / "generated.png").stat().st_size > 1000
