"""Arrays named after the net's input blobs, from an .npz file (`--data FILE.npz`): any
net, fed whole or walked along axis 0 in chunks (NpzFeeder)."""
from ..io.solverstate import sha256_file
from .feeder import NpzFeeder
from .plans import DataPlan, register_plan


@register_plan
class NpzPlan(DataPlan):
    """Feeds the arrays of an .npz file; no held-out part, so no testing."""

    kind = "npz"

    @classmethod
    def accepts(cls, spec, has_inputs):
        return spec is not None and str(spec).lower().endswith(".npz")

    @classmethod
    def refusal(cls, flag, value, options):
        if flag == "--input":
            return (f"--input {value} is for sequence data; {options.data} gives every "
                    "input blob its values as they are")
        if flag == "--holdout":
            return f"--holdout is for sequence data, not for {options.data}"
        return super().refusal(flag, value, options)

    def bind(self, solver):
        self.feeder = NpzFeeder(solver.net, self.options.data)
        p = solver.param
        if p.test_interval and len(p.test_iter):
            self.log("Note: test_interval is ignored with .npz data (no held-out part to test "
                     "on)")
        return self

    def before_forward(self, solver):
        self.feeder(solver)

    def snapshot_state(self, solver):
        return {"passes": int(self.feeder.passes)}, {}

    def restore_state(self, solver, meta, arrays):
        if "passes" in meta:
            self.feeder.passes = int(meta["passes"])

    def restore_without_sidecar(self, solver):
        self.feeder.passes = solver.iter * max(1, solver.param.iter_size)

    def spec(self):
        return str(self.options.data)

    def describe(self):
        return f"{self.options.data} ({self.feeder.describe()})"

    def identity(self):
        return sha256_file(self.options.data)[:16]

    def next_hint(self, folder):
        return ("run the trained net from Python: seqgen.Net(NET, WEIGHTS, seqgen.TEST)"
                ".forward(**arrays)")
