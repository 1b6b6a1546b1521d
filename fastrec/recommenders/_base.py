"""The Recommender base every fastrec recommender derives: raw ids, recommend(), scores,
popularity for cold users, save/load."""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._archive import open_archive
from fastrec._concurrency import reads, writes
from fastrec._idmap import IdMap
from fastrec.base import Estimator, check_fitted
from fastrec.datasets._triples import rating_triples
from fastrec.recommenders._checks import UnknownIdError, saveable_ids

FORMAT_VERSION = 1


class Kernels(NamedTuple):
    """The recommendation kernels of one backend; call them with keyword arguments."""

    sparse_score_topn: Callable[..., None]
    dense_topn: Callable[..., None]


def kernels(backend: str) -> Kernels:
    """``sparse_score_topn`` and ``dense_topn`` of one backend."""
    module = _runtime.kernel_module(backend, "recommenders")
    return Kernels(module.sparse_score_topn, module.dense_topn)


def ratings_matrix(
    data: Any, columns: Any, dtype: np.dtype, item_map: IdMap | None = None
) -> tuple[IdMap, IdMap, sp.csr_matrix]:
    """The id maps and the users x items CSR of training data in any ``fit`` form.

    Sparse input keeps its row and column numbers as raw ids.  ``item_map``
    (optional) is extended rather than built, so its items keep their indices.
    Duplicate (user, item) pairs are summed, as scipy does; stored zeros stay
    stored (they count as seen).
    """
    triples = rating_triples(data, columns)
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
    R = sp.csr_matrix(
        (triples.ratings.astype(np.float64), (users, items)), shape=(len(user_map), len(item_map))
    )
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


UNKNOWN_POLICIES = ("raise", "skip")
# Rows of one dense score block of the default top-n path: blocks hold about this
# many scores (32 MiB of float64), however many users and items there are.
_BLOCK_SCORES = 1 << 22


def check_unknown(unknown: Any) -> str:
    """The ``unknown=`` policy: ``"raise"`` or ``"skip"``."""
    if not isinstance(unknown, str) or unknown not in UNKNOWN_POLICIES:
        raise ValueError(
            f"unknown={unknown!r} is not one of 'raise' (an UnknownIdError names the first id the "
            "model was not fitted with) or 'skip' (unknown users get empty rows, unknown items are "
            "left out)."
        )
    return unknown


def raise_unknown(raw: np.ndarray, inner: np.ndarray, side: str, argument: str) -> None:
    """Raise :class:`UnknownIdError` naming the first raw id whose inner index is -1."""
    missing = np.flatnonzero(inner < 0)
    if missing.size:
        first = raw[missing[0]]
        first = first.item() if isinstance(first, np.generic) else first  # 999, not np.int64(999)
        more = f" (and {missing.size - 1} more)" if missing.size > 1 else ""
        remedy = "get empty rows for such users" if side == "user" else "leave such items out"
        raise UnknownIdError(
            f"{argument} contains the {side} id {first!r}{more}, which the model was not fitted "
            f"with. Pass unknown='skip' to {remedy}."
        )


def raw_id_array(ids: Any, name: str) -> tuple[bool, np.ndarray]:
    """(whether ``ids`` is one id, the ids as a 1-D array); None is refused."""
    if ids is None:
        raise TypeError(f"{name} must be a raw id or an array-like of raw ids, got None.")
    single = np.ndim(ids) == 0
    return single, (np.asarray([ids]) if single else V.id_array(ids, name))


def given_rows(user_items: Any, n_rows: int, item_map: IdMap, dtype: np.dtype) -> sp.csr_matrix:
    """``user_items`` of ``recommend`` / ``score_items`` as a checked CSR (n_rows, n_items).

    Columns are the model's items in ``item_ids_`` order when there are
    ``n_items`` of them; with integer item ids, a wider matrix whose column
    ``j`` is raw item id ``j`` is accepted too (the layout of a users x items
    matrix the model was fitted on), and its columns of ids the model does not
    know are left out.  Duplicate entries are summed; stored zeros stay stored
    (they count as seen), as in training data.  The caller's matrix is never
    changed.
    """
    n_items = len(item_map)
    ids = item_map.ids
    raw_columns = ids.dtype.kind in "iu" and ids.size > 0 and int(ids.max()) >= n_items
    wanted = f"({n_rows}, {n_items})" + (
        f" or ({n_rows}, > {int(ids.max())}) with a column per raw item id" if raw_columns else ""
    )
    if not sp.issparse(user_items):
        raise TypeError(
            f"user_items must be a scipy sparse matrix of shape {wanted}, got {type(user_items).__name__}."
        )
    shape = user_items.shape
    by_raw_id = raw_columns and len(shape) == 2 and shape[0] == n_rows and shape[1] > int(ids.max())
    if len(shape) != 2 or shape[0] != n_rows or (shape[1] != n_items and not by_raw_id):
        raise ValueError(
            f"user_items has shape {shape}; it needs one row per user asked for and one column "
            f"per item of the model (item_ids_ order): {wanted}."
        )
    matrix = V.check_sparse_structure(user_items, "user_items")
    V.float_dtype_for(matrix.dtype, "user_items")
    csr = sp.csr_matrix(matrix, dtype=dtype, copy=True)
    V.check_finite(csr.data, "user_items")
    if by_raw_id and shape[1] != n_items:
        csr = csr[:, ids]  # column j of the result is inner item j
    csr.sum_duplicates()
    return csr


