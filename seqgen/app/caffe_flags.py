"""The flags of Caffe's `caffe` tool (tools/caffe.cpp), read as gflags reads them:
`-name=value`, `-name value`, `--name=value`, `--name value`, in any order around the
action; `--` ends the flags."""
from dataclasses import dataclass

from ..errors import SeqgenError
from ..limits import INT32_MAX

INT32_MIN = -INT32_MAX - 1
ACTIONS = ("device_query", "test", "time", "train")

#: flag -> (default, description), as caffe.cpp's DEFINE_string / DEFINE_int32 say them
FLAGS = {
    "gpu": ("", "ignored: seqgen runs on the CPU (Caffe: GPU device IDs, or 'all')"),
    "solver": ("", "The solver definition protocol buffer text file."),
    "model": ("", "The model definition protocol buffer text file."),
    "phase": ("", "Optional; network phase (TRAIN or TEST). Only used for 'time'."),
    "level": (0, "Optional; network level."),
    "stage": ("", "Optional; network stages (not to be confused with phase), separated "
                  "by ','."),
    "snapshot": ("", "Optional; the snapshot solver state to resume training."),
    "weights": ("", "Optional; the pretrained weights to initialize finetuning, separated "
                    "by ','. Cannot be set simultaneously with snapshot."),
    "iterations": (50, "The number of iterations to run."),
    "sigint_effect": ("stop", "Optional; action to take when a SIGINT signal is received: "
                              "snapshot, stop or none."),
    "sighup_effect": ("snapshot", "Optional; action to take when a SIGHUP signal is "
                                  "received: snapshot, stop or none."),
}

USAGE = """usage: seqgen caffe <command> <args>

commands:
  train           train or finetune a model
  test            score a model
  device_query    show GPU diagnostic information
  time            benchmark model execution time

flags (-name=value, -name value, --name=value or --name value):
""" + "".join(f"  -{name} ({desc}) default: {default!r}\n"
              for name, (default, desc) in FLAGS.items())


class UsageRequested(Exception):
    """-help / --help: print USAGE and exit 0."""


@dataclass
class CaffeFlags:
    action: str
    gpu: str = ""
    solver: str = ""
    model: str = ""
    phase: str = ""
    level: int = 0
    stage: str = ""
    snapshot: str = ""
    weights: str = ""
    iterations: int = 50
    sigint_effect: str = "stop"
    sighup_effect: str = "snapshot"

    def stages(self):
        """-stage split at commas (Caffe splits "" into one empty stage, which no rule
        names; it is left out)."""
        return [s for s in self.stage.split(",") if s]


def _value(name, text):
    """A flag's value, of its type: int32 flags refuse what gflags refuses."""
    if isinstance(FLAGS[name][0], int):
        try:
            value = int(text, 0) if text.strip() else None
        except ValueError:
            value = None
        if value is None or not INT32_MIN <= value <= INT32_MAX:
            raise SeqgenError(f"caffe: illegal value '{text}' specified for int32 flag "
                              f"'{name}'")
        return value
    return text


def parse_flags(argv):
    """CaffeFlags from the arguments after `seqgen caffe`; raises UsageRequested for
    -help and SeqgenError (one line, gflags' wording) for anything else amiss."""
    values, positional = {}, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            positional.extend(args)
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, eq, text = arg.lstrip("-").partition("=")
        if name in ("help", "helpfull", "helpshort", "h"):
            raise UsageRequested()
        if name not in FLAGS:
            raise SeqgenError(f"caffe: unknown command line flag '{name}' (flags: "
                              f"{', '.join('-' + f for f in FLAGS)})")
        if not eq:
            if not args:
                raise SeqgenError(f"caffe: flag '{name}' is missing its argument; flag "
                                  f"description: {FLAGS[name][1]}")
            text = args.pop(0)
        values[name] = _value(name, text)
    if len(positional) != 1:
        what = "no action" if not positional else f"{len(positional)} actions " \
            f"({' '.join(positional)})"
        raise SeqgenError(f"caffe: give one action, {', '.join(ACTIONS)} (got {what}); "
                          "usage: seqgen caffe ACTION -flag=value ...")
    if positional[0] not in ACTIONS:
        raise SeqgenError(f"caffe: Unknown action: {positional[0]} (available caffe "
                          f"actions: {', '.join(ACTIONS)})")
    return CaffeFlags(action=positional[0], **values)
