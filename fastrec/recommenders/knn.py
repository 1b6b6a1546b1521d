"""Item-item and user-user neighbourhood recommenders on cosine top-k neighbours."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._concurrency import reads
from fastrec.recommenders._base import (
    Recommender,
    columns_of,
    csr_fields,
    raw_item_ids,
    read_csr,
    table_of_rows,
)
from fastrec.similarity import cosine_topk


class _NeighbourKNN(Recommender):
    """Shared parameters, neighbour lookup and persistence of ItemKNN and UserKNN."""

    _PARAMS = ("k", "shrink")

    def __init__(self, k: int = 50, shrink: float = 0.0, *, dtype: Any = np.float32,
                 n_threads: int | None = None, backend: str = "auto"):
        super().__init__(dtype=dtype, n_threads=n_threads, backend=backend)
        self.k = k
        self.shrink = shrink
        self._S: sp.csr_matrix | None = None

    def _checked_params(self) -> dict[str, Any]:
        return {"k": V.check_int(self.k, "k", minimum=1),
                "shrink": V.check_float(self.shrink, "shrink", minimum=0.0)}

    def _state(self) -> dict[str, np.ndarray]:
        return csr_fields("neighbours", self._S)

    def _set_state(self, archive: Any) -> None:
        S = read_csr(archive, "neighbours")
        n = self._R.shape[1] if isinstance(self, ItemKNN) else self._R.shape[0]
        if S.shape != (n, n) or S.dtype != self._R.dtype:
            raise archive.error(f"the neighbour matrix is {S.shape[0]} x {S.shape[1]} of {S.dtype}, "
                                f"expected {n} x {n} of {self._R.dtype}")
        if S.nnz and np.diff(S.indptr).max() > self.k:
            raise archive.error(f"a row of the neighbour matrix holds more than k={self.k} neighbours")
        S.has_sorted_indices = False  # rows are in rank order
        self._S = S

    @reads
    def _neighbours(self, ids: Any, n: int, id_map: Any, side: str, argument: str,
                    out_map: Any) -> tuple[np.ndarray, np.ndarray]:
        V.check_fitted(self, "_R")
        n = min(V.check_int(n, "n", minimum=1), max(1, len(out_map)))
        single = np.ndim(ids) == 0
        raw = np.asarray([ids]) if single else V.id_array(ids, argument)
        inner = id_map.lookup(raw)
        V.raise_unknown(raw, inner, side, argument)
        indices, scores = table_of_rows(self._S, inner.astype(np.int64), n)
        out = raw_item_ids(out_map, indices)
        return (out[0], scores[0]) if single else (out, scores)


class ItemKNN(_NeighbourKNN):
    r"""Item-item collaborative filtering on the top-``k`` cosine neighbours of every item.

    At ``fit``, every item keeps its ``k`` most similar items by
    :func:`fastrec.cosine_topk` on the item x user transpose of the ratings,

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

    @property
    def similarities_(self) -> sp.csr_matrix | None:
        return self._S

    def _fit_model(self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int,
                   context: Any) -> None:
        self._S = cosine_topk(R.T, k=params["k"], shrink=params["shrink"], n_threads=n_threads,
                              backend=backend)

    def _topn(self, rows: np.ndarray, n: int, exclude_seen: bool, allowed: np.ndarray, backend: str,
              n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        return self._run_sparse(self._R, self._S, self._R, rows, n, exclude_seen, allowed, backend,
                                n_threads)

    @reads
    def _score_block(self, inner_users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        scores = np.zeros((inner_users.size, candidates.size))
        known = inner_users >= 0
        if known.any():
            R = self._R[inner_users[known]].astype(np.float64)
            scores[known] = (R @ columns_of(self._S, candidates).astype(np.float64)).toarray()
        return scores

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
            Cosine similarities; ``-inf`` in empty slots.

        Raises
        ------
        UnknownIdError
            For an item id the model was not fitted with.
        """
        V.check_fitted(self, "_R")
        return self._neighbours(items, n, self._item_map, "item", "items", self._item_map)


class UserKNN(_NeighbourKNN):
    r"""User-user collaborative filtering on the top-``k`` cosine neighbours of every user.

    At ``fit``, every user keeps its ``k`` most similar users by
    :func:`fastrec.cosine_topk` on the users x items ratings (similarity as in
    :class:`ItemKNN`, with ``shrink``), and the score of item :math:`j` for user
    :math:`u` is

    .. math:: \mathrm{score}(u, j) = \sum_{v \in N_k(u)} s(u, v)\, r_{vj}

    over the neighbours :math:`N_k(u)`.  Only items some neighbour rated are
    candidates.  Scoring and selection run in one compiled pass per user.

    Parameters
    ----------
    k : int, default 50
        Neighbours kept per user.
    shrink : float, default 0.0
    dtype, n_threads, backend
        As in :class:`ItemKNN`.

    Attributes
    ----------
    similarities_ : scipy.sparse.csr_matrix, shape (n_users, n_users)
        Row ``u`` holds the neighbours of user ``u`` in rank order (inner indices).
    user_ids_, item_ids_ : ndarray
    """

    _FORMAT_NAME = "fastrec.UserKNN"

    @property
    def similarities_(self) -> sp.csr_matrix | None:
        return self._S

    def _fit_model(self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int,
                   context: Any) -> None:
        self._S = cosine_topk(R, k=params["k"], shrink=params["shrink"], n_threads=n_threads,
                              backend=backend)

    def _topn(self, rows: np.ndarray, n: int, exclude_seen: bool, allowed: np.ndarray, backend: str,
              n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        return self._run_sparse(self._S, self._R, self._R, rows, n, exclude_seen, allowed, backend,
                                n_threads)

    @reads
    def _score_block(self, inner_users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        scores = np.zeros((inner_users.size, candidates.size))
        known = inner_users >= 0
        if known.any():
            S = self._S[inner_users[known]].astype(np.float64)
            scores[known] = (S @ columns_of(self._R, candidates).astype(np.float64)).toarray()
        return scores

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
        V.check_fitted(self, "_R")
        return self._neighbours(users, n, self._user_map, "user", "users", self._user_map)

