"""`seqgen draw`: every shipped net draws in both phases, and the diagram's graph has what
the picture promises (folded in-place layers, cont edges, H, parameter counts, shapes)."""
import pytest
from helpers import ROOT

from seqgen.app.cli import main
from seqgen.app.netgraph import build_graph, source_label
from seqgen.io.prototxt import parse_net_text
from seqgen.net import TRAIN, Net

NETS = sorted(p for p in (ROOT / "prototxt").glob("*.prototxt") if "solver" not in p.name)


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("net", NETS, ids=[p.stem for p in NETS])
def test_every_shipped_net_draws(tmp_path, capsys, net, phase):
    out = tmp_path / f"{net.stem}.png"
    assert main(["draw", str(net), "--phase", phase, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().err == f"Wrote {out}\n"  # (stdout is for results)


def test_svg_and_a_solver_file(tmp_path):
    out = tmp_path / "net.svg"
    assert main(["draw", str(ROOT / "prototxt" / "deep_lstm_short_solver.prototxt"),
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<?xml") and "lstm3 (Lstm)" in text


def test_graph_of_lstm_short():
    boxes, edges = build_graph(Net(str(ROOT / "prototxt" / "lstm_short.prototxt"), TRAIN))
    lstm = boxes["lstm1"]
    assert lstm.kind == "recurrent" and lstm.lines == ["H = 15", "1,020 params"]
    assert boxes["ip1"].lines == ["16 params"]
    cont = [e for e in edges if e.cont]
    assert [(e.src, e.dst) for e in cont] == [("clip", "lstm1")]
    assert source_label(cont) == "clip 320×1 (cont)"
    assert boxes["data"].rank == boxes["clip"].rank == 0
    assert boxes["lstm1"].rank == 1 and boxes["ip1"].rank == 2
    assert boxes["label"].rank == 2  # just above the loss, its only consumer


def test_in_place_layers_fold_into_their_producer_and_splits_vanish():
    net = Net(parse_net_text("""
    name: "fold"
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 2 } }
    layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
    layer { name: "a" type: "TanH" bottom: "y" top: "a" }
    layer { name: "b" type: "Sigmoid" bottom: "y" top: "b" }
    """), TRAIN)
    boxes, edges = build_graph(net)
    assert "relu" not in boxes and not any("split" in k for k in boxes)
    assert boxes["ip"].lines == ["+ relu (ReLU)", "8 params"]
    assert sorted((e.src, e.dst) for e in edges if not e.dst.startswith("output:")) == [
        ("ip", "a"), ("ip", "b"), ("x", "ip")]
    assert source_label([e for e in edges if e.src == "ip"]) == "y 4×2"


def test_draw_refuses_other_formats(tmp_path, capsys):
    code = main(["draw", str(NETS[0]), "--out", str(tmp_path / "net.pdf")])
    assert code == 2
    assert capsys.readouterr().err == (f"seqgen: error: --out {tmp_path / 'net.pdf'}: seqgen "
                                       "draw writes .png or .svg files; name it net.png\n")
