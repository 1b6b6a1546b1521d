"""Numba recommendation kernels: the algorithms of csrc/include/fastrec/recommenders.hpp.

Output rows are dealt round-robin to chunks (a few per thread, so power-law rows
even out); every chunk owns its scratch: a float64 accumulator and a state byte
per item (both cleared after each row through the touched list), a touched list
and a bounded heap.  A row's
result depends only on that row, so it does not depend on the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._numba_helpers import heap_drain_sorted, heap_push, heap_threshold
from fastrec._runtime import NUMBA_STRICT_OPTIONS

_CHUNKS_PER_THREAD = 4


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _write_row(heap_scores, heap_indices, size, n, out_indices, out_scores, r):
    count = heap_drain_sorted(heap_scores, heap_indices, size, out_scores[r], out_indices[r])
    for s in range(count, n):
        out_indices[r, s] = -1
        out_scores[r, s] = -np.inf


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
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
    n_threads,  # IN
):
    n_out = rows.shape[0]
    n_chunks = max(1, min(n_out, n_threads * _CHUNKS_PER_THREAD))
    use_mask = allowed.shape[0] > 0
    for chunk in nb.prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float64)  # zeros between rows
        state = np.zeros(n_items, dtype=np.uint8)  # 0 untouched, 1 touched, 2 excluded
        touched = np.empty(n_items + 1, dtype=np.int64)
        heap_scores = np.empty(n, dtype=out_scores.dtype)
        heap_indices = np.empty(n, dtype=np.int64)
        cast = np.empty(1, dtype=out_scores.dtype)  # rounds the float64 sum to the output dtype
        for r in range(chunk, n_out, n_chunks):
            u = rows[r]
            size = 0
            if u < 0:
                _write_row(heap_scores, heap_indices, size, n, out_indices, out_scores, r)
                continue
            if exclude_seen:  # marked first, so never listed as touched
                for p in range(seen_indptr[u], seen_indptr[u + 1]):
                    state[seen_indices[p]] = 2
            n_touched = 0
            for p in range(a_indptr[u], a_indptr[u + 1]):
                mid = a_indices[p]
                weight = np.float64(a_data[p])
                for q in range(w_indptr[mid], w_indptr[mid + 1]):
                    j = w_indices[q]
                    acc[j] += weight * np.float64(w_data[q])
                    touched[n_touched] = j  # the list only grows on an item's first visit
                    n_touched += state[j] == 0
                    state[j] |= 1
            for t in range(n_touched):
                j = touched[t]
                cast[0] = acc[j]
                score = cast[0]
                acc[j] = 0.0
                state[j] = 0
                if use_mask and allowed[j] == 0:
                    continue
                if np.isnan(score) or score < heap_threshold(heap_scores, size):
                    continue
                size = heap_push(heap_scores, heap_indices, size, score, j)
            if exclude_seen:  # back to zeros; excluded items may hold partial sums
                for p in range(seen_indptr[u], seen_indptr[u + 1]):
                    acc[seen_indices[p]] = 0.0
                    state[seen_indices[p]] = 0
            _write_row(heap_scores, heap_indices, size, n, out_indices, out_scores, r)


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def dense_topn(
    scores,  # IN  (n_rows x n_cols) -inf / NaN = not a candidate
    n,  # IN  entries kept per row
    out_indices,
    out_scores,  # OUT (n_rows x n), (n_rows x n)
    n_threads,  # IN
):
    n_rows, n_cols = scores.shape
    n_chunks = max(1, min(n_rows, n_threads * _CHUNKS_PER_THREAD))
    for chunk in nb.prange(n_chunks):
        heap_scores = np.empty(n, dtype=out_scores.dtype)
        heap_indices = np.empty(n, dtype=np.int64)
        for r in range(chunk, n_rows, n_chunks):
            size = 0
            for j in range(n_cols):
                score = scores[r, j]
                if not (score > -np.inf) or score < heap_threshold(heap_scores, size):
                    continue
                size = heap_push(heap_scores, heap_indices, size, score, j)
            _write_row(heap_scores, heap_indices, size, n, out_indices, out_scores, r)
