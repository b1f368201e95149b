"""Fixtures shared by the test modules (helpers that are plain functions are in helpers.py)."""
import pytest


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A fresh working directory (tmp_path) for tests that run commands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
