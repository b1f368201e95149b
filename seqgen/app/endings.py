"""How a training session ends: normally (final snapshot, last test, logs, record, plot),
stopped by a signal, abandoned by a second one, diverged, or unable to write a file. Each
leaves the run folder consistent: run.json points at the last complete snapshot."""
import os
import shlex
import signal

from ..errors import SeqgenError, SeqgenRuntimeError
from ..runs.folder import snapshot_of
from ..solver.diagnosis import Diverged
from .plot import loss_title
from .replot import plot_run_losses
from .run_book import finite_or_none


class Interrupted(SeqgenError):
    """Training stopped by a signal after a snapshot was written (exit 128 + signal)."""


def quote_command(*args):
    return " ".join(shlex.quote(str(a)) for a in args)


class Ending:
    """What the endings need of the session: solver, book, run folder, names, hint."""

    def __init__(self, solver, book, plan, folder, name, solver_path, log):
        self.solver, self.book, self.plan = solver, book, plan
        self.folder, self.name, self.log = folder, name, log
        self.solver_path = solver_path

    def resume_hint(self, state):
        return quote_command("seqgen", "train", self.solver_path, "--resume", state,
                             "--out", self.folder)

    def _plot(self, rows, title):
        loss_its, loss_vals, test_its, test_vals = rows
        if len(loss_its):
            plot_run_losses(loss_its, loss_vals, test_its, test_vals,
                            os.path.join(self.folder, "loss.png"), title=title)

    def normal(self, signals, elapsed):
        """Final snapshot (a stop always snapshots, so that the run can be resumed), a
        last test when due, the logs, the record and the plot; raises Interrupted when a
        signal stopped the run."""
        solver, record = self.solver, self.book.record
        stopped = signals.stopped()
        if not solver.snapshot_is_current() and (stopped or solver.param.snapshot_after_train):
            solver.snapshot()
        elif not solver.snapshot_is_current():
            self.log("snapshot_after_train is false: no snapshot of the final weights")
        if not stopped and solver.can_test and not (
                solver.test_results and solver.test_results[-1][0] == solver.iter):
            # Caffe's Solve tests after the last iteration when it falls on test_interval
            if self.plan.finish_test_due(solver) or solver.test_due():
                solver.test_all()
        scores = self.plan.final_scores(solver)
        if scores:
            record.scores = scores
        for key, value in self.plan.final_record(solver).items():
            setattr(record, key, value)
        rows = self.book.write_logs(solver.iter + 1)
        record.iterations, record.train_seconds = solver.iter, round(elapsed, 2)
        record.final_loss = finite_or_none(solver.last_loss)
        if solver.last_snapshot is not None:
            record.weights, record.solverstate = map(os.path.abspath, solver.last_snapshot[1:])
        if self.book.tests:
            record.final_test_loss = finite_or_none(self.book.tests[-1][1])
        record.write(self.folder)
        self._plot(rows, loss_title(self.name))
        if stopped:
            model, state = solver.last_snapshot[1:]
            err = Interrupted(f"{signals.name()} at iteration {solver.iter}: snapshot written "
                              f"to {model}; resume with: {self.resume_hint(state)}")
            err.exit_code = 128 + signals.stopped_by[0]
            raise err

    def abandoned(self, signum):
        """A second stop signal: keep the logs of the finished iterations, no snapshot."""
        signame = signal.Signals(signum).name
        solver, record = self.solver, self.book.record
        self.book.write_logs(solver.iter)
        record.iterations, record.final_loss = solver.iter, finite_or_none(solver.last_loss)
        record.write(self.folder)
        last = solver.last_snapshot or solver.restored
        if last is not None:
            where = (f"the last snapshot is {last[1]} (iteration {last[0]}); resume with: "
                     f"{self.resume_hint(last[2])}")
        else:
            where = "the run has no snapshot to resume from"
        err = Interrupted(f"{signame} twice at iteration {solver.iter}: stopped at once, "
                          f"without a snapshot (a single {signame} finishes the iteration and "
                          f"writes one); {where}")
        err.exit_code = 128 + signum
        raise err

    def diverged(self, err, elapsed):
        """Log the bad loss, point run.json at the last good snapshot, draw the curve and
        raise the solver's message with the command to continue."""
        record, k = self.book.record, err.iteration
        if err.loss is not None and k is not None and k < len(self.book.losses):
            self.book.losses[k] = err.loss  # the curve shows where it went wrong
        rows = self.book.write_logs(k + 1)
        record.iterations, record.train_seconds = k, round(elapsed, 2)
        record.diverged = {"iteration": k, "where": err.where}
        record.unset("final_loss")
        if err.last_good is not None:
            record.weights, record.solverstate = map(os.path.abspath, err.last_good[1:])
        else:
            record.unset("weights", "solverstate")
        record.write(self.folder)
        self._plot(rows, loss_title(self.name, diverged=True))
        message = str(err)
        if err.last_good is not None:
            message += ("\n  after a change, continue from the last good snapshot with: "
                        f"{self.resume_hint(err.last_good[2])} --allow-changes")
        raise Diverged(message, iteration=k, where=err.where, last_good=err.last_good,
                       loss=err.loss) from None

    def write_failed(self, err):
        """A file could not be written: one line naming it and the last complete snapshot
        (which still resumes)."""
        last = snapshot_of(self.folder)
        if last is not None:
            where = (f"the last complete snapshot is {last[1]} (iteration {last[0]}); once "
                     f"there is room, resume with: {self.resume_hint(last[1])}")
        else:
            where = "the run has no complete snapshot"
        raise SeqgenRuntimeError(f"{err}; {where}") from None
