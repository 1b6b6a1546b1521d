"""Content-based recommendation: cosine between a user's rating-weighted profile and item features."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._concurrency import reads
from fastrec._idmap import IdMap
from fastrec.recommenders._base import (
    Recommender,
    columns_of,
    csr_fields,
    raise_unknown,
    ratings_matrix,
    raw_id_array,
    raw_item_ids,
    read_csr,
    table_of_rows,
)
from fastrec.recommenders._checks import check_feature_ids, check_item_features
from fastrec.recommenders.knn import neighbours_without_self

# Users per batch: their profiles (users x features) are formed one batch at a time,
# so memory stays bounded however many users are served.
_PROFILE_BATCH = 2048


def _row_normalised(X: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its Euclidean norm (rows of zeros stay zero), float64 arithmetic."""
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ X.astype(np.float64))


class ContentKNN(Recommender):
    r"""Content-based recommender: items ranked by cosine to the user's taste profile.

    Every item is described by a row of ``features``.  A user's profile is the
    rating-weighted sum of the feature rows of the items they rated,

    .. math:: p_u = \sum_{i \in I_u} r_{ui}\, x_i, \qquad
              \mathrm{score}(u, j) = \frac{\langle p_u, x_j \rangle}{\lVert p_u \rVert \lVert x_j \rVert},

    and candidates are ranked by that cosine.  Every item with a feature row can
    be recommended, including items nobody rated yet (the cold-start case of
    collaborative filtering); only items sharing a non-zero feature with the
    profile are candidates.  Items that appear in the ratings but have no feature
    row count for popularity and ``exclude_seen`` but are never scored.  Scoring
    and selection run in the compiled kernel of :class:`ItemKNN`, with the
    normalised profiles as A and the normalised features, transposed, as W.

    Parameters
    ----------
    features : scipy sparse matrix or array-like, shape (n_items, n_features)
        One row per item.  Any non-negative or signed numeric features work; the
        usual choice for text is TF-IDF, made with scikit-learn::

            from sklearn.feature_extraction.text import TfidfVectorizer
            tfidf = TfidfVectorizer(min_df=2, stop_words="english", sublinear_tf=True)
            features = tfidf.fit_transform(item_texts)   # items x terms, sparse, rows L2-normalised
            model = fastrec.ContentKNN(features, item_ids=item_ids).fit(ratings)

        Categorical attributes (genres, tags) work as 0/1 columns, e.g. from
        ``sklearn.preprocessing.MultiLabelBinarizer``.
    item_ids : array-like, shape (n_items,), optional
        Raw id of the item of every row; ``None`` means row ``i`` is item ``i``.
        They must match the item ids of the ratings given to :meth:`fit`.
    dtype : np.float32 or np.float64, default np.float32
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}

    Attributes
    ----------
    user_ids_, item_ids_ : ndarray
        Raw id of every inner index: the feature items first (in sorted id
        order), then rated items without features.
    """

    _FORMAT_NAME = "fastrec.ContentKNN"
    _X: sp.csr_matrix  # items x features, rows of the item map (set by fit)
    _W: sp.csr_matrix  # features x items, columns L2-normalised (set by fit)

    def __init__(
        self,
        features: Any = None,
        item_ids: Any = None,
        *,
        dtype: Any = np.float32,
        n_threads: int | None = None,
        backend: str = "auto",
    ):
        super().__init__(dtype=dtype, n_threads=n_threads, backend=backend)
        self.features = features
        self.item_ids = item_ids

    def _ratings(self, ratings: Any, columns: Any, dtype: np.dtype):
        if self.features is None:
            raise TypeError("ContentKNN needs item features: ContentKNN(features, item_ids=...).")
        X = check_item_features(self.features)
        ids = check_feature_ids(self.item_ids, X.shape[0])
        feature_map, rows = IdMap.from_values(ids)
        order = np.empty(rows.size, dtype=np.int64)
        order[rows] = np.arange(rows.size)  # inner index -> feature row
        user_map, item_map, R = ratings_matrix(ratings, columns, dtype, item_map=feature_map)
        extra = len(item_map) - len(feature_map)  # rated items without features: zero rows
        X = sp.vstack([X[order], sp.csr_matrix((extra, X.shape[1]), dtype=X.dtype)], format="csr")
        return user_map, item_map, R, X.astype(dtype)

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        self._X = context  # items x features, in inner item order
        self._W = _row_normalised(self._X).T.tocsr().astype(R.dtype)

    def _profiles(self, history: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
        """L2-normalised profiles of ``rows`` (>= 0) of a users x items history, float64."""
        return _row_normalised(history[rows].astype(np.float64) @ self._X.astype(np.float64))

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
        out_idx = np.empty((rows.size, n), dtype=np.int64)
        out_scores = np.empty((rows.size, n), dtype=self._R.dtype)
        for start in range(0, rows.size, _PROFILE_BATCH):
            batch = rows[start : start + _PROFILE_BATCH]
            users = np.maximum(batch, 0)  # rows of -1 are skipped by the kernel below
            local = np.where(batch >= 0, np.arange(batch.size), -1)
            out_idx[start : start + batch.size], out_scores[start : start + batch.size] = self._run_sparse(
                self._profiles(history, users),
                self._W,
                history[users],
                local,
                n,
                exclude_seen,
                allowed,
                backend,
                n_threads,
            )
        return out_idx, out_scores

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        W = columns_of(self._W, candidates).astype(np.float64)
        return (self._profiles(self._history(given), rows) @ W).toarray()

    @reads
    def similar_items(self, items: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The items whose feature rows are most cosine-similar to those of ``items``, by raw id.

        Parameters
        ----------
        items : raw id or array-like of raw ids
        n : int, default 10

        Returns
        -------
        item_ids : ndarray, shape (n,) or (len(items), n)
            Raw ids, most similar first (ties to the smaller inner index), never
            the item itself; -1 (``None`` for non-integer ids) in empty slots.
            Only items sharing a non-zero feature are listed.
        scores : ndarray, shape (n,) or (len(items), n)
            Cosine similarities of the feature rows; ``-inf`` in empty slots.

        Raises
        ------
        UnknownIdError
            For an item id the model was not fitted with.
        """
        self._check_fitted()
        n = min(V.check_int(n, "n", minimum=1), max(1, len(self._item_map)))
        single, raw = raw_id_array(items, "items")
        inner = self._item_map.lookup(raw).astype(np.int64)
        raise_unknown(raw, inner, "item", "items")
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        table = neighbours_without_self(self._X[inner], self._X, inner, n, 0.0, backend, n_threads)
        indices, scores = table_of_rows(table, np.arange(inner.size, dtype=np.int64), n)
        out = raw_item_ids(self._item_map, indices)
        return (out[0], scores[0]) if single else (out, scores)

    # -- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return csr_fields("features", self._X)

    def _set_state(self, archive: Any) -> None:
        X = read_csr(archive, "features")
        if X.shape[0] != self._R.shape[1] or X.dtype != self._R.dtype:
            raise archive.error(
                f"the feature matrix has {X.shape[0]} rows of {X.dtype}, expected "
                f"one per item ({self._R.shape[1]}) of {self._R.dtype}"
            )
        self._X = X
        self._W = _row_normalised(self._X).T.tocsr().astype(self._R.dtype)

    @classmethod
    def _new(cls, params: dict[str, Any], archive: Any):
        features = read_csr(archive, "features")
        return cls(features, archive["item_ids"][: features.shape[0]], **params)
