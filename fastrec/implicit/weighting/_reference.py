"""Reference weighting: plain numpy that defines the correct answer.

Same names and argument order as the C++ and Numba kernels.  Statistics are
formed in float64 in stored order (``np.bincount``), every weight in float64 and
rounded once to the output dtype.
"""

from __future__ import annotations

import numpy as np


def _document_statistics(indptr, indices, data, n_cols, by_rows):
    """(doc, term, idf, average length, length) of every stored entry / document."""
    n_rows = indptr.shape[0] - 1
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    cols = indices.astype(np.int64)
    doc, term = (rows, cols) if by_rows else (cols, rows)
    n_docs, n_terms = (n_rows, n_cols) if by_rows else (n_cols, n_rows)
    df = np.bincount(term, minlength=n_terms).astype(np.float64)
    idf = np.log(np.float64(n_docs)) - np.log1p(df)
    length = np.bincount(doc, weights=data.astype(np.float64), minlength=n_docs)
    total = 0.0
    for value in length:  # sequential, as the compiled kernels sum
        total += value
    return doc, term, idf, total / n_docs, length


def bm25_weight(
    indptr,
    indices,
    data,  # IN  CSR of X (n_rows x n_cols), values >= 0
    n_cols,  # IN
    k1,
    b,  # IN  BM25 parameters
    by_rows,  # IN  True: rows are documents, columns terms
    out_data,  # OUT (nnz) weights in stored order
    n_threads,  # IN  unused: the reference is single-threaded
):
    if data.shape[0] == 0:
        return
    doc, term, idf, average, length = _document_statistics(indptr, indices, data, n_cols, by_rows)
    x = data.astype(np.float64)
    ratio = length[doc] / average if average > 0 else np.ones(x.shape[0])
    norm = (1.0 - b) + b * ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = x * (k1 + 1.0) / (k1 * norm + x) * idf[term]
    out_data[:] = np.where(x != 0, weight, 0.0)


def tfidf_weight(
    indptr,
    indices,
    data,  # IN  CSR of X (n_rows x n_cols), values >= 0
    n_cols,  # IN
    by_rows,  # IN  True: rows are documents, columns terms
    out_data,  # OUT (nnz) weights in stored order
    n_threads,  # IN  unused
):
    if data.shape[0] == 0:
        return
    _, term, idf, _, _ = _document_statistics(indptr, indices, data, n_cols, by_rows)
    x = data.astype(np.float64)
    out_data[:] = np.where(x != 0, np.sqrt(x) * idf[term], 0.0)


def confidence_weight(
    data,  # IN  (n) stored values >= 0
    alpha,  # IN  >= 0
    log,  # IN  1 + alpha * log1p(x) instead of 1 + alpha * x
    out_data,  # OUT (n)
    n_threads,  # IN  unused
):
    x = data.astype(np.float64)
    out_data[:] = 1.0 + alpha * (np.log1p(x) if log else x)
