"""The layer contract every registered layer follows (Caffe's Layer, minus the GPU half).

A layer owns its parameter blobs (`self.blobs`) and turns bottom blobs into top blobs:
`setup` once (Caffe's Layer::SetUp: the blob counts and in-place use the class declares,
then the layer's own `layer_setup`, which checks its bottoms and creates its parameters),
`reshape` whenever input shapes may have changed, `forward`, and `backward` (write bottom
diffs where `propagate_down`, accumulate parameter diffs).
"""
import math

import numpy as np

from ..blob import Blob, BlobVec
from ..errors import SeqgenError
from ..fillers import fill

#: The most values one blob may hold: Caffe's limit (INT_MAX, checked in Blob::Reshape).
#: Shapes are checked against it before anything is allocated, so a typo such as
#: `num_output: 1500000` is an error message rather than a MemoryError or an OOM kill.
MAX_BLOB_COUNT = 2 ** 31 - 1


def shape_count(shape):
    """Number of values of `shape`, as an exact Python int (no int64 overflow)."""
    return math.prod(int(d) for d in shape)


def blob_shapes(bottom, top):
    """(bottom shapes, top shapes): what `Layer.record_shapes` keeps."""
    return tuple(b.data.shape for b in bottom), tuple(t.data.shape for t in top)


