"""Sequences to train on: the caffe-lstm example's sinusoid and users' own files.

The built-in source reproduces the data of the fork's ``examples/lstm_sequence/lstm_sequence.cpp``
bit for bit in float32.  That program computes, with ``float`` variables throughout::

    float f_x(float t) {
      return 0.5*sin(2*t) - 0.05*cos(17*t + 0.8) + 0.05*sin(25*t+10) - 0.02*cos(45*t + 0.3);
    }
    max_abs = max_i |f_x(i * 0.01f)|                      (float)
    mean    = sum_i f_x(i * 0.01) / max_abs, sequentially (float), then mean /= L
    seq[i]  = f_x(i * 0.01f) / max_abs - mean             (float)

Details that matter for exactness (each checked against the golden files):

* ``2*t`` and ``25*t+10`` are float expressions, so C++ picks the *float* overload of ``sin``
  (glibc's ``sinf``), which is not correctly rounded (worst case 0.56 ulp).  Evaluating those two
  sines in double and rounding gives 3 one-ulp differences in the 320-step sequence; evaluating
  them in double without rounding gives 79.  ``_sinf`` below is a port of glibc's ``sinf``
  (sysdeps/ieee754/flt-32/s_sinf.c, 2018 algorithm, double-precision polynomial), so the result
  does not depend on the platform's libm or on numpy's SIMD sine.
* ``17*t + 0.8`` and ``45*t + 0.3`` are promoted to double (the constants are double), so those
  cosines are double ``cos``; the whole expression is summed left to right in double and rounded
  to float once on return.
* The mean loop passes ``i * 0.01`` (a *double* product, rounded to float on the call) rather than
  ``i * 0.01f``; the two arguments differ for many i, and using the wrong one changes the mean in
  its 4th significant digit.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import numpy as np

from seqgen.errors import SeqgenError
from seqgen.limits import MEMORY_LIMIT, check_memory, parse_whole

__all__ = [
    "DEFAULT_SINUSOID_LENGTH",
    "sinusoid",
    "sinusoid_constants",
    "load_sequence",
    "resolve_source",
]

DEFAULT_SINUSOID_LENGTH = 320

# --------------------------------------------------------------------------------------------
# glibc sinf, vectorised.  Constants from sysdeps/ieee754/flt-32/s_sincosf_data.c (x86-64 has no
# TOINT_INTRINSICS, so the 2/pi factor is pre-scaled by 2^24).  The FMA-compiled variant glibc
# selects on FMA-capable CPUs contracts the multiply-adds; for float results the two variants
# agreed on every input tried (120k random arguments), and this port uses separate multiply/add.

_HPI_INV = float.fromhex("0x1.45F306DC9C883p+23")  # 2/pi * 2^24
_HPI = float.fromhex("0x1.921FB54442D18p0")  # pi/2
_PI63 = float.fromhex("0x1.921FB54442D18p-62")  # 2pi * 2^-64
_C0 = 1.0
_C1 = float.fromhex("-0x1.ffffffd0c621cp-2")
_C2 = float.fromhex("0x1.55553e1068f19p-5")
_C3 = float.fromhex("-0x1.6c087e89a359dp-10")
_C4 = float.fromhex("0x1.99343027bf8c3p-16")
_S1 = float.fromhex("-0x1.555545995a603p-3")
_S2 = float.fromhex("0x1.1107605230bc4p-7")
_S3 = float.fromhex("-0x1.994eb3774cf24p-13")
_QUADRANT_SIGN = np.array([1.0, -1.0, -1.0, 1.0])
# 4/pi to 192 bits, 8 new bits per entry.
_INV_PIO4 = np.array(
    [
        0xA2, 0xA2F9, 0xA2F983, 0xA2F9836E, 0xF9836E4E, 0x836E4E44, 0x6E4E4415, 0x4E441529,
        0x441529FC, 0x1529FC27, 0x29FC2757, 0xFC2757D1, 0x2757D1F5, 0x57D1F534, 0xD1F534DD,
        0xF534DDC0, 0x34DDC0DB, 0xDDC0DB62, 0xC0DB6295, 0xDB629599, 0x6295993C, 0x95993C43,
        0x993C4390, 0x3C439041,
    ],
    dtype=np.uint64,
)


def _abstop12(y: np.ndarray) -> np.ndarray:
    return (y.view(np.uint32) >> np.uint32(20)) & np.uint32(0x7FF)


_TOP_PIO4 = int(_abstop12(np.array([float.fromhex("0x1.921FB6p-1")], np.float32))[0])
_TOP_TINY = int(_abstop12(np.array([2.0**-12], np.float32))[0])
_TOP_120 = int(_abstop12(np.array([120.0], np.float32))[0])


def _sinf_poly(x: np.ndarray, x2: np.ndarray, negate_cos: np.ndarray, n: np.ndarray) -> np.ndarray:
    """glibc's sinf_poly: sine polynomial for even quadrants, (possibly negated) cosine for odd."""
    x3 = x * x2
    s1 = _S2 + x2 * _S3
    x7 = x3 * x2
    s = x + x3 * _S1
    sin_part = s + x7 * s1
    x4 = x2 * x2
    c2 = _C3 + x2 * _C4
    c1 = _C0 + x2 * _C1
    x6 = x4 * x2
    c = c1 + x4 * _C2
    cos_part = c + x6 * c2
    # glibc's second table has every cosine coefficient negated; under round-to-nearest that is
    # exactly the negation of the result computed with the positive coefficients.
    cos_part = np.where(negate_cos, -cos_part, cos_part)
    return np.where((n & 1) == 0, sin_part, cos_part)


