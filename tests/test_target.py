"""kernels.target: SEQGEN_WIDE_VECTORS=1 compiles the kernels for the CPU's widest vectors
unless the user set numba's target, the register tiles follow the width numba really
compiles for, and only the GEMM recurrences over panels ask for 512-bit vectors themselves."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from seqgen.kernels import bvlc_lstm_gemm as K
from seqgen.kernels.target import PREFER_512, SWITCH, host_has_avx512, vector_bits

PROBE = ("import numba.core.config as c; from seqgen.kernels import panels, target; "
         "print(panels.WIDTH, target.vector_bits(), repr(c.CPU_FEATURES))")


def probe(**env):
    """(panel width, vector bits, numba's CPU_FEATURES) in a fresh process with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_") and k != SWITCH}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, check=True,
                         capture_output=True, text=True).stdout.split(" ", 2)
    return int(out[0]), int(out[1]), out[2].strip()


def host_flags():
    """The CPU's flags as the kernel lists them (not through LLVM, which the code uses)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo to tell the CPU's vector width independently")
    line = next(x for x in text.splitlines() if x.startswith("flags"))
    return set(line.split(":", 1)[1].split())


@pytest.mark.parametrize("features, bits", [
    ("+avx2,+fma,+avx512f," + PREFER_512, 512),
    ("+avx2,+fma,+avx512f", 256),  # AVX-512 there, but LLVM's tuning keeps 256-bit vectors
    ("+avx,+avx2,-avx512f," + PREFER_512, 256),
    ("+sse2", 128),
    ("", 128),
])
def test_bits_from_features(features, bits):
    assert vector_bits(features) == bits


def test_numbas_own_target_by_default():
    """The target's preference stays (256-bit loops); the panels' tile alone takes 512-bit
    vectors where the CPU has AVX-512 (32 columns)."""
    flags = host_flags()
    assert probe() == (32 if "avx512f" in flags else 16, 256 if "avx2" in flags else 128,
                       "None")


def test_the_switch_takes_the_widest_vectors():
    width, bits, features = probe(**{SWITCH: "1"})
    if "avx512f" in host_flags():
        assert (width, bits) == (32, 512)
        assert PREFER_512 in features
    else:  # nothing wider to take
        assert (width, features) == (16, "None")


def test_a_target_the_user_set_is_left_alone():
    assert probe(**{SWITCH: "1"}, NUMBA_CPU_NAME="generic") == (16, 128, "''")
    width, bits, features = probe(**{SWITCH: "1"}, NUMBA_CPU_FEATURES="+avx2,+fma")
    assert (width, bits, features) == (16, 256, "'+avx2,+fma'")


@pytest.mark.parametrize("name, wide", [("_forward_panels", True), ("_backward_panels", True),
                                        ("_forward_blas", False), ("_backward_blas", False)])
def test_the_gemm_recurrences_over_panels_ask_for_the_widest_vectors(name, wide):
    """The GEMM path's recurrences over packed panels (their gate passes) carry LLVM's
    512-bit preference wherever numba compiles for AVX-512, and nowhere else; those over
    BLAS's products never (compiled afresh: numba does not keep a cached function's
    code)."""
    T, N, H, f = 2, 3, 8, np.float32
    G = 4 * H
    state = [np.zeros((T + 1, N, H), f) for _ in range(2)]
    if name.startswith("_forward"):  # bias, W_h, cont, h, c, gates, tanh_c, hm, P, n0, n1
        args = (np.zeros((N, G), f), np.zeros((G, H), f), np.ones((T, N), f), *state,
                np.zeros((T, N, G), f), np.zeros((T, N, H), f), np.zeros((T, N, H), f),
                K.panel_buffer(H, f, False, True), 0, N)
    else:  # top_diff, W_h, cont, c, gates, tanh_c, dpre, dh_rec, dc, Q, n0, n1
        args = (np.zeros((T, N, H), f), np.zeros((G, H), f), np.ones((T, N), f), state[0],
                np.full((T, N, G), 0.5, f), np.zeros((T, N, H), f), np.zeros((T, N, G), f),
                np.zeros((N, H), f), np.zeros((N, H), f), K.panel_buffer(H, f, True, True),
                0, N)
    fresh = njit(error_model="numpy")(getattr(K, name).py_func)
    fresh(*args)
    llvm = fresh.inspect_llvm(fresh.signatures[0])
    # the attribute group of the function's own definition (the module holds its callees,
    # the panel product among them, with their own)
    # (the function itself, not its cpython and cfunc wrappers)
    defines = re.findall(r"^define [^@\n]*@_ZN6seqgen7kernels14bvlc_lstm_gemm\d+" + name
                         + r"[^\n]*$", llvm, re.M)
    assert len(defines) == 1

    def wide_attribute(define):
        group = re.search(r" (#\d+) {$", define)
        return bool(group) and '"prefer-vector-width"="512"' in re.search(
            rf"^attributes {group.group(1)} = {{[^\n]*", llvm, re.M).group(0)

    assert wide_attribute(defines[0]) == (wide and host_has_avx512())
