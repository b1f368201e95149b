"""kernels.cache_guard: numba's cached kernels are dropped when any kernel source changes,
not only the file of the cached function (a caller's cache holds the callees' code)."""
from pathlib import Path

import seqgen.kernels
from seqgen.kernels.cache_guard import STAMP, drop_stale_cache, sources_digest


def cached_files(folder):
    return sorted(p.name for p in (folder / "__pycache__").glob("*.nb[ic]"))


def fake_cache(folder):
    for name in ("caller.step-10.py311.nbi", "caller.step-10.py311.1.nbc"):
        (folder / "__pycache__" / name).write_bytes(b"compiled")


def test_a_changed_callee_drops_the_callers_cache(tmp_path):
    (tmp_path / "caller.py").write_text("from .callee import f\n")
    (tmp_path / "callee.py").write_text("def f(): return 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "caller.cpython-311.pyc").write_bytes(b"python's own")
    fake_cache(tmp_path)
    assert drop_stale_cache(tmp_path)  # no stamp yet: what is there may be stale
    assert cached_files(tmp_path) == []
    assert (tmp_path / "__pycache__" / STAMP).read_text() == sources_digest(tmp_path)
    fake_cache(tmp_path)  # numba compiles again and caches
    assert not drop_stale_cache(tmp_path)  # nothing changed: the cache stays
    assert len(cached_files(tmp_path)) == 2
    (tmp_path / "callee.py").write_text("def f(): return 2\n")  # caller.py is unchanged
    assert drop_stale_cache(tmp_path)
    assert cached_files(tmp_path) == []
    assert (tmp_path / "__pycache__" / "caller.cpython-311.pyc").exists()


def test_a_renamed_or_new_source_counts(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = sources_digest(tmp_path)
    (tmp_path / "b.py").write_text("")
    with_b = sources_digest(tmp_path)
    assert with_b != before
    (tmp_path / "b.py").rename(tmp_path / "c.py")
    assert sources_digest(tmp_path) not in (before, with_b)


def test_importing_the_kernels_stamps_their_folder():
    folder = Path(seqgen.kernels.__file__).parent
    assert (folder / "__pycache__" / STAMP).read_text() == sources_digest(folder)


def test_numba_cache_dir_is_guarded_too(tmp_path, monkeypatch):
    """With NUMBA_CACHE_DIR numba caches in a subfolder named after the source folder; a
    stale cache there goes as well."""
    from numba.core import caching, config

    src = tmp_path / "kernels"
    src.mkdir()
    (src / "callee.py").write_text("def f(): return 1\n")
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "numba-cache"))
    elsewhere = tmp_path / "numba-cache" / caching._CacheLocator.get_suitable_cache_subpath(
        str(src / "callee.py"))
    elsewhere.mkdir(parents=True)
    (elsewhere / "callee.f-1.py311.nbi").write_bytes(b"compiled")
    drop_stale_cache(src)
    assert list(elsewhere.glob("*.nbi")) == []
    assert (elsewhere / STAMP).read_text() == sources_digest(src)
