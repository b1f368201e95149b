"""How far a sequence run's current weights are from the sequence, free-running: what the
checks of a run (--restart-flat, --keep-best) look at. The net generates the training
sequence from its own state, in the run's input mode, as `seqgen generate` does, and its
MSE is compared with the sequence's variance (a flat line at the mean scores 1)."""
from dataclasses import dataclass

import numpy as np

from ..errors import SeqgenRuntimeError
from ..generation.generate import generate
from ..net import Net


def check_interval(fraction, total):
    """Iterations between two checks made every `fraction` of a run of `total`."""
    return max(1, round(fraction * total))


def checked_iterations(every, first, last):
    """A run's check iterations: the multiples of `every` from `first` to `last`, both
    included (never iteration 0)."""
    return range(max(1, -(-first // every)) * every, last + 1, every)


@dataclass
class FreeRunningScore:
    """The free-running MSE of `test_net`'s weights (shared with the training net), one
    generation per iteration however many checks ask for it."""

    test_net: Net
    sequence: np.ndarray
    mode: str

    def __post_init__(self):
        self.target = np.asarray(self.sequence, np.float64).reshape(len(self.sequence), -1)
        self.variance = float(self.target.var())
        self._last = None  # (iteration, mse) of the last generation

    def at(self, iteration):
        """The MSE of the weights at `iteration` (None when the output is not finite: the
        divergence checks say so themselves)."""
        if self._last is None or self._last[0] != iteration:
            try:
                out = np.asarray(generate(self.test_net, len(self.target), self.mode),
                                 np.float64)
                mse = float(np.mean((out.reshape(self.target.shape) - self.target) ** 2))
            except SeqgenRuntimeError:
                mse = None
            self._last = (iteration, mse)
        return self._last[1]

    def share(self, mse):
        """`mse` as a share of the sequence's variance."""
        return mse / max(self.variance, 1e-12)

    def forget(self):
        """The weights changed within the iteration (a restart): generate again."""
        self._last = None
