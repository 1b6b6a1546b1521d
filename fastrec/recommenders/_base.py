"""What ItemKNN, UserKNN and ContentKNN share: raw ids, recommend(), popularity, save/load."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._archive import open_archive
from fastrec._concurrency import SharedModel, reads, writes
from fastrec._idmap import IdMap

FORMAT_VERSION = 1


def kernels(backend: str):
    """(sparse_score_topn, dense_topn) of one backend; all share one argument order."""
    module = _runtime.kernel_module(backend, "recommenders")
    return module.sparse_score_topn, module.dense_topn


def ratings_matrix(data: Any, columns: Any, dtype: np.dtype, item_map: IdMap | None = None
                   ) -> tuple[IdMap, IdMap, sp.csr_matrix]:
    """The id maps and the users x items CSR of training data in any ``fit`` form.

    Sparse input keeps its row and column numbers as raw ids.  ``item_map``
    (optional) is extended rather than built, so its items keep their indices.
    Duplicate (user, item) pairs are summed, as scipy does; stored zeros stay
    stored (they count as seen).
    """
    triples = V.rating_triples(data, columns)
    if triples.shape is not None:
        user_map = IdMap.range(triples.shape[0])
        users = triples.users
        if item_map is None:
            item_map, items = IdMap.range(triples.shape[1]), triples.items
        else:
            item_map, items = item_map.extend(np.arange(triples.shape[1], dtype=np.int64))
            items = items[triples.items]
    else:
        user_map, users = IdMap.from_values(triples.users)
        if item_map is None:
            item_map, items = IdMap.from_values(triples.items)
        else:
            item_map, items = item_map.extend(triples.items)
    # Duplicates are summed in float64, then the sums are checked against the model dtype.
    R = sp.csr_matrix((triples.ratings.astype(np.float64), (users, items)),
                      shape=(len(user_map), len(item_map)))
    R.sum_duplicates()
    limit = float(np.finfo(dtype).max)
    if R.nnz and (not np.isfinite(R.data).all() or np.abs(R.data).max() > limit):
        raise ValueError(
            f"ratings hold values (or sums of repeated pairs) beyond {np.dtype(dtype).name}'s range "
            f"(largest {limit:.3g}); rescale them or pass dtype=np.float64."
        )
    return user_map, item_map, R.astype(dtype)


def check_scores_fit(R: sp.csr_matrix) -> None:
    """Raise when ratings are so large that a neighbourhood score could overflow their dtype.

    A score sums at most (ratings of a user, or of an item) products of a rating
    and a similarity in [-1, 1], so ``max|r| * longest row or column`` bounds it.
    """
    if R.nnz == 0:
        return
    largest = max(float(R.data.max()), -float(R.data.min()))
    longest = max(int(np.diff(R.indptr).max()), int(np.bincount(R.indices).max()))
    limit = float(np.finfo(R.dtype).max)
    if largest * longest > limit:
        raise ValueError(
            f"ratings hold values up to {largest:.3g} in magnitude: summed over up to {longest} "
            f"ratings, scores could overflow {R.dtype} (largest {limit:.3g}). Rescale the "
            "ratings (e.g. divide by their largest value) or pass dtype=np.float64."
        )


def raw_item_ids(item_map: IdMap, inner: np.ndarray) -> np.ndarray:
    """Raw ids of an inner-index table; -1 (or None for non-integer ids) where empty."""
    ids = item_map.ids
    if ids.dtype.kind in "iu":
        return np.where(inner >= 0, ids[np.maximum(inner, 0)], -1)
    out = np.empty(inner.shape, dtype=object)
    valid = inner >= 0
    out[valid] = ids[inner[valid]]
    return out


def table_of_rows(matrix: sp.csr_matrix, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` stored entries of each of ``rows`` (rank-ordered CSR), padded -1 / -inf."""
    starts = matrix.indptr[rows].astype(np.int64)
    lengths = np.minimum(matrix.indptr[rows + 1] - starts, n)
    slot = np.arange(n)[None, :]
    filled = slot < lengths[:, None]
    positions = (starts[:, None] + slot)[filled]
    indices = np.full((rows.size, n), -1, dtype=np.int64)
    scores = np.full((rows.size, n), -np.inf, dtype=matrix.dtype)
    indices[filled] = matrix.indices[positions]
    scores[filled] = matrix.data[positions]
    return indices, scores


def columns_of(matrix: sp.csr_matrix, candidates: np.ndarray) -> sp.csr_matrix:
    """``matrix[:, candidates]``, without the copy when the candidates are every column in order."""
    if candidates.size == matrix.shape[1] and np.array_equal(candidates, np.arange(matrix.shape[1])):
        return matrix
    return matrix[:, candidates]