def _sinf(y) -> np.ndarray:
    """sin of float32 arguments, bit-identical to glibc's sinf (round-to-nearest)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    shape = y.shape
    y = y.reshape(-1)
    x = y.astype(np.float64)
    top = _abstop12(y).astype(np.int64)
    out = np.full(y.shape, np.nan, dtype=np.float64)

    tiny = top < _TOP_TINY
    out[tiny] = x[tiny]

    small = (top < _TOP_PIO4) & ~tiny
    if small.any():
        xs = x[small]
        zeros = np.zeros(xs.shape, dtype=np.int64)
        out[small] = _sinf_poly(xs, xs * xs, zeros.astype(bool), zeros)

    mid = (top >= _TOP_PIO4) & (top < _TOP_120)
    if mid.any():
        xm = x[mid]
        r = xm * _HPI_INV
        # C truncation, arithmetic shift
        n = (r.astype(np.int32).astype(np.int64) + 0x800000) >> 24
        xr = xm - n.astype(np.float64) * _HPI
        s = _QUADRANT_SIGN[n & 3]
        out[mid] = _sinf_poly(xr * s, xr * xr, (n & 2) != 0, n)

    large = (top >= _TOP_120) & np.isfinite(y)
    if large.any():
        xi = y[large].view(np.uint32).astype(np.uint64)
        idx = ((xi >> np.uint64(26)) & np.uint64(15)).astype(np.int64)
        shift = (xi >> np.uint64(23)) & np.uint64(7)
        m = ((xi & np.uint64(0xFFFFFF)) | np.uint64(0x800000)) << shift
        res0 = (m * _INV_PIO4[idx]) & np.uint64(0xFFFFFFFF)  # 32-bit product in C
        res1 = m * _INV_PIO4[idx + 4]
        res2 = m * _INV_PIO4[idx + 8]
        res0 = (res2 >> np.uint64(32)) | (res0 << np.uint64(32))
        res0 = res0 + res1  # wraps modulo 2^64 exactly like the C code
        nq = (res0 + np.uint64(1 << 61)) >> np.uint64(62)
        res0 = res0 - (nq << np.uint64(62))
        xr = res0.view(np.int64).astype(np.float64) * _PI63
        n = nq.astype(np.int64)
        sign = (xi >> np.uint64(31)).astype(np.int64)
        s = _QUADRANT_SIGN[(n + sign) & 3]
        out[large] = _sinf_poly(xr * s, xr * xr, ((n + sign) & 2) != 0, n)

    return out.astype(np.float32).reshape(shape)


def _cos_double(x: np.ndarray) -> np.ndarray:
    # The platform libm's double cos, like the C++ program (numpy's own SIMD cos may differ by an
    # ulp; after the final rounding to float32 that would almost never matter, but this is cheap).
    return np.fromiter(map(math.cos, x.tolist()), dtype=np.float64, count=x.size)


def _f_x(t: np.ndarray) -> np.ndarray:
    """The fork's f_x(float t), for a float32 array t; returns float32."""
    t = np.asarray(t, dtype=np.float32)
    f = np.float32
    a = 0.5 * _sinf(f(2) * t).astype(np.float64)
    b = 0.05 * _cos_double((f(17) * t).astype(np.float64) + 0.8)
    c = 0.05 * _sinf(f(25) * t + f(10)).astype(np.float64)
    d = 0.02 * _cos_double((f(45) * t).astype(np.float64) + 0.3)
    return (((a - b) + c) - d).astype(np.float32)


