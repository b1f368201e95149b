"""Starting a sequence run again from new weights when its free-running output is still
(nearly) flat, within its own iteration budget.

Some seeds of the fork's configurations never get far from a flat output, most of all in
input mode 'zero', where the net must make the whole sequence from its own state:
lstm_long's seeds 2 and 3 ended at free-running MSE 0.237 where the others reached
0.002-0.003 (examples/results). Such a run is stuck long before its end (seed 2: MSE 0.49
of the sequence's variance at iteration 20000 of 100000, 0.67 at 40000, against 0.017 for
seed 1 at 20000; 2-core Intel Xeon, 2026-12-07). So every `fraction` of the run, up to its
half, the current weights generate the sequence free-running; if that output's MSE is still
above `limit` of the sequence's variance (a flat line at the mean scores 1; the default,
FAR, catches flat runs, a lower limit (--restart-limit) also slow starters), the weights are
filled again as a new run's would be (from a seed derived from the run's), the update
history is cleared and training goes on, counting the same iterations. Each check and
restart is said in the log, and the restarts are kept in the snapshots' sidecars, so that
a resume continues exactly.
"""
from collections.abc import Callable
from dataclasses import dataclass

from .. import fillers
from ..net import TRAIN, Net
from .free_running import FreeRunningScore, check_interval, checked_iterations

#: still (nearly) flat: free-running MSE above this share of the sequence's variance (the
#: default limit)
FAR = 0.25
#: checks run up to this share of the run (later, a new start has too little budget left)
LAST_CHECK = 0.5
#: and not before this iteration: earlier, a run that will do well can still be far off
#: (lstm_long's good seeds were at 0.015-0.017 of the variance by iteration 20000), and a
#: short run (tests, trials with --iters) is not judged at all
FIRST_CHECK = 10000
#: seeds of restarts: the run's random_seed plus this times the restart's number
SEED_STRIDE = 1_000_003


def problem(value):
    """What --restart-flat must be, or None when `value` is good."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 0.5
    return None if ok else "a number in [0, 0.5] (0: off)"


def limit_problem(value):
    """What --restart-limit must be, or None when `value` is good."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    return None if ok else "a number in (0, 1]"


def restart_seed(run_seed, number):
    """The seed the `number`-th restart fills its weights from (repeatable, recorded)."""
    return (int(run_seed) + SEED_STRIDE * number) % 2 ** 31


@dataclass
class FlatRestart:
    """The checks and restarts of one run (see the module docstring)."""

    fraction: float
    total: int  # the run's max_iter
    score: FreeRunningScore
    net_path: str
    #: what a new run's net gets after its fillers (the plan's `prepare`: the fork's
    #: forget-gate bias)
    prepare_new: Callable
    log: object = print
    #: restart above this share of the sequence's variance
    limit: float = FAR

    def __post_init__(self):
        self.every = check_interval(self.fraction, self.total)
        self.restarts = []  # [{"iteration": i, "seed": s, "mse": m}]

    def due(self, iteration):
        return iteration in self._checked()

    def checks(self):
        """The iterations the run is checked at (none for a short run)."""
        return list(self._checked())

    def _checked(self):
        return checked_iterations(self.every, FIRST_CHECK, int(LAST_CHECK * self.total))

    def check(self, solver):
        """At a check's iteration, generate free-running and start again if flat."""
        if not self.due(solver.iter):
            return
        mse = self.score.at(solver.iter)
        if mse is None:  # not finite: the divergence checks say so themselves
            return
        share = self.score.share(mse)
        if share <= self.limit:
            self.log(f"Free-running check at iteration {solver.iter}: MSE {mse:.4g} "
                     f"({share:.3g} of the sequence's variance)")
            return
        seed = restart_seed(solver.param.random_seed, len(self.restarts) + 1)
        still = "nearly flat" if self.limit >= FAR else "far off"
        self.log(f"Restarting at iteration {solver.iter} of {self.total}: the free-running "
                 f"output is still {still} (MSE {mse:.4g}, {share:.3g} of the sequence's "
                 f"variance, above {self.limit:g}; a flat line scores 1); new weights from seed "
                 f"{seed}, update history cleared (--restart-flat 0 turns this off)")
        self._fill_again(solver, seed)
        self.score.forget()
        self.restarts.append({"iteration": int(solver.iter), "seed": seed,
                              "mse": round(mse, 8)})

    def _fill_again(self, solver, seed):
        """The training net's weights as a new run with `seed` would fill them."""
        with fillers.seeded(seed):
            fresh = Net(self.net_path, TRAIN, options=solver.options)
        for name, blobs in solver.net.params.items():
            for blob, new in zip(blobs, fresh.params[name]):
                blob.data[...] = new.data
        self.prepare_new(solver.net)
        solver.clear_history()

    def get_state(self):
        return {"restarts": self.restarts}

    def set_state(self, state):
        self.restarts = list(state.get("restarts", []))
