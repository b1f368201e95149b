"""The order of the four LSTM gate blocks along the 4H axis, per dialect, and the
permutation between them.

Caffe (the fork's Lstm and BVLC's LSTM alike): input, forget, output, cell candidate g.
ONNX's LSTM operator: i, o, f, c (c is Caffe's g). PyTorch's nn.LSTM: i, f, g, o.
"""
import numpy as np

CAFFE = "ifog"
ONNX = "iofg"
TORCH = "ifgo"


def permutation(src, dst):
    """Block indices p such that dst block k is src block p[k]."""
    return [src.index(gate) for gate in dst]


def reorder(array, src, dst, axis=0):
    """`array` with its 4 gate blocks along `axis` moved from order `src` to `dst`."""
    blocks = np.split(np.asarray(array), 4, axis=axis)
    return np.concatenate([blocks[p] for p in permutation(src, dst)], axis=axis)
