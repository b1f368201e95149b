"""The feedback schedule: training on the net's own free-running predictions for a growing
share of the steps, so that the generator gets used to its own errors."""
from dataclasses import dataclass, fields

import numpy as np

from ..errors import SeqgenError, SeqgenRuntimeError
from ..generation.generate import generate
from ..solver.diagnosis import NonFinite


@dataclass(frozen=True)
class FeedbackSettings:
    """The schedule's three numbers (`seqgen train --feedback-share/-ramp/-refresh`, sweep
    KEYs feedback_share/_ramp/_refresh). The defaults are the recipe every run used before
    they could be set, so a run that gives none keeps its fingerprint."""
    share: float = 1.0  # the share of own predictions among the inputs after the ramp
    ramp: float = 0.1  # the fraction of the run over which that share rises from 0
    refresh: int = 20  # iterations between two free-running predictions

    #: (field, flag, what it must be, its check)
    RULES = (("share", "--feedback-share", "a number in (0, 1]", lambda v: 0 < v <= 1),
             ("ramp", "--feedback-ramp", "a number in [0, 1]", lambda v: 0 <= v <= 1),
             ("refresh", "--feedback-refresh", "a positive whole number",
              lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0))

    @classmethod
    def problem(cls, name, value):
        """What `value` of setting `name` must be, or None when it is a good value."""
        for field, _, want, ok in cls.RULES:
            if field == name:
                return None if isinstance(value, (int, float)) and ok(value) else want
        raise KeyError(name)

    @classmethod
    def of(cls, share=None, ramp=None, refresh=None):
        """The settings with the given values over the defaults; SeqgenError naming the flag
        of a value out of range."""
        given = {"share": share, "ramp": ramp, "refresh": refresh}
        for name, flag, _, _ in cls.RULES:
            want = given[name] is not None and cls.problem(name, given[name])
            if want:
                raise SeqgenError(f"{flag} must be {want}, not {given[name]!r}")
        return cls(**{k: v for k, v in given.items() if v is not None})

    def is_default(self):
        return self == FeedbackSettings()

    def to_json(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def text(self):
        return f"share {self.share:g}, ramp {self.ramp:g}, refresh {self.refresh}"


class FeedbackSchedule:
    """Every `refresh` iterations the current weights generate the whole sequence
    free-running; each step's input is then that generated value with probability p (else
    the true one), p rising linearly from 0 to `share` over the first `ramp` of the run
    (FeedbackSettings). Teacher forcing alone never shows the net its own errors, and its
    free-running output drifts."""

    def __init__(self, feeder, test_net, total, settings=FeedbackSettings(), seed=0):
        self.feeder, self.test_net, self.total = feeder, test_net, total
        self.share, self.ramp, self.refresh = settings.share, settings.ramp, settings.refresh
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
        # share, ramp and refresh stay the run's settings (taken from the snapshot's run
        # unless given again; changing them takes --allow-changes): the state keeps them
        # only to say what wrote it
        self.total = state["total"]
        self.rng.bit_generator.state = state["rng"]
        self._rng_state = None
