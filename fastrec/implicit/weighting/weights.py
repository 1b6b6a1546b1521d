"""BM25, TF-IDF and confidence weighting of behaviour data stored as CSR."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V

_AXES = {1: True, 0: False, -1: True, -2: False}  # axis -> rows are documents


def _kernel(backend: str, name: str):
    return getattr(_runtime.kernel_module(backend, "implicit.weighting"), name)


def _check_csr(X: Any, name: str = "X") -> sp.csr_matrix:
    """``X`` as a CSR matrix of float data >= 0, duplicates summed, explicit zeros kept.

    Only CSR is accepted so that the result's stored entries are the caller's,
    one for one (a conversion could reorder or drop them).
    """
    if not sp.issparse(X) or X.format != "csr":
        got = f"a scipy sparse matrix in {X.format!r} format" if sp.issparse(X) else type(X).__name__
        raise TypeError(
            f"{name} must be a scipy.sparse CSR matrix (users x items or documents x terms), got "
            f"{got}. Convert it with scipy.sparse.csr_matrix({name})."
        )
    X = V.check_sparse_structure(X, name)
    dtype = V.float_dtype_for(X.dtype, name)
    csr = sp.csr_matrix(X)  # shares the caller's arrays: never changed in place
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()  # merges duplicates, keeps explicit zeros
    data = np.asarray(csr.data)
    V.check_finite(data, name)
    if data.size and data.min() < 0:
        raise ValueError(
            f"{name} holds negative values (smallest {data.min()!r}); the weights are defined for "
            "counts and other values >= 0. Clip or shift the data first."
        )
    if csr.dtype != dtype:
        csr = csr.astype(dtype)
    return csr


def _check_axis(axis: Any) -> bool:
    if (
        isinstance(axis, (bool, np.bool_))
        or not isinstance(axis, (int, np.integer))
        or int(axis) not in _AXES
    ):
        raise ValueError(
            f"axis must be 1 (each row is a document, each column a term) or 0 (each column is a "
            f"document), got {axis!r}."
        )
    return _AXES[int(axis)]


def _run(csr: sp.csr_matrix, name: str, backend: str, n_threads: int | None, **params: Any) -> sp.csr_matrix:
    backend = _runtime.resolve_backend(backend)
    n_threads = _runtime.resolve_threads(n_threads)
    arrays = V.csr_arrays(csr, V.index_dtype_for(*csr.shape))
    out = np.empty_like(arrays.data)
    with _runtime.kernel_threads(backend, n_threads):
        _kernel(backend, name)(
            indptr=arrays.indptr,
            indices=arrays.indices,
            data=arrays.data,
            n_cols=csr.shape[1],
            **params,
            out_data=out,
            n_threads=n_threads,
        )
    result = sp.csr_matrix((out, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    result.has_sorted_indices = True
    return result


def bm25_weight(
    X: Any,
    K1: float = 1.2,
    B: float = 0.75,
    *,
    axis: int = 1,
    n_threads: int | None = None,
    backend: str = "auto",
) -> sp.csr_matrix:
    r"""Okapi BM25 weights of the stored entries of ``X``.

    One axis holds the documents and the other the terms.  With ``axis=1``
    (default) row ``d`` is a document and column ``t`` a term, as in implicit's
    ``bm25_weight``; with ``axis=0`` column ``d`` is a document and row ``t`` a
    term, so ``bm25_weight(R, axis=0)`` equals ``bm25_weight(R.T.tocsr()).T``.
    For item-item neighbours of a users x items matrix ``R`` the items are the
    documents and the users the terms: ``bm25_weight(R, axis=0)`` weighs ``R``
    as implicit's ``BM25Recommender`` weighs ``R.T``.

    .. math::

        w_{dt} = \frac{x_{dt} (K_1 + 1)}{K_1 \left(1 - B + B \frac{|d|}{\mathrm{avgdl}}\right)
                 + x_{dt}} \; \mathrm{idf}_t, \qquad
        \mathrm{idf}_t = \log N - \log(1 + \mathrm{df}_t)

    with ``N`` the number of documents, ``df_t`` the stored entries of term
    ``t``, ``|d|`` the sum of document ``d``'s values and ``avgdl`` the mean of
    ``|d|`` over all ``N`` documents (empty ones included).  ``idf`` is negative
    for a term stored in every document, as in implicit.

    Parameters
    ----------
    X : scipy.sparse CSR matrix, shape (n_rows, n_cols)
        Counts or other values >= 0 (finite).  float32 and float64 are kept;
        integer and boolean data become float32.  Duplicate entries are summed.
    K1 : float, default 1.2
        Term-frequency saturation (>= 0).
    B : float, default 0.75
        Document-length normalisation, in [0, 1].
    axis : {1, 0}, default 1
        The axis summed for a document's length: 1, rows are documents; 0,
        columns are documents.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  The result does
        not depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_rows, n_cols)
        A new matrix with ``X``'s stored entries (explicit zeros too, which weigh
        0) and their weights; ``X`` is not modified.  Weights are computed in
        float64 and rounded once to the dtype.

    Examples
    --------
    >>> import scipy.sparse as sp, fastrec
    >>> R = sp.csr_matrix([[3.0, 0.0, 1.0], [0.0, 2.0, 1.0]])   # users x items
    >>> fastrec.bm25_weight(R, axis=0).shape                     # items are documents
    (2, 3)
    """
    csr = _check_csr(X)
    k1 = V.check_float(K1, "K1", minimum=0.0)
    b = V.check_float(B, "B", minimum=0.0)
    if b > 1:
        raise ValueError(f"B must lie in [0, 1] (0: no length normalisation, 1: full), got {B!r}.")
    return _run(csr, "bm25_weight", backend, n_threads, k1=k1, b=b, by_rows=_check_axis(axis))


def tfidf_weight(
    X: Any,
    *,
    axis: int = 1,
    n_threads: int | None = None,
    backend: str = "auto",
) -> sp.csr_matrix:
    r"""TF-IDF weights of the stored entries of ``X``, as implicit's ``tfidf_weight``.

    .. math::

        w_{dt} = \sqrt{x_{dt}} \; (\log N - \log(1 + \mathrm{df}_t))

    with the documents and terms of :func:`bm25_weight` (``axis=1``: rows are
    documents; ``axis=0``: columns are documents, the item-item choice for a
    users x items matrix).

    Parameters
    ----------
    X : scipy.sparse CSR matrix, shape (n_rows, n_cols)
        Values >= 0 (finite); float32 and float64 are kept, integers become float32.
    axis : {1, 0}, default 1
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_rows, n_cols)
        A new matrix with ``X``'s stored entries (explicit zeros weigh 0); ``X``
        is not modified.
    """
    csr = _check_csr(X)
    return _run(csr, "tfidf_weight", backend, n_threads, by_rows=_check_axis(axis))


def confidence(
    X: Any,
    alpha: float = 1.0,
    kind: str = "linear",
    *,
    n_threads: int | None = None,
    backend: str = "auto",
) -> sp.csr_matrix:
    r"""Confidence of every stored entry, as the implicit-feedback ALS model uses it.

    ``kind="linear"``: :math:`c = 1 + \alpha x`; ``kind="log"``:
    :math:`c = 1 + \alpha \log(1 + x)`.

    Parameters
    ----------
    X : scipy.sparse CSR matrix, shape (n_users, n_items)
        Counts or other values >= 0 (finite); float32 and float64 are kept,
        integers become float32.
    alpha : float, default 1.0
        Scale (>= 0).
    kind : {"linear", "log"}
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_users, n_items)
        A new matrix with ``X``'s stored entries; a stored zero gets confidence 1
        and stays stored.  ``X`` is not modified.
    """
    csr = _check_csr(X)
    alpha = V.check_float(alpha, "alpha", minimum=0.0)
    if not isinstance(kind, str) or kind not in ("linear", "log"):
        raise ValueError(
            f"kind must be 'linear' (1 + alpha * x) or 'log' (1 + alpha * log1p(x)), got {kind!r}."
        )
    backend = _runtime.resolve_backend(backend)
    n_threads = _runtime.resolve_threads(n_threads)
    data = np.ascontiguousarray(csr.data)
    out = np.empty_like(data)
    with _runtime.kernel_threads(backend, n_threads):
        _kernel(backend, "confidence_weight")(
            data=data, alpha=alpha, log=kind == "log", out_data=out, n_threads=n_threads
        )
    result = sp.csr_matrix((out, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    result.has_sorted_indices = True
    return result
