"""seqgen: run, train and generate from Caffe recurrent nets without Caffe.

The names a pycaffe user reaches for: `seqgen.Net(prototxt, weights=None, phase=TEST)`
(also pycaffe's `Net(prototxt, phase)` and `Net(prototxt, weights, phase)`),
`seqgen.TRAIN` / `seqgen.TEST`, `seqgen.get_solver(path)`. README.md's "Coming from pycaffe"
shows them side by side with pycaffe.
"""
import importlib
import os

__version__ = "0.2.0"

# BLAS gets seqgen's thread budget (SEQGEN_THREADS, default 1; see seqgen.threads): these
# nets' small products only spin and contend on a second thread. Only effective when seqgen
# is imported before numpy, as in the `seqgen` command; threads.set_threads works later.
# A value that is no thread count gives BLAS 1 here; seqgen.threads warns of it, the
# `seqgen` command refuses it (seqgen.limits.threads_from_env).
from .errors import SeqgenError  # noqa: E402
from .limits import threads_from_env  # noqa: E402

try:
    _budget = threads_from_env()
except SeqgenError:
    _budget = 1
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(_budget))

#: the names seqgen gives, imported from their modules on first use (PEP 562): the `seqgen`
#: command imports this package first, and `seqgen --version` or `--help` need no net (and
#: so no numba)
_LAZY = {"Net": ".net", "TRAIN": ".net", "TEST": ".net", "Solver": ".solver",
         "prototxt": ".io.prototxt"}  # (seqgen.prototxt.read_net / parse_net_text)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'seqgen' has no attribute '{name}'")
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "prototxt" else getattr(module, name)
    globals()[name] = value  # (found directly from now on)
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def get_solver(path, **kwargs):
    """A Solver for a solver prototxt (pycaffe's caffe.get_solver): `solver.net`,
    `solver.step(n)`, `solver.solve()`, `solver.snapshot()`, `solver.restore(path)`,
    `solver.iter`."""
    from .solver import Solver  # lazy: importing seqgen needs no net (see _LAZY)

    return Solver(path, **kwargs)


def set_mode_cpu():
    """pycaffe's caffe.set_mode_cpu(): seqgen always runs on the CPU, so nothing to do."""


__all__ = ["Net", "Solver", "SeqgenError", "TRAIN", "TEST", "get_solver", "set_mode_cpu",
           "__version__"]
