"""Importing numba and matplotlib for the `seqgen` command at less cost.

Importing numba (with its compiler context) and matplotlib makes the objects of some 600
modules, nearly all alive until the process ends. Python's cyclic collector, which runs
every few hundred allocations, walked them 350 times during `seqgen generate`, twice in
full, collecting nothing: 0.1-0.25 s of the command's 1.1 s (docs/performance.md,
"Start-up"). Inside `imports_at_once()` the collector is off. In the `seqgen` process
(`cli.run` calls `as_the_command`) what is alive when the block ends is then frozen
(gc.freeze: kept where no collection looks), so that no later full pass walks it again.

matplotlib also writes, for every Artist class it defines, a docstring listing the class's
properties (`matplotlib.artist.kwdoc`, for its `set`): a quarter of its import (80 of
335 ms CPU), for text that only help() shows. The `seqgen` process, which shows none,
imports matplotlib (`matplotlib_figure`) with kwdoc answering "" while it loads, and puts
kwdoc back after; the pictures are the same to the byte.

In a Python session using seqgen neither is done: the collector is only paused, since
freezing there would also keep for good whatever garbage of the session's exists at that
moment, and the session's help() keeps its docstrings.
"""
import contextlib
import gc
import sys

_COMMAND = [False]


def as_the_command():
    """Say that this process is the `seqgen` command (see the module's docstring)."""
    _COMMAND[0] = True


@contextlib.contextmanager
def imports_at_once():
    """Run the block (large imports) with the cyclic collector off; in the `seqgen`
    process, collect first (cheap: what earlier blocks made is frozen), so that only what
    is alive when the block ends gets frozen."""
    enabled = gc.isenabled()
    if enabled and _COMMAND[0]:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if _COMMAND[0]:
                gc.freeze()
            gc.enable()


def matplotlib_figure():
    """matplotlib's Figure and Agg canvas classes (no pyplot), imported at once; in the
    `seqgen` process without the property lists of its Artist classes' docstrings."""
    with imports_at_once(), _without_property_docs():
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: 0.3 s to import
        from matplotlib.figure import Figure  # lazy: only when drawing
    return Figure, FigureCanvasAgg


@contextlib.contextmanager
def _without_property_docs():
    """matplotlib.artist.kwdoc answering "" inside the block, when this is the `seqgen`
    process and matplotlib's figure module is still to be imported."""
    artist = None
    if _COMMAND[0] and "matplotlib.figure" not in sys.modules:
        import matplotlib.artist as artist  # lazy: only to import the rest at less cost
    kwdoc = getattr(artist, "kwdoc", None)
    if kwdoc is not None:
        artist.kwdoc = _no_properties
    try:
        yield
    finally:
        if kwdoc is not None:
            artist.kwdoc = kwdoc


def _no_properties(artist):
    return ""
