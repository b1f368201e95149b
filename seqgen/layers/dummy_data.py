"""`DummyData`: tops of fixed shapes filled by data_filler (Caffe's DummyDataLayer).

dummy_data_param gives one shape (or the legacy num/channels/height/width) for all tops or
one per top, and 0, 1 or one data_filler per top (none: constant 0). A constant filler
fills its tops once, at setup, so values a script writes into them persist across
forwards, as pycaffe users rely on; any other filler refills its tops at every forward
(and leaves them 0 until the first), as Caffe's refill_ flags do. Reshape keeps whatever
shape the tops were last given, as Caffe's (empty) Reshape does."""

from ..fillers import KNOWN, fill
from ..proto import caffe_pb2
from ..registry import register
from .base import Layer

LEGACY = ("num", "channels", "height", "width")


@register("DummyData")
class DummyDataLayer(Layer):
    num_bottoms = 0

    def _one_or_each(self, field, n_top):
        values = list(getattr(self.param.dummy_data_param, field))
        if len(values) not in (1, n_top):
            raise self.error(f"dummy_data_param gives {field} {len(values)} times; give it once "
                             f"or once per top ({n_top})")
        return values if len(values) == n_top else values * n_top

    def _shapes(self, n_top):
        p = self.param.dummy_data_param
        if any(len(getattr(p, f)) for f in LEGACY):
            if len(p.shape):
                raise self.error("dummy_data_param gives both shape and the legacy "
                                 "num/channels/height/width")
            dims = [self._one_or_each(f, n_top) for f in LEGACY]
            return [list(d) for d in zip(*dims)]
        return [list(s.dim) for s in self._one_or_each("shape", n_top)]

    def layer_setup(self, bottom, top):
        if not top:
            raise self.error("needs at least one top")
        fillers = list(self.param.dummy_data_param.data_filler)
        if len(fillers) not in (0, 1, len(top)):
            raise self.error(f"dummy_data_param has {len(fillers)} data_fillers for {len(top)} "
                             "tops; give 0, 1 or one per top")
        if not fillers:
            fillers = [caffe_pb2.FillerParameter(type="constant", value=0)]
        self.fillers = fillers * len(top) if len(fillers) == 1 else fillers
        for f in fillers:
            if f.type not in KNOWN:
                raise self.error(f"unknown data_filler type '{f.type}' (known: "
                                 f"{', '.join(KNOWN)})")
        for i, (blob, dims) in enumerate(zip(top, self._shapes(len(top)))):
            if any(d < 0 for d in dims):
                raise self.error(f"top '{self.top_name(i)}' has a negative dimension {dims}")
            blob.reshape(self.check_size(dims, f"top '{self.top_name(i)}'"))
            if self.fillers[i].type == "constant":  # once, here (Caffe's refill_)
                self._fill(blob, i)
        self.refill = [i for i, f in enumerate(self.fillers) if f.type != "constant"]

    def _fill(self, blob, i):
        blob.data[...] = fill(self.fillers[i], blob.shape, f"layer '{self.name}'").astype(
            blob.data.dtype)

    def reshape(self, bottom, top):
        pass  # shapes are whatever they were last given (Caffe's DummyData has no Reshape)

    def forward(self, bottom, top):
        for i in self.refill:
            self._fill(top[i], i)
