"""`typed(a, v)`: v as a scalar of array a's dtype inside a kernel, so that float32 kernels
stay float32 (numba turns float32 op int, or op a Python float, into float64)."""
from numba.extending import overload
from numba.np.numpy_support import as_dtype


def typed(a, v):
    return a.dtype.type(v)


@overload(typed)
def _typed(a, v):
    scalar = as_dtype(a.dtype).type
    return lambda a, v: scalar(v)
