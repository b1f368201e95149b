"""Run a pycaffe script unchanged on seqgen (`seqgen pycaffe SCRIPT.py [ARGS]`, `python -m
seqgen.caffe SCRIPT.py [ARGS]`): `import caffe` gives seqgen.caffe, and the script runs as
`python SCRIPT.py ARGS` would run it (its `sys.argv`, its folder first on `sys.path`, its
exit code, and its own traceback when it fails)."""
import os
import runpy
import sys
import traceback

from ..errors import SeqgenError
from . import install_as_caffe


def _exit_code(exit):
    """The status `python SCRIPT.py` ends with on SystemExit(code)."""
    code = exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(error, script):
    """The traceback from the script's first frame on (runpy's and seqgen's frames above it
    say nothing to the script's author)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or None, file=sys.stderr)


def run_script(path, args=()):
    """Run the script at `path` with `args` as its sys.argv[1:]; returns its exit status."""
    script = os.path.abspath(path)
    if not os.path.isfile(script):
        raise SeqgenError(f"{path}: no such script")
    install_as_caffe()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        return _exit_code(e)
    except Exception as e:  # noqa: BLE001  the script's own error, shown as Python shows it
        _print_user_traceback(e, script)
        return 1
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def main(argv=None):
    """`python -m seqgen.caffe SCRIPT.py [ARGS]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m seqgen.caffe SCRIPT.py [ARGS...]\n\nRun a pycaffe script "
              "with `import caffe` giving seqgen.caffe.", file=sys.stderr)
        return 0 if argv else 2
    try:
        return run_script(argv[0], argv[1:])
    except SeqgenError as e:
        print(f"seqgen: error: {e}", file=sys.stderr)
        return e.exit_code
