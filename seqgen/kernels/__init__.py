"""Numba kernels: plain jitted functions over numpy arrays, free of framework objects."""
