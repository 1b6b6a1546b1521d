"""Reference recommendation kernels: plain numpy/scipy that defines the correct answer.

Same names and argument order as the C++ (csrc/include/fastrec/recommenders.hpp)
and Numba kernels.  Scores are formed by scipy's sparse product in float64 (it
sums each row's terms in the stored order of A, as the compiled kernels do),
rounded to the output dtype and ranked by (descending score, ascending index).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_BLOCK_ROWS = 256


def _rank_rows(
    scores: np.ndarray,
    candidate: np.ndarray,
    n: int,
    out_indices: np.ndarray,
    out_scores: np.ndarray,
    offset: int,
) -> None:
    """Write the ``n`` best candidates of every row of a dense block into the outputs."""
    for r in range(scores.shape[0]):
        cols = np.flatnonzero(candidate[r])
        values = scores[r, cols]
        order = np.lexsort((cols, -values))[:n]
        out_indices[offset + r, : order.size] = cols[order]
        out_scores[offset + r, : order.size] = values[order]


def sparse_score_topn(
    a_indptr,
    a_indices,
    a_data,  # IN  CSR of A (n_a x n_mid)
    w_indptr,
    w_indices,
    w_data,  # IN  CSR of W (n_mid x n_items)
    n_items,  # IN
    seen_indptr,
    seen_indices,  # IN  CSR pattern of the excluded items (n_a x n_items)
    rows,  # IN  (n_out) row of A per output row, -1 = leave padded
    allowed,  # IN  (n_items) uint8 candidate flags, or empty for every item
    exclude_seen,  # IN  bool
    n,  # IN  items kept per row
    out_indices,
    out_scores,  # OUT (n_out x n), (n_out x n)
    n_threads,  # IN  unused: the reference is single-threaded
):
    n_a, n_mid = a_indptr.shape[0] - 1, w_indptr.shape[0] - 1
    A = sp.csr_matrix((a_data.astype(np.float64), a_indices, a_indptr), shape=(n_a, n_mid))
    W = sp.csr_matrix((w_data.astype(np.float64), w_indices, w_indptr), shape=(n_mid, n_items))
    # Reached items: the product of the stored patterns (a stored zero still links).
    A_pattern = sp.csr_matrix((np.ones(a_data.size), a_indices, a_indptr), shape=A.shape)
    W_pattern = sp.csr_matrix((np.ones(w_data.size), w_indices, w_indptr), shape=W.shape)
    seen = sp.csr_matrix((np.ones(seen_indices.size), seen_indices, seen_indptr), shape=(n_a, n_items))
    out_indices[...] = -1
    out_scores[...] = -np.inf
    valid = np.flatnonzero(rows >= 0)
    for start in range(0, valid.size, _BLOCK_ROWS):
        positions = valid[start : start + _BLOCK_ROWS]
        block = rows[positions]
        scores = (A[block] @ W).toarray().astype(out_scores.dtype)
        candidate = (A_pattern[block] @ W_pattern).toarray() > 0
        if exclude_seen:
            candidate &= seen[block].toarray() == 0
        if allowed.size:
            candidate &= allowed.astype(bool)[None, :]
        candidate &= ~np.isnan(scores)
        for r, position in enumerate(positions):
            _rank_rows(scores[r : r + 1], candidate[r : r + 1], n, out_indices, out_scores, position)


def dense_topn(
    scores,  # IN  (n_rows x n_cols) -inf / NaN = not a candidate
    n,  # IN  entries kept per row
    out_indices,
    out_scores,  # OUT (n_rows x n), (n_rows x n)
    n_threads,  # IN  unused
):
    out_indices[...] = -1
    out_scores[...] = -np.inf
    _rank_rows(scores, scores > -np.inf, n, out_indices, out_scores, 0)
