"""seqgen.data.sources: the caffe-lstm sinusoid (bit-exact against the fork) and users'
sequence files."""
import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np
import pytest

from seqgen.data.sources import (
    _sinf,
    load_sequence,
    resolve_source,
    sinusoid,
    sinusoid_constants,
)
from seqgen.errors import SeqgenError

# numerics: CI runs these again with numba compiling for a generic CPU (docs/testing.md)
pytestmark = pytest.mark.numerics

E2E = Path(__file__).parent / "golden" / "caffe-lstm" / "e2e_short_2000"


def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def _golden_constants():
    consts = {}
    for line in (E2E / "data_constants.txt").read_text().split("\n"):
        if line.strip():
            k, v = line.split()
            consts[k] = np.float32(v)
    return consts


# ---------------------------------------------------------------- the fork's sinusoid


def test_sinusoid_matches_fork_bit_for_bit():
    # Exact: every one of the 320 float32 values equals the fork's (compared as bit patterns).
    # The golden file has 9 significant digits, which round-trips float32 exactly.
    gold = np.loadtxt(E2E / "sequence.txt", dtype=np.float32)
    seq = sinusoid(320)
    assert seq.dtype == np.float32 and seq.shape == (320,)
    np.testing.assert_array_equal(_bits(seq), _bits(gold))


def test_sinusoid_constants_match_fork():
    consts = _golden_constants()
    max_abs, mean = sinusoid_constants(320)
    assert _bits(max_abs) == _bits(consts["max_abs"])  # exact
    assert _bits(mean) == _bits(consts["mean"])  # exact
    assert float(max_abs) == pytest.approx(0.597307444, abs=5e-10)
    assert float(mean) == pytest.approx(0.00279716728, abs=5e-12)


def test_sinusoid_default_length_and_long_prefix():
    assert sinusoid().shape == (320,)
    long = sinusoid(960)
    assert long.shape == (960,) and long.dtype == np.float32
    # Normalised by its own max and mean: |seq + mean| <= 1 with the max reached.
    max_abs, mean = sinusoid_constants(960)
    assert np.max(np.abs(long + mean)) == pytest.approx(1.0, abs=1e-6)


def test_sinusoid_rejects_bad_length():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SeqgenError):
            sinusoid(bad)


def _glibc_sinf():
    if os.name != "posix":
        return None
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    if not version.startswith("glibc "):
        return None
    major, minor = (int(p) for p in version.split()[1].split(".")[:2])
    # The ported algorithm is glibc's sinf from 2.28 on; later releases could replace it.
    if (major, minor) < (2, 28) or (major, minor) > (2, 40):
        return None
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    libm.sinf.restype = ctypes.c_float
    libm.sinf.argtypes = [ctypes.c_float]
    return libm.sinf


def test_sinf_port_agrees_with_glibc():
    sinf = _glibc_sinf()
    if sinf is None:
        pytest.skip("needs glibc 2.28-2.40 to compare against")
    rng = np.random.default_rng(0)
    args = np.concatenate([
        rng.uniform(-130, 130, 4000),          # fast reduction path (and |x| < pi/4)
        rng.uniform(-1e5, 1e5, 2000),          # large-argument reduction
        10.0 ** rng.uniform(-40, 38, 1000),    # tiny to huge magnitudes
        [0.0, -0.0, 0.78539, 119.99, 120.0, 12.75, 0.68, 34.0, 3.4199998, 6.02],
    ]).astype(np.float32)
    ours = _sinf(args)
    ref = np.array([sinf(float(a)) for a in args], dtype=np.float32)
    np.testing.assert_array_equal(_bits(ours), _bits(ref))


# ---------------------------------------------------------------- resolve_source


def test_resolve_source_builtin():
    name, arr = resolve_source("sinusoid")
    assert name == "sinusoid:320" and arr.shape == (320, 1) and arr.dtype == np.float32
    name, arr = resolve_source("sinusoid:960", length=100)  # the suffix wins
    assert name == "sinusoid:960" and arr.shape == (960, 1)
    name, arr = resolve_source("sinusoid", length=64)
    assert name == "sinusoid:64" and arr.shape == (64, 1)
    np.testing.assert_array_equal(arr[:, 0], sinusoid(64))


@pytest.mark.parametrize("spec", ["sinusoid:abc", "sinusoid:0", "sinusoid:-5", "sinusoid:"])
def test_resolve_source_bad_suffix(spec):
    with pytest.raises(SeqgenError, match="sinusoid"):
        resolve_source(spec)


def test_resolve_source_file(tmp_path):
    p = tmp_path / "seq.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    name, arr = resolve_source(str(p))
    assert name == str(p)
    np.testing.assert_array_equal(arr, np.array([[1, 2], [3, 4]], np.float32))
    with pytest.raises(SeqgenError, match="missing.csv"):
        resolve_source(str(tmp_path / "missing.csv"))


# ---------------------------------------------------------------- loaders: good input


def test_load_csv_with_header(tmp_path):
    p = tmp_path / "two.csv"
    p.write_text("x, y\n0.5,1\n-2e-3, 3\n4,5\n\n")  # (a blank line between rows: refused)
    arr = load_sequence(p)
    assert arr.dtype == np.float32 and arr.shape == (3, 2)
    np.testing.assert_array_equal(arr, np.array([[0.5, 1], [-2e-3, 3], [4, 5]], np.float32))


