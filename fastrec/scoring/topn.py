"""Exact top-N items per query for a factor model: the n largest ``U @ V.T`` entries per row."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastrec import _runtime
from fastrec import _validation as checks
from fastrec.scoring._checks import check_candidates, check_factor_matrices, check_pattern

_NONE = np.zeros(0, dtype=np.int64)  # an empty indptr: "no exclusions" / "every item a candidate"


def _kernel(backend: str):
    return _runtime.kernel_module(backend, "scoring").topn


def _columns_subset(
    indptr: np.ndarray, indices: np.ndarray, columns: np.ndarray, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """The pattern restricted to the sorted ``columns``, renumbered 0..len(columns)-1 (still sorted)."""
    position = np.full(n_cols, -1, dtype=np.int64)
    position[columns] = np.arange(columns.size)
    local = position[indices]
    keep = local >= 0
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))[keep]
    new_indptr = np.zeros(indptr.size, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=indptr.size - 1), out=new_indptr[1:])
    return new_indptr, local[keep].astype(indices.dtype)


def topn(
    U: Any,
    V: Any,
    n: int = 10,
    *,
    exclude: Any = None,
    candidates: Any = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``n`` best-scored items for every query of a factor model, exactly.

    The score of item ``i`` for query ``q`` is :math:`u_q \cdot v_i`; the
    queries x items score matrix is never formed.  A bias or an intercept
    rides along as extra columns (for example ``U = [P, b_u + mu, 1]`` and
    ``V = [Q, 1, b_i]`` scores ``mu + b_u + b_i + p_u . q_i``).

    Parameters
    ----------
    U : array-like, shape (n_queries, f)
        Query (user) factors, dense.
    V : array-like, shape (n_items, f)
        Item factors, dense.  float32 and float64 are kept; integers compute in
        float32; when ``U`` and ``V`` differ in dtype both are computed in the
        wider one (float32 with float64 gives float64).
    n : int, default 10
        Items returned per query (>= 1); capped at the number of items (of
        candidates, when they are shared), so no call allocates more than the
        result can hold.
    exclude : scipy sparse matrix or array-like, shape (n_queries, n_items), optional
        Items never returned to a query (for example the items it has already
        seen).  Every stored entry of a sparse matrix excludes its item,
        whatever its value; a dense array excludes its non-zeros.
    candidates : array-like of int, or scipy sparse matrix, optional
        Restrict the ranking to these items.  A 1-D array of item indices is
        shared by every query (duplicates are ignored).  A (n_queries, n_items)
        sparse matrix gives each query its own candidates: the stored entries
        of its row (their values do not matter).  Exclusions still apply.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  The result is
        bit-identical for any thread count.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"numpy"`` is the slow reference implementation.

    Returns
    -------
    indices : ndarray of int32, shape (n_queries, min(n, n_items))
        Item indices (rows of ``V``), best first; ties go to the smaller index.
        A query with fewer than ``n`` items left (after exclusions, among its
        candidates) is padded with -1.  int64 when ``V`` has more than
        2**31 - 1 rows.
    scores : ndarray, shape (n_queries, min(n, n_items))
        The matching scores in the computing dtype; ``-inf`` in padded slots.

    Notes
    -----
    Factors whose dot products could overflow the dtype (``f * max|U| * max|V|``
    beyond its largest value) are refused with a ValueError, since an
    overflowed score would rank wrongly.  Scores are dot products whose rounding
    depends on the backend and SIMD level (fused multiply-adds where the CPU
    has them, and the C++ kernel's per-query ``candidates`` path sums in SIMD
    lanes), so they agree with an exact product to rounding, and items whose
    scores differ by less than that may trade places between backends.  For a
    given backend and SIMD level the result is bit-identical for any thread
    count.  Extra memory is O(f x n_items) for the packed copy of V and
    O(threads x tile x n): the n_queries x n_items score matrix never exists.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fastrec
    >>> rng = np.random.default_rng(0)
    >>> U = rng.normal(size=(100, 16)).astype(np.float32)
    >>> V = rng.normal(size=(500, 16)).astype(np.float32)
    >>> seen = sp.random(100, 500, density=0.02, format="csr", random_state=0)
    >>> items, scores = fastrec.topn(U, V, n=5, exclude=seen)
    >>> items.shape, scores.dtype
    ((100, 5), dtype('float32'))
    """
    u, v = check_factor_matrices(U, V)
    n = checks.check_int(n, "n", minimum=1)
    backend = _runtime.resolve_backend(backend)
    n_threads = _runtime.resolve_threads(n_threads)
    n_queries, n_items = u.shape[0], v.shape[0]
    index_dtype = checks.index_dtype_for(n_items)
    cand = check_candidates(candidates, n_queries, n_items, index_dtype)
    if exclude is not None:
        excl_indptr, excl_indices = check_pattern(exclude, "exclude", (n_queries, n_items), index_dtype)
    else:
        excl_indptr, excl_indices = _NONE, np.zeros(0, dtype=index_dtype)
    cand_indptr, cand_indices = _NONE, np.zeros(0, dtype=index_dtype)
    if cand.shared is not None:  # score the candidate rows of V only, then map back
        v = np.ascontiguousarray(v[cand.shared])
    n = max(1, min(n, v.shape[0]))
    if cand.shared is not None:
        if exclude is not None:
            excl_indptr, excl_indices = _columns_subset(excl_indptr, excl_indices, cand.shared, n_items)
    elif cand.indptr is not None and cand.indices is not None:  # set together
        cand_indptr, cand_indices = cand.indptr, cand.indices

    out_indices = np.empty((n_queries, n), dtype=index_dtype)
    out_scores = np.empty((n_queries, n), dtype=u.dtype)
    if n_queries:
        with _runtime.kernel_threads(backend, n_threads):
            _kernel(backend)(
                u=u,
                v=v,
                exclude_indptr=excl_indptr,
                exclude_indices=excl_indices,
                cand_indptr=cand_indptr,
                cand_indices=cand_indices,
                out_indices=out_indices,
                out_scores=out_scores,
                n_threads=n_threads,
            )
    if cand.shared is not None:
        found = out_indices >= 0
        out_indices[found] = cand.shared[out_indices[found]]
    return out_indices, out_scores