class Layer:
    #: True for layers whose first top is a loss (its loss_weight defaults to 1).
    is_loss = False
    #: Exact bottom count, or (min, max); None = any (Caffe's ExactNumBottomBlobs,
    #: MinBottomBlobs, MaxBottomBlobs), checked by `setup`.
    num_bottoms = None
    #: The same for the tops.
    num_tops = None
    #: False for layers that cannot compute with a top that is also one of their bottoms;
    #: `setup` then refuses it with "<type> cannot work in place (<in_place_advice>)".
    in_place = True
    in_place_advice = "give the top another name"
    #: Indices of bottoms that never take a gradient (clip/cont markers, labels of some losses).
    no_grad_bottoms = ()
    #: True for layers whose top shapes depend on their bottoms' values (Filter): the Net
    #: then reshapes every layer just before its forward, as Caffe's Layer::Forward does.
    reshapes_every_forward = False
    #: False for layers whose forward does nothing (the Net then skips calling it).
    runs_forward = True
    #: What a net input fed to a bottom holds, by bottom index ("tokens", "cont", "labels"):
    #: how data plans find which input is which without knowing layer types.
    bottom_roles = {}
    #: True for layers whose tops are their bottom under other names (Split).
    passes_through = False
    #: True for layers whose tops are the net's inputs (Input): `Net.inputs` lists them.
    is_input = False
    #: The names of the parameter blobs (`self.blobs`), in Caffe's order; layers whose
    #: blobs depend on the prototxt set them in `layer_setup`.
    param_names = ()
    #: The Net's build options (`Net(..., options=)`) the layer reads, so that a command can
    #: say when an option it was given reaches no layer.
    reads_options = ()
    #: The link of a fused pair this layer belongs to (`seqgen.fusion`), set by the Net;
    #: None: the layer computes on its own.
    fusion = None
    #: The blob shapes `reshape` validated (`record_shapes`), for layers whose jitted
    #: kernels `check_shapes` guards; None until the first reshape.
    _shapes = None

    def __init__(self, param, phase, options=None):
        self.param = param
        self.name = param.name
        self.phase = phase
        self.options = options or {}
        self.blobs = BlobVec()

    # -- helpers -------------------------------------------------------------------------
    def error(self, msg):
        return SeqgenError(f"layer '{self.name}' ({self.type}): {msg}")

    def bottom_name(self, i):
        """The name of bottom i in the prototxt ('#i' for a layer built without names)."""
        bottoms = self.param.bottom
        return bottoms[i] if i < len(bottoms) else f"#{i}"

    def top_name(self, i):
        """The name of top i in the prototxt ('#i' for a layer built without names)."""
        tops = self.param.top
        return tops[i] if i < len(tops) else f"#{i}"

    def check_size(self, shape, what):
        """Refuse a blob shape with negative dimensions or more than MAX_BLOB_COUNT values
        (before it is allocated); `what` names the blob in the message."""
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise self.error(f"{what} would have a negative dimension {shape}")
        count = shape_count(shape)
        # every dimension on its own too: numpy refuses a (0, 2**63) array as too big
        if count > MAX_BLOB_COUNT or any(d > MAX_BLOB_COUNT for d in shape):
            raise self.error(f"{what} would have shape {shape}: {count} values, more than a "
                             f"blob may hold ({MAX_BLOB_COUNT})")
        return shape

    def new_param(self, shape, filler, what, dtype=np.float32):
        """A parameter blob of `shape` filled by `filler` (a FillerParameter), after
        checking that the shape is non-empty and not too large and that the filler's
        numbers make sense (numpy would raise or fill inf/NaN otherwise)."""
        shape = self.check_size(shape, f"parameter {what}")
        if shape_count(shape) == 0:
            raise self.error(f"parameter {what} would have shape {shape}, with no values "
                             "(is a bottom blob empty?)")
        # fillers.fill checks Caffe's rules (std > 0, min <= max, ...); what it leaves to
        # numpy is values that are not finite in float32, where numpy raises OverflowError
        # or fills inf/NaN
        numbers = {"constant": ("value",), "uniform": ("min", "max"),
                   "gaussian": ("mean", "std")}.get(filler.type, ())
        for field in numbers:
            value = getattr(filler, field)
            with np.errstate(over="ignore"):
                finite = np.isfinite(np.float32(value))
            if not finite:
                raise self.error(f"the {filler.type} filler of {what} has {field} {value}; it "
                                 "must be a finite float32 number")
        blob = Blob(shape, dtype)
        blob.data[...] = fill(filler, shape, f"layer '{self.name}'")
        return blob

    def check_counts(self, bottom, top):
        for what, want, got in (("bottom", self.num_bottoms, len(bottom)),
                                ("top", self.num_tops, len(top))):
            if want is None:
                continue
            lo, hi = want if isinstance(want, tuple) else (want, want)
            if not lo <= got <= hi:
                need = f"{lo}" if lo == hi else f"{lo} to {hi}"
                raise self.error(f"needs {need} {what} blob(s), got {got}")

    def check_in_place(self, bottom, top):
        if not self.in_place and any(t is b for t in top for b in bottom):
            raise self.error(f"{self.type} cannot work in place ({self.in_place_advice})")

    def record_shapes(self, bottom, top):
        """At the end of `reshape`: the shapes `check_shapes` will hold the blobs to."""
        self._shapes = blob_shapes(bottom, top)

    def check_shapes(self, bottom, top, backward=False):
        """The jitted kernels do not check bounds: refuse blobs whose shapes changed since
        `reshape` validated them (a caller that skipped reshape), instead of letting a kernel
        read or write past an array's end."""
        if self._shapes is None:
            raise self.error("forward/backward before reshape (call setup and reshape first)")
        want_b, want_t = self._shapes
        # (a loop rather than blob_shapes(): this runs twice an iteration per layer)
        same = len(bottom) == len(want_b) and len(top) == len(want_t)
        if same:
            for blob, shape in zip(bottom, want_b):
                if blob.data.shape != shape:
                    same = False
            for blob, shape in zip(top, want_t):
                if blob.data.shape != shape:
                    same = False
        if not same:
            got_b, got_t = blob_shapes(bottom, top)
            raise self.error(f"the blobs changed shape since reshape (bottoms {list(want_b)} "
                             f"-> {list(got_b)}, tops {list(want_t)} -> {list(got_t)}); call "
                             "reshape after changing an input's shape")
        if backward:
            for what, blobs in (("top", top), ("bottom", bottom)):
                for i, blob in enumerate(blobs):
                    if blob.diff_shape != blob.data.shape:
                        raise self.error(f"{what} {i} has a diff of shape {blob.diff_shape} "
                                         f"for data of shape {blob.data.shape}")

    # -- the contract --------------------------------------------------------------------
    def setup(self, bottom, top):
        """Called once, before the first `reshape` (Caffe's Layer::SetUp): the blob counts
        and in-place use the class declares, then `layer_setup`. Layers override
        `layer_setup`, not this."""
        self.check_counts(bottom, top)
        self.check_in_place(bottom, top)
        self.layer_setup(bottom, top)

    def layer_setup(self, bottom, top):
        """Check the bottoms and create the parameter blobs (Caffe's LayerSetUp)."""

    def reshape(self, bottom, top):
        raise NotImplementedError

    def forward(self, bottom, top):
        raise NotImplementedError

    def backward(self, top, propagate_down, bottom):
        """Default for layers with nothing to propagate."""

    # Recurrent layers override these three; the Net calls them without knowing the type.
    def reset_state(self):
        """Forget any state carried between forward calls."""

    def get_state(self):
        return None

    def set_state(self, state):
        if state is not None:
            raise self.error("this layer has no recurrent state")

    def set_forget_bias(self, value):
        """Set the forget-gate bias to `value` (what the fork's driver does after building a
        net); returns whether the layer has one. Here: no forget gate, nothing changes."""
        return False

    # The compiled stack generator (generation/generate.py) asks each layer for its weights in
    # the kernel's layout; None means this layer cannot run in it.
    def token_capacity(self):
        """How many distinct token ids this layer takes (an Embed's input_dim); None for
        layers that take no token ids."""
        return None

    def lstm_weights(self, static=None):
        """(W_x (4H, I), W_h (4H, H), b (4H)) of an LSTM that reads (x, cont), or (x, cont,
        x_static) given the static values (S,); None here."""
        return None

    def rnn_weights(self):
        """(W_xh (H, I), b_h, W_hh (H, H), W_ho (H, H), b_o) of an RNN that reads (x, cont);
        None here."""
        return None

    def affine_weights(self):
        """(W (out, in), b) of a layer computing x W^T + b per step; None here."""
        return None

    def embed_weights(self):
        """(table (V, E), b (E)) of a layer mapping token ids to rows of a table; None here."""
        return None

    def is_identity(self):
        """True when forward copies the bottom to the top unchanged (Dropout at TEST), so
        the compiled paths may look through the layer; False here."""
        return False


class ElementwiseLayer(Layer):
    """One bottom, one top of the same shape, computed element by element; may run in
    place (top and bottom the same blob)."""

    num_bottoms = 1
    num_tops = 1

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)
