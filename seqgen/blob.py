"""Blob: a named pair of float32 arrays (data and its gradient), as in Caffe."""
import numpy as np


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
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(s) for s in shape)
        if shape != self.data.shape:
            self.data = np.zeros(shape, self.data.dtype)
            self.diff = np.zeros(shape, self.data.dtype)

    def share_data(self, other):
        """Make this blob use another blob's arrays (weight sharing between nets)."""
        self.data = other.data
        self.diff = other.diff

    def __repr__(self):
        return f"Blob{self.shape}"
