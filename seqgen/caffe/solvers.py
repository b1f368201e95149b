"""pycaffe's solver classes: `caffe.SGDSolver(path)` ... `caffe.AdamSolver(path)` train with
their own update rule whatever the file's `type` says (the C++ class decides in Caffe), and
`caffe.get_solver(path)` picks the class the file's `type` names."""
import os

from ..io.prototxt import read_solver
from ..proto import caffe_pb2
from ..solver.solver import Solver


class SGDSolver(Solver):
    """seqgen's Solver with the update rule of its class (pycaffe's `bp::init<string>()`)."""

    solver_type = "SGD"

    def __init__(self, solver, **kwargs):
        if isinstance(solver, caffe_pb2.SolverParameter):
            param = caffe_pb2.SolverParameter()
            param.CopyFrom(solver)
            source = kwargs.pop("source", None)
        else:
            param, source = read_solver(solver), os.fspath(solver)
        param.type = self.solver_type
        super().__init__(param, source=source, **kwargs)


class NesterovSolver(SGDSolver):
    solver_type = "Nesterov"


class AdaGradSolver(SGDSolver):
    solver_type = "AdaGrad"


class RMSPropSolver(SGDSolver):
    solver_type = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    solver_type = "AdaDelta"


class AdamSolver(SGDSolver):
    solver_type = "Adam"


SOLVER_CLASSES = {cls.solver_type: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver,
                                                   RMSPropSolver, AdaDeltaSolver, AdamSolver)}


def get_solver(path):
    """The solver of the file's `type` (default SGD), an instance of its pycaffe class
    (Caffe's SolverRegistry); an unknown type is refused by the Solver, naming the file."""
    param = read_solver(path)
    cls = SOLVER_CLASSES.get(param.type)
    if cls is None:
        return Solver(param, source=os.fspath(path))
    return cls(param, source=os.fspath(path))
