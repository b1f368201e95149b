"""Weights as HDF5 (pycaffe's net.save_hdf5 / net.load_hdf5, Caffe's Net::ToHDF5 and
CopyTrainedLayersFromHDF5): datasets `data/<layer name>/<index>`, `diff/...` with the
gradients too. h5py is optional (the `hdf5` extra) and imported only here."""
import numpy as np

from ..errors import SeqgenError
from ..extras import install_hint


def _h5py(path):
    try:
        import h5py
    except ImportError:
        raise SeqgenError(f"{path}: HDF5 weights need the h5py package, an optional "
                          f"dependency: {install_hint('hdf5')}") from None
    return h5py


def save_hdf5(net, path, write_diff=False):
    """Every layer gets a group; a parameter is written by the layer that owns it (Caffe
    skips the layers that only share it); diffs, when asked, by every layer."""
    h5py = _h5py(path)
    owners = {id(p.blob) for p in net.learnable_params}
    written = set()
    try:
        with h5py.File(path, "w") as f:
            data, diff = f.create_group("data"), (f.create_group("diff") if write_diff else None)
            for name, layer in zip(net.layer_names, net.layers):
                group = data.create_group(name)
                dgroup = diff.create_group(name) if write_diff else None
                for i, blob in enumerate(layer.blobs):
                    if id(blob) in owners and id(blob) not in written:
                        written.add(id(blob))
                        group.create_dataset(str(i), data=np.asarray(blob.data, np.float32))
                    if write_diff:
                        dgroup.create_dataset(str(i), data=np.asarray(blob.diff, np.float32))
    except OSError as e:
        raise SeqgenError(f"{path}: cannot write HDF5 weights ({e})") from None


def load_hdf5(net, path):
    """Copy `data/<layer>/<i>` into the layers of that name (others are ignored, as Caffe
    does); a blob missing from the file is fine only for a shared parameter."""
    h5py = _h5py(path)
    owners = {id(p.blob) for p in net.learnable_params}
    copies = []  # checked first, written after: no half-loaded net
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise SeqgenError(f"{path}: no 'data' group (not weights saved by save_hdf5)")
            for name, group in f["data"].items():
                if name not in net.layer_names:
                    continue
                blobs = net.layer(name).blobs
                if len(group) > len(blobs):
                    raise SeqgenError(f"{path}: layer '{name}' has {len(group)} parameter "
                                      f"blobs in the file but {len(blobs)} in the net")
                for i, blob in enumerate(blobs):
                    if str(i) not in group:
                        if id(blob) in owners:
                            raise SeqgenError(f"{path}: layer '{name}' has no blob {i} in "
                                              "the file")
                        continue  # shared with an earlier layer: loaded there
                    values = np.asarray(group[str(i)], np.float32)
                    if values.size != blob.count:
                        raise SeqgenError(f"{path}: layer '{name}' blob {i}: the file has "
                                          f"shape {values.shape}, the net needs {blob.shape}")
                    copies.append((blob, values))
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read HDF5 weights ({e})") from None
    for blob, values in copies:
        blob.data[...] = values.reshape(blob.shape)
