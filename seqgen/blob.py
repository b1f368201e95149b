"""Blob: a named pair of float32 arrays (data and its gradient), as in Caffe."""
import numbers

import numpy as np

from .errors import SeqgenError


class Blob:
    """Holds `data` and `diff` of one shape. Reshape keeps the arrays when the shape is
    unchanged."""

    __slots__ = ("data", "diff")

    def __init__(self, shape=(0,), dtype=np.float32):
        """float32 as in Caffe; float64 blobs are for finite-difference gradient checks."""
        self.data = np.zeros(tuple(shape), dtype)
        self.diff = np.zeros(tuple(shape), dtype)

    @property
    def shape(self):
        return self.data.shape

    @property
    def count(self):
        return self.data.size

    @property
    def num(self):
        """Caffe's num(): the first axis (1 for a scalar blob)."""
        return self.data.shape[0] if self.data.ndim else 1

    def reshape(self, *shape):
        """Reshape to `shape` (dimensions, or one sequence of them). Every dimension is a
        whole number >= 0, as Caffe's Blob::Reshape checks: numpy's -1 has no meaning here."""
        given = shape
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = shape[0]
        try:
            dims = tuple(shape)
        except TypeError:
            dims = None
        if dims is None or any(isinstance(d, bool) or not isinstance(d, numbers.Integral)
                               or d < 0 for d in dims):
            shown = ", ".join(map(repr, given))
            raise SeqgenError(f"Blob.reshape({shown}): every dimension must be a whole number "
                              ">= 0 (a blob has no -1 dimension to infer)")
        shape = tuple(int(s) for s in dims)
        if shape != self.data.shape:
            self.data = np.zeros(shape, self.data.dtype)
            self.diff = np.zeros(shape, self.data.dtype)

    def share_data(self, other):
        """Make this blob use another blob's arrays (weight sharing between nets)."""
        self.data = other.data
        self.diff = other.diff

    def __repr__(self):
        return f"Blob{self.shape}"
