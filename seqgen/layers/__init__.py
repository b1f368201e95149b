"""Every layer module registers itself on import (one file per layer, as in Caffe).

hdf5_data imports h5py only when an HDF5Data layer is built, so importing seqgen never
needs it."""
from . import (  # noqa: F401
    accuracy,
    bias,
    concat,
    dropout,
    eltwise,
    embed,
    euclidean_loss,
    flatten,
    fork_lstm,
    hdf5_data,
    inner_product,
    input,
    recurrent,
    reduction,
    relu,
    reshape,
    scale,
    sigmoid,
    silence,
    slice,
    softmax,
    softmax_loss,
    split,
    tanh,
)
