"""Input checks of the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._validation import (
    _rating_values,
    check_finite,
    check_float,
    check_sparse_structure,
    entry_rows,
    index_dtype_for,
)


def check_recommendation_table(recommended: Any, n_users: int, n_items: int, k: int) -> np.ndarray:
    """A (n_users, >= k) integer table of inner item indices (-1 = empty) as int64."""
    table = np.asarray(recommended)
    if table.dtype.kind not in "iu":
        raise TypeError(
            f"recommended must hold integer item indices (-1 for an empty slot), got dtype {table.dtype}."
        )
    if table.ndim != 2:
        raise ValueError(f"recommended must be 2-D (users x ranked items), got shape {table.shape}.")
    if table.shape[0] != n_users:
        raise ValueError(
            f"recommended has {table.shape[0]} rows but test has {n_users} users; pass one row per "
            "row of test (users without test items are skipped)."
        )
    if table.shape[1] < k:
        raise ValueError(
            f"recommended has {table.shape[1]} columns, fewer than k={k}; recommend at least k items."
        )
    head = np.ascontiguousarray(table[:, :k], dtype=np.int64)
    if head.size:
        low, high = int(head.min()), int(head.max())
        if low < -1 or high >= n_items:
            bad = low if low < -1 else high
            raise ValueError(
                f"recommended contains the item index {bad}, outside [0, {n_items}) (test has "
                f"{n_items} items; -1 marks an empty slot). Map raw ids to column indices of test."
            )
        ordered = np.sort(head, axis=1)
        duplicate = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if duplicate.any():
            row = int(np.argmax(duplicate.any(axis=1)))
            raise ValueError(
                f"recommended row {row} lists an item more than once in its first k={k} slots; "
                "each item may appear once per user."
            )
    return np.ascontiguousarray(table, dtype=np.int64)


def check_relevance_matrix(test: Any, threshold: float | None) -> sp.csr_matrix:
    """The relevant items of a users x items test matrix, as canonical CSR of ones.

    Every stored entry is relevant (explicit zeros included) unless ``threshold``
    is given, in which case entries with a value >= threshold are.
    """
    if not sp.issparse(test):
        raise TypeError(f"test must be a users x items scipy sparse matrix, got {type(test).__name__}.")
    test = check_sparse_structure(test, "test")
    csr = sp.csr_matrix(test, copy=True)  # never change the caller's matrix
    check_finite(csr.data, "test")
    csr.sum_duplicates()
    keep = np.ones(csr.nnz, dtype=bool)
    if threshold is not None:
        threshold = check_float(threshold, "threshold")
        keep = np.asarray(csr.data >= threshold)
    indptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    rows = entry_rows(csr.indptr)
    np.cumsum(np.bincount(rows[keep], minlength=csr.shape[0]), out=indptr[1:])
    index_dtype = index_dtype_for(*csr.shape)
    return sp.csr_matrix(
        (np.ones(int(indptr[-1]), dtype=np.float32), csr.indices[keep].astype(index_dtype), indptr),
        shape=csr.shape,
    )


def check_prediction_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length, non-empty, finite 1-D numeric arrays as float64."""
    true = _rating_values(np.asarray(y_true).reshape(-1) if np.ndim(y_true) == 0 else y_true, "y_true")
    pred = _rating_values(np.asarray(y_pred).reshape(-1) if np.ndim(y_pred) == 0 else y_pred, "y_pred")
    if true.size != pred.size:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.size} and {pred.size}.")
    if true.size == 0:
        raise ValueError("y_true and y_pred are empty: there is nothing to score.")
    return true.astype(np.float64), pred.astype(np.float64)
