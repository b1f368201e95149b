"""pycaffe's `caffe.draw` on seqgen's own drawing (`seqgen draw`, matplotlib, no Graphviz):
layers as boxes, blobs as labelled edges, top to bottom. `rankdir` and `display_lrm` are
accepted and ignored; the formats are PNG and SVG."""
import os
import tempfile

from ..errors import SeqgenError
from ..proto import caffe_pb2

FORMATS = ("png", "svg")


def _net(caffe_net, phase):
    """A built seqgen Net from a NetParameter (pycaffe's argument), a prototxt path or a
    Net. Caffe draws every layer when `phase` is None; a seqgen Net has one phase, so
    None draws the TRAIN net."""
    from ..net import TRAIN, Net  # lazy: `import caffe` builds no net

    if isinstance(caffe_net, Net):
        return caffe_net
    if not isinstance(caffe_net, (caffe_pb2.NetParameter, str, os.PathLike)):
        raise SeqgenError(f"caffe.draw: give a NetParameter, not {type(caffe_net).__name__}")
    return Net(caffe_net, TRAIN if phase is None else phase)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw the net into `filename` (.png or .svg)."""
    from ..app.draw import draw  # lazy: matplotlib only when drawing

    net = _net(caffe_net, phase)
    ext = os.path.splitext(str(filename))[1].lower()[1:]
    if ext not in FORMATS:
        raise SeqgenError(f"{filename}: caffe.draw writes .png or .svg files in seqgen")
    draw(net, filename)
    return filename


def draw_net(caffe_net, rankdir="LR", ext="png", phase=None, display_lrm=False):
    """The picture's bytes in format `ext` ("png" or "svg")."""
    if ext not in FORMATS:
        raise SeqgenError(f"caffe.draw.draw_net: ext must be one of {', '.join(FORMATS)} "
                          f"in seqgen (got {ext!r})")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net." + ext)
        draw_net_to_file(caffe_net, path, rankdir, phase, display_lrm)
        with open(path, "rb") as fh:
            return fh.read()
