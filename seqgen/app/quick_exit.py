"""Ending the `seqgen` process without tearing the interpreter down, for commands that allow it.

After `seqgen generate`, Python's own exit took 0.27 s of the command's 1.3 s (2-core Xeon,
docs/performance.md "Start-up"): it frees numba's and matplotlib's objects module by module
and collects them, work whose only result is memory the system takes back anyway. A
command that allows it (`set_defaults(quick_exit=True)` on its parser) has written and
closed its files by then, so `leave_now` does what exit does that is seen — the exit
handlers (atexit: logging's flush, temporary folders), the standard streams flushed — and
ends the process with os._exit. Instagram's servers did the same (atexit, os._exit) to
skip the final collection.
"""
import atexit
import os
import sys
import threading


def leave_now(code):
    """End the process with exit code `code` after the exit handlers and a flush of stdout
    and stderr; return (and let the interpreter exit as usual) when a non-daemon thread
    still runs (the usual exit waits for it), when a stream cannot be flushed (the usual
    exit reports it) or when this Python has no way to run the exit handlers."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon]
    if run_exit_handlers is None or others or not _flushed():
        return
    run_exit_handlers()  # (each runs once: the list is emptied)
    if _flushed():
        os._exit(code)


def _flushed():
    """Flush stdout and stderr; False if either fails."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            return False
    return True
