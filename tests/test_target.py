"""kernels.target: SEQGEN_WIDE_VECTORS=1 compiles the kernels for the CPU's widest vectors
unless the user set numba's target, and the register tiles follow the width numba really
compiles for."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqgen.kernels.target import PREFER_512, SWITCH, vector_bits

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
