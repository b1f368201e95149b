"""`Embed`: a lookup table, top[..., :] = W[index] (+ b); W is (input_dim, num_output).

Caffe stores the table transposed relative to InnerProduct for locality, and the bottom
holds indices as float values. No gradient flows to the indices. The lookup, its index
check and the scatter-add run as compiled kernels (kernels/embed.py) over buffers kept
between calls.
"""
import numpy as np

from ..kernels.embed import embed_backward, embed_forward, read_indices
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

    def layer_setup(self, bottom, top):
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
        self.param_names = ("W", "b")[:len(self.blobs)]

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

    def _buffers(self, count, dtype):
        """The int64 index buffer, the bias-gradient scratch and an empty stand-in for b
        (kept while the bottom's size and the dtype stay the same)."""
        if getattr(self, "_idx", None) is None or self._idx.size != count \
                or self._acc.dtype != dtype:
            self._idx = np.zeros(count, np.int64)
            self._acc = np.zeros(self.N, dtype)
            self._none = np.zeros(0, dtype)

    def _indices(self, bottom):
        """The bottom read into the int64 buffer; Caffe only DCHECKs these, we always check."""
        x = bottom[0].data
        self._buffers(x.size, self.blobs[0].data.dtype)
        bad = read_indices(x.reshape(-1), self.K, self._idx)
        if bad >= 0:
            pos = tuple(int(i) for i in np.unravel_index(bad, x.shape))
            name = self.param.bottom[0] if len(self.param.bottom) else "0"
            raise self.error(f"bottom '{name}' holds {float(x[pos]):g} at {pos}; "
                             f"embedding indices must be integers in [0, {self.K}) "
                             "(embed_param.input_dim)" + (_PADDING_HINT if x[pos] == -1 else ""))
        return self._idx

    def forward(self, bottom, top):
        idx = self._indices(bottom)
        b = self.blobs[1].data if self.bias_term else self._none
        embed_forward(idx, self.blobs[0].data, b, top[0].data.reshape(-1, self.N))

    def backward(self, top, propagate_down, bottom):
        # unbuffered scatter-add in index order, like Caffe's loop of axpy calls
        dy = top[0].diff.reshape(-1, self.N)
        embed_backward(self._idx, dy, self.blobs[0].diff)
        if self.bias_term:
            np.sum(dy, axis=0, out=self._acc)  # numpy's order, as dy.sum(axis=0) before
            self.blobs[1].diff += self._acc
