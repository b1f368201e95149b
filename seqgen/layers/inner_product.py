"""`InnerProduct`: y = x W^T + b over the axes from `axis` on (W is num_output x K, or K x
num_output with `transpose`).

Every product writes into its destination (matmul's out=) or into scratch kept between calls,
so nothing is allocated; the operations are those of the plain numpy expressions, so are the
bits (a run of seqgen 0.1.0 is reproduced exactly, tests/test_run_compat.py).
"""
import numpy as np

from ..registry import register
from .base import Layer


@register("InnerProduct")
class InnerProductLayer(Layer):
    num_bottoms = 1
    num_tops = 1

    def layer_setup(self, bottom, top):
        p = self.param.inner_product_param
        self.N_out = int(p.num_output)
        if self.N_out <= 0:
            raise self.error("inner_product_param.num_output must be > 0")
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        self.axis = self._axis(bottom[0])
        K = int(np.prod(bottom[0].shape[self.axis:]))
        if K == 0:
            raise self.error(f"bottom '{self.bottom_name(0)}' of shape {bottom[0].shape} "
                             f"has no inputs per row from axis {self.axis}")
        wshape = (K, self.N_out) if self.transpose else (self.N_out, K)
        self.blobs = [self.new_param(wshape, p.weight_filler, "W")]
        if self.bias_term:
            self.blobs.append(self.new_param((self.N_out,), p.bias_filler, "b"))
        self.param_names = ("W", "b")[:len(self.blobs)]

    def _axis(self, x):
        axis = self.param.inner_product_param.axis
        nd = x.data.ndim
        if not -nd <= axis < nd:
            raise self.error(f"axis {axis} is out of range for bottom shape {x.shape}")
        return axis % nd

    def reshape(self, bottom, top):
        x = bottom[0]
        axis = self._axis(x)
        K = int(np.prod(x.shape[axis:]))
        want = self.blobs[0].shape[0 if self.transpose else 1]
        if K != want:
            raise self.error(f"bottom '{self.bottom_name(0)}' of shape {x.shape} gives "
                             f"{K} inputs per row from axis {axis}, but the weights expect {want}")
        self.M = int(np.prod(x.shape[:axis]))
        self.K = K
        shape = self.check_size(tuple(x.shape[:axis]) + (self.N_out,),
                                f"top '{self.top_name(0)}'")
        top[0].reshape(shape)

    def affine_weights(self):
        """(W (num_output, K), b) for compiled generation; b is zeros without bias_term."""
        W = self.blobs[0].data
        W = W.T if self.transpose else W
        b = self.blobs[1].data if self.bias_term else np.zeros(W.shape[0], np.float32)
        return np.ascontiguousarray(W), b

    def _weight(self):
        W = self.blobs[0].data
        return W if self.transpose else W.T  # (K, N_out)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)
        y = top[0].data.reshape(self.M, self.N_out)
        np.matmul(x, self._weight(), out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def _scratch(self, shape, dtype):
        """(dW-shaped product, column sums (N_out)) in dtype, kept between calls."""
        sc = getattr(self, "_dw", None)
        if sc is None or sc.shape != shape or sc.dtype != dtype:
            self._dw = np.zeros(shape, dtype)
            self._db = np.zeros(self.N_out, dtype)
        return self._dw, self._db

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.M, self.N_out)
        x = bottom[0].data.reshape(self.M, self.K)
        dW = self.blobs[0].diff
        prod, col = self._scratch(dW.shape, dW.dtype)
        # dW += x^T dy (transpose) or dy^T x, through the kept product: the same BLAS call
        # and add as `dW += dy.T @ x`; a gemm with beta = 1 into dW measured no faster
        if self.transpose:
            np.matmul(x.T, dy, out=prod)
        else:
            np.matmul(dy.T, x, out=prod)
        dW += prod
        if self.bias_term:
            np.sum(dy, axis=0, out=col)  # numpy's own order (pairwise along a contiguous axis)
            self.blobs[1].diff += col
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.M, self.K)
            if self.N_out == 1:  # an outer product: numpy's matmul is slow at it, same values
                np.multiply(dy, self._weight().T, out=dx)
            else:
                np.matmul(dy, self._weight().T, out=dx)
