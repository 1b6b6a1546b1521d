"""Reference ranking metrics: plain numpy that defines the correct answer.

Same name and argument order as the C++ (csrc/include/fastrec/metrics.hpp) and
Numba kernels; the per-user formulas are written out one user at a time.
"""

from __future__ import annotations

import numpy as np


def ranking_metrics(
    recs,  # IN  (n_users x width) int64 item indices, -1 = empty slot
    k,  # IN  slots evaluated
    test_indptr,
    test_indices,  # IN  CSR pattern of the relevant items (sorted rows)
    n_items,  # IN
    out,  # OUT (n_users x 6) precision, recall, f1, ndcg, ap, hit; NaN rows without test items
    out_recommended,  # OUT (n_items) uint8, 1 for every item in a first-k slot (caller zeroes it)
    n_threads,  # IN  unused
):
    head = recs[:, :k]
    out_recommended[np.unique(head[head >= 0])] = 1
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    for u in range(recs.shape[0]):
        relevant = set(test_indices[test_indptr[u] : test_indptr[u + 1]].tolist())
        if not relevant:
            out[u] = np.nan
            continue
        rel = np.array([item >= 0 and int(item) in relevant for item in head[u]], dtype=np.float64)
        hits = rel.sum()
        precision = hits / k
        recall = hits / len(relevant)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        ideal = min(k, len(relevant))
        ndcg = float(np.sum(rel * discounts)) / float(np.sum(discounts[:ideal]))
        precision_at = np.cumsum(rel) / np.arange(1, k + 1)
        ap = float(np.sum(precision_at * rel)) / ideal
        out[u] = (precision, recall, f1, ndcg, ap, 1.0 if hits else 0.0)