def _check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise SeqgenError(f"sinusoid: length must be a positive integer, got {length!r}")
    if length >= 2**24:
        raise SeqgenError(f"sinusoid: length {length} is too large (must be below 2^24)")
    return int(length)


def _sinusoid_parts(length: int):
    length = _check_length(length)
    i = np.arange(length)
    vals = _f_x(i.astype(np.float32) * np.float32(0.01))  # f_x(i * 0.01f)
    max_abs = np.float32(np.max(np.abs(vals)))
    # mean += f_x(i * 0.01) / max_abs, in float, in order; i * 0.01 is a double product.
    terms = _f_x((i * 0.01).astype(np.float32)) / max_abs
    mean = np.add.accumulate(terms, dtype=np.float32)[-1] / np.float32(length)
    return vals, np.float32(max_abs), np.float32(mean)


#: what a sinusoid value takes while made and fed: its float64 parts (three) and the
#: float32 sequence, its copies in the run and the figure: about 64 bytes
SINUSOID_BYTES = 64


def sinusoid(length: int = DEFAULT_SINUSOID_LENGTH) -> np.ndarray:
    """The caffe-lstm example's target sequence: float32, shape (length,), normalised by its
    maximum absolute value and mean-subtracted, bit-identical to the fork's float arithmetic."""
    vals, max_abs, mean = _sinusoid_parts(length)
    return (vals / max_abs - mean).astype(np.float32)


def sinusoid_constants(length: int = DEFAULT_SINUSOID_LENGTH) -> tuple[np.float32, np.float32]:
    """(max_abs, mean) the fork uses to normalise the sequence of this length (float32 scalars)."""
    _, max_abs, mean = _sinusoid_parts(length)
    return max_abs, mean


# --------------------------------------------------------------------------------------------
# Users' own sequences.

_SUPPORTED = (".csv", ".txt", ".npy")


