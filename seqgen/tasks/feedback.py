"""The feedback schedule: training on the net's own free-running predictions for a growing
share of the steps, so that the generator gets used to its own errors."""
import numpy as np

from ..errors import SeqgenRuntimeError
from ..solver.diagnosis import NonFinite
from .generate import generate


class FeedbackSchedule:
    """Every `refresh` iterations the current weights generate the whole sequence
    free-running; each step's input is then that generated value with probability p (else
    the true one), p rising linearly from 0 to `share` over the first `ramp` of the run.
    Teacher forcing alone never shows the net its own errors, and its free-running output
    drifts."""

    def __init__(self, feeder, test_net, total, share=1.0, ramp=0.1, refresh=20, seed=0):
        self.feeder, self.test_net = feeder, test_net
        self.total, self.share, self.ramp, self.refresh = total, share, ramp, refresh
        self.rng = np.random.default_rng(seed)
        self._rng_state = None  # (self.rng, its state) while it has not drawn since
        self.length = len(feeder.sequence)

    def update(self, solver):
        """Before a pass: on a refresh iteration, mix new predictions into the inputs."""
        if solver.iter % self.refresh or self.feeder.passes % max(1, solver.param.iter_size):
            return
        p = self.share * min(1.0, solver.iter / max(1.0, self.ramp * self.total))
        if p <= 0:
            return
        try:
            own = generate(self.test_net, self.length, "previous")
        except SeqgenRuntimeError as e:
            raise NonFinite(f"the net's free-running predictions, which the feedback "
                            f"schedule feeds back as inputs, are not finite ({e})") from None
        self._rng_state = None
        keep_true = self.rng.random(self.length) >= p
        self.feeder.set_inputs(np.where(keep_true[:, None], self.feeder.sequence, own))

    def get_state(self):
        """What a resumed run needs to continue the schedule exactly (JSON-able); the
        feeder's current inputs are saved with the feeder. The generator's state is read
        again only after a draw: it is gathered before every iteration."""
        if self._rng_state is None or self._rng_state[0] is not self.rng:
            self._rng_state = (self.rng, self.rng.bit_generator.state)
        return {"rng": self._rng_state[1], "total": self.total,
                "share": self.share, "ramp": self.ramp, "refresh": self.refresh}

    def set_state(self, state):
        self.total, self.share = state["total"], state["share"]
        self.ramp, self.refresh = state["ramp"], state["refresh"]
        self.rng.bit_generator.state = state["rng"]
        self._rng_state = None