def test_load_csv_without_header_single_column(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("1\n2\r\n3\n")
    arr = load_sequence(p)
    assert arr.shape == (3, 1)
    np.testing.assert_array_equal(arr[:, 0], [1, 2, 3])


def test_load_txt_whitespace_and_comments(tmp_path):
    p = tmp_path / "seq.txt"
    p.write_text("# true predicted\n1 2\n3\t4\n  5   6  \n")
    arr = load_sequence(p)
    np.testing.assert_array_equal(arr, np.array([[1, 2], [3, 4], [5, 6]], np.float32))


def test_load_golden_sequence_txt():
    arr = load_sequence(E2E / "sequence.txt")
    assert arr.shape == (320, 1)
    np.testing.assert_array_equal(_bits(arr[:, 0]), _bits(sinusoid(320)))


def test_load_npy_1d_and_2d(tmp_path):
    p1 = tmp_path / "a.npy"
    np.save(p1, np.arange(5, dtype=np.float64))
    a = load_sequence(p1)
    assert a.shape == (5, 1) and a.dtype == np.float32
    p2 = tmp_path / "b.npy"
    np.save(p2, np.arange(6, dtype=np.int32).reshape(3, 2))
    b = load_sequence(p2)
    assert b.shape == (3, 2) and b.dtype == np.float32
    np.testing.assert_array_equal(b, np.arange(6).reshape(3, 2))


# ---------------------------------------------------------------- loaders: bad input


def _err(path, *fragments):
    with pytest.raises(SeqgenError) as ei:
        load_sequence(path)
    msg = str(ei.value)
    assert str(path) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_missing_file(tmp_path):
    _err(tmp_path / "nope.csv", "not found")


def test_unknown_extension(tmp_path):
    p = tmp_path / "seq.json"
    p.write_text("[1, 2]")
    _err(p, ".json", ".csv")


@pytest.mark.parametrize("name,content", [
    ("e.csv", ""), ("e.txt", ""), ("blank.txt", "\n\n  \n"), ("hdr.csv", "a,b\n"),
    ("comments.txt", "# nothing\n"),
])
def test_empty_files(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content)
    _err(p, "empty" if not content else "no data")


def test_empty_npy(tmp_path):
    p = tmp_path / "e.npy"
    np.save(p, np.zeros((0,), np.float32))
    _err(p, "empty")
    p0 = tmp_path / "zero_bytes.npy"
    p0.write_bytes(b"")
    _err(p0, "empty")


def test_ragged_rows_csv(tmp_path):
    p = tmp_path / "ragged.csv"
    p.write_text("a,b\n1,2\n3,4,5\n")
    _err(p, "line 3", "expected 2 columns", "found 3")


def test_ragged_rows_txt(tmp_path):
    p = tmp_path / "ragged.txt"
    p.write_text("1 2 3\n\n4 5\n")
    _err(p, "line 3", "expected 3 columns", "found 2")


def test_non_numeric_cell(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("1,2\n3,abc\n")
    _err(p, "line 2", "column 2", "'abc'")
    p2 = tmp_path / "bad.txt"
    p2.write_text("1 2\n3 4\nfoo 5\n")
    _err(p2, "line 3", "column 1", "'foo'")


def test_text_header_in_txt_is_an_error(tmp_path):
    p = tmp_path / "hdr.txt"
    p.write_text("true predicted\n1 2\n")
    _err(p, "line 1", "column 1")


def test_empty_cell_and_separator_hints(tmp_path):
    p = tmp_path / "trailing.csv"
    p.write_text("1,2\n3,\n")
    _err(p, "line 2", "column 2", "empty cell")
    p2 = tmp_path / "semi.csv"
    p2.write_text("1;2\n")
    _err(p2, "line 1", "commas")
    p3 = tmp_path / "commas.txt"
    p3.write_text("1,2\n")
    _err(p3, "line 1", "whitespace")


@pytest.mark.parametrize("cell", ["nan", "inf", "-Infinity", "1e39"])
def test_non_finite_values_text(tmp_path, cell):
    p = tmp_path / "nan.csv"
    p.write_text(f"v,w\n1,2\n3,{cell}\n")
    _err(p, "line 3", "column 2")


def test_non_finite_values_npy(tmp_path):
    p = tmp_path / "nan.npy"
    a = np.zeros((4, 2))
    a[2, 1] = np.inf
    np.save(p, a)
    _err(p, "[2, 1]", "finite")


def test_npy_too_many_dims_and_bad_dtypes(tmp_path):
    p = tmp_path / "cube.npy"
    np.save(p, np.zeros((2, 3, 4)))
    _err(p, "3 dimensions")
    p2 = tmp_path / "str.npy"
    np.save(p2, np.array(["a", "b"]))
    _err(p2, "dtype")
    p3 = tmp_path / "cplx.npy"
    np.save(p3, np.zeros(3, np.complex64))
    _err(p3, "dtype")
    p4 = tmp_path / "scalar.npy"
    np.save(p4, np.float32(1.0))
    _err(p4, "scalar")
    p5 = tmp_path / "obj.npy"
    np.save(p5, np.array([1, None], dtype=object), allow_pickle=True)
    _err(p5)


def test_corrupt_npy(tmp_path):
    p = tmp_path / "junk.npy"
    p.write_bytes(b"this is not an npy file at all")
    _err(p, "npy")


def test_not_utf8_text(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81\x82")
    _err(p, "UTF-8")
