"""Matrix products callable from compiled code, through numpy's own BLAS.

`gemm(transA, transB, alpha, A, B, beta, C)` is C = alpha op(A) op(B) + beta C for 2-D
arrays whose rows may be strided (unit stride along a row), callable from nopython code.
It calls `cblas_sgemm`/`cblas_dgemm` of the BLAS numpy itself loaded (found once, at import,
from the libraries threadpoolctl lists), registered with LLVM under a fixed name, so cached
kernels link to whichever BLAS this process has. numba's own `np.dot` goes through SciPy's
BLAS instead, which measured 1.4-1.6x slower for the per-step products of these nets
(OpenBLAS 0.3.30 against numpy's 0.3.31, AMD EPYC, one thread), and cannot accumulate
(beta = 1). Without a usable cblas the products fall back to compiled loops.

A product of one or two rows goes to `cblas_?gemv` a row at a time instead: OpenBLAS's
sgemm packs all of op(B) on every call, and for the one-stream LSTM step (1 x 512 by
512 x 2048) that made it 4-5x slower than gemv (480 against 94 us a step; two rows 460
against 142; from four rows on sgemm wins: `python benchmarks/gemm_rows.py`, AMD EPYC,
one thread).

`blas_threads()` / `set_blas_threads(n)` read and set that library's thread count from
compiled code (OpenBLAS's process-wide openblas_get/set_num_threads, bound the same way),
so a kernel that runs products on several numba threads can keep each of them on one BLAS
thread and restore the count afterwards. `park_blas_threads()` stops OpenBLAS's worker
threads (its blas_thread_shutdown_, the pthreads build's fork handler): after every
threaded product they busy-wait for about 0.1 s (2^28 cycles, OPENBLAS_THREAD_TIMEOUT),
and on these 2-core machines that took half a core from numba's threads, making a
stream-split LSTM recurrence slower than the unsplit one; OpenBLAS starts them again at its
next threaded call (or `set_blas_threads`). Without OpenBLAS on pthreads, parking does
nothing; without OpenBLAS the thread functions do nothing (count 0).
"""
import ctypes

import llvmlite.binding as ll
import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import overload

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_I32, _I64, _P = types.int32, types.int64, types.intp  # pointers travel as integers
_SIGNATURES = {
    "s": types.void(_I32, _I32, _I32, _I64, _I64, _I64, types.float32, _P, _I64, _P, _I64,
                    types.float32, _P, _I64),
    "d": types.void(_I32, _I32, _I32, _I64, _I64, _I64, types.float64, _P, _I64, _P, _I64,
                    types.float64, _P, _I64),
}
# 64-bit integers are declared for every build: on x86-64 and arm64 an LP64 library reads
# the low 32 bits of the same register or 8-byte stack slot, which hold the same value
_JIT = dict(cache=True, nogil=True)
_NAMES = ("scipy_cblas_{t}{f}64_", "cblas_{t}{f}64_", "cblas_{t}{f}_64", "cblas_{t}{f}")
_GEMV_SIGNATURES = {  # order, trans, m, n, alpha, A, lda, x, incx, beta, y, incy
    kind: types.void(_I32, _I32, _I64, _I64, dt, _P, _I64, _P, _I64, dt, _P, _I64)
    for kind, dt in (("s", types.float32), ("d", types.float64))}
#: products of at most this many rows run as one gemv per row (see the module docstring)
GEMV_MAX_ROWS = 2


