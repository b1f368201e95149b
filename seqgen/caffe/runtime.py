"""pycaffe's process-wide switches: the mode and device (seqgen runs on the CPU only), the
random seed, the list of layer types, and glog's `init_log` / `log`."""
import os
import sys
import time
import warnings

from .. import fillers
from ..registry import LAYERS

_warned = [False]
_log_level = [0]  # glog's FLAGS_minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL


def set_mode_cpu():
    """Caffe's CPU mode: the only mode seqgen has, so nothing to do."""


def _cpu_only(what):
    if not _warned[0]:
        _warned[0] = True
        warnings.warn(f"caffe.{what}: seqgen runs on the CPU only; running on the CPU",
                      RuntimeWarning, stacklevel=3)


def set_mode_gpu():
    """One warning (seqgen has no GPU mode), then CPU mode."""
    _cpu_only("set_mode_gpu()")


def set_device(device_id):
    """One warning (seqgen has no GPU devices), then CPU mode."""
    _cpu_only(f"set_device({device_id})")


def set_random_seed(seed):
    """Seed the generator Caffe's seed drives: the fillers of nets built from now on and
    Dropout's masks (seqgen's `fillers` generator)."""
    fillers.seed(int(seed))


def layer_type_list():
    """Every layer type seqgen can build, sorted (Caffe's LayerRegistry::LayerTypeList)."""
    from .. import layers  # noqa: F401  lazy: importing the package registers every layer

    return sorted(LAYERS)


def init_log(level=0, stderr=True):
    """glog's minimum level for `log` (0 INFO ... 3 FATAL); seqgen's log goes to stderr."""
    _log_level[0] = int(level)


def log(message):
    """One INFO line on stderr in glog's format, as pycaffe's `caffe.log` writes it."""
    if _log_level[0] > 0:
        return
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now))
    micros = int((now % 1) * 1e6)
    print(f"I{stamp}.{micros:06d} {os.getpid():5d} pycaffe.py:0] {message}", file=sys.stderr,
          flush=True)


def solver_count():
    """Solvers running in parallel (multi-GPU in Caffe): always 1 in seqgen."""
    return 1


def solver_rank():
    """This solver's rank among parallel solvers: always 0 in seqgen."""
    return 0


def has_nccl():
    """Whether Caffe was built with NCCL (multi-GPU): never in seqgen."""
    return False
