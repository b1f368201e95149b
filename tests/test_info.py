"""`seqgen info NET`: the net as Caffe's Net::Init logs it (seqgen/app/info.py,
seqgen/app/cli.py)."""
import subprocess
import sys

import pytest
from helpers import GOLDEN, ROOT

from seqgen.app.cli import main
from seqgen.app.info import net_info, shape_string

SHORT = ROOT / "prototxt" / "lstm_short.prototxt"


def block(text, layer):
    """The indented lines under 'Creating Layer <layer> (...)'."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Creating Layer {layer} ("))
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return lines[start], out


def test_shape_string_is_caffes():
    assert shape_string((320, 15)) == "320 15 (4800)"
    assert shape_string((60,)) == "60 (60)"
    assert shape_string(()) == "(1)"


def test_train_phase_of_lstm_short():
    text = net_info(str(SHORT), "TRAIN")
    assert text.splitlines()[0] == f'Net "LSTM" (TRAIN phase) from {SHORT}'
    head, lines = block(text, "lstm1")
    assert head == "Creating Layer lstm1 (Lstm)"
    assert lines == ["lstm1 <- data", "lstm1 <- clip", "lstm1 -> lstm1", "Setting up lstm1",
                     "Top shape: 320 15 (4800)", "Param 0 (W_x): 60 1 (60)",
                     "Param 1 (W_h): 60 15 (900)", "Param 2 (b): 60 (60)",
                     "Memory required for data: 23040"]
    head, lines = block(text, "loss")
    assert head == "Creating Layer loss (EuclideanLoss)"
    assert lines[:4] == ["loss <- ip1", "loss <- label", "loss -> loss", "Setting up loss"]
    assert lines[4:6] == ["Top shape: (1)", "with loss weight 1"]
    assert "Silence" not in text  # a TEST-only layer
    assert text.splitlines()[-2].startswith("Kernels compiled for ")  # kernels.target
    tail = text.splitlines()[-11:-2]
    assert tail == ["loss needs backward computation.", "ip1 needs backward computation.",
                    "lstm1 needs backward computation.",
                    "label does not need backward computation.",
                    "clip does not need backward computation.",
                    "data does not need backward computation.",
                    "This network produces output loss", "Network initialization done.",
                    "Total learnable parameters: 1036 in 5 blobs"]
    assert text.splitlines()[-1] == f"Draw it: seqgen draw {SHORT} --out net.png"


def test_test_phase_and_solver_file():
    text = net_info(str(ROOT / "prototxt" / "lstm_short_solver.prototxt"), "TEST")
    assert '(TEST phase)' in text.splitlines()[0]
    head, lines = block(text, "Silence")
    assert lines == ["Silence <- label", "Setting up Silence", "Memory required for data: 3840"]
    assert "Creating Layer loss" not in text
    assert "This network produces output ip1" in text
    assert "ip1 does not need backward computation." in text  # no loss in TEST


def test_splits_shared_and_fixed_parameters(tmp_path):
    net = tmp_path / "shared.prototxt"
    net.write_text("""
name: "shared"
layer { name: "input" type: "Input" top: "x" top: "t" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "ya"
        param { name: "w" } param { lr_mult: 0 }
        inner_product_param { num_output: 3 } }
layer { name: "b" type: "InnerProduct" bottom: "x" top: "yb" param { name: "w" }
        inner_product_param { num_output: 3 } }
layer { name: "relu" type: "ReLU" bottom: "yb" top: "yb" }
layer { name: "loss" type: "EuclideanLoss" bottom: "ya" bottom: "t" loss_weight: 0.5 }
""")
    text = net_info(str(net))
    head, lines = block(text, "x_input_0_split")
    assert head == "Creating Layer x_input_0_split (Split)"
    assert lines[:3] == ["x_input_0_split <- x", "x_input_0_split -> x_input_0_split_0",
                         "x_input_0_split -> x_input_0_split_1"]
    _, lines = block(text, "a")
    assert "Param 0 (W): 3 3 (9), named 'w'" in lines
    assert "Param 1 (b): 3 (3), fixed (lr_mult 0)" in lines
    _, lines = block(text, "b")
    assert "Param 0 (W): 3 3 (9), shared as 'w' with a param 0" in lines
    _, lines = block(text, "relu")
    assert "relu -> yb (in-place)" in lines
    _, lines = block(text, "loss")
    assert "with loss weight 0.5" in lines
    assert "This network produces output yb" in text
    # w counted once: 9 + 3 (fixed) + 3
    assert text.splitlines()[-3] == ("Total learnable parameters: 15 in 3 blobs "
                                     "(3 fixed by lr_mult 0)")


def test_bvlc_lstm_parameter_names():
    _, lines = block(net_info(str(GOLDEN / "bvlc" / "layer_c.prototxt")), "rec")
    assert lines[:4] == ["rec <- x", "rec <- cont", "rec <- x_static", "rec -> h"]
    assert "Top shape: 8 3 4 (96)" in lines
    assert [line for line in lines if line.startswith("Param")] == [
        "Param 0 (W_xc): 16 2 (32)", "Param 1 (b_c): 16 (16)", "Param 2 (W_xc_static): 16 2 (32)",
        "Param 3 (W_hc): 16 4 (64)"]


def test_cli(capsys):
    assert main(["info", str(SHORT), "--phase", "test"]) == 0
    out = capsys.readouterr().out
    assert "(TEST phase)" in out and "Creating Layer Silence (Silence)" in out
    assert main(["info", str(SHORT)]) == 0
    assert "(TRAIN phase)" in capsys.readouterr().out


def test_cli_errors(capsys, tmp_path):
    assert main(["info", str(tmp_path / "missing.prototxt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqgen: error:") and "missing.prototxt" in err
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "c" type: "Convolution" top: "c" }')
    assert main(["info", str(bad)]) == 2
    assert "Convolution" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["info", str(SHORT), "--phase", "VAL"])
    assert e.value.code == 2


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "seqgen", "info", str(SHORT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Total learnable parameters: 1036 in 5 blobs" in result.stdout