def _fallback(kind):
    """A compiled C-ABI gemm (row-major, plain loops) for a numpy without cblas."""
    dt = types.float32 if kind == "s" else types.float64
    ptr = types.CPointer(dt)
    signature = types.void(_I32, _I32, _I32, _I64, _I64, _I64, dt, ptr, _I64, ptr, _I64, dt,
                           ptr, _I64)  # the same C ABI as _SIGNATURES[kind]

    @cfunc(signature, cache=True)
    def fallback(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        A = carray(a, ((m if ta == NO_TRANS else k) * lda,))
        B = carray(b, ((k if tb == NO_TRANS else n) * ldb,))
        C = carray(c, (m * ldc,))
        for i in range(m):
            for j in range(n):
                acc = dt(0)
                for p in range(k):
                    x = A[i * lda + p] if ta == NO_TRANS else A[p * lda + i]
                    y = B[p * ldb + j] if tb == NO_TRANS else B[j * ldb + p]
                    acc += x * y
                C[i * ldc + j] = alpha * acc + (beta * C[i * ldc + j] if beta != 0 else 0)
    return fallback


def _fallback_gemv(kind):
    """A compiled C-ABI gemv (row-major, plain loops) for a numpy without cblas."""
    dt = types.float32 if kind == "s" else types.float64
    ptr = types.CPointer(dt)
    signature = types.void(_I32, _I32, _I64, _I64, dt, ptr, _I64, ptr, _I64, dt, ptr, _I64)

    @cfunc(signature, cache=True)
    def fallback(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
        A = carray(a, (m * lda,))
        rows, cols = (m, n) if trans == NO_TRANS else (n, m)
        X = carray(x, ((cols - 1) * incx + 1,))
        Y = carray(y, ((rows - 1) * incy + 1,))
        for i in range(rows):
            acc = dt(0)
            for p in range(cols):
                acc += (A[i * lda + p] if trans == NO_TRANS else A[p * lda + i]) * X[p * incx]
            Y[i * incy] = alpha * acc + (beta * Y[i * incy] if beta != 0 else 0)
    return fallback


def _blas_libraries():
    """The BLAS libraries threadpoolctl lists, numpy's first: [(ctypes library, info)]."""
    from threadpoolctl import threadpool_info  # lazy: only to find the library once

    libraries = []
    for info in sorted(threadpool_info(), key=lambda i: "numpy" not in i["filepath"]):
        if info.get("user_api") != "blas":
            continue
        try:
            libraries.append((ctypes.CDLL(info["filepath"]), info))
        except OSError:
            continue
    return libraries


def _cblas_address(kind, libraries, function="gemm"):
    """(Address of numpy's cblas_?gemm (or ?gemv), its (library, info)), or (None, None)."""
    for lib, info in libraries:
        for name in _NAMES:
            fn = getattr(lib, name.format(t=kind, f=function), None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value, (lib, info)
    return None, None


def _openblas_address(lib, name):
    """Address of OpenBLAS's `name` (openblas_get_num_threads, ...) under any of the
    prefixes and suffixes its builds use, or None."""
    for prefix in ("", "scipy_"):
        for suffix in ("64_", "_64", ""):
            fn = getattr(lib, prefix + name + suffix, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value
    return None


@cfunc(types.int32(), cache=True)
def _no_threads():
    return 0


@cfunc(types.void(types.int32), cache=True)
def _set_no_threads(n):
    pass


@cfunc(types.int32(), cache=True)
def _park_nothing():
    return 0


def _register():
    """Bind seqgen_?gemm / seqgen_?gemv to numpy's BLAS, or to the fallbacks, and
    seqgen_blas_get/set_threads to that library's thread control (OpenBLAS) or to no-ops;
    (True if BLAS, True if its threads can be set)."""
    found, library = True, None
    libraries = _blas_libraries()
    for kind in "sd":
        for function, fallback in (("gemm", _fallback), ("gemv", _fallback_gemv)):
            address, lib = _cblas_address(kind, libraries, function)
            if address is None:
                found, address = False, fallback(kind).address
            else:
                library = library or lib
            ll.add_symbol(f"seqgen_{kind}{function}", address)
    get = put = None
    if library is not None and library[1].get("internal_api") == "openblas":
        get = _openblas_address(library[0], "openblas_get_num_threads")
        put = _openblas_address(library[0], "openblas_set_num_threads")
    controls = get is not None and put is not None
    ll.add_symbol("seqgen_blas_get_threads", get if controls else _no_threads.address)
    ll.add_symbol("seqgen_blas_set_threads", put if controls else _set_no_threads.address)
    park = None
    if controls and library[1].get("threading_layer") == "pthreads":
        fn = getattr(library[0], "blas_thread_shutdown_", None)
        park = None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value
    ll.add_symbol("seqgen_blas_park", park if park is not None else _park_nothing.address)
    return found, controls, park is not None


#: whether the products run on numpy's BLAS (False: the compiled fallback loops), whether
#: set_blas_threads reaches that library's threads (OpenBLAS) and whether
#: park_blas_threads stops its workers (OpenBLAS on pthreads)
USES_BLAS, CONTROLS_THREADS, PARKS_THREADS = _register()
_sgemm = types.ExternalFunction("seqgen_sgemm", _SIGNATURES["s"])
_dgemm = types.ExternalFunction("seqgen_dgemm", _SIGNATURES["d"])
_sgemv = types.ExternalFunction("seqgen_sgemv", _GEMV_SIGNATURES["s"])
_dgemv = types.ExternalFunction("seqgen_dgemv", _GEMV_SIGNATURES["d"])
# int openblas_get_num_threads(void), void openblas_set_num_threads(int) in every build
blas_threads = types.ExternalFunction("seqgen_blas_get_threads", types.int32())
_set_threads = types.ExternalFunction("seqgen_blas_set_threads", types.void(types.int32))
_park = types.ExternalFunction("seqgen_blas_park", types.int32())


@njit(**_JIT)
def set_blas_threads(n):
    """Let the BLAS of `gemm` use n threads (process-wide; nopython; no-op without
    OpenBLAS). `blas_threads()` (nopython too) is the current count, 0 without OpenBLAS."""
    if n > 0:
        _set_threads(np.int32(n))


@njit(**_JIT)
def park_blas_threads():
    """Stop BLAS's idle worker threads until its next threaded call (nopython; see the
    module docstring). Call with BLAS at one thread, and not while another Python thread
    is inside a BLAS call."""
    _park()


@njit(**_JIT)
def hold_one_blas_thread():
    """Before a region that runs products on several numba threads: BLAS to one thread,
    its idle workers parked; returns the count to give back with `set_blas_threads`."""
    held = blas_threads()
    set_blas_threads(1)
    park_blas_threads()
    return held


def gemm(transA, transB, alpha, A, B, beta, C):
    """C = alpha op(A) op(B) + beta C (op = transpose when trans is True); nopython only."""
    raise NotImplementedError("gemm is called from compiled code")


@overload(gemm, jit_options=dict(cache=True))
def _gemm(transA, transB, alpha, A, B, beta, C):
    call = _sgemm if C.dtype == types.float32 else _dgemm
    row_call = _sgemv if C.dtype == types.float32 else _dgemv
    dt = C.dtype

    def impl(transA, transB, alpha, A, B, beta, C):
        size = C.itemsize
        m, n = C.shape
        k = A.shape[0] if transA else A.shape[1]
        lda, ldb = A.strides[0] // size, B.strides[0] // size
        if m <= GEMV_MAX_ROWS:
            # row i of C = alpha op(B)^T (row i of op(A)) + beta C[i]: op(B) is k x n, so B
            # itself (n x k when transposed) is multiplied as stored, untransposed, and
            # B (k x n) as transposed
            inc = 1 if not transA else lda  # along a row of op(A)
            for i in range(m):
                row_call(ROW_MAJOR, NO_TRANS if transB else TRANS, n if transB else k,
                         k if transB else n, dt(alpha), B.ctypes.data, ldb,
                         A.ctypes.data + i * (lda * size if not transA else size), inc,
                         dt(beta), C.ctypes.data + i * C.strides[0], 1)
            return
        call(ROW_MAJOR, TRANS if transA else NO_TRANS, TRANS if transB else NO_TRANS,
             m, n, k, dt(alpha), A.ctypes.data, lda, B.ctypes.data,
             ldb, dt(beta), C.ctypes.data, C.strides[0] // size)
    return impl
