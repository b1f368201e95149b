"""The layer contract every registered layer follows (Caffe's Layer, minus the GPU half).

A layer owns its parameter blobs (`self.blobs`) and turns bottom blobs into top blobs:
`setup` once (check bottoms, create parameters), `reshape` whenever input shapes may have
changed, `forward`, and `backward` (write bottom diffs where `propagate_down`, accumulate
parameter diffs).
"""
from ..errors import SeqgenError


class Layer:
    #: True for layers whose first top is a loss (its loss_weight defaults to 1).
    is_loss = False
    #: Exact bottom count, or (min, max); None = any.
    num_bottoms = None
    num_tops = None
    #: Indices of bottoms that never take a gradient (clip/cont markers, labels of some losses).
    no_grad_bottoms = ()
    #: False for layers whose forward does nothing (the Net then skips calling it).
    runs_forward = True

    def __init__(self, param, phase, options=None):
        self.param = param
        self.name = param.name
        self.phase = phase
        self.options = options or {}
        self.blobs = []

    # -- helpers -------------------------------------------------------------------------
    def error(self, msg):
        return SeqgenError(f"layer '{self.name}' ({self.type}): {msg}")

    def check_counts(self, bottom, top):
        for what, want, got in (("bottom", self.num_bottoms, len(bottom)),
                                ("top", self.num_tops, len(top))):
            if want is None:
                continue
            lo, hi = want if isinstance(want, tuple) else (want, want)
            if not lo <= got <= hi:
                need = f"{lo}" if lo == hi else f"{lo} to {hi}"
                raise self.error(f"needs {need} {what} blob(s), got {got}")

    # -- the contract --------------------------------------------------------------------
    def setup(self, bottom, top):
        """Check the bottoms and create the parameter blobs (called once)."""

    def reshape(self, bottom, top):
        raise NotImplementedError

    def forward(self, bottom, top):
        raise NotImplementedError

    def backward(self, top, propagate_down, bottom):
        """Default for layers with nothing to propagate."""

    # Recurrent layers override these three; the Net calls them without knowing the type.
    def reset_state(self):
        """Forget any state carried between forward calls."""

    def get_state(self):
        return None

    def set_state(self, state):
        if state is not None:
            raise self.error("this layer has no recurrent state")
