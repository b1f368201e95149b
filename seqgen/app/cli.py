"""`seqgen` command line: argument parsing and printing over the Python API, nothing more."""
import argparse
import errno
import os
import select
import signal
import sys

from .. import __version__
from ..errors import SeqgenError
from ..limits import INT32_MAX, INT64_MAX, SEED_END, THREADS_MAX, threads_from_env, whole
from .imports import as_the_command, imports_at_once
from .quick_exit import leave_now

# the whole numbers the flags take, each bounded by where it ends (seqgen/limits.py)
ITERS = ("the solver's max_iter is a 32-bit integer", 1, INT32_MAX)
THREADS = whole("--threads", 1, THREADS_MAX)
WORKERS = whole("--workers", 1, THREADS_MAX)


def _log(message):
    """Training log lines reach a pipe (`| tee train.log`) as they are written; when the
    reader goes away (`| head`), the log stops and the training goes on."""
    if sys.stdout is None:
        return
    try:
        print(message, flush=True)
    except (BrokenPipeError, ValueError):
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            sys.stdout = None


def _note(message):
    """Everything but a command's result (Using..., Wrote..., notes, warnings) goes to
    stderr, so that stdout carries only the result: `seqgen generate | head` reads the
    sample alone."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed: a note is not worth failing for
        pass


def cmd_train(args):
    from ..data import plan_options  # lazy: --help and --version need no numba
    from .train import TrainOptions, train  # lazy: --help and --version need no numba

    # flags not given (None) mean the default, or, with --resume, the snapshot's run's
    options = TrainOptions(iters=args.iters, weights=args.weights, data=args.data,
                           fork_compat=True if args.fork_compat else None,
                           out=args.out, resume=args.resume, seed=args.seed,
                           sigint_effect=args.sigint_effect,
                           sighup_effect=args.sighup_effect, allow_changes=args.allow_changes,
                           set_aside_newer=args.set_aside_newer,
                           **{o.field: getattr(args, o.field) for o in plan_options()})
    trained = train(args.net_or_solver, options, log=_log)
    print(f"Run folder: {trained.folder} (next: {trained.next})")


def cmd_generate(args):
    with imports_at_once():  # (numba, its compiler context, the net's modules)
        from .generate_run import generate_command  # lazy: --help and --version need no numba

    for line in generate_command(weights=args.weights, net=args.net, steps=args.steps,
                                 prime=args.prime, out=args.out, mode=args.input,
                                 data=args.data, temperature=args.temperature,
                                 top_k=args.top_k, seed=args.seed, samples=args.samples,
                                  argmax=args.argmax, log=_note, run=args.run,
                                  top_p=args.top_p, beam=args.beam,
                                  beam_alpha=args.beam_alpha, stop=args.stop,
                                  prime_file=args.prime_file, static=args.static):
        print(line)


def cmd_test(args):
    from .text_run import test_command  # lazy: --help and --version need no numba

    for line in test_command(args.run, data=args.data, weights=args.weights, log=_note):
        print(line)


def cmd_plot(args):
    from .replot import replot  # lazy: --help and --version need no numba

    for path in replot(args.target, log=_note):
        _note(f"Wrote {path}")


def cmd_info(args):
    from .info import net_info  # lazy: --help and --version need no numba

    print(net_info(args.net, args.phase, args.stage))


def cmd_export(args):
    from ..export.commands import export  # lazy: --help and --version need no numba

    for line in export(args.source, net=args.net, fmt=args.format, graph=args.graph,
                       out=args.out, force=args.force):
        _note(line)


def cmd_import(args):
    from ..export.torch_state import import_torch  # lazy: --help and --version need no numba

    for line in import_torch(args.source, args.net, args.out, force=args.force):
        _note(line)


def cmd_draw(args):
    from .draw import draw_net  # lazy: --help and --version need no numba

    _note(f"Wrote {draw_net(args.net, args.out, args.phase, args.stage, args.force)}")


def cmd_pycaffe(args):
    from ..caffe.script import run_script  # lazy: --help and --version need no numba

    return run_script(args.script, args.args)


def _given_threads(args):
    """--threads, else $SEQGEN_THREADS, else None (not given)."""
    threads = getattr(args, "threads", None)
    if threads is None and os.environ.get("SEQGEN_THREADS", "").strip():
        threads = threads_from_env()
    return threads


def cmd_sweep(args):
    from ..sweep.sweep import SweepOptions, sweep  # lazy: --help and --version need no numba

    options = SweepOptions(sets=args.set or [], seeds=args.seeds,
                           modes=args.input.split(",") if args.input else None,
                           iters=args.iters, data=args.data, out=args.out,
                           workers=args.workers, scheduler=args.scheduler,
                           threads=_given_threads(args))
    swept = sweep(args.source, options, log=_log)
    bad = sum(r["status"] != "ok" for r in swept.results.values())
    print(f"Sweep folder: {swept.out} ({len(swept.results) - bad} ok, {bad} not; "
          f"open {os.path.join(swept.out, 'index.html')})")
    return 1 if bad else 0


def cmd_caffe(args):
    from .caffe_tool import caffe_main  # lazy: --help and --version need no numba

    return caffe_main(args.argv)


def add_sweep_parser(sub, common):
    """`seqgen sweep`'s arguments."""
    w = sub.add_parser("sweep", parents=[common],
                       help="train many runs (a grid of settings x input modes x seeds) on "
                            "Dask distributed, then tabulate and report them")
    w.add_argument("source", metavar="SOLVER_OR_SWEEPFILE",
                   help="a solver or net prototxt, or a .json sweep file listing several")
    w.add_argument("--set", action="append", metavar="KEY=V1,V2,...",
                   help="a grid: KEY is a solver field (base_lr) or LAYER.FIELD of the net "
                        "(lstm1.num_output, in the layer's lstm_param, recurrent_param, "
                        "inner_product_param, ...); repeat for more keys")
    w.add_argument("--seeds", type=whole("--seeds", 1, INT32_MAX), metavar="K",
                   help="K runs per combination, with random_seed 1..K (default 1)")
    w.add_argument("--input", metavar="MODES",
                   help="input modes, comma-separated: previous,zero (default: previous)")
    w.add_argument("--iters", type=whole("--iters", *ITERS[1:], ITERS[0]), metavar="N",
                   help="override every solver's max_iter")
    w.add_argument("--data", metavar="SPEC", help="data of every run, as seqgen train's --data")
    w.add_argument("--out", metavar="DIR",
                   help="sweep folder, one run folder per run (default: sweeps/NAME); the "
                        "same command continues the sweep in it")
    w.add_argument("--workers", type=WORKERS, metavar="W",
                   help="local worker processes (default: one per core), each run with an "
                        "equal share of the cores, or --threads N")
    w.add_argument("--scheduler", metavar="ADDR",
                   help="run on a Dask cluster (tcp://HOST:8786; default: "
                        "$DASK_SCHEDULER_ADDRESS, else a local cluster)")
    w.set_defaults(func=cmd_sweep)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="seqgen",
        description="Train and run Caffe recurrent nets (caffe-lstm Lstm, BVLC LSTM/RNN) "
                    "without Caffe.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    common.add_argument("--threads", type=THREADS, metavar="N", default=argparse.SUPPRESS,
                        help="threads for BLAS and the kernels (default 1, or "
                             "$SEQGEN_THREADS); large text nets gain from 2")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"seqgen {__version__}",
                        help="print seqgen's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=CommandParser)

    _add_train(sub, common)
    _add_generate(sub, common)
    _add_others(sub, common)
    return parser


