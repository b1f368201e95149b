"""`seqgen --version` and `seqgen --help` answer without importing numba or the net: the
commands' modules (and the data plans' options) are imported only when a command runs."""
import subprocess
import sys

import pytest


def imported_modules(*args):
    """The modules `python -m seqgen ARGS` imports (from -X importtime's report)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqgen", *args],
                          capture_output=True, text=True, timeout=120)
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
