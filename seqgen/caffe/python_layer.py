"""`caffe.Layer`: the base class of Python layers (`type: "Python"`), as pycaffe has it.

The contract, for the `Python` layer type that builds these (Caffe's PythonLayer,
python_layer.hpp): the class named by `python_param { module layer }` is called with the
LayerParameter (`cls(layer_param)`); then `param_str` (python_param.param_str) and `phase`
(TRAIN 0 / TEST 1) are set as attributes, and the layer calls, with lists of seqgen Blobs:

- `setup(bottom, top)` once, then `reshape(bottom, top)` (and again when shapes change);
- `forward(bottom, top)`;
- `backward(top, propagate_down, bottom)` (`propagate_down`: one bool per bottom).

`self.blobs` holds the layer's learnable blobs (`self.blobs.add_blob(*shape)` adds one),
which the Net sees as the layer's parameters, as Caffe's `layer.blobs`.
"""
from ..blob import Blob


class BlobVec(list):
    """A list of Blobs with pycaffe's `add_blob(*shape)` (a zero-filled blob appended)."""

    def add_blob(self, *shape):
        blob = Blob(())
        blob.reshape(*shape)
        self.append(blob)
        return blob


class Layer:
    """Subclass it and define `setup`, `reshape`, `forward` and `backward`."""

    #: set by the Python layer type before `setup`
    param_str = ""
    phase = 0

    def __init__(self, param=None):
        self.layer_param = param  # the LayerParameter (pycaffe keeps it out of reach)
        self.blobs = BlobVec()

    @property
    def type(self):
        return "Python"

    def setup(self, bottom, top):
        """Check the bottoms, read `self.param_str`, add parameter blobs (default: nothing)."""

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__} must define reshape(bottom, top)")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__} must define forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        raise NotImplementedError(f"{type(self).__name__} must define "
                                  "backward(top, propagate_down, bottom)")
