"""Input checks of the scoring kernels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._validation import as_2d_array, as_sparse_2d, check_finite, float_dtype_for


def check_factor_matrices(U: Any, V: Any) -> tuple[np.ndarray, np.ndarray]:
    """Query factors ``U`` and item factors ``V`` as C-contiguous arrays of one float dtype.

    Both must be dense 2-D with the same number of columns, at least one, and
    finite.  float32 and float64 are kept; integers and booleans compute in
    float32; when the two dtypes differ, both are computed in the wider one
    (``np.result_type``), so float32 with float64 gives float64.  The caller's
    arrays are copied only when their dtype or layout must change.
    """
    arrays = []
    for X, name, layout in ((U, "U", "queries x factors"), (V, "V", "items x factors")):
        if sp.issparse(X):
            raise TypeError(
                f"{name} must be a dense array ({layout}), got a scipy sparse matrix. Factor "
                f"matrices are dense; pass {name}.toarray()."
            )
        array = as_2d_array(X, name, layout)
        float_dtype_for(array.dtype, name)
        arrays.append(array)
    u, v = arrays
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"U has {u.shape[1]} columns and V has {v.shape[1]}; both need one column per factor "
            "(U is queries x factors, V is items x factors)."
        )
    if u.shape[1] < 1:
        raise ValueError("U and V have no columns; they need at least one factor column.")
    dtype = np.result_type(float_dtype_for(u.dtype, "U"), float_dtype_for(v.dtype, "V"))
    u = np.ascontiguousarray(u, dtype=dtype)
    v = np.ascontiguousarray(v, dtype=dtype)
    check_finite(u, "U")
    check_finite(v, "V")
    _check_products_fit(u, v)
    return u, v


def _largest_magnitude(array: np.ndarray) -> float:
    return max(float(array.max()), -float(array.min())) if array.size else 0.0


def _check_products_fit(u: np.ndarray, v: np.ndarray) -> None:
    """Raise when a dot product of a row of ``u`` and a row of ``v`` could overflow their dtype.

    ``|u . v| <= f max|u| max|v|``; only values near the dtype's limit fail it.
    An overflowing score would be infinite or NaN and rank wrongly.
    """
    bound = _largest_magnitude(u) * _largest_magnitude(v) * u.shape[1]
    limit = float(np.finfo(u.dtype).max)
    if bound > limit:
        raise ValueError(
            f"U and V hold values so large (largest |U| {_largest_magnitude(u):.3g}, largest |V| "
            f"{_largest_magnitude(v):.3g}) that their dot products can overflow {u.dtype} (largest "
            f"{limit:.3g}). Rescale U or V, or pass float64 arrays."
        )


def check_pattern(
    X: Any, name: str, shape: tuple[int, int], index_dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The sparsity pattern of a (queries x items) matrix as (indptr int64, sorted unique indices).

    Every stored entry of a scipy sparse matrix counts, whatever its value
    (explicit zeros included); a dense array-like counts its non-zeros.
    Duplicates are merged.  The caller's matrix is never modified.
    """
    A = as_sparse_2d(X, name)
    if A.shape != shape:
        raise ValueError(
            f"{name} has shape {A.shape}, but it must be (n_queries, n_items) = {shape}: one row "
            "per row of U and one column per row of V."
        )
    csr = A if A.format == "csr" else A.tocsr()
    if not isinstance(csr, sp.csr_matrix):
        csr = sp.csr_matrix(csr)
    if not csr.has_canonical_format:
        # sum_duplicates sorts the indices too; it works on our copy, never on the caller's arrays
        csr = sp.csr_matrix(
            (np.ones(csr.nnz, dtype=np.int8), csr.indices, csr.indptr), shape=csr.shape, copy=True
        )
        csr.sum_duplicates()
    return (
        np.ascontiguousarray(csr.indptr, dtype=np.int64),
        np.ascontiguousarray(csr.indices, dtype=index_dtype),
    )


@dataclass(frozen=True)
class Candidates:
    """Canonical ``candidates=`` of :func:`fastrec.topn`: none, shared, or one list per query."""

    shared: np.ndarray | None  # sorted unique item indices (int64) shared by every query
    indptr: np.ndarray | None  # per-query pattern: int64 (n_queries + 1)
    indices: np.ndarray | None  # per-query pattern: sorted unique items of each row


def check_candidates(candidates: Any, n_queries: int, n_items: int, index_dtype: np.dtype) -> Candidates:
    """``candidates=`` as :class:`Candidates`, or raise naming ``candidates``.

    A 1-D array-like of item indices is shared by every query (duplicates are
    dropped); a scipy sparse matrix of shape (n_queries, n_items) lists each
    query's candidates as the stored entries of its row.
    """
    if candidates is None:
        return Candidates(None, None, None)
    if sp.issparse(candidates):
        indptr, indices = check_pattern(candidates, "candidates", (n_queries, n_items), index_dtype)
        return Candidates(None, indptr, indices)
    if isinstance(candidates, (str, bytes)):
        raise TypeError(f"candidates must be item indices or a scipy sparse matrix, got {candidates!r}.")
    try:
        array = np.asarray(candidates)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.ndim != 1:
        what = "ragged rows" if array is None else f"shape {array.shape}"
        raise TypeError(
            f"candidates has {what}. Pass a 1-D array of item indices shared by every "
            "query, or a (n_queries, n_items) scipy sparse matrix whose stored entries are each "
            "query's candidates (for example scipy.sparse.csr_matrix((ones, (query_ids, item_ids)), "
            "shape=...))."
        )
    if array.dtype == bool:
        raise TypeError(
            "candidates is a boolean array; pass the item indices instead, e.g. np.flatnonzero(mask)."
        )
    if array.size == 0:
        return Candidates(np.zeros(0, dtype=np.int64), None, None)
    if array.dtype.kind not in "iu":
        raise TypeError(f"candidates must hold integer item indices, got dtype {array.dtype}.")
    if array.min() < 0 or array.max() >= n_items:
        bad = array[(array < 0) | (array >= n_items)][0]
        raise ValueError(
            f"candidates contains the item index {bad}, outside [0, n_items={n_items}) (n_items is "
            "the number of rows of V)."
        )
    return Candidates(np.unique(array).astype(np.int64), None, None)
