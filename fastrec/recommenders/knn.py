"""Item-item and user-user neighbourhood recommenders on top-k neighbours (cosine and other similarities)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._concurrency import reads
from fastrec.recommenders._base import (
    Recommender,
    columns_of,
    csr_fields,
    raise_unknown,
    raw_id_array,
    raw_item_ids,
    read_csr,
    table_of_rows,
)
from fastrec.similarity import similarity_topk
from fastrec.similarity.cosine import topk_table_to_csr
from fastrec.similarity.measures import check_similarity


def neighbours_without_self(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    inner: np.ndarray,
    k: int,
    shrink: float,
    backend: str,
    n_threads: int,
    similarity: str = "cosine",
) -> sp.csr_matrix:
    """Top-``k`` neighbours by ``similarity`` among the rows of ``Y`` of every row of ``X``, rank-ordered.

    Row ``r`` never lists row ``inner[r]`` of ``Y`` (its own row there; -1 for
    none): the ``k + 1`` best are found and the row itself, or else the last one,
    is dropped, which is the top ``k`` of the others.
    """
    m = X.shape[0]
    wide = min(k + 1, Y.shape[0])
    found = similarity_topk(
        X, Y, k=wide, similarity=similarity, shrink=shrink, n_threads=n_threads, backend=backend
    )
    indices, scores = table_of_rows(found, np.arange(m, dtype=np.int64), wide)
    is_self = (indices == inner[:, None]) & (inner[:, None] >= 0)
    # drop the row itself where listed, else the (k+1)-th entry
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), wide - 1)
    keep = np.arange(wide)[None, :] != drop[:, None]
    indices = indices[keep].reshape(m, wide - 1)[:, :k]
    scores = scores[keep].reshape(m, wide - 1)[:, :k]
    counts = np.count_nonzero(indices >= 0, axis=1).astype(np.int64)
    return topk_table_to_csr(indices, scores, counts, Y.shape[0])


def neighbour_lookup(
    model: Recommender, table: sp.csr_matrix, ids: Any, n: int, id_map: Any, side: str, argument: str
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` stored neighbours of raw ids ``ids`` in a rank-ordered CSR ``table``."""
    n = min(V.check_int(n, "n", minimum=1), max(1, len(id_map)))
    single, raw = raw_id_array(ids, argument)
    inner = id_map.lookup(raw)
    raise_unknown(raw, inner, side, argument)
    indices, scores = table_of_rows(table, inner.astype(np.int64), n)
    out = raw_item_ids(id_map, indices)
    return (out[0], scores[0]) if single else (out, scores)


class _NeighbourKNN(Recommender):
    """Shared parameters, neighbour lookup and persistence of ItemKNN and UserKNN."""

    _PARAMS = ("k", "shrink", "similarity")
    _S: sp.csr_matrix  # set by fit: neighbours of every item (user) in rank order

    def __init__(
        self,
        k: int = 50,
        shrink: float = 0.0,
        *,
        similarity: str = "cosine",
        dtype: Any = np.float32,
        n_threads: int | None = None,
        backend: str = "auto",
    ):
        super().__init__(dtype=dtype, n_threads=n_threads, backend=backend)
        self.k = k
        self.shrink = shrink
        self.similarity = similarity

    def _checked_params(self) -> dict[str, Any]:
        params = {
            "k": V.check_int(self.k, "k", minimum=1),
            "shrink": V.check_float(self.shrink, "shrink", minimum=0.0),
            "similarity": check_similarity(self.similarity),
        }
        if params["similarity"] == "bm25" and params["shrink"] != 0:
            raise ValueError(
                "shrink must be 0 with similarity='bm25' (a plain dot product has no denominator)."
            )
        return params

    @classmethod
    def _saved_params(cls, archive: Any) -> dict[str, Any]:
        params = archive.params("params", (*cls._PARAMS, "dtype"))
        if "similarity" not in params:  # written before similarity= existed: cosine
            archive = _WithSimilarity(archive)
        return super()._saved_params(archive)

    def _state(self) -> dict[str, np.ndarray]:
        return csr_fields("neighbours", self._S)

    def _set_state(self, archive: Any) -> None:
        S = read_csr(archive, "neighbours")
        n = self._R.shape[1] if isinstance(self, ItemKNN) else self._R.shape[0]
        if S.shape != (n, n) or S.dtype != self._R.dtype:
            raise archive.error(
                f"the neighbour matrix is {S.shape[0]} x {S.shape[1]} of {S.dtype}, "
                f"expected {n} x {n} of {self._R.dtype}"
            )
        if S.nnz and np.diff(S.indptr).max() > self.k:
            raise archive.error(f"a row of the neighbour matrix holds more than k={self.k} neighbours")
        S.has_sorted_indices = False  # rows are in rank order
        self._S = S

    @property
    def similarities_(self) -> sp.csr_matrix:
        self._check_fitted()
        return self._S


