"""Sequence data as the fork's lstm_sequence driver feeds it: the built-in sinusoid or a
user's .csv/.txt/.npy file, walked in chunks of the net's T with the clip marker carrying
state across chunks, in input mode "previous" (with the feedback schedule) or "zero"; an
optional held-out tail is tested on."""
import functools
import hashlib
import os
import re

import numpy as np

from ..errors import SeqgenError
from ..generation.inputs import MODES, input_roles
from ..net import TEST, Net
from . import flat_restart, keep_best
from .feedback import FeedbackSchedule, FeedbackSettings
from .feeder import SequenceFeeder
from .free_running import FreeRunningScore
from .holdout import HeldOutTest, holdout_plan
from .plans import DataPlan, Option, on_off, register_plan
from .sources import resolve_source

_LENGTH_DIRECTIVE = re.compile(r"^#\s*seqgen:\s*sequence_length\s+(\d+)\s*$", re.M)
_KNOWN_LENGTHS = {"lstm_long": 960, "deep_lstm_long": 960}
#: the fork's driver sets every LSTM's forget-gate bias to this after building the net
FORK_FORGET_BIAS = 5.0


def _net_text(net_path):
    """The net file's text, where its `# seqgen: ...` lines are read ('' if unreadable:
    reading the net itself reports that)."""
    try:
        with open(net_path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def default_data_spec(net_path):
    """The built-in sinusoid at the length the net's file asks for (a `# seqgen:
    sequence_length N` comment, or the fork's own long configurations by name), else 320."""
    match = _LENGTH_DIRECTIVE.search(_net_text(net_path))
    if match:
        return f"sinusoid:{int(match.group(1))}"
    name = os.path.splitext(os.path.basename(net_path))[0]
    return f"sinusoid:{_KNOWN_LENGTHS.get(name, 320)}"


#: the recipe lines a net file may carry, `# seqgen: NAME VALUE`: NAME -> (the type of its
#: value, what the value must be, or None when it is good)
_RECIPE = {**{f"feedback_{name}": (int if name == "refresh" else float,
                                   functools.partial(FeedbackSettings.problem, name))
              for name in ("share", "ramp", "refresh")},
           "restart_flat": (float, flat_restart.problem),
           "restart_limit": (float, flat_restart.limit_problem),
           "keep_best": (float, keep_best.problem)}
_RECIPE_LINE = re.compile(r"^#\s*seqgen:\s*(\w+)\s+(\S+)\s*$", re.M)


def _recipe_lines(net_path, names):
    """{NAME: value} of the net file's recipe lines for `names` (the last line of a NAME
    counts); SeqgenError naming the file and line of a bad value."""
    text = _net_text(net_path)
    out = {}
    for match in _RECIPE_LINE.finditer(text):
        name, raw = match.groups()
        if name not in names:
            continue
        number, problem = _RECIPE[name]
        try:
            value = number(raw)
        except ValueError:
            value = raw
        want = problem(value)
        if want:
            line = text.count("\n", 0, match.start()) + 1
            raise SeqgenError(f"{net_path}:{line}: {name} must be {want}, not '{raw}'")
        out[name] = value
    return out


def net_recipe(net_path):
    """The feedback settings a net file asks for with `# seqgen: feedback_share P`,
    `feedback_ramp F`, `feedback_refresh K` comment lines ({name: value}); SeqgenError
    naming the file and line of a bad one."""
    feedback = [name for name in _RECIPE if name.startswith("feedback_")]
    return {name.removeprefix("feedback_"): value
            for name, value in _recipe_lines(net_path, feedback).items()}


def recipe_setting(name, options, net_path=None):
    """--restart-flat's fraction, --restart-limit's share or --keep-best's fraction (`name`
    restart_flat, restart_limit or keep_best): the option given, else (for a new run without
    --no-feedback) the net file's `# seqgen: NAME VALUE` line, else the Option's default.
    SeqgenError naming the file and line of a bad line."""
    default = next(o.default for o in SequencePlan.options if o.field == name)
    if getattr(options, name) is not None:
        return getattr(options, name)
    # --no-feedback leaves out the net file's recipe: `--input zero --no-feedback` trains
    # as the fork does, bit for bit (issue 24)
    if not net_path or options.resuming or options.feedback is False:
        return default
    return _recipe_lines(net_path, (name,)).get(name, default)


def feedback_settings(options, net_path=None):
    """The feedback schedule's settings: the options given, else (for a new run) the net
    file's recipe, else the defaults. A resumed run gets its recorded settings as options;
    one that recorded none had the defaults, whatever the net file says now."""
    recipe = net_recipe(net_path) if net_path and not options.resuming else {}
    given = {name: getattr(options, f"feedback_{name}") for name in ("share", "ramp",
                                                                     "refresh")}
    return FeedbackSettings.of(**{k: v if v is not None else recipe.get(k)
                                  for k, v in given.items()})


def _schedule_applies(opts):
    """A resume takes back the recorded feedback schedule unless this session turns it off
    (--input zero, --no-feedback: then the fingerprint says what changed)."""
    return (opts.mode or "previous") == "previous" and opts.feedback is not False


def _feedback_option(name, type, metavar, help):
    default = getattr(FeedbackSettings(), name)
    return Option(f"feedback_{name}", f"--feedback-{name}", help, type, metavar,
                  recorded=f"feedback_schedule.{name}", default=default,
                  resumes_if=_schedule_applies, in_recorded_order=True, sweep=True,
                  problem=lambda value: FeedbackSettings.problem(name, value),
                  only_mode="previous")


@register_plan
class SequencePlan(DataPlan):
    """A sequence walked in chunks of T (the fork's driver), see the module docstring."""

    kind = "sequence"
    described = "sequence data"
    order = 100  # takes any spec: tried after the plans for particular kinds of file
    options = (
        Option("mode", "--input", "sequence data input: the previous value (default) or "
               "always 0 (the fork's)", choices=MODES, recorded="input", default="previous"),
        Option("holdout", "--holdout",
               "hold the last STEPS steps of the sequence's whole chunks (a multiple of the "
               "net's length) out of training and test the net on them (at the solver's "
               "test_interval and at the end; test_loss.csv). Default with test_interval and "
               "test_iter in the solver: test_iter chunks", int, "STEPS", recorded="holdout"),
        Option("feedback", "--no-feedback", "in 'previous' mode, train by teacher forcing "
               "only (no own predictions); in either mode without the net file's restart "
               "and keep-best lines (--input zero --no-feedback: the fork's own training)",
               switch=True, recorded="feedback", default=True, refused=False),
        _feedback_option("share", float, "P", "'previous' mode: the share of the inputs that "
                         "are the net's own predictions once the schedule has ramped up "
                         "(default 1)"),
        _feedback_option("ramp", float, "F", "the fraction of the run over which that share "
                         "rises from 0 (default 0.1)"),
        _feedback_option("refresh", int, "K", "predict the whole sequence free-running every "
                         "K iterations (default 20)"),
        Option("restart_flat", "--restart-flat", "every F of the run, up to its half, "
               "generate free-running and start again from new weights if the output is "
               "still flat (said in the log; 0: off, the default unless the net file has a "
               "'# seqgen: restart_flat F' line)", float, "F", recorded="restart_flat",
               default=0.0, sweep=True, problem=flat_restart.problem),
        Option("restart_limit", "--restart-limit", "with --restart-flat: start again when "
               "the free-running MSE at a check is above S of the sequence's variance (a "
               f"flat line scores 1; default {flat_restart.FAR:g}, or the net file's "
               "'# seqgen: restart_limit S' line); lower catches slow starters too", float,
               "S", recorded="restart_limit", default=flat_restart.FAR, sweep=True,
               problem=flat_restart.limit_problem,
               # (a resume that turns the restarts off does not take the limit back)
               resumes_if=lambda opts: opts.restart_flat != 0),
        Option("keep_best", "--keep-best", "every F of the run and at its end, generate "
               "free-running from a snapshot; the best of them is the run's result, which "
               "generate, test, plot and export use (said in the log; training is unchanged; "
               "0: the last weights, the default unless the net file has a '# seqgen: "
               "keep_best F' line)", float, "F", recorded="keep_best", default=0.0,
               sweep=True, problem=keep_best.problem),
    )

    @classmethod
    def accepts(cls, spec, has_inputs):
        return spec is not None or bool(has_inputs)

    @classmethod
    def check_options(cls, options):
        if options.mode is not None and options.mode not in MODES:
            raise SeqgenError(f"--input must be one of {', '.join(MODES)}, not "
                              f"'{options.mode}'")
        for option in cls.options:  # (the values' ranges)
            value = getattr(options, option.field, None)
            want = option.problem is not None and value is not None and option.problem(value)
            if want:
                raise SeqgenError(f"{option.flag} must be {want}, not {value!r}")
        given = [o.flag for o in cls.options
                 if o.flag.startswith("--feedback-") and getattr(options, o.field) is not None]
        if given and (options.mode or "previous") != "previous":
            raise SeqgenError(f"{given[0]}: the feedback schedule is for input mode "
                              f"'previous', not '{options.mode}'")
        if given and options.feedback is False:
            raise SeqgenError(f"{given[0]} sets the feedback schedule, which --no-feedback "
                              "turns off")
        super().check_options(options)  # (the options of other kinds of data)

    def __init__(self, options, net_path, log):
        super().__init__(options, net_path, log)
        self.data_spec = options.data or default_data_spec(net_path)
        self.source, self.sequence = resolve_source(self.data_spec)
        self.mode = options.mode or "previous"
        self.feedback = feedback_settings(options, net_path)
        self.restart_flat = recipe_setting("restart_flat", options, net_path)
        self.restart_limit = recipe_setting("restart_limit", options, net_path)
        if options.restart_limit is not None and not self.restart_flat:
            raise SeqgenError("--restart-limit sets when --restart-flat restarts a run, and "
                              "restarts are off (give --restart-flat F, or use a net file "
                              "with a '# seqgen: restart_flat F' line)")
        self.keep_best = recipe_setting("keep_best", options, net_path)
        self.schedule = self.tester = self.restarts = self.best = None
        self.held_out = None

    def bind(self, solver):
        net, param = solver.net, solver.param
        _, clip, _ = input_roles(net)
        self.T = T = net.blobs[clip].count
        train_chunks, held, test_chunks = holdout_plan(
            param, self.options.holdout, T, len(self.sequence), self.source, self.log)
        train_part = self.sequence[: train_chunks * T] if held else self.sequence
        self.feeder = SequenceFeeder(net, train_part, self.mode, self.source)
        if held:
            self.held_out = (train_chunks, held, test_chunks)
        if self.mode == "previous" and self.options.feedback is not False:
            self.schedule = FeedbackSchedule(self.feeder, self._test_net(solver),
                                             param.max_iter, self.feedback,
                                             seed=param.random_seed)
        # (a test net only when checked: building one draws from the fillers' generator,
        # which the sidecars keep)
        score = FreeRunningScore(self._test_net(solver), np.asarray(train_part), self.mode) \
            if self.keep_best or self.restart_flat else None
        if self.keep_best:
            self.best = keep_best.KeepBest(self.keep_best, param.max_iter, score, self.log)
        if self.restart_flat:
            self.restarts = flat_restart.FlatRestart(
                self.restart_flat, param.max_iter, score, self.net_path,
                lambda net: self.prepare(net, weights_given=False, resuming=False), self.log,
                self.restart_limit)
        if held:
            self.tester = HeldOutTest(self._test_net(solver), self.sequence, self.mode, T,
                                      train_chunks, test_chunks)
        return self

    def _test_net(self, solver):
        """A TEST net sharing the training weights (one each for generation and testing:
        their carried states must not mix)."""
        net = Net(self.net_path, TEST, options=solver.options)
        net.share_weights(solver.net)
        return net

    # -- the solver callback -----------------------------------------------------------
    def on_start(self, solver):
        if self.best is not None:  # (first: it keeps the weights a restart replaces)
            self.best.check(solver)
        if self.restarts is not None:
            self.restarts.check(solver)

    def before_forward(self, solver):
        if self.schedule is not None:
            self.schedule.update(solver)
        self.feeder(solver)

    def snapshot_state(self, solver):
        meta = {"passes": int(self.feeder.passes)}
        if self.schedule is not None:
            meta["feedback"] = self.schedule.get_state()
        if self.restarts is not None:
            meta["flat_restart"] = self.restarts.get_state()
        if self.best is not None:
            meta["keep_best"] = self.best.get_state()
        return meta, {"inputs": self.feeder.inputs}

    def restore_state(self, solver, meta, arrays):
        if "passes" in meta:
            self.feeder.passes = int(meta["passes"])
        if "inputs" in arrays:
            inputs = np.asarray(arrays["inputs"], np.float32)
            if inputs.shape != self.feeder.inputs.shape:
                raise SeqgenError(f"the snapshot's saved inputs have shape {inputs.shape}, "
                                  f"the data {self.feeder.inputs.shape}")
            self.feeder.inputs = inputs
        if self.schedule is not None and meta.get("feedback"):
            self.schedule.set_state(meta["feedback"])
        if self.restarts is not None and meta.get("flat_restart"):
            self.restarts.set_state(meta["flat_restart"])
        if self.best is not None and meta.get("keep_best"):
            self.best.set_state(meta["keep_best"])

    def restore_without_sidecar(self, solver):
        """A state without a sidecar: the data position follows from the iteration."""
        self.feeder.passes = solver.iter * max(1, solver.param.iter_size)
        if self.schedule is not None and solver.iter:
            self.log("Note: without the sidecar the feedback schedule's inputs are the true "
                     "sequence until its next refresh")

    # -- what the driver asks ----------------------------------------------------------
    def spec(self):
        return self.data_spec

    def held_steps(self):
        return self.held_out[1] * self.T if self.held_out else None

    def describe(self):
        what = (f"{self.source} ({len(self.feeder.sequence)} steps in chunks of "
                f"{self.feeder.T}), input mode '{self.mode}'")
        if self.held_out:
            first = self.held_out[0] * self.T
            what += f"; steps {first}-{first + self.held_steps() - 1} held out for testing"
        return what

    def identity(self):
        digest = hashlib.sha256(np.ascontiguousarray(self.sequence, np.float32).tobytes())
        return digest.hexdigest()[:16]

    def fingerprint_options(self):
        out = {"--input": on_off(self.mode), "--holdout": on_off(self.held_steps()),
               "feedback (--no-feedback)": on_off(self.schedule is not None)}
        settings = self.feedback
        if self.schedule is not None and not settings.is_default():
            # (only then: runs with the default schedule keep the fingerprint they had
            # before the schedule could be set, so their snapshots still resume)
            out["feedback schedule"] = settings.text()
        if self.restart_flat:  # (only then, as the schedule: older runs keep theirs)
            out["--restart-flat"] = f"{self.restart_flat:g}"
            if self.restart_limit != flat_restart.FAR:
                out["--restart-limit"] = f"{self.restart_limit:g}"
        return out

    def record(self):
        settings = self.feedback
        # (the default schedule is not written: a fixed-seed run's run.json and sidecars
        # stay byte for byte what seqgen 0.1.0 wrote, tests/test_run_compat.py)
        custom = self.schedule is not None and not settings.is_default()
        return {"input": self.mode, "holdout_steps": self.held_steps(),
                "feedback_schedule": settings.to_json() if custom else None,
                "restart_flat": self.restart_flat or None,
                "restart_limit": self.restart_limit if self.restart_flat else None,
                "keep_best": self.keep_best or None}

    def prepare(self, net, weights_given, resuming):
        if not weights_given and not resuming:
            for layer in net.layers:
                layer.set_forget_bias(FORK_FORGET_BIAS)

    def notes(self):
        out = []
        settings = self.feedback
        if self.schedule is not None and not settings.is_default():
            source = (f"; {os.path.basename(self.net_path)} asks for it"
                      if settings != feedback_settings(self.options) else "")
            out.append(f"Feedback schedule: {settings.text()} (default "
                       f"{FeedbackSettings().text()}{source})")
        if self.restarts is not None:
            at = self.restarts.checks()
            what = (f"Restart when flat (--restart-flat {self.restart_flat:g}, "
                    f"--restart-limit {self.restart_limit:g})")
            out.append(f"{what}: the free-running output is checked at iteration(s) "
                       f"{', '.join(map(str, at))}" if at else
                       f"{what}: no check in this run (none before iteration "
                       f"{flat_restart.FIRST_CHECK})")
        if self.best is not None:
            at = self.best.checks()
            out.append(f"Keep the best checked weights (--keep-best {self.keep_best:g}): "
                       f"checked every {self.best.every} iterations from {at[0]}, and at the "
                       "end" if at else f"Keep the best checked weights (--keep-best "
                       f"{self.keep_best:g}): checked at the end")
        unused = len(self.sequence) - len(self.feeder.sequence) - (self.held_steps() or 0)
        if unused > 0:
            out.append(f"Note: the last {unused} steps of {self.source} do not fill a chunk "
                       "and are not used")
        return out

    def final_record(self, solver):
        return {"best": self.best.finish(solver)} if self.best is not None else {}

    def finish_test_due(self, solver):
        # with a held-out part seqgen always tests the final weights
        return self.held_out is not None

    def next_hint(self, folder):
        return f"seqgen generate --steps {len(self.sequence)}"

    def data_inputs(self, net):
        return [self.feeder.label]  # (the data input may hold the net's predictions)
