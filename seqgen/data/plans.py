"""Data plans: one class per kind of training data, behind one small interface, so that the
training driver knows no kind of data by name.

A plan is chosen from the `--data` spec (and whether the net has inputs) by `plan_class`;
the registry tries each registered class's `accepts` in order. `open` reads and checks the
data before any net is built; `bind` ties the plan to the TRAIN net the Solver built. A plan
then gives the solver its feeding callback, its tester, and says what identifies the data,
what run.json and a snapshot must keep, and what to run next.
"""
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from ..errors import SeqgenError
from ..solver.callbacks import Callback

PLANS = []
#: the modules whose plan classes register when imported, in the order their options are
#: listed: imported when the registry is first read, not with the package, so that what
#: reads a sequence only (data.sources, for `seqgen generate`) needs no training side
PLAN_MODULES = ("arrays", "own", "sequence", "text")


@dataclass(frozen=True)
class Option:
    """One option of `seqgen train` that a kind of data takes, declared once on its plan
    class: the command line, the plan, run.json and a resume, and a sweep read it here."""

    field: str  # the PlanOptions (and TrainOptions) field
    flag: str
    help: str
    type: type = str  # of the value: str, float or int (a positive whole number)
    metavar: str | None = None
    choices: tuple | None = None
    #: a flag without a value that turns something off (the field is then False, else None)
    switch: bool = False
    #: the value a switch sets (True: it turns something on)
    switch_to: bool = False
    #: where a snapshot's run keeps it (a RunSettings field, or FIELD.KEY inside a dict
    #: field), for a resume to take it back; None: not taken back
    recorded: str | None = None
    #: the value a resume takes back without saying so (a run's default)
    default: object = None
    #: whether a resume takes it back, given the options so far (None: always)
    resumes_if: Callable | None = None
    #: a resume says it where its FIELD.KEY comes in the recorded dict, among the options so
    #: marked (as seqgen 0.1.0 said the feedback schedule), not where it is declared
    in_recorded_order: bool = False
    #: whether the other kinds of data refuse it when it is given
    refused: bool = True
    #: whether a sweep KEY may name it (then `problem` checks its values)
    sweep: bool = False
    #: value -> what it must be, or None when it is good (for sweep KEYs)
    problem: Callable | None = None
    #: the one input mode it applies to (a sweep refuses it for runs of another), or None
    only_mode: str | None = None

    def recorded_value(self, settings):
        """Its value in a run's RunSettings (None: not recorded)."""
        if self.recorded is None:
            return None
        name, _, key = self.recorded.partition(".")
        value = getattr(settings, name, None)
        return (value or {}).get(key) if key else value

    def recorded_place(self, settings):
        """Where its key comes in the recorded dict (after all keys when not there)."""
        name, _, key = self.recorded.partition(".")
        keys = list(getattr(settings, name, None) or {})
        return keys.index(key) if key in keys else len(keys)

    def said(self, value):
        """How the option appears on a command line with `value`."""
        return self.flag if self.switch else f"{self.flag} {value}"


def register_plan(cls):
    """Class decorator: make a plan class available to `plan_class` (tried in order)."""
    PLANS.append(cls)
    return cls


def registered_plans():
    """Every registered plan class: the built-in ones (all imported now) in PLAN_MODULES'
    order, whichever was imported first, then any other in the order it registered."""
    for name in PLAN_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    rank = {f"{__package__}.{name}": k for k, name in enumerate(PLAN_MODULES)}
    return sorted(PLANS, key=lambda cls: rank.get(cls.__module__, len(rank)))


def plan_options():
    """Every registered plan's options, in the order of `registered_plans`."""
    return tuple(option for cls in registered_plans() for option in cls.options)


def resume_order(settings):
    """The options in the order a resume takes them back and says so: as declared, except
    those `in_recorded_order`, which take their places in the order `settings` lists them."""
    options = list(plan_options())
    places = [i for i, o in enumerate(options) if o.in_recorded_order]
    moved = sorted((options[i] for i in places), key=lambda o: o.recorded_place(settings))
    for i, option in zip(places, moved):
        options[i] = option
    return options