def _add_train(sub, common):
    t = sub.add_parser("train", parents=[common], later=_add_data_options,
                       help="train a net on a sequence (solver or net prototxt)")
    t.add_argument("net_or_solver", metavar="NET_OR_SOLVER")
    t.add_argument("--iters", type=whole("--iters", *ITERS[1:], ITERS[0]),
                   help="override the solver's max_iter")
    t.add_argument("--weights", help="start from this .caffemodel (layers matched by name)")
    t.add_argument("--data", metavar="SPEC",
                   help="sinusoid[:LENGTH] or a .csv/.txt/.npy sequence (default: the net's "
                        "sinusoid), an .npz with one array per input blob (walked along "
                        "axis 0 in chunks of the input's length when longer), or text: "
                        "chars:FILE or words:FILE")
    t.add_argument("--fork-compat", action="store_true",
                   help="reproduce the caffe-lstm fork's dW_h term (batch_size 1 only)")
    t.add_argument("--resume", metavar="FILE.solverstate",
                   help="continue a snapshotted run exactly (with the run's --iters, --data, "
                        "--input, --holdout unless given again)")
    t.add_argument("--allow-changes", action="store_true",
                   help="with --resume: continue although the net, the solver or the data "
                        "differ from the snapshot's (e.g. after lowering base_lr)")
    t.add_argument("--set-aside-newer", action="store_true",
                   help="with --resume of a snapshot older than its folder's newest: move "
                        "the newer snapshots, and copy the logs as they are, into the "
                        "subfolder set-aside-TIMESTAMP/, then branch from the snapshot")
    effects = ["stop", "snapshot", "none"]
    t.add_argument("--sigint-effect", choices=effects, default="stop",
                   help="on Ctrl-C (SIGINT), after the current iteration: snapshot and stop "
                        "(default), snapshot and go on, or nothing (caffe's -sigint_effect)")
    t.add_argument("--sighup-effect", choices=effects, default="snapshot",
                   help="on SIGHUP: snapshot and go on (default), stop, or nothing "
                        "(caffe's -sighup_effect)")
    t.add_argument("--seed", metavar="N",
                   type=whole("--seed", 0, INT64_MAX, "seeds are 0 to 2**63-1, the solver's "
                              "random_seed being an int64"),
                   help="random seed (the solver's random_seed): repeats a run exactly")
    t.add_argument("--out", metavar="DIR",
                   help="run folder (default: runs/NAME-TIMESTAMP; with --resume, the "
                        "snapshot's run folder)")
    t.set_defaults(func=cmd_train)


