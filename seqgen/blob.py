"""Blob: a named pair of float32 arrays (data and its gradient), as in Caffe."""
import numbers

import numpy as np

from .errors import SeqgenError


class Blob:
    """Holds `data` and `diff` of one shape. Reshape keeps the arrays when the shape is
    unchanged.

    `data` and `diff` are read-only attributes, as in pycaffe: layers, Split copies and
    the solver's packed buffers hold these very arrays, so a script writes into them
    (`blob.data[...] = x`); assigning a new array would silently cut it off from them.
    seqgen's own code replaces the arrays with `set_arrays`.
    """

    __slots__ = ("_data", "_diff", "_pending")

    def __init__(self, shape=(0,), dtype=np.float32):
        """float32 as in Caffe; float64 blobs are for finite-difference gradient checks."""
        self._data = np.zeros(tuple(shape), dtype)
        self._diff = np.zeros(tuple(shape), dtype)
        self._pending = None

    def defer_diff(self, fill):
        """Have `fill(diff)` write the diff when it is first read (a fused backward that
        skips a product nobody may read: seqgen/fusion.py); None drops a pending fill."""
        self._pending = fill

    def _read_only(name):
        def get(self):
            if name == "diff" and self._pending is not None:
                fill, self._pending = self._pending, None
                fill(self._diff)
            return getattr(self, "_" + name)

        def refuse(self, value):
            if value is getattr(self, "_" + name):
                return  # `blob.diff += x` works in place, then assigns the same array back
            # pycaffe's Blob has no setter: Python says "can't set attribute"
            raise AttributeError(f"can't set attribute '{name}' of a Blob: write into the "
                                 f"array instead (blob.{name}[...] = x)")
        return property(get, refuse, doc=f"The blob's {name} array (write into it in place).")

    data = _read_only("data")
    diff = _read_only("diff")
    del _read_only

    def set_arrays(self, data=None, diff=None):
        """Replace the data and/or diff arrays (sharing, packing, float64 checks): the
        caller keeps whatever else holds the old arrays consistent."""
        if data is not None:
            self._data = data
        if diff is not None:
            self._diff = diff

    @property
    def shape(self):
        return self._data.shape

    @property
    def diff_shape(self):
        """The diff's shape, without forming a deferred diff (a shape check must not pay for
        the product a fused backward skipped)."""
        return self._diff.shape

    @property
    def count(self):
        return self._data.size

    def _legacy(self, index, what):
        """Caffe's LegacyShape: axes 0-3 of a blob of at most 4 axes, 1 past its last."""
        if self._data.ndim > 4:
            raise SeqgenError(f"blob.{what}: a blob of {self._data.ndim} axes has no {what} "
                              f"(Caffe's legacy accessors take at most 4 axes; use blob.shape)")
        return self._data.shape[index] if index < self._data.ndim else 1

    @property
    def num(self):
        """Caffe's num(): axis 0 (1 for a scalar blob)."""
        return self._legacy(0, "num")

    @property
    def channels(self):
        """Caffe's channels(): axis 1 (1 when the blob has fewer axes)."""
        return self._legacy(1, "channels")

    @property
    def height(self):
        """Caffe's height(): axis 2 (1 when the blob has fewer axes)."""
        return self._legacy(2, "height")

    @property
    def width(self):
        """Caffe's width(): axis 3 (1 when the blob has fewer axes)."""
        return self._legacy(3, "width")

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
        if shape != self._data.shape:
            self._data = np.zeros(shape, self._data.dtype)
            self._diff = np.zeros(shape, self._data.dtype)
            self._pending = None

    def share_data(self, other):
        """Make this blob use another blob's arrays (weight sharing between nets)."""
        self._data = other.data
        self._diff = other.diff

    def __repr__(self):
        return f"Blob{self.shape}"


class BlobVec(list):
    """A layer's parameter blobs (`layer.blobs`, `net.params[name]`): a list, plus
    pycaffe's BlobVec.add_blob(*shape)."""

    def add_blob(self, *shape, **kwargs):
        """Append a new zero blob of `shape` (pycaffe's BlobVec.add_blob)."""
        if kwargs:
            raise SeqgenError("BlobVec.add_blob takes no keyword arguments")
        blob = Blob()
        blob.reshape(*shape) if shape else blob.reshape(())
        self.append(blob)