class Recommender(Estimator):
    """Base of every fastrec recommender: one contract for all of them.

    A recommender is fitted on a users x items matrix of interactions (ratings)
    given with raw user and item ids of any hashable type, and keeps them as
    ``user_ids_`` / ``item_ids_`` (inner index ``k`` is raw id ``ids[k]``) and
    ``interactions_``.  Every recommender shares

    * :meth:`recommend` ``(users, n=10, *, exclude_seen=True, items=None,
      filter_items=None, unknown="raise", user_items=None)``;
    * :meth:`score_items` ``(users, items=None, *, unknown="raise", user_items=None)``,
      the dense scores :meth:`recommend` ranks, by which :class:`~fastrec.Hybrid`
      blends models;
    * ``similar_items`` where the model defines item similarity (``similar_users``
      for user similarity);
    * ``save`` / ``load`` (``.npz``, no pickle) and pickling;
    * scikit-learn's estimator protocol (``get_params``, ``set_params``,
      ``sklearn.base.clone``); a method that needs a fitted model raises
      :class:`sklearn.exceptions.NotFittedError` before ``fit``.

    Cold users, known to the model but without any interaction in it, are
    served by popularity in every model: the candidates ranked by the number of
    users who interacted with them (``item_popularity_``, the scores), ties to
    the smaller inner index.

    Threads: a fitted model serves its reading methods from any number of
    threads at once; ``fit`` runs alone and no read sees a half-fitted model.

    Subclasses implement ``_fit_model``, ``_score`` (dense scores of a block of
    users) and, where a compiled path exists, ``_topn``; and list their fitted
    arrays in ``_state`` / ``_set_state`` for persistence.
    """

    _FORMAT_NAME = ""
    _FORMAT_VERSION = FORMAT_VERSION
    _PARAMS: tuple[str, ...] = ()
    # Fitted state, set by fit or load (absent before): id maps and the users x items interactions.
    _R: sp.csr_matrix
    _user_map: IdMap
    _item_map: IdMap

    def __init__(self, *, dtype: Any = np.float32, n_threads: int | None = None, backend: str = "auto"):
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend

    def _check_fitted(self) -> None:
        check_fitted(self, "_R", "fit(ratings)")

    def __sklearn_is_fitted__(self) -> bool:
        """Whether the model is fitted (scikit-learn's ``check_is_fitted`` asks this)."""
        return getattr(self, "_R", None) is not None

    # -- public attributes --------------------------------------------------------------

    @property
    def user_ids_(self) -> np.ndarray:
        """Raw id of every inner user index."""
        self._check_fitted()
        return self._user_map.ids

    @property
    def item_ids_(self) -> np.ndarray:
        """Raw id of every inner item index."""
        self._check_fitted()
        return self._item_map.ids

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return len(self._user_map)

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return len(self._item_map)

    @property
    def interactions_(self) -> sp.csr_matrix:
        """The users x items training interactions, by inner index (what ``exclude_seen`` excludes).

        Read-only: the model's own matrix, not a copy.
        """
        self._check_fitted()
        return self._R

    @property
    def item_popularity_(self) -> np.ndarray:
        """Number of users who interacted with each item in training, by inner index (int64)."""
        self._check_fitted()
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

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        raise NotImplementedError

    # -- the users of one call ------------------------------------------------------------

    def _history(self, given: sp.csr_matrix | None) -> sp.csr_matrix:
        """The interactions rows are read from: the given rows, or the training matrix."""
        return self._R if given is None else given

    def _users_of_call(
        self, users: Any, unknown: str, user_items: Any
    ) -> tuple[bool, np.ndarray, np.ndarray, sp.csr_matrix | None]:
        """(single, raw ids, model inner index per user (-1 unknown), given rows or None)."""
        single, raw = raw_id_array(users, "users")
        inner = self._user_map.lookup(raw).astype(np.int64)
        given = None
        if user_items is not None:
            given = given_rows(user_items, raw.size, self._item_map, self._R.dtype)
        elif unknown == "raise":
            raise_unknown(raw, inner, "user", "users")
        return single, raw, inner, given

    def _candidate_flags(self, items: Any, filter_items: Any, unknown: str) -> np.ndarray:
        """uint8 candidate flag per inner item, or an empty array when every item is one."""
        if items is None and filter_items is None:
            return np.zeros(0, dtype=np.uint8)
        allowed = np.ones(len(self._item_map), dtype=np.uint8)
        if items is not None:
            raw = V.id_array(items, "items")
            inner = self._item_map.lookup(raw)
            if unknown == "raise":
                raise_unknown(raw, inner, "item", "items")
            allowed[:] = 0
            allowed[inner[inner >= 0]] = 1
        if filter_items is not None:
            inner = self._item_map.lookup(V.id_array(filter_items, "filter_items"))
            allowed[inner[inner >= 0]] = 0  # an unknown item cannot be recommended anyway
        return allowed

    # -- recommendation -----------------------------------------------------------------

    @reads
    def recommend(
        self,
        users: Any,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        filter_items: Any = None,
        unknown: str = "raise",
        user_items: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best-scored items for one user or a batch of users.

        Parameters
        ----------
        users : raw id or array-like of raw ids
        n : int, default 10
            Items per user; capped at the number of candidate items.
        exclude_seen : bool, default True
            Never return items the user interacted with (in training, or in
            ``user_items`` when it is given).
        items : array-like of raw item ids, optional
            Allow-list: rank only these items.
        filter_items : array-like of raw item ids, optional
            Block-list: never return these items (unknown ids in it are ignored).
            Combined with ``items``, the candidates are ``items`` minus
            ``filter_items``.
        unknown : {"raise", "skip"}, default "raise"
            Ids the model was not fitted with, in ``users`` or ``items``:
            ``"raise"`` raises :class:`fastrec.UnknownIdError` (a ``KeyError``
            and a ``ValueError``) naming the first one; ``"skip"`` gives unknown
            users an empty row (-1, ``-inf``) and leaves unknown items out.
        user_items : scipy sparse matrix, shape (len(users), n_items_), optional
            The users' interactions now, one row per user of ``users``, one
            column per item in ``item_ids_`` order (with integer item ids, a
            matrix whose column ``j`` is raw item id ``j`` works too).
            Scores are computed from
            these rows instead of the training interactions, without changing
            the model, and ``exclude_seen`` excludes their items.  The users need
            not be known to the model.

        Returns
        -------
        item_ids : ndarray, shape (n,) or (n_users, n)
            Raw item ids, best first; ties go to the smaller inner index.  Slots
            with no candidate left hold -1 (``None`` for non-integer ids).
        scores : ndarray, shape (n,) or (n_users, n)
            Matching scores; ``-inf`` in empty slots.

        Notes
        -----
        Users without interactions (in the model, or an empty ``user_items``
        row) are served by popularity: the candidates ranked by
        ``item_popularity_`` (the scores), ties to the smaller inner index.
        """
        self._check_fitted()
        n = min(V.check_int(n, "n", minimum=1), max(1, len(self._item_map)))
        exclude_seen = V.check_bool(exclude_seen, "exclude_seen")
        unknown = check_unknown(unknown)
        single, raw, inner, given = self._users_of_call(users, unknown, user_items)
        allowed = self._candidate_flags(items, filter_items, unknown)
        if allowed.size:  # no more slots than candidates
            n = min(n, max(1, int(np.count_nonzero(allowed))))
        backend, n_threads = _runtime.resolve_backend(self.backend), _runtime.resolve_threads(self.n_threads)
        if given is None:
            known = inner >= 0
            history = np.diff(self._R.indptr)[np.maximum(inner, 0)]
            active = known & (history > 0)
            rows = np.where(active, inner, -1)
        else:
            known = np.ones(inner.size, dtype=bool)
            active = np.diff(given.indptr) > 0
            rows = np.where(active, np.arange(inner.size), -1)
        cold = known & ~active
        out_idx, out_scores = self._topn(
            rows, n, exclude_seen, allowed, backend, n_threads, given=given, inner=inner, raw=raw
        )
        if cold.any():
            popular_idx, popular_scores = self._popular(n, allowed, backend, n_threads)
            out_idx[cold], out_scores[cold] = popular_idx, popular_scores.astype(out_scores.dtype)
        out_ids = raw_item_ids(self._item_map, out_idx)
        if single:
            return out_ids[0], out_scores[0]
        return out_ids, out_scores

    @reads
    def score_items(
        self, users: Any, items: Any = None, *, unknown: str = "raise", user_items: Any = None
    ) -> np.ndarray:
        """The model's scores of items for users: what :meth:`recommend` ranks.

        Parameters
        ----------
        users : raw id or array-like of raw ids
        items : array-like of raw item ids, optional
            The items scored, in this order; ``None`` scores every item in
            ``item_ids_`` order.
        unknown : {"raise", "skip"}, default "raise"
            ``"skip"`` gives unknown users a row of NaN and unknown items a
            column of NaN.
        user_items : scipy sparse matrix, shape (len(users), n_items_), optional
            As in :meth:`recommend`: score from these interactions instead.

        Returns
        -------
        scores : ndarray of float64, shape (n_items,) or (n_users, n_items)
            Dense, so keep ``len(users) * len(items)`` within memory.  Items a
            neighbourhood or content model cannot reach score 0.  Cold users get
            the model's own scores here (all 0 for a neighbourhood model), not
            the popularity ranking :meth:`recommend` serves them.
        """
        self._check_fitted()
        unknown = check_unknown(unknown)
        single, raw, inner, given = self._users_of_call(users, unknown, user_items)
        if items is None:
            candidates = np.arange(len(self._item_map), dtype=np.int64)
        else:
            raw_items = V.id_array(items, "items")
            candidates = self._item_map.lookup(raw_items).astype(np.int64)
            if unknown == "raise":
                raise_unknown(raw_items, candidates, "item", "items")
        rows = inner if given is None else np.arange(inner.size, dtype=np.int64)
        scores = np.full((raw.size, candidates.size), np.nan)
        ok_rows, ok_cols = rows >= 0, candidates >= 0
        if ok_rows.any() and ok_cols.any():
            block = self._score(rows[ok_rows], candidates[ok_cols], given, inner[ok_rows], raw[ok_rows])
            scores[np.ix_(ok_rows, ok_cols)] = block
        return scores[0] if single else scores

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        """Dense float64 (len(rows), len(candidates)) scores.

        ``rows`` (all >= 0) index the history: the training matrix when ``given``
        is None, else ``given``; ``inner`` and ``raw`` are each row's model user
        index (-1 unknown) and raw id; ``candidates`` are inner item indices.
        """
        raise NotImplementedError

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
        """(len(rows), n) inner item indices and scores of each row's best candidates.

        ``rows`` index the history as in :meth:`_score`, -1 for an output row
        left padded (-1, -inf).  This default ranks dense score blocks of
        :meth:`_score`; models with a compiled path override it.
        """
        n_items = len(self._item_map)
        candidates = np.flatnonzero(allowed) if allowed.size else np.arange(n_items)
        candidates = candidates.astype(np.int64)
        history = self._history(given)
        out_idx = np.full((rows.size, n), -1, dtype=np.int64)
        out_scores = np.full((rows.size, n), -np.inf, dtype=self._R.dtype)
        active = np.flatnonzero(rows >= 0)
        block = max(1, _BLOCK_SCORES // max(candidates.size, 1))
        for start in range(0, active.size if candidates.size else 0, block):
            positions = active[start : start + block]
            scores = self._score(rows[positions], candidates, given, inner[positions], raw[positions])
            scores = scores.astype(out_scores.dtype, copy=False)
            if exclude_seen:
                seen = columns_of(_pattern(history[rows[positions]]), candidates).toarray() > 0
                scores[seen] = -np.inf
            idx, top = dense_topn(scores, n, backend, n_threads)
            out_idx[positions] = np.where(idx >= 0, candidates[np.maximum(idx, 0)], -1)
            out_scores[positions] = top
        return out_idx, out_scores

    def _popular(
        self, n: int, allowed: np.ndarray, backend: str, n_threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most interacted-with candidates: one (1, n) row of inner indices and counts."""
        scores = self.item_popularity_.astype(self._R.dtype)[None, :]
        if allowed.size:
            scores[0, allowed == 0] = -np.inf
        return dense_topn(scores, n, backend, n_threads)

    def _run_sparse(
        self,
        A: sp.csr_matrix,
        W: sp.csr_matrix,
        seen: sp.csr_matrix,
        rows: np.ndarray,
        n: int,
        exclude_seen: bool,
        allowed: np.ndarray,
        backend: str,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run sparse_score_topn: the n best items of sum_i A[u, i] W[i, :] for each of ``rows``."""
        dtype = self._R.dtype
        index_dtype = V.index_dtype_for(A.shape[1], W.shape[1])
        a = V.csr_arrays(A if A.dtype == dtype else A.astype(dtype), index_dtype)
        w = V.csr_arrays(W if W.dtype == dtype else W.astype(dtype), index_dtype)
        out_idx = np.empty((rows.size, n), dtype=np.int64)
        out_scores = np.empty((rows.size, n), dtype=dtype)
        with _runtime.kernel_threads(backend, n_threads):
            kernels(backend).sparse_score_topn(
                a_indptr=a.indptr,
                a_indices=a.indices,
                a_data=a.data,
                w_indptr=w.indptr,
                w_indices=w.indices,
                w_data=w.data,
                n_items=W.shape[1],
                seen_indptr=np.ascontiguousarray(seen.indptr, dtype=np.int64),
                seen_indices=np.ascontiguousarray(seen.indices, dtype=index_dtype),
                rows=np.ascontiguousarray(rows, dtype=np.int64),
                allowed=allowed,
                exclude_seen=bool(exclude_seen),
                n=n,
                out_indices=out_idx,
                out_scores=out_scores,
                n_threads=n_threads,
            )
        return out_idx, out_scores

    # -- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, archive: Any) -> None:
        pass

    def _saved_param_values(self) -> dict[str, Any]:
        """The constructor parameters written by :meth:`save` (literals only)."""
        params = {key: getattr(self, key) for key in self._PARAMS}
        params["dtype"] = np.dtype(self._R.dtype).name
        return params

    @reads
    def save(self, path: str | os.PathLike | Any) -> None:
        """Write the fitted model to an ``.npz`` file (no pickle), with a format version.

        The id mappings and the training interactions (for ``exclude_seen``) are
        stored too.  Ids must be integers or strings.
        """
        self._check_fitted()
        fields: dict[str, Any] = {  # np.savez's keywords: arrays, never its allow_pickle flag
            "format_name": np.array(self._FORMAT_NAME),
            "format_version": np.array(self._FORMAT_VERSION),
            "params": np.array(repr(self._saved_param_values())),
            "user_ids": saveable_ids(self._user_map.to_saveable(), "user"),
            "item_ids": saveable_ids(self._item_map.to_saveable(), "item"),
            **csr_fields("ratings", self._R),
            **self._state(),
        }
        np.savez(path, **fields)

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
        with open_archive(path, cls._FORMAT_NAME, cls.__name__, cls._FORMAT_VERSION) as archive:
            return cls._from_archive(archive, overrides)

    @classmethod
    def _from_archive(cls, archive: Any, overrides: dict[str, Any]):
        params = cls._saved_params(archive)
        user_ids, item_ids = archive.ids("user_ids"), archive.ids("item_ids")
        R = archive.saved_csr("ratings")
        if R.shape != (user_ids.size, item_ids.size) or R.dtype != np.dtype(params["dtype"]):
            raise archive.error(
                f"the ratings matrix is {R.shape[0]} x {R.shape[1]} of {R.dtype}, expected "
                f"{user_ids.size} users x {item_ids.size} items of {params['dtype']}"
            )
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


def _pattern(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The stored pattern of a CSR matrix as ones (a stored zero counts as seen)."""
    return sp.csr_matrix(
        (np.ones(matrix.indices.size, dtype=np.int8), matrix.indices, matrix.indptr), shape=matrix.shape
    )


def dense_topn(scores: np.ndarray, n: int, backend: str, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Run dense_topn on a C-contiguous float block: the n best finite entries of every row."""
    scores = np.ascontiguousarray(scores)
    out_idx = np.empty((scores.shape[0], n), dtype=np.int64)
    out_scores = np.empty((scores.shape[0], n), dtype=scores.dtype)
    with _runtime.kernel_threads(backend, n_threads):
        kernels(backend).dense_topn(
            scores=scores, n=n, out_indices=out_idx, out_scores=out_scores, n_threads=n_threads
        )
    return out_idx, out_scores


def csr_fields(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as ``.npz`` fields (its stored order is kept)."""
    return {
        f"{name}_indptr": np.asarray(matrix.indptr, dtype=np.int64),
        f"{name}_indices": np.asarray(matrix.indices),
        f"{name}_data": np.asarray(matrix.data),
        f"{name}_shape": np.array(matrix.shape, dtype=np.int64),
    }


def read_csr(archive: Any, name: str) -> sp.csr_matrix:
    """The CSR written by ``csr_fields(name, ...)``, its arrays checked (ValueError if bad)."""
    return archive.saved_csr(name)
