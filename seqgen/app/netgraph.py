"""A built Net as a diagram's graph: boxes (input blobs and layers, in-place layers folded
into the box of the blob's producer, Split layers left out), edges (one per blob use,
labelled with the blob's name and shape) and a top-to-bottom layout by rank."""
from dataclasses import dataclass, field

RECURRENT = ("Lstm", "LSTM", "RNN")
KINDS = {  # layer type -> kind (colour); anything else is "other"
    **{t: "recurrent" for t in RECURRENT},
    **{t: "affine" for t in ("InnerProduct", "Embed", "Scale", "Bias")},
    **{t: "activation" for t in ("ReLU", "TanH", "Sigmoid", "Softmax", "Dropout")},
    **{t: "loss" for t in ("EuclideanLoss", "SoftmaxWithLoss")},
    **{t: "shape" for t in ("Concat", "Slice", "Reshape", "Flatten", "Eltwise", "Silence",
                            "Reduction")},
    **{t: "input" for t in ("Input", "HDF5Data")},
}


@dataclass
class Box:
    key: str
    title: str  # name and type
    detail: str = ""  # the input's shape, a recurrent layer's H
    kind: str = "other"
    folded: list = field(default_factory=list)  # in-place layers applied to its top
    params: int = 0
    rank: int = 0
    x: float = 0.0

    @property
    def lines(self):
        params = [f"{self.params:,} params"] if self.params else []
        return [self.detail] * bool(self.detail) + self.folded + params


@dataclass
class Edge:
    src: str
    dst: str
    blobs: list  # [(name, shape text)]: several when one layer feeds another twice
    cont: bool = False  # a recurrent layer's cont/clip input (drawn dashed)


def _connect(edges, src, dst, blob, shape, cont=False):
    """Add an edge, or add the blob to a parallel one (same source and target)."""
    for e in edges:
        if (e.src, e.dst) == (src, dst):
            e.blobs.append((blob, shape))
            return
    edges.append(Edge(src, dst, [(blob, shape)], cont))


def source_label(edges):
    """One label for everything leaving a box: its blobs grouped by shape, e.g.
    'a, b 6×2×2'; ' (cont)' when a recurrent layer reads it as cont."""
    groups = {}
    for e in edges:
        for blob, shape in e.blobs:
            names = groups.setdefault(shape, [])
            if blob not in names:
                names.append(blob)
    text = "; ".join(f"{', '.join(names)} {shape}" for shape, names in groups.items())
    return text + (" (cont)" if any(e.cont for e in edges) else "")


def shape_text(shape):
    return "×".join(str(d) for d in shape) if len(shape) else "scalar"


def _params(layer):
    return sum(b.count for b in layer.blobs)


def build_graph(net):
    """(boxes {key: Box}, [Edge]) of a built Net."""
    boxes, edges, producer, alias = {}, [], {}, {}
    for name in net.inputs:
        boxes[name] = Box(name, name, shape_text(net.blobs[name].shape), "input")
        producer[name] = name
    for layer in net.layers:
        lp = layer.param
        bottoms = [alias.get(b, b) for b in lp.bottom]
        if layer.type == "Split":
            alias.update((t, bottoms[0]) for t in lp.top)
            continue
        if layer.type == "Input":
            continue
        if lp.top and all(t in lp.bottom for t in lp.top) and bottoms[0] in producer:
            host = boxes[producer[bottoms[0]]]  # in place: folded into the producer
            host.folded.append(f"+ {lp.name} ({layer.type})")
            host.params += _params(layer)
            continue
        units = f"H = {layer.H}" if layer.type in RECURRENT else ""
        boxes[lp.name] = Box(lp.name, f"{lp.name} ({layer.type})", units,
                             KINDS.get(layer.type, "other"), params=_params(layer))
        for i, b in enumerate(bottoms):
            if b in producer:
                cont = layer.type in RECURRENT and i == 1
                _connect(edges, producer[b], lp.name, b, shape_text(net.blobs[b].shape), cont)
        for t in lp.top:
            producer[t] = lp.name
    _outputs(net, boxes, edges, producer, alias)
    layout(boxes, edges)
    return boxes, edges


def _outputs(net, boxes, edges, producer, alias):
    """The net's outputs as plain labelled ends (no box) below their producer."""
    for name in net.outputs:
        src = alias.get(name, name)
        if src in net.inputs or src not in producer:
            continue
        key = f"output:{src}"
        boxes[key] = Box(key, "", [], "output")
        _connect(edges, producer[src], key, src, shape_text(net.blobs[src].shape))


def layout(boxes, edges):
    """Ranks: a box sits one below its lowest parent; an input sits just above its first
    consumer. Within a rank boxes are ordered by their parents' mean position."""
    parents = {k: [e.src for e in edges if e.dst == k] for k in boxes}
    children = {k: [e.dst for e in edges if e.src == k] for k in boxes}
    order = list(boxes)  # net order is a topological order
    for k in order:
        if parents[k]:
            boxes[k].rank = 1 + max(boxes[p].rank for p in parents[k])
    for k in reversed(order):
        if not parents[k] and children[k]:
            boxes[k].rank = min(boxes[c].rank for c in children[k]) - 1
    low = min(b.rank for b in boxes.values())
    for b in boxes.values():
        b.rank -= low
    for rank in sorted({b.rank for b in boxes.values()}):
        row = [b for b in boxes.values() if b.rank == rank]
        pos = lambda b: (sum(boxes[p].x for p in parents[b.key]) / len(parents[b.key])
                         if parents[b.key] else -1, order.index(b.key))
        row.sort(key=pos)
        for i, b in enumerate(row):
            b.x = i - (len(row) - 1) / 2