class PlanOptions(SimpleNamespace):
    """The training options a plan may read: the data spec, whether a run resumes (the
    snapshot's path, else False; then its recorded settings count, not the net file's), a
    vocabulary to reuse (a text run's), and every plan's declared options (None: not
    given)."""

    def __init__(self, data=None, resuming=False, vocab=None, **given):
        values = {option.field: None for option in plan_options()}
        unknown = set(given) - set(values)
        if unknown:
            raise TypeError(f"no data option {', '.join(sorted(unknown))}")
        super().__init__(data=data, resuming=resuming, vocab=vocab, **{**values, **given})


def on_off(value):
    """A fingerprint's text for an option: on/off, (none), or the value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "(none)" if value is None else str(value)


class DataPlan(Callback):
    """What feeds a training run. Subclasses override what applies to their kind of data;
    the defaults describe a plan that feeds nothing and tests nothing. As a solver
    Callback, a plan writes the TRAIN net's inputs (before_forward) and keeps its position
    in the data in snapshots (snapshot_state / restore_state)."""

    #: run.json's "data_kind"
    kind = "none"
    #: what the refusal of one of this plan's options by another plan calls this data
    described = "other data"
    #: the options this kind of data takes besides the spec (Options)
    options = ()
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
    def misread(cls, spec, net_path):
        """The one line refusing `spec` (None: no --data) for a net this kind of data
        recognises as its own (a text net's Embed reading token ids), when the spec is not
        this kind's; None when it has nothing to say."""
        return None

    @classmethod
    def check_options(cls, options):
        """Refuse options that make no sense for this kind of data (before anything is
        read)."""
        for option in plan_options():
            value = getattr(options, option.field)
            if option.refused and value is not None and option not in cls.options:
                raise SeqgenError(cls.refusal(option.flag, value, options))

    @classmethod
    def refusal(cls, flag, value, options):
        """The one line refusing another kind of data's option `flag`."""
        owner = next((c for c in registered_plans() if any(o.flag == flag for o in c.options)),
                     None)
        return (f"{flag} is for {owner.described if owner else 'other data'}; it is not used "
                f"with {options.data or 'the default data (no --data given)'}")

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
        """The options that define a run of this data beyond the net and the solver (the
        keys every run's fingerprint has had since 0.1.0, as a run without them sets them)."""
        return {"--input": "(none)", "--holdout": "(none)", "feedback (--no-feedback)": "off"}

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

    def adapted_net(self, net_path, folder):
        """(NetParameter, its path in `folder`) of a copy of the net this data needs
        trained instead (written by prepare_folder; run.json names it), or None."""
        return None

    def final_scores(self, solver):
        """Scores of the trained net to log and record at the end (a test split...)."""
        return {}

    def final_record(self, solver):
        """run.json fields known only when a session ends (a sequence run's best checked
        weights)."""
        return {}

    def notes_on_resume(self):
        """Lines for the log when a run resumes."""
        return []

    def check_resume(self, snapshot_folder):
        """Refuse to resume a snapshot of `snapshot_folder` when this data would change
        what the net's inputs mean (even with --allow-changes)."""

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


def check_spec(spec, net_path):
    """Refuse a --data spec (or none) that a registered kind of data recognises as wrong
    for the net, before any data is read: its line says what to give instead."""
    for cls in registered_plans():
        message = cls.misread(spec, net_path)
        if message:
            raise SeqgenError(message)


def plan_class(spec, has_inputs):
    """The registered plan class that reads `spec`."""
    for cls in sorted(registered_plans(), key=lambda c: c.order):
        if cls.accepts(spec, has_inputs):
            return cls
    raise SeqgenError(f"--data {spec}: no kind of data seqgen knows reads it")
