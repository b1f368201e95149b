"""seqgen: run, train and generate from Caffe recurrent nets without Caffe.

The names a pycaffe user reaches for: `seqgen.Net(prototxt, weights=None, phase=TEST)`,
`seqgen.TRAIN` / `seqgen.TEST`, `seqgen.get_solver(path)`.
"""
from .errors import SeqgenError
from .net import TEST, TRAIN, Net
from .solver import Solver

__version__ = "0.1.0"


def get_solver(path, **kwargs):
    """A Solver for a solver prototxt (pycaffe's caffe.get_solver)."""
    return Solver(path, **kwargs)


__all__ = ["Net", "Solver", "SeqgenError", "TRAIN", "TEST", "get_solver", "__version__"]
