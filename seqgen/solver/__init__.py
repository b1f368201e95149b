"""The solver: Caffe's training loop, update rules and lr policies, with callbacks, snapshots
and divergence diagnosis in modules of their own."""
from .solver import Solver  # noqa: F401
