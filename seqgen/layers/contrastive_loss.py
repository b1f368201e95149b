"""`ContrastiveLoss`: sum over pairs of d^2 (similar, label != 0) or max(margin - d, 0)^2
(dissimilar), divided by 2N, with d = ||a_i - b_i|| (Hadsell et al. 2006, Caffe's
ContrastiveLossLayer). legacy_version uses max(margin - d^2, 0) for dissimilar pairs.

Caffe quirks kept on purpose (contrastive_loss_layer.cpp): the label is truncated to an
int (0.5 is dissimilar); the dissimilar gradient divides by d + 1e-4, not d, so it is not
exactly the derivative of the loss (off by about 1e-4 / d, relative)."""
import numpy as np

from ..registry import register
from .base import Layer

DIST_EPS = 1e-4  # Caffe adds it to d in the dissimilar gradient


@register("ContrastiveLoss")
class ContrastiveLossLayer(Layer):
    is_loss = True
    num_bottoms = 3
    num_tops = (0, 1)
    in_place = False
    no_grad_bottoms = (2,)

    def layer_setup(self, bottom, top):
        p = self.param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = bool(p.legacy_version)

    def _legacy(self, bottom, i, want_channels=None):
        """Caffe's 4-D view of bottom i: (num, channels), with height and width 1."""
        shape = bottom_shape = bottom[i].shape
        if len(shape) > 4 or any(d != 1 for d in shape[2:]) or len(shape) < 1:
            raise self.error(f"bottom '{self.bottom_name(i)}' has shape {bottom_shape}; "
                             "ContrastiveLoss takes (N, C) or (N, C, 1, 1) blobs")
        channels = shape[1] if len(shape) > 1 else 1
        if want_channels is not None and channels != want_channels:
            raise self.error(f"bottom '{self.bottom_name(i)}' has shape {bottom_shape}; expected "
                             f"{want_channels} channel(s)")
        return shape[0], channels

    def reshape(self, bottom, top):
        n, c = self._legacy(bottom, 0)
        n1, _ = self._legacy(bottom, 1, c)
        n2, _ = self._legacy(bottom, 2, 1)
        if not n == n1 == n2:
            raise self.error(f"bottoms {[b.shape for b in bottom]} differ in their first axis")
        if top:
            top[0].reshape(())

    def forward(self, bottom, top):
        a, b, y = bottom
        n = a.shape[0]
        self.diff = (a.data - b.data.reshape(a.shape)).reshape(n, -1)
        self.dist_sq = np.einsum("ij,ij->i", self.diff, self.diff)
        self.similar = y.data.reshape(n).astype(np.int64) != 0  # static_cast<int>
        t = a.data.dtype.type
        m = t(self.margin)
        if self.legacy:
            far = np.maximum(m - self.dist_sq, 0)
        else:
            far = np.maximum(m - np.sqrt(self.dist_sq), 0) ** 2
        per_pair = np.where(self.similar, self.dist_sq, far)
        loss = per_pair.sum(dtype=a.data.dtype) / t(n) / t(2)
        if top:
            top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom):
        n = bottom[0].shape[0]
        t = self.diff.dtype.type
        m = t(self.margin)
        weight = t(top[0].diff if top else 1.0)
        if self.legacy:
            mdist = m - self.dist_sq
            beta = np.full(n, -1, self.diff.dtype)
        else:
            dist = np.sqrt(self.dist_sq)
            mdist = m - dist
            beta = -mdist / (dist + t(DIST_EPS))
        coef = np.where(self.similar, t(1), np.where(mdist > 0, beta, t(0)))
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                alpha = t(sign) * weight / t(n)
                g = (alpha * coef)[:, None] * self.diff
                bottom[i].diff[...] = g.reshape(bottom[i].shape)
