"""seqgen: run, train and generate from Caffe recurrent nets without Caffe.

The names a pycaffe user reaches for: `seqgen.Net(prototxt, weights=None, phase=TEST)`,
`seqgen.TRAIN` / `seqgen.TEST`, `seqgen.get_solver(path)`.
"""
import os

# These nets multiply tiny matrices: a second OpenBLAS thread only adds spinning and
# contention (the fork's notes measured it slower too). Only effective when seqgen is
# imported before numpy, as in the `seqgen` command; users can override it.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from .errors import SeqgenError  # noqa: E402
from .net import TEST, TRAIN, Net  # noqa: E402
from .solver import Solver  # noqa: E402

__version__ = "0.1.0"


def get_solver(path, **kwargs):
    """A Solver for a solver prototxt (pycaffe's caffe.get_solver)."""
    return Solver(path, **kwargs)


__all__ = ["Net", "Solver", "SeqgenError", "TRAIN", "TEST", "get_solver", "__version__"]
