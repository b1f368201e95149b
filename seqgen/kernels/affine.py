"""InnerProduct's parameter gradients in one compiled call: dW += dy^T x by a BLAS gemm
with beta = 1 straight into the diff (Caffe's caffe_cpu_gemm(..., 1., weight_diff)), and
db += the column sums of dy."""
from numba import njit

from .blas import gemm
from .reduce import add_column_sums

JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**JIT)
def affine_param_gradients(dy, x, dW, db, acc, transpose):
    """dy (M, N_out), x (M, K); dW is (N_out, K), or (K, N_out) with `transpose`; db is empty
    without a bias; acc is scratch of length N_out."""
    if transpose:
        gemm(True, False, 1.0, x, dy, 1.0, dW)
    else:
        gemm(True, False, 1.0, dy, x, 1.0, dW)
    if db.size:
        add_column_sums(dy, acc, db)