def _parse_float(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def _numbers_in_disguise(cell: str) -> bool:
    """True for a cell like '1;2' or '1 2': numbers joined by a separator other than a comma."""
    parts = [p for p in re.split(r"[;\t| ]+", cell) if p]
    return len(parts) > 1 and all(_parse_float(p) is not None for p in parts)


def _separator_hint(cell: str, kind: str) -> str:
    if kind == "csv" and any(c in cell for c in ";\t| "):
        return " (columns in a .csv file must be separated by commas)"
    if kind == "txt" and "," in cell:
        return " (columns in a .txt file must be separated by whitespace; use .csv for commas)"
    return ""


def _read_text_rows(path: Path, kind: str):
    """Parse a .csv/.txt file into a float64 array plus the 1-based line number of every row."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise SeqgenError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read: {e.strerror or e}") from None

    rows: list[list[float]] = []
    line_numbers: list[int] = []
    ncols = None
    header_allowed = kind == "csv"
    blank = None  # the first blank line after a data row, in a .csv
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            if kind == "csv" and rows and blank is None:
                blank = lineno
            continue
        if blank is not None:
            raise SeqgenError(f"{path}: line {blank}: blank line between data rows (a missing "
                              "step?); remove it or give its values")
        if kind == "txt":
            if stripped.startswith("#"):
                continue
            cells = stripped.split()
        else:
            cells = [c.strip() for c in next(csv.reader([line]))]
        values = [_parse_float(c) for c in cells]
        if header_allowed:
            header_allowed = False
            if all(v is None for v in values) and not any(map(_numbers_in_disguise, cells)):
                ncols = len(cells)  # a header row of names fixes the column count
                continue
        if ncols is None:
            ncols = len(cells)
        elif len(cells) != ncols:
            raise SeqgenError(
                f"{path}: line {lineno}: expected {ncols} column{'s' if ncols != 1 else ''}, "
                f"found {len(cells)}"
            )
        for col, (cell, v) in enumerate(zip(cells, values), start=1):
            if v is None:
                what = "empty cell" if cell == "" else f"non-numeric value {cell!r}"
                raise SeqgenError(
                    f"{path}: line {lineno}, column {col}: {what}{_separator_hint(cell, kind)}"
                )
        rows.append(values)
        line_numbers.append(lineno)

    if not rows:
        lines = text.splitlines()
        if not "".join(lines).strip():
            raise SeqgenError(f"{path}: contains no data rows, only {len(lines)} blank "
                              f"line{'s' if len(lines) != 1 else ''}")
        raise SeqgenError(f"{path}: contains no data rows")
    return np.array(rows, dtype=np.float64), line_numbers


def _to_float32(path: Path, arr: np.ndarray, where) -> np.ndarray:
    """Convert to float32, rejecting NaN/inf and values beyond float32's range.
    ``where(row, col)`` describes a position for the error message."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        v = arr[r, c]
        if np.isfinite(v):
            problem = f"value {float(v)!r} is too large for float32"
        else:
            problem = f"value {float(v)!r} is not a finite number"
        raise SeqgenError(f"{path}: {where(int(r), int(c))}: {problem}")
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise SeqgenError(f"{path}: not a readable .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise SeqgenError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise SeqgenError(f"{path}: not a .npy array")
    if arr.dtype.kind not in "iuf":
        raise SeqgenError(
            f"{path}: array has dtype {arr.dtype}; expected a real number type (float or int)"
        )
    if arr.ndim == 0:
        raise SeqgenError(f"{path}: array is a scalar; expected 1-D (steps) or 2-D (steps, dims)")
    if arr.ndim > 2:
        raise SeqgenError(
            f"{path}: array has {arr.ndim} dimensions {arr.shape}; "
            "expected 1-D (steps) or 2-D (steps, dims)"
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.size == 0:
        raise SeqgenError(f"{path}: array is empty (shape {arr.shape})")
    return _to_float32(path, np.asarray(arr, dtype=np.float64), lambda r, c: f"index [{r}, {c}]")


def load_sequence(path) -> np.ndarray:
    """Load a user's sequence as float32 (L, D): one row per step, one column per dimension.

    ``.csv``: comma separated, an optional first row of column names is skipped.
    ``.txt``: whitespace separated, lines starting with ``#`` are comments.
    ``.npy``: a 1-D array becomes (L, 1), a 2-D array is used as is.
    Blank lines are ignored, except between the data rows of a ``.csv`` (a missing step is
    refused, naming its line; trailing blank lines are fine).  Every mistake raises
    SeqgenError naming the file (and line).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _SUPPORTED:
        raise SeqgenError(
            f"{path}: unknown sequence file type {path.suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(_SUPPORTED)}"
        )
    if not path.exists():
        raise SeqgenError(f"{path}: file not found")
    if not path.is_file():
        raise SeqgenError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise SeqgenError(f"{path}: file is empty")
    if ext == ".npy":
        return _load_npy(path)
    arr, line_numbers = _read_text_rows(path, ext[1:])
    return _to_float32(path, arr, lambda r, c: f"line {line_numbers[r]}, column {c + 1}")


def resolve_source(spec, length: int | None = None) -> tuple[str, np.ndarray]:
    """Turn a data spec into (name, float32 array of shape (L, D)).

    ``"sinusoid"`` / ``"sinusoid:N"`` is the built-in caffe-lstm sequence (length N, else
    ``length``, else 320) and the name is ``"sinusoid:L"``.  Anything else is a file path for
    :func:`load_sequence` (``length`` is ignored) and the name is the path as given.  A file
    literally called ``sinusoid`` can be reached as ``./sinusoid``.
    """
    text = str(spec).strip()
    head, sep, tail = text.partition(":")
    if head == "sinusoid":
        if sep:
            n = parse_whole(tail.strip())
            if n is None:
                raise SeqgenError(
                    f"data spec {text!r}: length after 'sinusoid:' must be an integer")
            if n < 1:
                raise SeqgenError(f"data spec {text!r}: length must be positive")
            check_memory(f"data spec {text!r}", n * SINUSOID_BYTES,
                         f"give a length of {MEMORY_LIMIT // SINUSOID_BYTES} or less")
        elif length is not None:
            n = length
        else:
            n = DEFAULT_SINUSOID_LENGTH
        seq = sinusoid(n)
        return f"sinusoid:{len(seq)}", seq.reshape(-1, 1)
    if not text:
        raise SeqgenError("data spec is empty; give 'sinusoid[:LENGTH]' or a .csv/.txt/.npy file")
    return str(spec), load_sequence(spec)
