"""The one line seqgen says when numba really compiles one of its kernels (a cache miss),
never when they load from numba's cache: numba's "numba:compile" event fires only then."""
import sys

from numba.core import event

NOTICE = ("Compiling seqgen's kernels for this machine (first run only; later runs load them "
          "from numba's cache)...")


class CompileNotice(event.Listener):
    """Says NOTICE on stderr once per process, before the first kernel of this package that
    numba compiles rather than loads."""

    def __init__(self, package):
        self.package = package
        self.said = False

    def on_start(self, ev):
        if self.said:
            return
        function = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(function, "__module__", "").startswith(self.package):
            self.said = True
            try:
                print(NOTICE, file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr closed: the notice is not worth failing
                pass

    def on_end(self, ev):
        pass


def listen(package):
    """Register the notice for the kernels of `package` (once, at its import)."""
    listener = CompileNotice(package)
    event.register("numba:compile", listener)
    return listener
