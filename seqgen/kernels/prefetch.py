"""`prefetch_span(a, start, count)`: ask the CPU to bring elements start..start+count-1 of a
C-contiguous array into its L2 cache ahead of use (one `prefetcht1` per 64-byte line).

A recurrence reads and writes each step's rows once, after the rest of the iteration has
pushed them out of L2, and walks them in blocks too short for the hardware prefetchers
to learn (the backward one in descending steps). Asking for step t +- 1's rows while step
t computes hides that wait. A hint only: it changes no value. At char_rnn's size (T = 50,
N = 50, H = 128) one `lstm_backward_gemm` call inside a training iteration took 5.2-5.6 ms
without it and 3.8-4.2 ms with it, against 3.4-3.5 ms when called alone over and over
(Intel Xeon with AVX-512, one thread, 2026-12-07; a scratch timing of the kernel's calls
from `Solver.step`, then of the same call repeated).
"""
from pathlib import Path

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .activations import FASTMATH

JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)

LINE = 64  # bytes a prefetch brings


def l2_bytes(cpu="/sys/devices/system/cpu/cpu0/cache"):
    """The size of a core's L2 cache, from Linux's sysfs; 1 MiB where it cannot be read."""
    for index in sorted(Path(cpu).glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]]
        except (OSError, ValueError, KeyError, IndexError):
            break
    return 1 << 20


#: the largest weight a recurrence keeps in L2 while fetching rows ahead: half the L2.
#: With a larger one (H = 512: 4 MB of panels) its lines come from L3 every step anyway, and
#: the rows fetched ahead only pushed them out sooner (0.95-0.98x a training iteration at
#: 50 x 8-32, 512 with prefetching on; docs/performance.md)
AHEAD_MAX_WEIGHT = l2_bytes() // 2


@intrinsic
def _prefetch(typingctx, a, index):
    """One prefetch of the line holding flat element `index` of C-contiguous `a`."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        # (llvmlite names it for the pointer type: llvm.prefetch.p0 with opaque pointers,
        # llvm.prefetch.p0i8 with the typed ones of older LLVMs)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte], ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]))
        # (read, locality 2: prefetcht1, into L2 and not L1, data cache)
        builder.call(fn, [builder.bitcast(builder.gep(array.data, [i]), byte),
                          i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return types.void(a, index), codegen


@njit(inline="always", **JIT)
def prefetch_span(a, start, count):
    """Prefetch flat elements start..start+count-1 of C-contiguous `a` (no bounds check:
    the caller passes a span inside `a`)."""
    step = LINE // a.itemsize
    for i in range(start, start + count, step):
        _prefetch(a, i)
