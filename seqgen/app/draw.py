"""`seqgen draw`: a picture of a net, layers as boxes coloured by kind and blobs as
labelled edges, top to bottom from the data; matplotlib's Agg/SVG canvas, no Graphviz."""
import os

from ..errors import SeqgenError
from ..io.atomic import atomic_open
from ..io.outputs import check_output
from ..net import Net
from .info import _net_file
from .netgraph import build_graph, source_label

COLOURS = {"input": "#e0e0e0", "recurrent": "#f6b26b", "affine": "#9fc5e8",
           "activation": "#b6d7a8", "loss": "#ea9999", "shape": "#d5a6bd",
           "other": "#ffe599", "output": "none"}
FORMATS = (".png", ".svg")
BOX_W, GAP, ROW = 3.6, 1.6, 2.1  # data units; one unit is half an inch


def _box_height(box):
    return 0.55 + 0.33 * len(box.lines) if box.kind != "output" else 0.0


def _draw_box(ax, box, y):
    from matplotlib.patches import FancyBboxPatch  # lazy: only when drawing

    h = _box_height(box)
    if box.kind == "output":
        return
    x0 = _cx(box) - BOX_W / 2
    ax.add_patch(FancyBboxPatch((x0, y - h / 2), BOX_W, h,
                                boxstyle="round,pad=0.02,rounding_size=0.15",
                                facecolor=COLOURS[box.kind], edgecolor="#444444", lw=1))
    text = [box.title] + box.lines
    ax.text(_cx(box), y + h / 2 - 0.3, text[0], ha="center", va="center",
            fontsize=9, weight="bold")
    for k, line in enumerate(text[1:]):
        ax.text(_cx(box), y + h / 2 - 0.62 - 0.33 * k, line, ha="center",
                va="center", fontsize=8)


def _cx(box):
    return box.x * (BOX_W + GAP)


def _lane(boxes, src, dst):
    """x of the vertical lane an edge skipping ranks takes, outside every box it passes."""
    between = [b for b in boxes.values() if src.rank < b.rank <= dst.rank and b.kind != "output"]
    if _cx(src) >= _cx(dst):
        return max(_cx(b) + BOX_W / 2 for b in between) + 0.45
    return min(_cx(b) - BOX_W / 2 for b in between) - 0.45


def _draw_edge(ax, edge, boxes, ys):
    """An arrow from the bottom of the source box to the top of the target box; an edge
    skipping ranks runs down a lane beside the boxes and enters its target from the side."""
    src, dst = boxes[edge.src], boxes[edge.dst]
    x1, x2 = _cx(src), _cx(dst)
    y1 = ys[edge.src] - _box_height(src) / 2
    y2 = ys[edge.dst] + _box_height(dst) / 2
    line = dict(color="#555555", lw=1, linestyle="--" if edge.cont else "-")
    arrow = dict(arrowstyle="-|>", shrinkA=0, shrinkB=0, **line)
    if dst.rank - src.rank > 1:
        lane = _lane(boxes, src, dst)
        ym = ys[edge.dst]
        side = BOX_W / 2 if lane > x2 else -BOX_W / 2
        ax.plot([x1, lane, lane], [y1, y1 - 0.45, ym], **line)
        ax.annotate("", xy=(x2 + side, ym), xytext=(lane, ym), arrowprops=arrow)
    else:
        ax.annotate("", xy=(x2, y2), xytext=(x1, y1), arrowprops=arrow)


def _draw_label(ax, box, y, edges, boxes, ys):
    """The label of what leaves `box`: along its edge when there is one, else centred."""
    x1 = _cx(box)
    y1 = y - _box_height(box) / 2
    dst = boxes[edges[0].dst]
    if dst.kind == "output":
        at = (x1, ys[dst.key] - 0.25)
    elif len(edges) == 1 and dst.rank - box.rank == 1:
        at = (x1 + (_cx(dst) - x1) * 0.3, y1 - 0.3)
    else:
        at = (x1, y1 - 0.3)
    ax.text(*at, source_label(edges), ha="center", va="center", fontsize=7.5, color="#222222",
            bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none",
                      alpha=0.9))


def draw(net, path, title=None):
    """Draw a built Net into `path` (.png or .svg)."""
    from matplotlib.figure import Figure  # lazy: only when drawing

    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise SeqgenError(f"{path}: seqgen draw writes .png or .svg files")
    boxes, edges = build_graph(net)
    ranks = max(b.rank for b in boxes.values()) + 1
    ys = {k: -b.rank * ROW for k, b in boxes.items()}
    width = max(abs(b.x) for b in boxes.values()) * 2 * (BOX_W + GAP) + BOX_W + 3
    height = ranks * ROW + 0.5
    fig = Figure(figsize=(width / 2, height / 2))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-width / 2, width / 2)
    ax.set_ylim(-height + ROW / 2 + 0.2, ROW / 2 + 0.3)
    ax.axis("off")
    for edge in edges:
        _draw_edge(ax, edge, boxes, ys)
    for key, box in boxes.items():
        leaving = [e for e in edges if e.src == key]
        if leaving:
            _draw_label(ax, box, ys[key], leaving, boxes, ys)
    for key, box in boxes.items():
        _draw_box(ax, box, ys[key])
    ax.text(-width / 2 + 0.2, ROW / 2 + 0.1, title or net.name, fontsize=10, style="italic",
            va="top")
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=ext[1:], dpi=110)
    return path


def draw_net(path, out, phase="TRAIN", stages=(), force=False):
    """`seqgen draw NET --out FILE`: build the net (or a solver's net) and draw it."""
    net_file = _net_file(path)
    check_output(out, suffixes=FORMATS, what="seqgen draw", inputs=(path, net_file),
                 force=force)
    net = Net(net_file, phase=phase, stages=stages)
    name = f"{net.name} ({phase}) — {os.path.basename(str(path))}"
    return draw(net, out, name)
