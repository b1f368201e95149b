"""Keeping a sequence run's best checked weights as its result (--keep-best F).

A run's free-running output does not always get better to its end: deep_lstm_long's seed 3
in input mode 'zero' generated its sequence with MSE 0.0076 at iteration 40000 of 100000
and 0.121 at the end, seed 7 0.0057 at 60000 and 0.0228 at the end (2-core Intel Xeon,
2026-12-07, examples/results/recipe/). So every F of the run, and at its end, the weights
generate the sequence free-running; weights that score better than all checked before are
kept in a snapshot (written then if the solver's schedule did not), and the run's
result (run.json's "best": what generate, test, plot, export and a sweep's scores use when
no snapshot is named) is the snapshot that scored best. Training is not changed at all; the
last weights stay in their snapshot, and `--keep-best 0` makes them the result again.
"""
import os
from dataclasses import dataclass

from .free_running import FreeRunningScore, check_interval, checked_iterations

#: checks start here: a short run (tests, trials with --iters) writes no extra snapshots
#: and keeps its last weights (the end is checked all the same)
FIRST_CHECK = 10000


def problem(value):
    """What --keep-best must be, or None when `value` is good."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    return None if ok else "a number in [0, 1] (0: off)"


@dataclass
class KeepBest:
    """The checks of one run and the best of them so far (see the module docstring)."""

    fraction: float
    total: int  # the run's max_iter
    score: FreeRunningScore
    log: object = print

    def __post_init__(self):
        self.every = check_interval(self.fraction, self.total)
        #: {"iteration", "mse", "weights"} of the best checked snapshot (weights: its path,
        #: absolute: a resume may write to another folder), or None before the first check
        self.best = None

    def due(self, iteration):
        return iteration in self._checked()

    def checks(self):
        """The iterations the run is checked at before its end."""
        return list(self._checked())

    def _checked(self):
        return checked_iterations(self.every, FIRST_CHECK, self.total - 1)

    def check(self, solver):
        """At a check's iteration: keep the weights if they score best, in a snapshot
        (written now unless the solver's schedule just wrote one)."""
        if self.due(solver.iter):
            self._consider(solver, final=False)

    def finish(self, solver):
        """At the end of the session (the last iteration, or a stop): its snapshot is
        considered too; returns run.json's "best" (None: nothing was checked)."""
        if solver.snapshot_is_current() and not self.due(solver.iter):
            self._consider(solver, final=True)
        return self.best

    def _consider(self, solver, final):
        mse = self.score.at(solver.iter)
        best = self.best
        if mse is not None and (best is None or mse < best["mse"]):
            if not solver.snapshot_is_current():  # (its sidecar keeps the best before it)
                solver.snapshot()
            self.best = best = {"iteration": int(solver.iter), "mse": mse,
                                "weights": os.path.abspath(solver.last_snapshot[1])}
        if best is None:
            return
        now = "not finite" if mse is None else f"{mse:.4g}"
        if not final:
            self.log(f"Keep-best check at iteration {solver.iter}: free-running MSE {now}; "
                     f"best so far {best['mse']:.4g}, at iteration {best['iteration']}")
        elif best["iteration"] != solver.iter:
            self.log(f"Best checked weights: iteration {best['iteration']}, free-running MSE "
                     f"{best['mse']:.4g}; the last weights (iteration {solver.iter}) score "
                     f"{now}. generate, test, plot and export use the best "
                     f"({os.path.basename(best['weights'])}; --keep-best 0: the last)")

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state.get("best")
