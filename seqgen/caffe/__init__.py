"""seqgen as pycaffe: `import caffe` names on seqgen (`seqgen pycaffe SCRIPT.py` runs a
pycaffe script unchanged; `install_as_caffe()` makes `import caffe` find this package).

What pycaffe's `caffe/__init__.py` gives: `Net`, `SGDSolver` ... `AdamSolver`,
`get_solver`, `TRAIN`/`TEST`, `Layer` (Python layers), `NetSpec`, `layers`, `params`,
`to_proto`, `proto.caffe_pb2`, `io`, `draw`, `set_mode_cpu`, `set_mode_gpu`, `set_device`,
`set_random_seed`, `layer_type_list`, `init_log`, `log`, `__version__`. Names that build
nets load on first use, so that the Python layer type can import `caffe.Layer` from here.
"""
import importlib
import sys

from ..errors import SeqgenError
from ..proto.caffe_pb2 import TEST, TRAIN, LayerParameter, NetParameter, SolverParameter
from . import draw, io, net_spec, proto
from .net_spec import NetSpec, layers, params, to_proto
from .python_layer import Layer
from .runtime import (
    has_nccl,
    init_log,
    layer_type_list,
    log,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_random_seed,
    solver_count,
    solver_rank,
)

#: the Caffe release whose Python interface this is (pycaffe's `caffe.__version__`)
__version__ = "1.0.0"

#: loaded on first use (PEP 562): they import the Net and its layers
_LAZY = {"Net": "..net", "Blob": "..blob", "Solver": "..solver.solver",
         **{name: ".solvers" for name in ("SGDSolver", "NesterovSolver", "AdaGradSolver",
                                           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver",
                                           "get_solver")}}
#: pycaffe names for images, which seqgen does not handle
_IMAGES = ("Classifier", "Detector")
#: the submodules a script may import by name (`import caffe.io`, `from caffe.proto ...`)
SUBMODULES = ("draw", "io", "net_spec", "proto", "proto.caffe_pb2", "python_layer")


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in _IMAGES:
        raise SeqgenError(f"caffe.{name} classifies images, which seqgen does not handle "
                          "(it runs sequence nets); use caffe.Net and numpy instead")
    raise AttributeError(f"module 'caffe' (seqgen.caffe) has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def install_as_caffe():
    """Make `import caffe` (and `caffe.proto.caffe_pb2`, `caffe.io`, ...) give seqgen.caffe,
    as PyMySQL's install_as_MySQLdb() does for MySQLdb. Returns this module."""
    here = sys.modules[__name__]
    sys.modules["caffe"] = here
    for sub in SUBMODULES:
        sys.modules["caffe." + sub] = importlib.import_module(f"{__name__}.{sub}")
    return here


__all__ = ["Net", "Blob", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "get_solver", "TRAIN", "TEST",
           "Layer", "NetSpec", "net_spec", "layers", "params", "to_proto", "proto", "io", "draw",
           "LayerParameter", "NetParameter", "SolverParameter", "set_mode_cpu",
           "set_mode_gpu", "set_device", "set_random_seed", "layer_type_list", "init_log",
           "log", "solver_count", "solver_rank", "has_nccl", "install_as_caffe",
           "__version__"]
