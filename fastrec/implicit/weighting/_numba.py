"""Numba weighting: the algorithm of csrc/include/fastrec/weighting.hpp with ``prange``.

Statistics that cross rows are summed sequentially in stored order, per-row sums
by one thread each, and every weight is computed in float64 and rounded once:
results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_STRICT_OPTIONS


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def _document_weight(indptr, indices, data, n_cols, k1, b, by_rows, bm25, out_data):
    n_rows = indptr.shape[0] - 1
    if indptr[n_rows] == 0:
        return
    n_docs = n_rows if by_rows else n_cols
    n_terms = n_cols if by_rows else n_rows
    idf = np.zeros(n_terms, dtype=np.float64)
    length = np.zeros(n_docs, dtype=np.float64)
    if by_rows:
        for p in range(indptr[n_rows]):
            idf[indices[p]] += 1.0
        for row in nb.prange(n_rows):
            total = 0.0
            for p in range(indptr[row], indptr[row + 1]):
                total += np.float64(data[p])
            length[row] = total
    else:
        for row in range(n_rows):
            idf[row] = np.float64(indptr[row + 1] - indptr[row])
            for p in range(indptr[row], indptr[row + 1]):
                length[indices[p]] += np.float64(data[p])
    log_docs = math.log(np.float64(n_docs))
    for t in range(n_terms):
        idf[t] = log_docs - math.log1p(idf[t])
    total = 0.0
    for d in range(n_docs):
        total += length[d]
    average = total / np.float64(n_docs)
    for row in nb.prange(n_rows):
        for p in range(indptr[row], indptr[row + 1]):
            value = np.float64(data[p])
            doc = np.int64(row)
            term = np.int64(indices[p])
            if not by_rows:
                doc, term = term, doc
            weight = 0.0
            if value != 0:  # a stored zero weighs 0, never 0 / 0
                if bm25:
                    ratio = length[doc] / average if average > 0 else 1.0
                    norm = (1.0 - b) + b * ratio
                    weight = value * (k1 + 1.0) / (k1 * norm + value) * idf[term]
                else:
                    weight = math.sqrt(value) * idf[term]
            out_data[p] = weight


def bm25_weight(
    indptr,
    indices,
    data,  # IN  CSR of X (n_rows x n_cols), values >= 0
    n_cols,  # IN
    k1,
    b,  # IN  BM25 parameters
    by_rows,  # IN  True: rows are documents, columns terms
    out_data,  # OUT (nnz) weights in stored order
    n_threads,  # IN  threads (set by the caller through fastrec._runtime.kernel_threads)
):
    _document_weight(indptr, indices, data, n_cols, float(k1), float(b), bool(by_rows), True, out_data)


def tfidf_weight(
    indptr,
    indices,
    data,  # IN  CSR of X (n_rows x n_cols), values >= 0
    n_cols,  # IN
    by_rows,  # IN  True: rows are documents, columns terms
    out_data,  # OUT (nnz) weights in stored order
    n_threads,  # IN
):
    _document_weight(indptr, indices, data, n_cols, 0.0, 0.0, bool(by_rows), False, out_data)


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def _confidence(data, alpha, log, out_data):
    for p in nb.prange(data.shape[0]):
        value = np.float64(data[p])
        out_data[p] = 1.0 + alpha * (math.log1p(value) if log else value)


def confidence_weight(
    data,  # IN  (n) stored values >= 0
    alpha,  # IN  >= 0
    log,  # IN  1 + alpha * log1p(x) instead of 1 + alpha * x
    out_data,  # OUT (n)
    n_threads,  # IN
):
    _confidence(data, float(alpha), bool(log), out_data)
