"""Scalars inside kernels: `typed(a, v)`, v as a scalar of array a's dtype, so that float32
kernels stay float32 (numba turns float32 op int, or op a Python float, into float64); and
`U`, the type of an unsigned index."""
import numpy as np
from numba.extending import overload
from numba.np.numpy_support import as_dtype

#: `a[U(i + k)]`: an index the compiler cannot prove non-negative gets numba's wraparound
#: select on every element, which kept loops from vectorising (8x slower for 128 units in
#: kernels.generate); an unsigned one does not
U = np.uint64


def typed(a, v):
    return a.dtype.type(v)


@overload(typed)
def _typed(a, v):
    scalar = as_dtype(a.dtype).type
    return lambda a, v: scalar(v)
