"""Sparse cosine similarity with the top-k neighbours of every row."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._sparse import transpose_csr
from fastrec.similarity._checks import check_rows, rows_and_transpose


def _kernel(backend: str):
    return _runtime.kernel_module(backend, "similarity").cosine_topk


def cosine_topk(
    X: Any,
    Y: Any = None,
    k: int = 50,
    *,
    shrink: float = 0.0,
    exclude_self: bool = True,
    rows: slice | tuple[int, int] | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> sp.csr_matrix:
    r"""Top-``k`` cosine neighbours of every row of ``X`` among the rows of ``Y``.

    .. math::

        \mathrm{sim}(i, j) = \frac{\langle x_i, y_j \rangle}
                                   {\lVert x_i \rVert \, \lVert y_j \rVert + \mathrm{shrink}}

    Parameters
    ----------
    X : scipy sparse matrix or array-like, shape (n, d)
        The objects compared, one per row.  For item-item collaborative filtering
        pass the transposed interactions, ``cosine_topk(R.T)`` with ``R`` users x
        items (a CSC transpose is used without copying); for content similarity
        pass TF-IDF rows.  float32 and float64 are kept; integer data computes in
        float32.
    Y : scipy sparse matrix or array-like, shape (m, d), optional
        Candidate rows.  ``None`` compares ``X`` with itself.
    k : int, default 50
        Neighbours kept per row (>= 1).  A row with fewer non-zero candidates
        keeps fewer.
    shrink : float, default 0.0
        Added to the norm product; damps similarities supported by little data.
    exclude_self : bool, default True
        With ``Y=None``, never return row ``i`` as its own neighbour.
    rows : slice or (start, stop), optional
        Compute only this contiguous block of ``X``'s rows; the result then has
        ``stop - start`` rows.  Stacking the blocks (``scipy.sparse.vstack``)
        gives the full result, so the work can be split across processes.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  The result does
        not depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"auto"`` picks the compiled core, else Numba.  ``"numpy"`` is the slow
        reference implementation.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, m) or (stop - start, m)
        Row ``i`` holds at most ``k`` entries ``(j, sim(i, j))`` with non-zero
        scores, stored in rank order: descending score, ties to the smaller
        ``j``.  Column indices within a row are therefore *not* sorted; calling
        ``sort_indices()`` would discard the ranking.  A row of ``X`` with no
        non-zero entry has no neighbours.  Scores lie in [-1, 1] (a score that
        rounding pushes past 1 is clamped).  Dtype is that of ``X`` (and ``Y``).

    Notes
    -----
    Peak extra memory is O(nnz(X) + nnz(Y) + n*k + threads*m); the n x m
    similarity matrix is never formed.

    Any finite values are handled, however large or small.  When the data's
    magnitudes leave the range in which every product, sum and norm stays a
    normal number of the dtype (about ``[2**-32, 2**32]`` for float32 and
    ``[2**-256, 2**256]`` for float64), or ``shrink`` exceeds ``2**64``
    (float32) or ``2**512`` (float64), each row is rescaled by a power of two
    (exact, and cosine does not change) so that its largest magnitude lies in
    ``[0.5, 1)``; with ``shrink`` the term of pair ``(i, j)`` is rescaled with
    it, as ``ldexp(shrink, -(e_i + e_j))`` from the rows' exponents.  The
    scores are then those of the unscaled computation wherever that one had no
    overflow or underflow.  A score whose magnitude is below the dtype's
    smallest normal number may come out as 0, and is then not stored.

    Dot products agree with exact ones to rounding, which depends on the
    backend and SIMD level: the compiled core sums with fused multiply-adds
    where the CPU has them.  Products that cancel exactly (orthogonal rows) can
    therefore leave a score of rounding size (about ``1e-8`` in float32) that is
    stored, where an unfused sum gives 0 and stores nothing.

    Examples
    --------
    >>> import scipy.sparse as sp, fastrec
    >>> R = sp.random(1000, 300, density=0.05, format="csr", random_state=0)
    >>> neighbours = fastrec.cosine_topk(R.T, k=10)      # item-item
    >>> neighbours.shape
    (300, 300)
    """
    return neighbours_topk(
        X, Y, k, shrink=shrink, exclude_self=exclude_self, rows=rows, n_threads=n_threads, backend=backend
    )


COSINE, DOT, JACCARD = 0, 1, 2  # the measures of csrc/include/fastrec/similarity.hpp


def neighbours_topk(
    X: Any,
    Y: Any,
    k: int,
    *,
    shrink: float,
    exclude_self: bool,
    rows: Any,
    n_threads: int | None,
    backend: str,
    measure: int = COSINE,
    prepare: Any = None,
) -> sp.csr_matrix:
    """The top-``k`` kernel behind :func:`cosine_topk` and :func:`fastrec.similarity_topk`.

    ``prepare(x, y)`` (``y`` None when Y is X) returns new canonical CSR rows of
    the kernel's dtype to score instead (centred, binary or weighted rows);
    ``measure`` picks the kernel's scoring of their dot products.
    """
    k = V.check_int(k, "k", minimum=1)
    shrink = V.check_float(shrink, "shrink", minimum=0.0)
    if not isinstance(exclude_self, (bool, np.bool_)):
        raise TypeError(f"exclude_self must be True or False, got {exclude_self!r}.")
    backend = _runtime.resolve_backend(backend)
    n_threads = _runtime.resolve_threads(n_threads)
    _check_memory(X, X if Y is None else Y, k, n_threads)

    if Y is None:
        x, yt = rows_and_transpose(X, "X", n_threads=n_threads)
        y_rows = x
        same_matrix = True
    else:
        X_sparse, Y_sparse = V.as_sparse_2d(X, "X"), V.as_sparse_2d(Y, "Y")
        if X_sparse.shape[1] != Y_sparse.shape[1]:
            raise ValueError(
                f"X and Y must have the same number of columns (features): X has "
                f"{X_sparse.shape[1]}, Y has {Y_sparse.shape[1]}."
            )
        dtype = np.result_type(V.float_dtype_for(X_sparse.dtype, "X"), V.float_dtype_for(Y_sparse.dtype, "Y"))
        x = V.canonical_csr(X_sparse, "X", dtype)
        y_rows, yt = rows_and_transpose(Y_sparse, "Y", dtype, n_threads=n_threads)
        same_matrix = False
    if prepare is not None:
        x, y_new = prepare(x, None if same_matrix else y_rows)
        y_rows = x if same_matrix else y_new
        yt = transpose_csr(y_rows, n_threads)

    n, d = x.shape
    m = yt.shape[1]
    start, stop = check_rows(rows, n)
    n_out = stop - start
    capacity = min(k, m)
    index_dtype = V.index_dtype_for(n, d, m)
    if n_out == 0 or capacity == 0:
        return sp.csr_matrix((n_out, m), dtype=x.dtype)

    xa, yta = V.csr_arrays(x, index_dtype), V.csr_arrays(yt, index_dtype)
    no_exponents = np.zeros(0, dtype=np.int32)
    x_exp = y_exp = no_exponents
    # only cosine is invariant under the rescaling (Jaccard rows are binary)
    if measure == COSINE and _needs_rescaling(x.data, None if same_matrix else yt.data, shrink):
        x_exp = _row_exponents(x)
        y_exp = x_exp if same_matrix else _row_exponents(y_rows)
        # new arrays: the caller's data is never changed
        xa = dataclasses.replace(xa, data=np.ldexp(xa.data, -np.repeat(x_exp, np.diff(x.indptr))))
        yta = dataclasses.replace(yta, data=np.ldexp(yta.data, -y_exp[yta.indices]))
        if shrink == 0:  # the exponents only serve the shrink term
            x_exp = y_exp = no_exponents
    out_indices = np.empty((n_out, capacity), dtype=index_dtype)
    out_scores = np.empty((n_out, capacity), dtype=x.dtype)
    out_counts = np.zeros(n_out, dtype=np.int64)
    with _runtime.kernel_threads(backend, n_threads):
        _kernel(backend)(
            x_indptr=xa.indptr,
            x_indices=xa.indices,
            x_data=xa.data,
            yt_indptr=yta.indptr,
            yt_indices=yta.indices,
            yt_data=yta.data,
            n_candidates=m,
            row_begin=start,
            row_end=stop,
            k=capacity,
            shrink=shrink,
            measure=measure,
            x_exp=x_exp,
            y_exp=y_exp,
            same_matrix=same_matrix,
            exclude_self=bool(exclude_self),
            out_indices=out_indices,
            out_scores=out_scores,
            out_counts=out_counts,
            n_threads=n_threads,
        )
    return topk_table_to_csr(out_indices, out_scores, out_counts, m)


def _magnitude_range(data: np.ndarray) -> tuple[float, float]:
    """Smallest non-zero and largest ``|value|`` of ``data``."""
    lo, hi = data.min(), data.max()
    if lo > 0:  # the common all-positive case: no |data| array needed
        return float(lo), float(hi)
    magnitude = np.abs(data)
    nonzero = magnitude[magnitude > 0] if lo == 0 or hi == 0 else magnitude
    return (float(nonzero.min()), float(nonzero.max())) if nonzero.size else (1.0, 1.0)


def _needs_rescaling(x_data: np.ndarray, y_data: np.ndarray | None, shrink: float) -> bool:
    """Whether some product, sum or norm of the kernels could leave the normal range.

    With every non-zero ``|value|`` in ``[2**-(e//4), 2**(e//4)]`` and ``shrink <=
    2**(e//2)`` (``e`` the dtype's largest exponent, 128 or 1024), products, dot
    products, norms, inverse norms and their products all stay normal numbers.
    """
    limit = np.finfo(x_data.dtype).maxexp
    lowest, highest = 2.0 ** -(limit // 4), 2.0 ** (limit // 4)
    if shrink > 2.0 ** (limit // 2):
        return True
    for data in (x_data, y_data):
        if data is not None and data.size:
            lo, hi = _magnitude_range(data)
            if lo < lowest or hi > highest:
                return True
    return False


def _row_exponents(csr: sp.csr_matrix) -> np.ndarray:
    """int32 ``e`` per row with the row's largest ``|value|`` in ``[2**(e-1), 2**e)``; 0 for empty rows."""
    counts = np.diff(csr.indptr)
    exponents = np.zeros(csr.shape[0], dtype=np.int32)
    nonempty = counts > 0
    if csr.nnz:
        # reduceat over the non-empty rows' starts: each segment is exactly one row
        peak = np.maximum.reduceat(np.abs(csr.data), csr.indptr[:-1][nonempty])
        exponents[nonempty] = np.frexp(peak)[1]
    return exponents


def _check_memory(X: Any, Y: Any, k: int, n_threads: int) -> None:
    """Refuse shapes whose working memory the machine cannot hold, before allocating it.

    A sparse matrix can declare far more rows or columns than it stores: the
    transpose's row pointers (one per feature), each thread's dense accumulator
    (one slot per candidate) and the (rows x k) result grow with the shape.
    """
    if not (sp.issparse(X) or sp.issparse(Y)) or np.ndim(X) != 2 or np.ndim(Y) != 2:
        return  # dense input already holds every element it declares
    (n, d), m = np.shape(X), np.shape(Y)[0]
    n_bytes = 8 * (d + 1) + n_threads * m * 24 + n * min(k, m) * 16
    V.check_memory(
        n_bytes,
        f"cosine_topk of {n:,} x {d:,} against {m:,} rows",
        "pass matrices whose shapes are the rows and features that exist.",
    )


def topk_table_to_csr(
    indices: np.ndarray, scores: np.ndarray, counts: np.ndarray, n_cols: int
) -> sp.csr_matrix:
    """Pack a padded (rows x k) top-k table into CSR, keeping each row's rank order.

    Parameters
    ----------
    indices, scores : ndarray, shape (rows, k)
        Row ``r`` holds ``counts[r]`` valid entries first, best first.
    counts : ndarray of int64, shape (rows,)
    n_cols : int
        Number of columns of the result.
    """
    n_rows, k = indices.shape
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if int(indptr[-1]) == n_rows * k:  # every row full: no packing needed
        flat_indices, flat_scores = indices.reshape(-1), scores.reshape(-1)
    else:
        valid = np.arange(k) < counts[:, None]
        flat_indices, flat_scores = indices[valid], scores[valid]
    if n_cols <= V.INT32_MAX and int(indptr[-1]) <= V.INT32_MAX:
        indptr = indptr.astype(np.int32)
        flat_indices = flat_indices.astype(np.int32, copy=False)
    result = sp.csr_matrix((flat_scores, flat_indices, indptr), shape=(n_rows, n_cols))
    result.has_sorted_indices = False  # rows are in rank order, not column order
    return result
