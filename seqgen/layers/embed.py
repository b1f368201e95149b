"""`Embed`: a lookup table, top[..., :] = W[index] (+ b); W is (input_dim, num_output).

Caffe stores the table transposed relative to InnerProduct for locality, and the bottom
holds indices as float values. No gradient flows to the indices.
"""
import numpy as np

from ..registry import register
from .base import Layer


# LRCN's caption scripts pad input_sentence with -1 as well as target_sentence; Caffe's
# Embed then reads outside its table (undefined behaviour), so seqgen refuses and says why.
_PADDING_HINT = ("; -1 looks like LRCN-style padding: pad the input stream with 0 (its EOS "
                 "index) instead, and keep -1 for the ignored targets")


@register("Embed")
class EmbedLayer(Layer):
    num_bottoms = 1
    num_tops = 1
    no_grad_bottoms = (0,)
    bottom_roles = {0: "tokens"}

    def setup(self, bottom, top):
        self.check_counts(bottom, top)
        p = self.param.embed_param
        self.N = int(p.num_output)
        self.K = int(p.input_dim)
        if self.N <= 0:
            raise self.error("embed_param.num_output must be > 0")
        if self.K <= 0:
            raise self.error("embed_param.input_dim must be > 0")
        self.bias_term = p.bias_term
        self.blobs = [self.new_param((self.K, self.N), p.weight_filler, "W")]
        if self.bias_term:
            self.blobs.append(self.new_param((self.N,), p.bias_filler, "b"))

    def token_capacity(self):
        return self.K

    def embed_weights(self):
        """(table (input_dim, num_output), b) for compiled sampling; b is zeros without
        bias_term."""
        b = self.blobs[1].data if self.bias_term else np.zeros(self.N, np.float32)
        return self.blobs[0].data, b

    def reshape(self, bottom, top):
        top[0].reshape(self.check_size(tuple(bottom[0].shape) + (self.N,),
                                       f"top '{self.top_name(0)}'"))

    def _indices(self, bottom):
        """The bottom as int64 indices; Caffe only DCHECKs these, we always check."""
        x = bottom[0].data
        with np.errstate(invalid="ignore"):
            idx = x.astype(np.int64)
            bad = (idx != x) | (idx < 0) | (idx >= self.K)
        if bad.any():
            pos = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape))
            name = self.param.bottom[0] if len(self.param.bottom) else "0"
            raise self.error(f"bottom '{name}' holds {float(x[pos]):g} at {pos}; "
                             f"embedding indices must be integers in [0, {self.K}) "
                             "(embed_param.input_dim)" + (_PADDING_HINT if x[pos] == -1 else ""))
        return idx

    def forward(self, bottom, top):
        self._idx = self._indices(bottom)
        y = self.blobs[0].data[self._idx]
        if self.bias_term:
            y += self.blobs[1].data
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(-1, self.N)
        # unbuffered scatter-add in index order, like Caffe's loop of axpy calls
        np.add.at(self.blobs[0].diff, self._idx.ravel(), dy)
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)
