"""`InfogainLoss`: -sum_l H[label, l] log p_l per prediction, p = softmax(x) over
infogain_loss_param.axis, divided by Caffe's normalizer (default VALID).

As infogain_loss_layer.cpp: H (classes x classes) comes from a third bottom or, with two
bottoms, from the binary BlobProto file infogain_loss_param.source (looked up from the
working folder, then beside the net file); log p is clipped at p >= 1e-20; positions whose
label equals ignore_label count for nothing; a second top receives p. The gradient is
p_l * sum_k H[label, k] - H[label, l] (exact without the clip), times loss_weight / the
normalizer; the labels and H take none.
"""
import os

import numpy as np

from ..io.weights import blob_from_proto
from ..proto import caffe_pb2
from ..registry import register
from .base import Layer
from .hdf5_data import _find
from .labels import read_labels, split_at_class_axis
from .loss_norm import ignore_label, normalization_mode, normalizer
from .multinomial_logistic_loss import LOG_THRESHOLD


def read_matrix(layer, source):
    """The values of the BlobProto file `source`, flat (float32)."""
    path, tried = _find(source, [os.getcwd(), layer.options.get("net_dir")])
    if path is None:
        raise layer.error(f"infogain_loss_param.source '{source}' not found (tried "
                          f"{', '.join(tried)})")
    proto = caffe_pb2.BlobProto()
    try:
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as e:  # noqa: BLE001 (DecodeError or OSError: one line either way)
        raise layer.error(f"cannot read infogain matrix '{path}' as a BlobProto: {e}") from None
    return blob_from_proto(proto)


@register("InfogainLoss")
class InfogainLossLayer(Layer):
    is_loss = True
    num_bottoms = (2, 3)
    num_tops = (1, 2)
    no_grad_bottoms = (1, 2)
    bottom_roles = {1: "labels"}
    in_place = False
    reads_options = ("net_dir",)

    def layer_setup(self, bottom, top):
        self.ignore = ignore_label(self)
        self.mode = normalization_mode(self, caffe_pb2.LossParameter.VALID, legacy=False)
        self._H = None
        if len(bottom) < 3:
            p = self.param.infogain_loss_param
            if not p.HasField("source"):
                raise self.error("needs infogain_loss_param.source (the H matrix) or H as "
                                 "a third bottom")
            self._H = read_matrix(self, p.source)

    def reshape(self, bottom, top):
        _, self.outer, self.C, self.inner = split_at_class_axis(
            self, bottom[0], bottom[1], self.param.infogain_loss_param.axis,
            "infogain_loss_param.axis")
        H = self._H if self._H is not None else bottom[2].data
        if H.size != self.C * self.C:
            raise self.error(f"the infogain matrix has {H.size} values; {self.C} classes "
                             f"need {self.C}x{self.C}")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def _inputs(self, bottom):
        """(p (outer, C, inner), H (C, C), labels (outer, inner), valid mask)."""
        x = bottom[0].data.reshape(self.outer, self.C, self.inner)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        H = (self._H if self._H is not None else bottom[2].data).reshape(self.C, self.C)
        lab, valid = read_labels(self, bottom[1], self.outer, self.inner, self.C, self.ignore)
        return p, H.astype(x.dtype), lab, valid

    def forward(self, bottom, top):
        p, H, lab, valid = self._inputs(bottom)
        logp = np.log(np.maximum(p, p.dtype.type(LOG_THRESHOLD)))
        rows = H[lab]  # (outer, inner, C): the label's row of H per prediction
        per = -np.einsum("oic,oci->oi", rows, logp)
        norm = normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        top[0].data[...] = per[valid].sum(dtype=np.float64) / norm
        if len(top) > 1:
            top[1].data[...] = p.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        p, H, lab, valid = self._inputs(bottom)
        rows = H[lab].transpose(0, 2, 1)  # (outer, C, inner)
        g = p * H.sum(axis=1)[lab][:, None, :] - rows
        g *= valid[:, None, :]
        norm = normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        bottom[0].diff[...] = (g * (float(top[0].diff) / norm)).reshape(bottom[0].shape)