def min_max_rows(scores: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Rescale each row to [0, 1] by its min and max over ``valid`` entries (all when None).

    A row whose valid entries are all equal (or that has none) becomes zeros.
    """
    low = np.where(valid, scores, np.inf).min(axis=1) if valid is not None else scores.min(axis=1)
    high = np.where(valid, scores, -np.inf).max(axis=1) if valid is not None else scores.max(axis=1)
    span = high - low
    ok = np.isfinite(span) & (span > 0)
    out = np.zeros_like(scores)
    out[ok] = (scores[ok] - low[ok, None]) / span[ok, None]
    return out


def z_score_rows(scores: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Standardise each row by its mean and standard deviation over ``valid`` entries.

    A row with zero spread (or no valid entry) becomes zeros.
    """
    weight = np.ones_like(scores) if valid is None else valid.astype(scores.dtype)
    count = weight.sum(axis=1)
    safe = np.maximum(count, 1)
    mean = (scores * weight).sum(axis=1) / safe
    std = np.sqrt((((scores - mean[:, None]) ** 2) * weight).sum(axis=1) / safe)
    ok = (count > 0) & (std > 0)
    out = np.zeros_like(scores)
    out[ok] = (scores[ok] - mean[ok, None]) / std[ok, None]
    return out


class Recommender(SharedModel):
    """Base of the recommenders fitted on a users x items ratings matrix.

    Threads: a fitted model serves ``recommend``, ``similar_items`` /
    ``similar_users`` and ``save`` from any number of threads at once; ``fit``
    runs alone and no read sees a half-fitted model.  Models pickle
    (``pickle``, ``joblib``, ``cloudpickle``).

    Subclasses implement ``_fit_model`` (from the ratings matrix), ``_topn``
    (compiled scoring and selection of a batch of users) and ``_score_block``
    (dense scores, for :class:`~fastrec.Hybrid`), and list their fitted arrays in
    ``_state`` / ``_set_state`` for persistence.
    """

    _FORMAT_NAME = ""
    _PARAMS: tuple[str, ...] = ()

    def __init__(self, *, dtype: Any = np.float32, n_threads: int | None = None, backend: str = "auto"):
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend
        self._R: sp.csr_matrix | None = None

    # -- public attributes --------------------------------------------------------------

    @property
    def user_ids_(self) -> np.ndarray:
        """Raw id of every inner user index."""
        V.check_fitted(self, "_R")
        return self._user_map.ids

    @property
    def item_ids_(self) -> np.ndarray:
        """Raw id of every inner item index."""
        V.check_fitted(self, "_R")
        return self._item_map.ids

    @property
    def n_users_(self) -> int:
        V.check_fitted(self, "_R")
        return len(self._user_map)

    @property
    def n_items_(self) -> int:
        V.check_fitted(self, "_R")
        return len(self._item_map)

    @property
    def item_popularity_(self) -> np.ndarray:
        """Number of users who rated each item in training, by inner index (int64)."""
        V.check_fitted(self, "_R")
        return np.bincount(self._R.indices, minlength=self._R.shape[1]).astype(np.int64)

    # -- fitting ------------------------------------------------------------------------

    @writes
    def fit(self, ratings: Any, *, columns: tuple[str, str, str] | None = None):
        """Learn the model from ratings, replacing any previous fit.

        Parameters
        ----------
        ratings : tuple, scipy sparse matrix or pandas DataFrame
            ``(user_ids, item_ids, values)`` of equal length (ids of any hashable
            type); or a users x items sparse matrix whose stored entries are the
            ratings (raw ids are then the row and column numbers); or a DataFrame
            with user, item and rating columns (found by name or named by
            ``columns``), exactly as :meth:`fastrec.MatrixFactorization.fit`.
            Duplicate (user, item) pairs are summed.
        columns : (str, str, str), optional
            DataFrame column names of user, item and rating.

        Returns
        -------
        self
        """
        dtype = V.check_factor_dtype(self.dtype)
        params = self._checked_params()
        backend, n_threads = _runtime.resolve_backend(self.backend), _runtime.resolve_threads(self.n_threads)
        user_map, item_map, R, context = self._ratings(ratings, columns, dtype)
        check_scores_fit(R)
        self._fit_model(R, params, backend, n_threads, context)  # sets the model's own arrays
        self._user_map, self._item_map, self._R = user_map, item_map, R
        return self

    def _ratings(self, ratings: Any, columns: Any, dtype: np.dtype):
        """(user map, item map, users x items CSR, context for _fit_model) of the training data."""
        return (*ratings_matrix(ratings, columns, dtype), None)

    def _checked_params(self) -> dict[str, Any]:
        return {}

    def _fit_model(self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int,
                   context: Any) -> None:
        raise NotImplementedError

    # -- recommendation -----------------------------------------------------------------

    def _seen_matrix(self) -> sp.csr_matrix:
        """Users x items CSR whose stored pattern is the training interactions."""
        return self._R

    def _inner_users(self, users: Any, unknown: str) -> tuple[bool, np.ndarray]:
        single = np.ndim(users) == 0
        raw = np.asarray([users]) if single else V.id_array(users, "users")
        inner = self._user_map.lookup(raw)
        if unknown == "raise":
            V.raise_unknown(raw, inner, "user", "users")
        return single, inner

    def _allowed(self, items: Any, unknown: str) -> np.ndarray:
        """uint8 candidate flags per inner item, or an empty array for every item."""
        if items is None:
            return np.zeros(0, dtype=np.uint8)
        raw = V.id_array(items, "items")
        inner = self._item_map.lookup(raw)
        if unknown == "raise":
            V.raise_unknown(raw, inner, "item", "items")
        allowed = np.zeros(len(self._item_map), dtype=np.uint8)
        allowed[inner[inner >= 0]] = 1
        return allowed

    @reads
    def recommend(self, users: Any, n: int = 10, *, exclude_seen: bool = True, items: Any = None,
                  unknown: str = "raise") -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best-scored items for one user or a batch of users.

        Users without training history are served by popularity: the candidate
        items ranked by how many users rated them in training (the scores are those
        counts), ties to the smaller inner index.  Users whose history reaches
        fewer than ``n`` candidates get padded rows.

        Parameters
        ----------
        users : raw id or array-like of raw ids
        n : int, default 10
            Items per user; capped at the number of items (of candidates, with
            ``items``).
        exclude_seen : bool, default True
            Never return items the user rated in training.
        items : array-like of raw item ids, optional
            Rank only these candidates.
        unknown : {"raise", "skip"}, default "raise"
            What to do with ids the model was not fitted with: ``"raise"`` raises
            :class:`fastrec.recommenders.UnknownIdError` (a ``KeyError`` and a
            ``ValueError``) naming the id; ``"skip"`` serves unknown users by
            popularity and leaves unknown candidate items out.

        Returns
        -------
        item_ids : ndarray, shape (n,) or (n_users, n)
            Raw item ids, best first; ties go to the smaller inner index.  Slots
            with no candidate left hold -1 (``None`` for non-integer ids).
        scores : ndarray of the model dtype, shape (n,) or (n_users, n)
            Matching scores; ``-inf`` in empty slots.
        """
        V.check_fitted(self, "_R")
        n = min(V.check_int(n, "n", minimum=1), max(1, len(self._item_map)))
        exclude_seen = V.check_bool(exclude_seen, "exclude_seen")
        unknown = V.check_unknown(unknown)
        single, inner = self._inner_users(users, unknown)
        allowed = self._allowed(items, unknown)
        if allowed.size:  # no more slots than candidates
            n = min(n, max(1, int(np.count_nonzero(allowed))))
        backend, n_threads = _runtime.resolve_backend(self.backend), _runtime.resolve_threads(self.n_threads)
        history = np.diff(self._seen_matrix().indptr)
        cold = (inner < 0) | (history[np.maximum(inner, 0)] == 0)
        rows = np.where(cold, -1, inner).astype(np.int64)
        out_idx, out_scores = self._topn(rows, n, exclude_seen, allowed, backend, n_threads)
        if cold.any():
            popular_idx, popular_scores = self._popular(n, allowed, backend, n_threads)
            out_idx[cold], out_scores[cold] = popular_idx, popular_scores
        out_ids = raw_item_ids(self._item_map, out_idx)
        if single:
            return out_ids[0], out_scores[0]
        return out_ids, out_scores

    def _popular(self, n: int, allowed: np.ndarray, backend: str, n_threads: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most rated candidates: one (1, n) row of inner indices and counts."""
        scores = self.item_popularity_.astype(self._R.dtype)[None, :]
        if allowed.size:
            scores[0, allowed == 0] = -np.inf
        return dense_topn(scores, n, backend, n_threads)

    def _run_sparse(self, A: sp.csr_matrix, W: sp.csr_matrix, seen: sp.csr_matrix, rows: np.ndarray,
                    n: int, exclude_seen: bool, allowed: np.ndarray, backend: str, n_threads: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Run sparse_score_topn: the n best items of sum_i A[u, i] W[i, :] for each of ``rows``."""
        dtype = self._R.dtype
        index_dtype = V.index_dtype_for(A.shape[1], W.shape[1])
        a = V.csr_arrays(A if A.dtype == dtype else A.astype(dtype), index_dtype)
        w = V.csr_arrays(W if W.dtype == dtype else W.astype(dtype), index_dtype)
        out_idx = np.empty((rows.size, n), dtype=np.int64)
        out_scores = np.empty((rows.size, n), dtype=dtype)
        with _runtime.kernel_threads(backend, n_threads):
            kernels(backend)[0](
                a.indptr, a.indices, a.data, w.indptr, w.indices, w.data, W.shape[1],
                np.ascontiguousarray(seen.indptr, dtype=np.int64),
                np.ascontiguousarray(seen.indices, dtype=index_dtype),
                np.ascontiguousarray(rows, dtype=np.int64), allowed, bool(exclude_seen), n,
                out_idx, out_scores, n_threads,
            )
        return out_idx, out_scores

    def _topn(self, rows: np.ndarray, n: int, exclude_seen: bool, allowed: np.ndarray, backend: str,
              n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _score_block(self, inner_users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Dense (len(inner_users), len(candidates)) float64 scores; user -1 gets zeros."""
        raise NotImplementedError

    # -- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, archive: Any) -> None:
        pass

    @reads
    def save(self, path: str | os.PathLike | Any) -> None:
        """Write the fitted model to an ``.npz`` file (no pickle), with a format version.

        The id mappings and the training ratings (for ``exclude_seen``) are stored
        too.  Ids must be integers or strings.
        """
        V.check_fitted(self, "_R")
        params = {key: getattr(self, key) for key in self._PARAMS}
        params["dtype"] = np.dtype(self._R.dtype).name
        np.savez(
            path,
            format_name=np.array(self._FORMAT_NAME),
            format_version=np.array(FORMAT_VERSION),
            params=np.array(repr(params)),
            user_ids=V.saveable_ids(self._user_map.to_saveable(), "user"),
            item_ids=V.saveable_ids(self._item_map.to_saveable(), "item"),
            **csr_fields("ratings", self._R),
            **self._state(),
        )

    @classmethod
    def load(cls, path: str | os.PathLike | Any, **overrides: Any):
        """Read a model written by :meth:`save`.

        Every array of the file is checked against the others (distinct ids, the
        ratings matrix's shape and indices, the model's own matrices, the saved
        parameters) before the model is built.

        Parameters
        ----------
        path : str, path-like or binary file object
        **overrides
            Estimator parameters to set on the loaded model (e.g. ``backend``).

        Raises
        ------
        ValueError
            If the file cannot be read, is not a saved model of this class, has a
            newer format, or its contents are inconsistent (the message says which).
        """
        cls(**overrides)  # a wrong parameter name is the caller's TypeError, not the file's
        with open_archive(path, cls._FORMAT_NAME, cls.__name__, FORMAT_VERSION) as archive:
            params = cls._saved_params(archive)
            user_ids, item_ids = archive.ids("user_ids"), archive.ids("item_ids")
            R = archive.saved_csr("ratings")
            if R.shape != (user_ids.size, item_ids.size) or R.dtype != np.dtype(params["dtype"]):
                raise archive.error(
                    f"the ratings matrix is {R.shape[0]} x {R.shape[1]} of {R.dtype}, expected "
                    f"{user_ids.size} users x {item_ids.size} items of {params['dtype']}")
            model = cls._new({**params, **overrides}, archive)
            model._user_map, model._item_map, model._R = IdMap(user_ids), IdMap(item_ids), R
            model._set_state(archive)
        return model

    @classmethod
    def _saved_params(cls, archive: Any) -> dict[str, Any]:
        """The saved constructor parameters, checked as ``fit`` checks them (ValueError if bad)."""
        params = archive.params("params", (*cls._PARAMS, "dtype"))
        missing = sorted({*cls._PARAMS, "dtype"} - set(params))
        if missing:
            raise archive.error(f"the saved parameters lack {missing}")
        try:
            V.check_factor_dtype(params["dtype"])
            cls(**params)._checked_params()
        except (TypeError, ValueError) as exc:
            raise archive.error(f"invalid saved parameters: {exc}") from exc
        return params

    @classmethod
    def _new(cls, params: dict[str, Any], archive: Any):
        return cls(**params)


def dense_topn(scores: np.ndarray, n: int, backend: str, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Run dense_topn on a C-contiguous float block: the n best finite entries of every row."""
    scores = np.ascontiguousarray(scores)
    out_idx = np.empty((scores.shape[0], n), dtype=np.int64)
    out_scores = np.empty((scores.shape[0], n), dtype=scores.dtype)
    with _runtime.kernel_threads(backend, n_threads):
        kernels(backend)[1](scores, n, out_idx, out_scores, n_threads)
    return out_idx, out_scores


def csr_fields(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as ``.npz`` fields (its stored order is kept)."""
    return {f"{name}_indptr": np.asarray(matrix.indptr, dtype=np.int64),
            f"{name}_indices": np.asarray(matrix.indices), f"{name}_data": np.asarray(matrix.data),
            f"{name}_shape": np.array(matrix.shape, dtype=np.int64)}


def read_csr(archive: Any, name: str) -> sp.csr_matrix:
    """The CSR written by ``csr_fields(name, ...)``, its arrays checked (ValueError if bad)."""
    return archive.saved_csr(name)
