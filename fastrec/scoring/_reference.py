"""Reference top-N scoring: plain numpy that defines the correct answer.

Same name and argument order as the C++ and Numba kernels.  Scores are formed
in float64 a block of queries at a time (memory stays bounded), rounded to the
output dtype, masked (excluded items and non-candidates become -inf), and
ranked by (descending score, ascending item index).  Only scores above -inf
are kept, so NaN never is.
"""

from __future__ import annotations

import numpy as np

_BLOCK_ROWS = 256


def topn(
    u,
    v,  # IN  (n_queries, f), (n_items, f) of one float dtype
    exclude_indptr,
    exclude_indices,  # IN  excluded items per query (CSR pattern); empty indptr: none
    cand_indptr,
    cand_indices,  # IN  candidates per query (CSR pattern); empty indptr: every item
    out_indices,
    out_scores,  # OUT (n_queries, n): best first, padded with -1 / -inf
    n_threads,  # IN  unused: the reference is single-threaded
):
    n_queries, n = out_indices.shape
    n_items = v.shape[0]
    v64 = v.astype(np.float64)
    out_indices[:] = -1
    out_scores[:] = -np.inf
    for start in range(0, n_queries, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n_queries)
        with np.errstate(over="ignore"):  # a product beyond the dtype's range becomes +-inf
            scores = (u[start:stop].astype(np.float64) @ v64.T).astype(out_scores.dtype)
        for row in range(stop - start):
            q = start + row
            allowed = np.ones(n_items, dtype=bool)
            if cand_indptr.shape[0]:
                allowed[:] = False
                allowed[cand_indices[cand_indptr[q] : cand_indptr[q + 1]]] = True
            if exclude_indptr.shape[0]:
                allowed[exclude_indices[exclude_indptr[q] : exclude_indptr[q + 1]]] = False
            s = scores[row]
            items = np.flatnonzero(allowed & (s > -np.inf))
            order = np.lexsort((items, -s[items]))[:n]
            out_indices[q, : order.size] = items[order]
            out_scores[q, : order.size] = s[items[order]]
