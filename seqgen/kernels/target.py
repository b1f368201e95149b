"""The vector width seqgen's kernels are compiled for, and the switch to the CPU's widest.

numba compiles for the host CPU, but LLVM's tuning for Intel's AVX-512 cores (and its
host-name guess for them) carries `prefer-256-bit`: loops are vectorised on 256-bit
registers even where 512-bit ones exist. SEQGEN_WIDE_VECTORS=1 asks numba for the host's
own features with that preference turned off, before the first kernel is compiled or
loaded (unless the user set numba's target: NUMBA_CPU_NAME or NUMBA_CPU_FEATURES). numba
keys its cache on the features, so kernels compiled for either width never mix.

It is off by default because it is not faster everywhere (`python benchmarks/grid_vs_torch.py
--baseline main`, docs/performance.md, 2-core Intel Xeon with AVX-512): 1.16x at char_rnn's
size and 1.05-1.10x for batched layers of 128-256 units, but 0.92-0.94x on the fork's
deep_lstm_short, whose 16-lane gate loops LLVM leaves scalar at a vector length of 16.

`vector_bits()` reads back what numba really compiles for. The recurrent products' register
tile (`kernels.panels`) and the GEMM path's recurrences (`kernels.bvlc_lstm_gemm`: their
gate passes run over hundreds of units) take 512-bit vectors wherever the CPU has AVX-512,
with or without the switch (`wide_function`, each function's own LLVM attribute), and a
tile row is two vectors wide (`host_has_avx512`). The arithmetic of each result does not
depend on the width (each sum runs over k in order; the gate passes are elementwise), only
its speed.
"""
import os

from llvmlite import binding
from numba import types
from numba.core import config
from numba.core.registry import cpu_target
from numba.extending import intrinsic

#: what LLVM is told to drop on a CPU with AVX-512 (its tuning prefers 256-bit vectors)
PREFER_512 = "-prefer-256-bit"
#: the switch (1: the CPU's widest vectors)
SWITCH = "SEQGEN_WIDE_VECTORS"


def user_target():
    """Whether the user chose numba's target themselves."""
    named = bool(os.environ.get("NUMBA_CPU_NAME"))
    return named or os.environ.get("NUMBA_CPU_FEATURES") is not None


def widen():
    """With SEQGEN_WIDE_VECTORS=1, let numba use 512-bit vectors on a CPU with AVX-512,
    unless the user picked the target. Must run before numba's CPU codegen exists (the
    first compile or cache load)."""
    if os.environ.get(SWITCH, "0") in ("", "0") or user_target():
        return
    features = binding.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        config.CPU_FEATURES = f"{features},{PREFER_512}"


def host_has_avx512():
    """Whether numba compiles for a CPU with AVX-512 (whatever width its tuning prefers)."""
    return "+avx512f" in compiled_features().split(",")


def vector_bits(features=None):
    """512, 256 or 128: the float vectors the kernels are compiled with, from numba's target
    features (`features`, or those numba compiles with)."""
    if features is None:
        features = compiled_features()
    flags = set(features.split(","))
    if "+avx512f" in flags and PREFER_512 in flags:
        return 512
    if "+avx2" in flags or "+avx" in flags:
        return 256
    return 128


@intrinsic
def wide_function(typingctx):
    """Compile the function that calls this for 512-bit vectors where the CPU has AVX-512,
    whatever the tuning prefers (LLVM's per-function override of `prefer-256-bit`): the
    recurrent products' tile and the GEMM path's recurrences, whose gate loops run over
    hundreds of units, but not the fork's short ones."""
    def codegen(context, builder, signature, args):
        if host_has_avx512():
            # (string attributes: llvmlite's add() knows only LLVM's keyword ones)
            for attribute in ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"'):
                set.add(builder.function.attributes, attribute)
        return context.get_dummy_value()

    return types.none(), codegen


def compiled_features():
    """The feature string numba's CPU target compiles with: read from its codegen (created
    here if no kernel has been compiled yet), so a target set before seqgen was imported
    counts."""
    return cpu_target.target_context.codegen().magic_tuple()[2]


def describe():
    """One line for `seqgen info`: the vector width and how it was chosen."""
    bits = vector_bits()
    name = {512: "AVX-512", 256: "AVX2"}.get(bits, "SSE")
    if user_target():
        how = "the target NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set"
    elif bits == 512:
        how = f"{SWITCH}=1"
    else:
        how = f"{SWITCH}=1 for 512-bit ones where the CPU has AVX-512"
        if host_has_avx512():
            how += "; the GEMM path's recurrences use 512-bit vectors"
    return f"Kernels compiled for {bits}-bit vectors ({name}; {how})"