class _WithSimilarity:
    """An archive whose saved parameters gain ``similarity="cosine"``."""

    def __init__(self, archive: Any):
        self._archive = archive

    def params(self, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        return {"similarity": "cosine", **self._archive.params(name, allowed)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._archive, name)


class ItemKNN(_NeighbourKNN):
    r"""Item-item collaborative filtering on the top-``k`` neighbours of every item.

    At ``fit``, every item keeps its ``k`` most similar items by
    :func:`fastrec.similarity_topk` on the item x user transpose of the ratings;
    with the default ``similarity="cosine"``

    .. math:: s(i, j) = \frac{\langle r_{\cdot i}, r_{\cdot j} \rangle}
                             {\lVert r_{\cdot i} \rVert \lVert r_{\cdot j} \rVert + \mathrm{shrink}},

    and the score of item :math:`j` for user :math:`u` is

    .. math:: \mathrm{score}(u, j) = \sum_{i \in I_u} r_{ui}\, s(i, j)

    over the items :math:`I_u` the user rated, where :math:`s(i, j)` counts only
    when :math:`j` is among the ``k`` neighbours of :math:`i`.  Only items reached
    this way are candidates.  Scoring and top-``n`` selection run in one compiled
    pass per user (dense per-thread accumulator, bounded heap).

    Parameters
    ----------
    k : int, default 50
        Neighbours kept per item.
    shrink : float, default 0.0
        Added to the norm product of the similarity; damps similarities that few
        users support.
    similarity : {"cosine", "pearson", "adjusted_cosine", "jaccard", "bm25", "tfidf"}
        The item-item similarity (see :func:`fastrec.similarity_topk`): Pearson
        centres each item by its mean rating, adjusted cosine each rating by its
        user's mean; ``"bm25"`` (K1=1.2, B=0.75, ``shrink`` 0) and ``"tfidf"``
        weigh as implicit's ``BM25Recommender`` / ``TFIDFRecommender``.
    dtype : np.float32 or np.float64, default np.float32
        Dtype of the ratings, similarities and scores.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  Results do not
        depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"numpy"`` is the slow reference, for small data.

    Attributes
    ----------
    similarities_ : scipy.sparse.csr_matrix, shape (n_items, n_items)
        Row ``i`` holds the neighbours of item ``i`` in rank order (inner indices).
    user_ids_, item_ids_ : ndarray
        Raw id of every inner index.

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_ratings
    >>> R = make_ratings(500, 300, 10_000, seed=0)
    >>> model = fastrec.ItemKNN(k=20).fit(R)
    >>> items, scores = model.recommend([0, 1], n=5)
    >>> items.shape
    (2, 5)
    """

    _FORMAT_NAME = "fastrec.ItemKNN"

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        self._S = similarity_topk(
            R.T,
            k=params["k"],
            similarity=params["similarity"],
            shrink=params["shrink"],
            n_threads=n_threads,
            backend=backend,
        )

    def _topn(
        self,
        rows: np.ndarray,
        n: int,
        exclude_seen: bool,
        allowed: np.ndarray,
        backend: str,
        n_threads: int,
        *,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        history = self._history(given)
        return self._run_sparse(history, self._S, history, rows, n, exclude_seen, allowed, backend, n_threads)

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        history = self._history(given)[rows].astype(np.float64)
        return (history @ columns_of(self._S, candidates).astype(np.float64)).toarray()

    @reads
    def similar_items(self, items: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The most similar items of one item or a batch, by raw id.

        Read from the neighbours kept at ``fit``: at most ``k`` per item.

        Parameters
        ----------
        items : raw id or array-like of raw ids
        n : int, default 10

        Returns
        -------
        item_ids : ndarray, shape (n,) or (len(items), n)
            Raw ids, most similar first (ties to the smaller inner index), -1
            (``None`` for non-integer ids) in empty slots.
        scores : ndarray, shape (n,) or (len(items), n)
            Similarities; ``-inf`` in empty slots.

        Raises
        ------
        UnknownIdError
            For an item id the model was not fitted with.
        """
        self._check_fitted()
        return neighbour_lookup(self, self._S, items, n, self._item_map, "item", "items")


class UserKNN(_NeighbourKNN):
    r"""User-user collaborative filtering on the top-``k`` neighbours of every user.

    At ``fit``, every user keeps its ``k`` most similar users by
    :func:`fastrec.similarity_topk` on the users x items ratings (``similarity``
    and ``shrink`` as in :class:`ItemKNN`, with users as the rows: Pearson
    centres each user by its mean rating, adjusted cosine each rating by its
    item's mean), and the score of item :math:`j` for user
    :math:`u` is

    .. math:: \mathrm{score}(u, j) = \sum_{v \in N_k(u)} s(u, v)\, r_{vj}

    over the neighbours :math:`N_k(u)`.  Only items some neighbour rated are
    candidates.  Scoring and selection run in one compiled pass per user.

    Parameters
    ----------
    k : int, default 50
        Neighbours kept per user.
    shrink : float, default 0.0
    similarity : str, default "cosine"
        As in :class:`ItemKNN`.  Interactions given at ``recommend`` find their
        neighbours with the training users' statistics (feature means, BM25 /
        TF-IDF term counts).
    dtype, n_threads, backend
        As in :class:`ItemKNN`.

    Attributes
    ----------
    similarities_ : scipy.sparse.csr_matrix, shape (n_users, n_users)
        Row ``u`` holds the neighbours of user ``u`` in rank order (inner indices).
    user_ids_, item_ids_ : ndarray
    """

    _FORMAT_NAME = "fastrec.UserKNN"

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        self._S = similarity_topk(
            R,
            k=params["k"],
            similarity=params["similarity"],
            shrink=params["shrink"],
            n_threads=n_threads,
            backend=backend,
        )
        self._similarity = (params["k"], params["shrink"], params["similarity"])

    def _set_state(self, archive: Any) -> None:
        super()._set_state(archive)
        self._similarity = (self.k, self.shrink, self.similarity)  # the saved parameters it was fitted with

    def _neighbour_rows(self, given: sp.csr_matrix | None, inner: np.ndarray) -> sp.csr_matrix:
        """Neighbours (rows of users x training users) of the history's rows.

        Given interactions find their neighbours among the training users as
        ``fit`` does (the similarity with ``shrink``, top ``k``), never the user itself.
        """
        if given is None:
            return self._S
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        k, shrink, similarity = getattr(
            self, "_similarity", (self.k, self.shrink, self.similarity)
        )  # as at fit
        return neighbours_without_self(
            given, self._R, inner, k, shrink, backend, n_threads, similarity
        ).astype(self._R.dtype)

    def _topn(
        self,
        rows: np.ndarray,
        n: int,
        exclude_seen: bool,
        allowed: np.ndarray,
        backend: str,
        n_threads: int,
        *,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._run_sparse(
            self._neighbour_rows(given, inner),
            self._R,
            self._history(given),
            rows,
            n,
            exclude_seen,
            allowed,
            backend,
            n_threads,
        )

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        if given is not None:  # neighbours of the scored rows only
            given, inner, rows = given[rows], inner, np.arange(rows.size)
        S = self._neighbour_rows(given, inner)[rows].astype(np.float64)
        return (S @ columns_of(self._R, candidates).astype(np.float64)).toarray()

    @reads
    def similar_users(self, users: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The most similar users of one user or a batch, by raw id.

        Read from the neighbours kept at ``fit``: at most ``k`` per user.

        Parameters
        ----------
        users : raw id or array-like of raw ids
        n : int, default 10

        Returns
        -------
        user_ids : ndarray, shape (n,) or (len(users), n)
            Raw ids, most similar first (ties to the smaller inner index), -1
            (``None`` for non-integer ids) in empty slots.
        scores : ndarray, shape (n,) or (len(users), n)

        Raises
        ------
        UnknownIdError
            For a user id the model was not fitted with.
        """
        self._check_fitted()
        return neighbour_lookup(self, self._S, users, n, self._user_map, "user", "users")
