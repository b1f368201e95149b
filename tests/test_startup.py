"""`seqgen --version` and `seqgen --help` answer without importing numba or the net: the
commands' modules (and the data plans' options) are imported only when a command runs.
`seqgen generate` on a sequence run imports neither the training side (solver, data plans,
feeders) nor the text side, and matplotlib's Figure but not pyplot: each costs start-up
time (docs/performance.md, "Start-up")."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
#: what a sequence run's `seqgen generate` must not import (see the module docstring)
NOT_FOR_GENERATE = ("seqgen.solver", "seqgen.data.plans", "seqgen.data.feeder",
                    "seqgen.data.arrays", "seqgen.data.sequence", "seqgen.data.text",
                    "seqgen.data.own", "seqgen.app.text_run", "seqgen.generation.decoding",
                    "seqgen.io.solverstate", "matplotlib.pyplot")


def imported_modules(*args, cwd=None):
    """The modules `python -m seqgen ARGS` imports (from -X importtime's report)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqgen", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:")]
    assert "seqgen.app.cli" in names  # (the report is read right)
    return set(names)


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_numba(args):
    modules = imported_modules(*args)
    assert not {m for m in modules if m == "numba" or m.startswith("numba.")}
    assert "seqgen.net" not in modules and "seqgen.layers" not in modules


def test_the_package_gives_its_names_on_first_use():
    code = ("import sys, seqgen; assert 'numba' not in sys.modules; "
            "from seqgen import Net, Solver, TEST, TRAIN, get_solver, SeqgenError; "
            "assert seqgen.Net is Net and callable(seqgen.prototxt.read_net); "
            "assert 'numba' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def within(modules, names):
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_the_generate_module_imports_no_training_side_and_no_matplotlib():
    code = ("import sys, seqgen.app.generate_run\n"
            "print('\\n'.join(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    modules = set(done.stdout.split())
    assert "seqgen.app.generate_run" in modules and "seqgen.data.sources" in modules
    assert within(modules, NOT_FOR_GENERATE + ("matplotlib",)) == []


def test_a_sequence_run_generates_without_the_training_side(tmp_path):
    shutil.copytree(FIXTURES / "main_run", tmp_path, dirs_exist_ok=True)
    modules = imported_modules("generate", "runs/short", "--steps", "20", cwd=tmp_path)
    assert (tmp_path / "runs" / "short" / "generated.png").stat().st_size > 0
    assert {"seqgen.net", "seqgen.kernels.generate", "matplotlib.figure"} <= modules
    assert within(modules, NOT_FOR_GENERATE) == []


def test_the_data_plans_register_in_one_order_whatever_is_imported_first():
    """The plans register when their registry is first read (not with seqgen.data): the
    order of their options (train's --help, a resume's notes) is the modules' order even
    when one of them was imported before."""
    code = ("import sys\n"
            "for name in sys.argv[1:]:\n"
            "    __import__(name)\n"
            "from seqgen.data import plan_options\n"
            "from seqgen.data.plans import registered_plans\n"
            "print([c.__module__ for c in registered_plans()])\n"
            "print([o.flag for o in plan_options()])\n")
    orders = {subprocess.run([sys.executable, "-c", code, *first], capture_output=True,
                             text=True, check=True, timeout=120).stdout
              for first in ([], ["seqgen.data.text"], ["seqgen.data.sequence"],
                            ["seqgen.data.sources"])}
    assert len(orders) == 1
    modules = orders.pop().splitlines()[0]
    assert modules == str([f"seqgen.data.{m}" for m in ("arrays", "own", "sequence", "text")])


GC_SCRIPT = """
import gc, sys
from seqgen.app import imports
if sys.argv[1] == "seqgen process":
    imports.as_the_command()
passes = []
gc.callbacks.append(lambda phase, info: passes.append(info) if phase == "stop" else None)
with imports.imports_at_once():
    start = len(passes)  # (the seqgen process collects before the block)
    import matplotlib.figure
    inside = len(passes) - start
print(inside, gc.isenabled(), gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize("process, frozen", [("seqgen process", True), ("session", False)])
def test_large_imports_run_without_collections_and_freeze_in_the_seqgen_process(process,
                                                                                frozen):
    done = subprocess.run([sys.executable, "-c", GC_SCRIPT, process], capture_output=True,
                          text=True, check=True, timeout=120)
    assert done.stdout.split() == ["0", "True", str(frozen)]


DOCS_SCRIPT = """
import hashlib, sys
import numpy as np
from seqgen.app import imports
from seqgen.app.plot import plot_generation
if sys.argv[1] == "seqgen process":
    imports.as_the_command()
x = np.arange(40)
plot_generation(x, np.sin(x / 4), np.cos(x / 4), 5, path=sys.argv[2], title="a\\nb")
import matplotlib.artist
from matplotlib.lines import Line2D
print("drawstyle" in Line2D.set.__doc__, matplotlib.artist.kwdoc.__module__,
      hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest())
"""


def test_the_seqgen_process_imports_matplotlib_without_property_docs_and_draws_the_same(
        tmp_path):
    said = {}
    for process in ("seqgen process", "session"):
        said[process] = subprocess.run(
            [sys.executable, "-c", DOCS_SCRIPT, process, str(tmp_path / f"{process}.png")],
            capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert said["session"][:2] == ["True", "matplotlib.artist"]
    assert said["seqgen process"][:2] == ["False", "matplotlib.artist"]  # (kwdoc put back)
    assert said["seqgen process"][2] == said["session"][2]  # the same PNG bytes
