"""Data plans: one class per kind of training data, behind one small interface, so that the
training driver knows no kind of data by name.

A plan is chosen from the `--data` spec (and whether the net has inputs) by `plan_class`;
the registry tries each registered class's `accepts` in order. `open` reads and checks the
data before any net is built; `bind` ties the plan to the TRAIN net the Solver built. A plan
then gives the solver its feeding callback, its tester, and says what identifies the data,
what run.json and a snapshot must keep, and what to run next.
"""
from dataclasses import dataclass

from ..errors import SeqgenError
from ..solver.callbacks import Callback

PLANS = []
#: the PlanOptions a kind of data may not take, by flag (a plan's accepted_options)
OPTION_FLAGS = (("--input", "mode"), ("--holdout", "holdout"),
                ("--feedback-share", "feedback_share"), ("--feedback-ramp", "feedback_ramp"),
                ("--feedback-refresh", "feedback_refresh"))


def register_plan(cls):
    """Class decorator: make a plan class available to `plan_class` (tried in order)."""
    PLANS.append(cls)
    return cls


@dataclass
class PlanOptions:
    """The training options a plan may read (None: not given)."""
    data: str | None = None
    mode: str | None = None
    holdout: int | None = None
    feedback: bool = True
    feedback_share: float | None = None  # sequences: the feedback schedule's settings
    feedback_ramp: float | None = None
    feedback_refresh: int | None = None
    resuming: bool = False  # a resumed run: its recorded settings, not the net file's
    split: str | None = None  # text: --split TRAIN,VAL[,TEST]
    val: str | None = None  # text: --val FILE
    test: str | None = None  # text: --test FILE
    epochs: int | None = None  # text: --epochs E
    early_stop: int | None = None  # text: --early-stop K
    vocab: object = None  # text: a run's Vocabulary to reuse


class DataPlan(Callback):
    """What feeds a training run. Subclasses override what applies to their kind of data;
    the defaults describe a plan that feeds nothing and tests nothing. As a solver
    Callback, a plan writes the TRAIN net's inputs (before_forward) and keeps its position
    in the data in snapshots (snapshot_state / restore_state)."""

    #: run.json's "data_kind"
    kind = "none"
    #: the options this kind of data takes besides the spec (flag -> PlanOptions field)
    accepted_options = {}
    #: plans are tried in this order (lower first): the catch-all sequence plan goes last
    order = 10
    #: the solver's tester (callable(solver) -> results), or None: Solver's own (a TEST net
    #: that reads its own data) or no testing
    tester = None

    @classmethod
    def accepts(cls, spec, has_inputs):
        """Whether this plan reads `spec` (None: no --data given) for a net with or
        without Input blobs."""
        return False

    @classmethod
    def check_options(cls, options):
        """Refuse options that make no sense for this kind of data (before anything is
        read)."""
        for flag, field in OPTION_FLAGS:
            if getattr(options, field) is not None and flag not in cls.accepted_options:
                raise SeqgenError(cls.refusal(flag, getattr(options, field), options))

    @classmethod
    def refusal(cls, flag, value, options):
        return f"{flag} is not used with {options.data or 'this data'}"

    def __init__(self, options, net_path, log):
        self.options, self.net_path, self.log = options, net_path, log

    def bind(self, solver):
        """Tie the plan to the solver's TRAIN net; returns self."""
        return self

    # -- what the driver asks ----------------------------------------------------------
    def spec(self):
        """The data spec as the user gives it (run.json's "data")."""
        return self.options.data

    def describe(self):
        """What is trained on, for the log line `Training NAME on ...`."""
        return str(self.spec())

    def identity(self):
        """A short text that changes whenever the data changes (for resume checks)."""
        return str(self.spec())

    def fingerprint_options(self):
        """The options that define a run of this data beyond the net and the solver."""
        return {}

    def record(self):
        """run.json fields this plan sets (input, holdout_steps, ...)."""
        return {}

    def prepare(self, net, weights_given, resuming):
        """Initialise the fresh net as this kind of experiment does (forget-gate bias...)."""

    def notes(self):
        """Lines for the log before training starts."""
        return []

    def prepare_folder(self, folder):
        """Write what the run folder needs besides the driver's files (a vocabulary...)."""

    def final_scores(self, solver):
        """Scores of the trained net to log and record at the end (a test split...)."""
        return {}

    def notes_on_resume(self):
        """Lines for the log when a run resumes."""
        return []

    def restore_without_sidecar(self, solver):
        """Resuming from a state without a sidecar (written by Caffe): set what follows
        from the iteration alone."""

    def finish_test_due(self, solver):
        """Whether to test the final weights although the last iteration was not on
        test_interval."""
        return False

    def next_hint(self, folder):
        """What to run next, for the `Run folder: ... (next: ...)` line."""
        return "seqgen plot " + folder

    def data_inputs(self, net):
        """The input blobs holding the user's data, to point out badly scaled data (None:
        all inputs)."""
        return None


def plan_class(spec, has_inputs):
    """The registered plan class that reads `spec`."""
    for cls in sorted(PLANS, key=lambda c: c.order):
        if cls.accepts(spec, has_inputs):
            return cls
    raise SeqgenError(f"--data {spec}: no kind of data seqgen knows reads it")
