"""kernels.prefetch: the hint the GEMM recurrences give for the next step's rows reaches the
machine code (one L2 prefetch per 64-byte line asked for), and reading any span inside an
array, up to its last element, is safe to ask for; the L2's size, which decides whether a
recurrence prefetches, read from sysfs."""
import platform
import re

import numpy as np
import pytest
from numba import from_dtype, njit

from seqgen.kernels.prefetch import l2_bytes, prefetch_span

pytestmark = pytest.mark.numerics


@njit(cache=False)
def _ask(a, start, count):
    prefetch_span(a, start, count)
    return a[start]


def _compiled(dtype):
    a = np.arange(40, dtype=dtype)
    assert _ask(a, 24, 16) == 24  # the array is unchanged and read as before
    sig = [s for s in _ask.signatures if s[0].dtype == from_dtype(np.dtype(dtype))][0]
    return _ask.inspect_llvm(sig), _ask.inspect_asm(sig)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_span_becomes_l2_prefetches(dtype):
    ir, asm = _compiled(dtype)
    # read (0), locality 2 (L2), data cache (1)
    # (the name and pointer as LLVM spells them with opaque pointers, or typed ones before)
    assert re.search(r"call void @llvm\.prefetch\.p0(i8)?\((ptr|i8\*) [^\n]*, i32 0, i32 2, "
                     r"i32 1\)", ir)
    if platform.machine() in ("x86_64", "AMD64"):
        assert "prefetcht1" in asm


def test_any_span_inside_the_array_is_fine():
    a = np.arange(3 * 50, dtype=np.float32).reshape(3, 50)
    for start, count in [(0, 150), (149, 1), (100, 50), (0, 0), (17, 33)]:
        assert _ask(a.reshape(-1), start, count) == a.reshape(-1)[start]


def test_the_l2_size_is_read_from_sysfs(tmp_path):
    for index, (level, size) in enumerate([("1", "48K"), ("1", "32K"), ("2", "2048K"),
                                           ("3", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "size").write_text(size + "\n")
    assert l2_bytes(tmp_path) == 2 << 20
    (tmp_path / "index2" / "size").write_text("1M\n")
    assert l2_bytes(tmp_path) == 1 << 20
    (tmp_path / "index2" / "size").write_text("512K\n")
    assert l2_bytes(tmp_path) == 512 << 10


def test_without_sysfs_the_l2_is_taken_as_1_mib(tmp_path):
    assert l2_bytes(tmp_path / "absent") == 1 << 20
    (tmp_path / "index0").mkdir()
    (tmp_path / "index0" / "level").write_text("2\n")
    (tmp_path / "index0" / "size").write_text("lots\n")
    assert l2_bytes(tmp_path) == 1 << 20
