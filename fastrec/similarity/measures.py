"""Top-k neighbours under several similarity measures, on the cosine top-k kernel.

Each measure is a transformation of the rows followed by one of the kernel's
scorings of their dot products:

==================  ===========================================  ==========
similarity          rows scored                                  scoring
==================  ===========================================  ==========
``cosine``          as given                                     cosine
``pearson``         each row minus its mean over stored entries  cosine
``adjusted_cosine`` each entry minus its feature's (column's)    cosine
                    mean over stored entries
``jaccard``         binary (every stored non-zero entry is 1)    Jaccard
``bm25``            BM25 weights (rows are documents)            dot product
``tfidf``           TF-IDF weights (rows are documents)          cosine
==================  ===========================================  ==========
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec.similarity.cosine import COSINE, DOT, JACCARD, neighbours_topk

SIMILARITIES = ("cosine", "pearson", "adjusted_cosine", "jaccard", "bm25", "tfidf")
_MEASURE = {"cosine": COSINE, "pearson": COSINE, "adjusted_cosine": COSINE, "jaccard": JACCARD,
            "bm25": DOT, "tfidf": COSINE}  # fmt: skip


def check_similarity(similarity: Any, name: str = "similarity") -> str:
    """``similarity`` if it names a measure, else a ValueError listing them."""
    if not isinstance(similarity, str) or similarity not in SIMILARITIES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, SIMILARITIES))}; got {similarity!r}.")
    return similarity


def _with_data(csr: sp.csr_matrix, data64: np.ndarray) -> sp.csr_matrix:
    """A new canonical CSR of ``csr``'s pattern with ``data64`` in its dtype, stored zeros dropped."""
    out = sp.csr_matrix((data64.astype(csr.dtype), csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    out.eliminate_zeros()
    out.has_canonical_format = True  # the pattern came from a canonical matrix
    return out


def _entry_rows(csr: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))


def _row_centred(csr: sp.csr_matrix) -> sp.csr_matrix:
    data = csr.data.astype(np.float64)
    counts = np.diff(csr.indptr)
    sums = np.bincount(_entry_rows(csr), weights=data, minlength=csr.shape[0])
    means = np.divide(sums, counts, out=np.zeros(csr.shape[0]), where=counts > 0)
    return _with_data(csr, data - np.repeat(means, counts))


def _column_means(corpus: sp.csr_matrix) -> np.ndarray:
    d = corpus.shape[1]
    sums = np.bincount(corpus.indices, weights=corpus.data.astype(np.float64), minlength=d)
    counts = np.bincount(corpus.indices, minlength=d)
    return np.divide(sums, counts, out=np.zeros(d), where=counts > 0)


def _document_weights(rows: sp.csr_matrix, corpus: sp.csr_matrix, kind: str, K1: float, B: float):
    """BM25 / TF-IDF weights of ``rows`` (documents) with the term statistics of ``corpus``."""
    for matrix, label in ((rows, "X"), (corpus, "Y")):
        if matrix.nnz and matrix.data.min() < 0:
            raise ValueError(
                f"similarity={kind!r} weighs counts and needs values >= 0, but {label} holds "
                f"{matrix.data.min()!r}. Clip the data or use another similarity."
            )
    n_docs, d = corpus.shape
    idf = np.log(np.float64(max(n_docs, 1))) - np.log1p(
        np.bincount(corpus.indices, minlength=d).astype(np.float64)
    )
    x = rows.data.astype(np.float64)
    if kind == "tfidf":
        return _with_data(rows, np.sqrt(x) * idf[rows.indices])
    corpus_lengths = np.bincount(
        _entry_rows(corpus), weights=corpus.data.astype(np.float64), minlength=n_docs
    )
    average = float(np.sum(corpus_lengths)) / n_docs if n_docs else 0.0
    lengths = np.bincount(_entry_rows(rows), weights=x, minlength=rows.shape[0])
    ratio = lengths / average if average > 0 else np.ones(rows.shape[0])
    norm = ((1.0 - B) + B * ratio)[_entry_rows(rows)]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = x * (K1 + 1.0) / (K1 * norm + x) * idf[rows.indices]
    return _with_data(rows, np.where(x != 0, weight, 0.0))


def _preparation(similarity: str, K1: float, B: float):
    """The row transformation of ``similarity`` as ``prepare(x, y) -> (x', y')``."""
    if similarity == "cosine":
        return None

    def prepare(x: sp.csr_matrix, y: sp.csr_matrix | None):
        corpus = x if y is None else y
        if similarity == "pearson":
            change = _row_centred
        elif similarity == "adjusted_cosine":
            means = _column_means(corpus)

            def change(a):
                return _with_data(a, a.data.astype(np.float64) - means[a.indices])
        elif similarity == "jaccard":

            def change(a):
                return _with_data(a, np.ones(a.nnz))
        else:

            def change(a):
                return _document_weights(a, corpus, similarity, K1, B)

        return change(x), None if y is None else change(y)

    return prepare


def similarity_topk(
    X: Any,
    Y: Any = None,
    k: int = 50,
    *,
    similarity: str = "cosine",
    shrink: float = 0.0,
    K1: float = 1.2,
    B: float = 0.75,
    exclude_self: bool = True,
    rows: slice | tuple[int, int] | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> sp.csr_matrix:
    r"""Top-``k`` neighbours of every row of ``X`` among the rows of ``Y`` under ``similarity``.

    For item-item neighbours of a users x items matrix ``R`` pass ``R.T`` (rows
    are items, features users); for user-user pass ``R``.  Means and weights are
    taken over stored entries only; "features" are the columns of ``X``.

    ``"cosine"``
        :math:`\langle x_i, y_j\rangle / (\lVert x_i\rVert \lVert y_j\rVert + \mathrm{shrink})`,
        exactly :func:`fastrec.cosine_topk`.
    ``"pearson"``
        Cosine of the rows after each row is centred by the mean of its own stored
        entries (Pearson correlation over the stored entries).
    ``"adjusted_cosine"``
        Cosine after every stored entry is centred by its feature's mean over the
        stored entries of ``Y`` (of ``X`` when ``Y`` is None): for item-item on
        ``R.T``, each rating minus its user's mean.
    ``"jaccard"``
        :math:`|A_i \cap B_j| / (|A_i \cup B_j| + \mathrm{shrink})` of the sets of
        stored non-zero features.
    ``"bm25"``
        Dot product of BM25-weighted rows, as implicit's ``BM25Recommender``:
        rows are documents, features terms, with the document count, term counts
        and average length of ``Y`` (of ``X`` when ``Y`` is None), i.e.
        ``bm25_weight(X, K1, B)`` for ``Y=None``.  Scores are not bounded and are
        not rescaled for range.
    ``"tfidf"``
        Cosine of TF-IDF-weighted rows (:func:`fastrec.tfidf_weight`, statistics
        as for BM25), as implicit's ``TFIDFRecommender``.

    Parameters
    ----------
    X : scipy sparse matrix or array-like, shape (n, d)
        float32 and float64 are kept; integer data computes in float32.  BM25 and
        TF-IDF need values >= 0.
    Y : scipy sparse matrix or array-like, shape (m, d), optional
        Candidate rows; ``None`` compares ``X`` with itself.
    k : int, default 50
    similarity : {"cosine", "pearson", "adjusted_cosine", "jaccard", "bm25", "tfidf"}
    shrink : float, default 0.0
        Added to the denominator (cosine-based measures and Jaccard); must be 0
        for ``"bm25"``, which has none.
    K1, B : float, default 1.2 and 0.75
        BM25 parameters (``K1 >= 0``, ``B`` in [0, 1]); used by ``"bm25"`` only.
    exclude_self, rows, n_threads, backend
        As in :func:`fastrec.cosine_topk`.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, m) or (stop - start, m)
        Row ``i`` holds at most ``k`` entries with non-zero scores in rank order:
        descending score, ties to the smaller column (column indices are not
        sorted).  The computation, conventions and determinism are those of
        :func:`fastrec.cosine_topk`; results do not depend on ``n_threads``.

    Examples
    --------
    >>> import scipy.sparse as sp, fastrec
    >>> R = sp.random(1000, 300, density=0.05, format="csr", random_state=0)
    >>> fastrec.similarity_topk(R.T, k=10, similarity="jaccard").shape
    (300, 300)
    """
    similarity = check_similarity(similarity)
    K1 = V.check_float(K1, "K1", minimum=0.0)
    B = V.check_float(B, "B", minimum=0.0)
    if B > 1:
        raise ValueError(f"B must lie in [0, 1], got {B!r}.")
    if similarity == "bm25" and V.check_float(shrink, "shrink", minimum=0.0) != 0:
        raise ValueError("shrink must be 0 with similarity='bm25' (a plain dot product has no denominator).")
    return neighbours_topk(
        X,
        Y,
        k,
        shrink=shrink,
        exclude_self=exclude_self,
        rows=rows,
        n_threads=n_threads,
        backend=backend,
        measure=_MEASURE[similarity],
        prepare=_preparation(similarity, K1, B),
    )