def _add_data_options(parser):
    """The options the kinds of data take (--input, --holdout, --split, ...), as their plans
    declare them."""
    from ..data import plan_options  # lazy: the plans import numba; only train needs them

    for o in plan_options():
        if o.switch:
            parser.add_argument(o.flag, dest=o.field, action="store_const",
                                const=o.switch_to, help=o.help)
        else:
            parser.add_argument(o.flag, dest=o.field, metavar=o.metavar, choices=o.choices,
                                type=whole(o.flag, 1, INT32_MAX) if o.type is int else o.type,
                                help=o.help)


class CommandParser(argparse.ArgumentParser):
    """A command's parser that adds some of its arguments (`later(parser)`) only when the
    command is parsed or its help shown: reading them may import much (the data plans)."""

    def __init__(self, *args, later=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.later = later

    def parse_known_args(self, args=None, namespace=None):
        if self.later is not None:
            later, self.later = self.later, None
            later(self)
        return super().parse_known_args(args, namespace)


def _top_p(text):
    """--top-p: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:
        raise SeqgenError(f"--top-p must be a number in (0, 1] (1 keeps every token), got "
                          f"{text!r}")
    return value


def _add_generate(sub, common):
    g = sub.add_parser("generate", parents=[common],
                       help="sample text from a text run, or run a sequence net free-running "
                            "and plot it")
    g.add_argument("run", metavar="RUN", nargs="?",
                   help="run folder, or a .caffemodel inside one (default: the latest run)")
    g.add_argument("--weights", help=".caffemodel, in a run folder or loose with --net; or a "
                   "run folder (as RUN) (default: the last snapshot of RUN or the latest run)")
    g.add_argument("--net", help="net prototxt (default: the run's)")
    g.add_argument("--steps", type=whole("--steps", 1, INT64_MAX),
                   help="how many steps (default: the run's sequence length)")
    g.add_argument("--prime", metavar="K_OR_TEXT",
                   help="sequence runs: feed K true values before running free; text runs: "
                        "the text to start from (default: a newline)")
    g.add_argument("--temperature", type=float, metavar="T",
                   help="text: sample from softmax(logits / T) (default 1; near 0: argmax)")
    g.add_argument("--top-k", type=whole("--top-k", 0, INT32_MAX), metavar="K",
                   help="text: sample among the K most likely tokens only (default: all)")
    g.add_argument("--seed", metavar="S",
                   help="text: the sampling seed (default 123, char-rnn's: the same command "
                        "draws the same text)",
                   type=whole("--seed", 0, SEED_END - 1, "numpy's seeds are 0 to 2**64-1"))
    g.add_argument("--samples", type=whole("--samples", 1, INT32_MAX), metavar="M",
                   help="text: how many samples (default 1)")
    g.add_argument("--argmax", action="store_true",
                   help="text: always take the most likely token")
    g.add_argument("--top-p", type=_top_p, metavar="P",
                   help="text: sample among the most likely tokens holding probability P")
    g.add_argument("--beam", type=whole("--beam", 1, INT32_MAX), metavar="K",
                   help="text: beam search, printing the K most likely texts")
    g.add_argument("--beam-alpha", type=float, metavar="A",
                   help="text: --beam ranks by logprob / length**A (default 1)")
    g.add_argument("--stop", action="append", metavar="STRING",
                   help="text: end a sample when it produces STRING (repeatable)")
    g.add_argument("--prime-file", metavar="FILE", help="text: read the prime from FILE")
    g.add_argument("--static", metavar="FILE.npy",
                   help="text: the net's static input (x_static), fed at every step")
    g.add_argument("--input", choices=["previous", "zero"], help="default: the run's mode")
    g.add_argument("--data", metavar="SPEC", help="true sequence (default: the run's)")
    g.add_argument("--out", metavar="DIR", help="where to write (default: the run folder)")
    g.set_defaults(func=cmd_generate, quick_exit=True)


def _add_others(sub, common):
    """test, info, plot, export, import, draw."""
    q = sub.add_parser("test", parents=[common],
                       help="score a trained text run on its test split (else its "
                            "validation split) or on another file")
    q.add_argument("run", metavar="RUN", nargs="?",
                   help="run folder, or a .caffemodel inside one (default: the latest run)")
    q.add_argument("--data", metavar="FILE",
                   help="score on this file instead (read as the run's chars or words)")
    q.add_argument("--weights", help=".caffemodel (default: the run's last snapshot)")
    q.set_defaults(func=cmd_test)

    net_phase = argparse.ArgumentParser(add_help=False)  # NET [--phase] [--stage] of info, draw
    net_phase.add_argument("net", metavar="NET", help="net prototxt (or a solver naming one)")
    net_phase.add_argument("--phase", type=str.upper, choices=["TRAIN", "TEST"],
                           default="TRAIN", help="which phase's layers (default: TRAIN)")
    net_phase.add_argument("--stage", action="append", default=[], metavar="STAGE",
                           help="a NetState stage (repeatable), as a solver's train_state / "
                                "test_state sets it: the layers of that stage's net")
    i = sub.add_parser("info", parents=[common, net_phase],
                       help="print the net's layers, blob shapes and parameters as Caffe "
                            "logs them")
    i.set_defaults(func=cmd_info)

    p = sub.add_parser("plot", parents=[common],
                       help="redraw the figures of a run or a generated.csv")
    p.add_argument("target", nargs="?", metavar="RUN_OR_CSV",
                   help="run folder or CSV (default: the latest run)")
    p.set_defaults(func=cmd_plot)

    e = sub.add_parser("export", parents=[common],
                       help="write a trained net as ONNX (step or sequence graph) or as a "
                            "PyTorch state dict (safetensors)")
    e.add_argument("source", metavar="RUN_OR_WEIGHTS", help="run folder or .caffemodel")
    e.add_argument("--net", help="net prototxt (default: the run's)")
    e.add_argument("--format", metavar="onnx|torch", help="onnx or torch")
    e.add_argument("--graph", metavar="step|sequence",
                   help="ONNX graph: one time step with explicit state (default) or the "
                        "whole sequence without restarts")
    e.add_argument("--out", metavar="FILE", help="FILE.onnx or FILE.safetensors")
    _add_force(e)
    e.set_defaults(func=cmd_export)

    m = sub.add_parser("import", parents=[common],
                       help="write a .caffemodel from a PyTorch state dict (safetensors) "
                            "that seqgen export --format torch wrote")
    m.add_argument("source", metavar="FILE.safetensors")
    m.add_argument("--net", required=True, help="net prototxt the weights are for")
    m.add_argument("--out", required=True, metavar="W.caffemodel")
    _add_force(m)
    m.set_defaults(func=cmd_import)

    add_sweep_parser(sub, common)

    # Caffe's own flags (-solver=S, --weights W, ...) go to caffe_flags.py as given: this
    # parser takes none itself ('+' prefix), so argparse leaves every '-' argument alone
    c = sub.add_parser("caffe", prefix_chars="+", add_help=False,
                       help="Caffe's command line: seqgen caffe train|test|time|device_query "
                            "with caffe's flags (-solver, -weights, -model, -iterations, ...)")
    c.add_argument("argv", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_caffe)

    d = sub.add_parser("draw", parents=[common, net_phase],
                       help="draw the net: layers as boxes, blobs as labelled edges")
    d.add_argument("--out", required=True, metavar="FILE.png|.svg")
    _add_force(d)
    d.set_defaults(func=cmd_draw)

    y = sub.add_parser("pycaffe", parents=[common],
                       help="run a pycaffe script unchanged: its `import caffe` gives "
                            "seqgen.caffe")
    y.add_argument("script", metavar="SCRIPT.py")
    y.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the script's own arguments (its sys.argv[1:])")
    y.set_defaults(func=cmd_pycaffe)


def _add_force(parser):
    parser.add_argument("--force", action="store_true",
                        help="write over an existing --out file (never over the command's "
                             "inputs or a run's files)")


def _write_failure(error):
    """An OSError that escaped a command as a one-line WriteFailed, when it says a file
    could not be written (read-only, forbidden, under a file, full disk); else None (a bug
    keeps its traceback). The net under every command's writes that do not go through
    io.atomic (locks, logs opened for appending)."""
    from ..io.atomic import PLACE_ERRORS, WriteFailed  # lazy: --version imports no numpy

    if error.filename is None or error.errno not in (*PLACE_ERRORS, errno.ENOSPC,
                                                     errno.EDQUOT):
        return None
    return WriteFailed(error.filename, error)


class Terminated(BaseException):
    """SIGTERM outside training (which handles it itself): stop, exit 143."""


def _on_sigterm(signum, frame):
    raise Terminated()


def escaping_output():
    """stdout and stderr write what their encoding cannot hold as backslash escapes
    (PYTHONIOENCODING=ascii, a C locale) instead of failing in the middle of a sample or
    a path."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # replaced (tests) or closed
            pass


def _parse(argv):
    """(parsed arguments, None), or (None, exit code) after printing the one-line error of
    a flag or SEQGEN_THREADS that holds no value seqgen can take."""
    try:
        args = build_parser().parse_args(argv)
        threads = getattr(args, "threads", None)
        if threads is None:
            threads_from_env()  # (seqgen.threads takes it when numba is loaded)
    except SeqgenError as e:
        print(f"seqgen: error: {e}", file=sys.stderr)
        return None, e.exit_code
    if threads is not None:
        from ..threads import set_threads  # lazy: --help and --version need no numba

        set_threads(threads)
    return args, None


def _stdout_closed():
    """Whether stdout is a pipe whose reader has gone (`| head` read its lines): poll says
    POLLERR for it. Not a guess from the BrokenPipeError alone, which a socket can raise."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (replaced, closed)
        return False


def _drop_stdout():
    """Send what stdout still holds to /dev/null, so that flushing it at exit raises
    nothing (Python's own recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run():
    """The `seqgen` script and `python -m seqgen`: the command line, then the process ends
    (without the interpreter's teardown when the command allows, see app/quick_exit.py)."""
    as_the_command()
    sys.exit(main(quick_exit=True))


def main(argv=None, quick_exit=False):
    escaping_output()
    args, code = _parse(argv)
    if args is None:
        return code
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        code = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at exit
        if quick_exit and getattr(args, "quick_exit", False):
            leave_now(code or 0)
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # the reader went away (`seqgen generate | head -1`): the command's files are
        # written before its result is printed, so it ends as it would have, quietly
        _drop_stdout()
        return 0
    except SeqgenError as e:
        if args.debug:
            raise
        print(f"seqgen: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        failed = _write_failure(e)
        if args.debug or failed is None:
            raise
        print(f"seqgen: error: {failed}", file=sys.stderr)
        return failed.exit_code
    except KeyboardInterrupt:
        print("seqgen: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("seqgen: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code or 0


if __name__ == "__main__":
    run()
