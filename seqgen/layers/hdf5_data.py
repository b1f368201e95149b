"""`HDF5Data`: rows of HDF5 datasets named after the tops (Caffe's HDF5DataLayer).

hdf5_data_param: `source` is a text file listing .h5 files (whitespace separated, as
Caffe reads it); `batch_size` rows along axis 0 of every dataset are served per forward
pass; `shuffle` shuffles the file order at every wrap-around and the row order within a
file each time it is (re)entered, as Caffe does. Rows are taken in order, continuing into
the next file when one runs out and back to the first file after the last, so with
datasets x (L, N, I) and cont (L, N) and batch_size T the net sees consecutive chunks of
T time steps: how Caffe LSTM users fed sequences with cont markers.

Paths: a relative `source` is looked up in the working directory (Caffe's rule), then
beside the net file. A relative file name inside the list is looked up in the working
directory (Caffe's rule), then in the list file's folder.

h5py is an optional dependency (the `hdf5` extra); it is imported only when
a net with an HDF5Data layer is built.
"""
import os

import numpy as np

from .. import fillers
from ..extras import install_hint
from ..registry import register
from .base import Layer


def _h5py(layer, doing="reading"):
    """The h5py module, or a one-line error naming the layer and how to install it."""
    try:
        import h5py
    except ImportError:
        raise layer.error(f"{doing} HDF5 files needs the h5py package, an optional dependency "
                          "of seqgen: " + install_hint("hdf5")) from None
    return h5py


def _find(path, places):
    """The first existing candidate for a relative `path` among `places` (folders)."""
    if os.path.isabs(path):
        return path, [path]
    tried = []
    for folder in places:
        if folder is None:
            continue
        candidate = os.path.normpath(os.path.join(folder, path))
        if candidate not in tried:
            tried.append(candidate)
        if os.path.exists(candidate):
            return candidate, tried
    return None, tried


@register("HDF5Data")
class HDF5DataLayer(Layer):
    num_bottoms = 0
    runs_forward = True
    reads_options = ("net_dir",)

    def layer_setup(self, bottom, top):
        if not top:
            raise self.error("needs at least one top (each names a dataset to read)")
        p = self.param.hdf5_data_param
        if not p.source:
            raise self.error("hdf5_data_param.source is not set (a text file listing .h5 files)")
        if p.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be > 0")
        self.h5py = _h5py(self)
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.top_names = list(self.param.top)
        self.files = self._read_list(p.source)
        # a generator drawn from the fillers' one only when shuffling, so that the
        # solver's random_seed makes the order repeatable without moving other fills
        self.rng = np.random.default_rng(fillers._rng.integers(2 ** 63)) if self.shuffle \
            else None
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self.shapes = None  # per top: the row shape every file must have
        self.current_file = 0
        self._load(self.file_order[0])

    # -- files -------------------------------------------------------------------------
    def _read_list(self, source):
        net_dir = self.options.get("net_dir")
        found, tried = _find(source, [os.getcwd(), net_dir])
        if found is None:
            raise self.error(f"source list '{source}' not found (looked for "
                             f"{' and '.join(tried)})")
        try:
            with open(found, encoding="utf-8") as f:
                names = f.read().split()
        except (OSError, UnicodeDecodeError) as e:
            raise self.error(f"cannot read the source list {found} ({e})") from None
        if not names:
            raise self.error(f"the source list {found} names no files")
        files = []
        list_dir = os.path.dirname(os.path.abspath(found))
        for name in names:
            path, tried = _find(name, [os.getcwd(), list_dir])
            if path is None:
                raise self.error(f"{found} lists '{name}', which does not exist (looked for "
                                 f"{' and '.join(tried)})")
            files.append(path)
        return files

    def _load(self, index):
        """Read every top's dataset from file `index` (Caffe's LoadHDF5FileData)."""
        path = self.files[index]
        data = []
        try:
            with self.h5py.File(path, "r") as f:
                for name in self.top_names:
                    if name not in f:
                        have = ", ".join(sorted(f.keys())) or "none"
                        raise self.error(f"{path} has no dataset '{name}' (datasets: {have})")
                    ds = f[name]
                    if not isinstance(ds, self.h5py.Dataset):
                        raise self.error(f"{path}: '{name}' is a group, not a dataset")
                    if ds.dtype.kind not in "biuf":
                        raise self.error(f"{path}: dataset '{name}' has dtype {ds.dtype}; "
                                         "expected numbers")
                    if ds.ndim == 0:
                        raise self.error(f"{path}: dataset '{name}' is a scalar; rows are taken "
                                         "along its first axis")
                    data.append(np.asarray(ds[...], np.float32))
        except OSError as e:
            raise self.error(f"cannot read {path} as HDF5 ({e})") from None
        rows = data[0].shape[0]
        for name, array in zip(self.top_names, data):
            if array.shape[0] != rows:
                raise self.error(f"{path}: dataset '{name}' has {array.shape[0]} rows but "
                                 f"'{self.top_names[0]}' has {rows}; every dataset needs one "
                                 "row per sample along axis 0")
        if rows == 0:
            raise self.error(f"{path}: the datasets have no rows")
        shapes = [array.shape[1:] for array in data]
        if self.shapes is None:
            self.shapes, self.shapes_from = shapes, path
        else:
            for name, want, got in zip(self.top_names, self.shapes, shapes):
                if want != got:
                    raise self.error(f"{path}: dataset '{name}' has rows of shape {got}, but "
                                     f"{self.shapes_from} has {want}")
        self.data = data
        self.rows = rows
        self.row_order = np.arange(rows)
        if self.shuffle:
            self.rng.shuffle(self.row_order)
        self.current_row = 0

    def _next_file(self):
        """The rows of the current file are used up: move on (Caffe's Next)."""
        if len(self.files) > 1:
            self.current_file += 1
            if self.current_file == len(self.files):
                self.current_file = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_order)
            self._load(self.file_order[self.current_file])
        self.current_row = 0
        if self.shuffle:
            self.rng.shuffle(self.row_order)

    # -- the layer contract ------------------------------------------------------------
    def reshape(self, bottom, top):
        for name, blob, shape in zip(self.top_names, top, self.shapes):
            blob.reshape(self.check_size((self.batch_size,) + tuple(shape), f"top '{name}'"))

    def forward(self, bottom, top):
        filled = 0
        while filled < self.batch_size:
            take = min(self.batch_size - filled, self.rows - self.current_row)
            rows = self.row_order[self.current_row:self.current_row + take]
            for blob, array in zip(top, self.data):
                blob.data[filled:filled + take] = array[rows]
            filled += take
            self.current_row += take
            if self.current_row == self.rows:
                self._next_file()
