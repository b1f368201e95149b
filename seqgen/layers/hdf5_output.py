"""`HDF5Output`: writes its two bottoms to an HDF5 file as datasets "data" and "label"
(Caffe's HDF5OutputLayer), in Caffe's 4-D shape (num, channels, height, width).

hdf5_output_param.file_name is read relative to the working directory, as Caffe does.
Differences from Caffe, on purpose: Caffe writes one batch and fails at the second
forward (the datasets exist); seqgen appends every forward's batch along the first axis,
so the file holds all of them. Caffe truncates the file when the net is built; seqgen
checks the name then (the output rules of seqgen/io/outputs.py: never over a file seqgen
did not write, nor over a run folder's files) and truncates it at the first forward, so
building a net to look at it leaves the file alone. A file seqgen wrote carries the
attribute `seqgen_writer`; any other existing file is refused.

h5py is an optional dependency (the `hdf5` extra), imported when such a layer is built.
"""
import os

import numpy as np

from ..errors import SeqgenError
from ..io.outputs import check_output
from ..registry import register
from .base import Layer
from .hdf5_data import _h5py

WRITER = "seqgen HDF5Output"  # the marker attribute's value
FIELD = "hdf5_output_param.file_name"


def caffe_4d(shape):
    """Caffe's legacy (num, channels, height, width) of a blob of at most 4 axes."""
    return tuple(shape) + (1,) * (4 - len(shape))


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    num_bottoms = 2
    num_tops = 0
    no_grad_bottoms = (0, 1)

    def layer_setup(self, bottom, top):
        self.h5py = _h5py(self, "writing")
        self.path = self.param.hdf5_output_param.file_name
        if not self.path:
            raise self.error(f"{FIELD} is not set (the HDF5 file to write)")
        try:
            check_output(self.path, flag=FIELD, force=True)
        except SeqgenError as e:
            raise self.error(str(e)) from None
        if os.path.lexists(self.path) and not self._ours():
            raise self.error(f"{FIELD} {self.path}: the file exists and seqgen did not write "
                             "it; seqgen writes over only a file an HDF5Output layer wrote; "
                             "move it or choose another file_name")
        self.started = False

    def _ours(self):
        """Whether the existing file is one an HDF5Output layer of seqgen wrote."""
        try:
            with self.h5py.File(self.path, "r") as f:
                return f.attrs.get("seqgen_writer") == WRITER
        except (OSError, ValueError):
            return False

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom):
            if b.data.ndim > 4:
                raise self.error(f"bottom '{self.bottom_name(i)}' has shape {b.shape}; Caffe's "
                                 "HDF5Output writes blobs of at most 4 axes")
        if bottom[0].num != bottom[1].num:
            raise self.error(f"bottoms '{self.bottom_name(0)}' {bottom[0].shape} and "
                             f"'{self.bottom_name(1)}' {bottom[1].shape} differ in their "
                             "first axis")

    def forward(self, bottom, top):
        rows = [np.array(b.data, np.float32).reshape(caffe_4d(b.shape)) for b in bottom]
        try:
            with self.h5py.File(self.path, "a" if self.started else "w") as f:
                if not self.started:
                    f.attrs["seqgen_writer"] = WRITER
                for name, x in zip(("data", "label"), rows):
                    self._append(f, name, x)
        except OSError as e:
            raise self.error(f"cannot write {self.path} ({e})") from None
        self.started = True

    def _append(self, f, name, x):
        if name not in f:
            f.create_dataset(name, data=x, maxshape=(None,) + x.shape[1:], chunks=True)
            return
        ds = f[name]
        if ds.shape[1:] != x.shape[1:]:
            raise self.error(f"'{name}' rows changed shape from {ds.shape[1:]} to "
                             f"{x.shape[1:]} between forwards; {self.path} holds one shape")
        n = ds.shape[0]
        ds.resize(n + x.shape[0], axis=0)
        ds[n:] = x
