"""Numba ranking metrics: the algorithm of csrc/include/fastrec/metrics.hpp with ``prange``."""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_STRICT_OPTIONS


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def ranking_metrics(
    recs,  # IN  (n_users x width) int64 item indices, -1 = empty slot
    k,  # IN  slots evaluated
    test_indptr,
    test_indices,  # IN  CSR pattern of the relevant items (sorted rows)
    n_items,  # IN
    out,  # OUT (n_users x 6) precision, recall, f1, ndcg, ap, hit; NaN rows without test items
    out_recommended,  # OUT (n_items) uint8, 1 for every item in a first-k slot (caller zeroes it)
    n_threads,  # IN
):
    n_users = recs.shape[0]
    for u in nb.prange(n_users):
        for p in range(k):
            if recs[u, p] >= 0:
                out_recommended[recs[u, p]] = 1  # every writer stores the same value
        first, last = test_indptr[u], test_indptr[u + 1]
        n_relevant = last - first
        if n_relevant == 0:
            for m in range(6):
                out[u, m] = np.nan
            continue
        row = test_indices[first:last]
        hits = 0
        dcg = 0.0
        ap = 0.0
        for p in range(k):
            item = recs[u, p]
            if item < 0:
                continue
            pos = np.searchsorted(row, item)
            if pos == n_relevant or row[pos] != item:
                continue
            hits += 1
            dcg += 1.0 / np.log2(p + 2.0)
            ap += hits / (p + 1.0)
        ideal = min(k, n_relevant)
        idcg = 0.0
        for p in range(ideal):
            idcg += 1.0 / np.log2(p + 2.0)
        precision = hits / k
        recall = hits / n_relevant
        out[u, 0] = precision
        out[u, 1] = recall
        out[u, 2] = 2.0 * precision * recall / (precision + recall) if hits > 0 else 0.0
        out[u, 3] = dcg / idcg
        out[u, 4] = ap / ideal
        out[u, 5] = 1.0 if hits > 0 else 0.0
