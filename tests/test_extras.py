"""seqgen.extras: install hints name the packages pyproject.toml lists for an extra and work
from a clone; the distribution's name and version are the ones the package reports."""
import re
from importlib import metadata

import pytest
from helpers import ROOT

import seqgen
from seqgen import extras

PYPROJECT = (ROOT / "pyproject.toml").read_text()


def pyproject_extra(extra):
    """The requirement strings of one extra, read from pyproject.toml's text."""
    block = re.search(rf"^{extra} = \[(.*?)\]$", PYPROJECT, re.M | re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


@pytest.mark.parametrize("extra", ["onnx", "torch", "hdf5", "sweep"])
def test_the_hint_names_what_pyproject_lists(extra):
    hint = extras.install_hint(extra)
    for requirement in pyproject_extra(extra):
        assert f"'{requirement}'" in hint or f" {requirement}" in hint, (requirement, hint)
    assert hint.endswith(f"pip install '.[{extra}]')")
    assert "seqgen[" not in hint  # the index's `seqgen` is another project


def test_without_metadata_the_hint_still_works_from_a_clone(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(extras.metadata, "requires", missing)
    assert extras.install_hint("onnx") == "pip install '.[onnx]' in seqgen's source folder"


def test_distribution_name_and_version():
    assert re.search(rf'^name = "{extras.DISTRIBUTION}"$', PYPROJECT, re.M)
    version = re.search(r'^version = "([^"]+)"$', PYPROJECT, re.M).group(1)
    assert seqgen.__version__ == version
    assert metadata.version(extras.DISTRIBUTION) == version
