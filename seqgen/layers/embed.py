"""`Embed`: a lookup table, top[..., :] = W[index] (+ b); W is (input_dim, num_output).

Caffe stores the table transposed relative to InnerProduct for locality, and the bottom
holds indices as float values. No gradient flows to the indices. The lookup, its index
check and the scatter-add run as compiled kernels (kernels/embed.py) over buffers kept
between calls.

An index of -1 is padding: LRCN's caption files pad `input_sentence` with it, where Caffe
reads outside its table and nothing downstream uses the result (the targets there are
ignored, cont = 0 starts the next sentence). Here its row is zeros (bias too) and takes no
gradient, with a warning the first time a layer of that name sees it in a process.
"""
import sys

import numpy as np

from ..kernels.embed import embed_backward, embed_forward, read_indices
from ..registry import register
from .base import Layer

#: Names of the Embed layers that have warned about padding in this process (one warning
#: per run, though a run builds TRAIN and TEST nets).
WARNED_PADDING = set()


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
                             "(embed_param.input_dim), or -1 for padding")
        self._n_pad = int(np.count_nonzero(self._idx < 0))
        if self._n_pad and self.name not in WARNED_PADDING:
            WARNED_PADDING.add(self.name)
            print(f"seqgen: warning: layer '{self.name}' (Embed): bottom '{self.bottom_name(0)}' "
                  f"holds {self._n_pad} padding indices -1 (of {x.size}); their rows are zeros "
                  "and take no gradient (LRCN's padding; warned once)", file=sys.stderr)
        return self._idx

    def forward(self, bottom, top):
        idx = self._indices(bottom)
        b = self.blobs[1].data if self.bias_term else self._none
        embed_forward(idx, self.blobs[0].data, b, top[0].data.reshape(-1, self.N))

    def token_ids(self):
        """The int64 token ids the last forward read (for a fused LSTM, `seqgen.fusion`)."""
        return self._idx

    def backward(self, top, propagate_down, bottom):
        if self.fusion is not None and self.fusion.active:
            self.fusion.embed_gradients()  # from the gate gradients by token: no top diff
            return
        # unbuffered scatter-add in index order, like Caffe's loop of axpy calls
        dy = top[0].diff.reshape(-1, self.N)
        embed_backward(self._idx, dy, self.blobs[0].diff)
        if self.bias_term:
            if self._n_pad:  # padding rows are constant zeros: no bias gradient from them
                np.sum(dy[self._idx >= 0], axis=0, out=self._acc)
            else:
                np.sum(dy, axis=0, out=self._acc)  # numpy's order, as dy.sum(axis=0) before
            self.blobs[1].diff += self._acc
