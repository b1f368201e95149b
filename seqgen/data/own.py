"""Nets that read their own data (HDF5Data layers): nothing to feed; the TEST phase, if the
solver asks for tests, reads its own data too (the Solver's NetTester)."""
from .plans import DataPlan, register_plan


@register_plan
class OwnDataPlan(DataPlan):
    """No --data and no Input blobs: the net's data layers feed it."""

    kind = "own"

    @classmethod
    def accepts(cls, spec, has_inputs):
        return spec is None and has_inputs is False

    @classmethod
    def refusal(cls, flag, value, options):
        if flag == "--input":
            return (f"--input {value}: the net has no Input blobs; its own data layers feed "
                    "it")
        if flag == "--holdout":
            return ("--holdout is for sequence data; this net's own data layers feed it (its "
                    "TEST phase tests it)")
        return super().refusal(flag, value, options)

    def bind(self, solver):
        net = solver.net
        self.readers = sorted({layer.type for layer in net.layers if not layer.param.bottom
                               and layer.param.top}) or ["none"]
        return self

    def spec(self):
        return None

    def describe(self):
        return f"the data its own layers read ({', '.join(self.readers)})"

    def identity(self):
        return "its own data layers"

    def restore_without_sidecar(self, solver):
        pass

    def notes_on_resume(self):
        return ["Note: the net's own data layers start again from the beginning of their files"]

    def next_hint(self, folder):
        return ("run the trained net from Python: seqgen.Net(NET, WEIGHTS, seqgen.TEST)"
                ".forward()")
