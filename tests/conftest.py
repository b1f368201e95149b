"""Fixtures shared by the test modules (helpers that are plain functions are in helpers.py)."""
import pytest


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A fresh working directory (tmp_path) for tests that run commands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def own_core_slots(tmp_path_factory, monkeypatch):
    """Sweeps in tests take core slots of their own (seqgen.sweep.cores), never waiting on a
    real sweep that runs on the same machine meanwhile."""
    monkeypatch.setenv("SEQGEN_CORE_LOCKS", str(tmp_path_factory.mktemp("core-slots")))
