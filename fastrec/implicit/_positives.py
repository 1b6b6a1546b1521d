"""The positives of behaviour data that the pairwise models (BPR, WARP) train on."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def positives_of(R: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, sorted indices int32, user of every entry int32) of the entries > 0 of ``R``."""
    if not R.has_canonical_format:  # fit's matrices are canonical already; a copy leaves R as given
        R = R.copy()
        R.sum_duplicates()
    n_rows = R.shape[0]
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(R.indptr))
    keep = R.data > 0
    if keep.all():
        users, indices = rows, R.indices.astype(np.int32)
    else:
        users, indices = rows[keep], R.indices[keep].astype(np.int32)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_rows), out=indptr[1:])
    return indptr, indices, users
