"""Importing numba or matplotlib without the garbage collector walking what they build.

Importing numba (with its compiler context) and matplotlib makes the objects of some 600
modules, nearly all alive until the process ends. Python's cyclic collector, which runs
every few hundred allocations, walked them 350 times during `seqgen generate`, twice in
full, collecting nothing: 0.1-0.25 s of the command's 1.1 s (docs/performance.md,
"Start-up"). Inside `imports_at_once()` the collector is off. In the `seqgen` process
(`cli.run` calls `freeze_after_imports`) what exists when the block ends is then frozen
(gc.freeze: kept where no collection looks), so that no later full pass walks it again; in
a Python session using seqgen the collector is only paused, since freezing there would also
keep for good whatever garbage of the session's exists at that moment.
"""
import contextlib
import gc

_FREEZE = [False]


def freeze_after_imports():
    """Freeze what imports_at_once's blocks leave (the `seqgen` process only)."""
    _FREEZE[0] = True


@contextlib.contextmanager
def imports_at_once():
    """Run the block (large imports) with the cyclic collector off; see the module's
    docstring for what follows it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if _FREEZE[0]:
                gc.freeze()
            gc.enable()
