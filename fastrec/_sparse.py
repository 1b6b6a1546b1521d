"""Sparse-matrix operations that call the compiled core."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec._validation import index_dtype_for


def transpose_csr(csr: sp.csr_matrix, n_threads: int = 1) -> sp.csr_matrix:
    """Canonical CSR of ``csr.T`` for a canonical CSR ``csr``.

    Uses the compiled core's parallel transpose when it is available (the
    result is the same for any thread count), else scipy.
    """
    if _runtime._cpp is None or csr.nnz < 1 << 16:
        return csr.T.tocsr()
    index_dtype = index_dtype_for(*csr.shape, csr.nnz)
    indptr, indices, data = _runtime._cpp.csr_transpose(
        np.ascontiguousarray(csr.indptr, dtype=np.int64),
        np.ascontiguousarray(csr.indices, dtype=index_dtype),
        np.ascontiguousarray(csr.data),
        int(csr.shape[1]),
        int(n_threads),
    )
    result = sp.csr_matrix((data, indices, indptr), shape=(csr.shape[1], csr.shape[0]))
    result.has_sorted_indices = True
    return result
