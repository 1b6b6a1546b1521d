"""The base of recommenders that score users and items by products of their factors."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._aligned import ALIGN, aligned_copy, aligned_zeros
from fastrec._concurrency import reads
from fastrec._idmap import IdMap
from fastrec.recommenders._base import Recommender, raise_unknown, raw_id_array, raw_item_ids
from fastrec.scoring.topn import topn


class FactorRecommender(Recommender):
    """A :class:`Recommender` whose score of user ``u`` and item ``i`` is ``p_u . q_i`` plus offsets.

    The offsets are what a model adds to the product: an item bias (BPR), or a
    global mean, user and item biases (biased matrix factorization); none by
    default.  Subclasses fit the factors (``_install_factors``) and say how
    one user's factors follow from its interactions with the item side frozen
    (``_solve_user``): that solve serves ``recommend(..., user_items=...)`` and
    :meth:`fold_in`.  Everything else (top-N through :func:`fastrec.topn`,
    ``score_items``, ``similar_items``, ``similar_users``, alignment after
    unpickling) is shared here.
    """

    # Whether the model keeps a per-user bias in ``user_bias_`` (grown by fold-in).
    _HAS_USER_BIAS = False
    # Fitted state, set by fit or load (absent before): padded, aligned (n, stride)
    # factors whose first _k columns are the model's.
    _P: np.ndarray
    _Q: np.ndarray
    _k: int
    user_bias_: np.ndarray  # models with _HAS_USER_BIAS only

    def _restore(self) -> None:
        """Put the factor matrices back on 64-byte boundaries, which a pickle does not keep."""
        for name in ("_P", "_Q"):
            factors = self.__dict__.get(name)
            if factors is not None and factors.ctypes.data % ALIGN:
                setattr(self, name, aligned_copy(factors, factors.shape[1]))

    def _install_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        """Keep aligned, padded copies of (n_users, k) and (n_items, k) factors of one dtype."""
        self._k = user_factors.shape[1]
        self._P = aligned_copy(user_factors)
        self._Q = aligned_copy(item_factors, self._P.shape[1])

    # -- public attributes --------------------------------------------------------------

    @property
    def user_factors_(self) -> np.ndarray:
        """(n_users, n_factors) user factors :math:`p_u`, by inner index."""
        self._check_fitted()
        return self._P[:, : self._k]

    @property
    def item_factors_(self) -> np.ndarray:
        """(n_items, n_factors) item factors :math:`q_i`, by inner index."""
        self._check_fitted()
        return self._Q[:, : self._k]

    # -- what a model adds to the product -------------------------------------------------

    def _item_bias(self) -> np.ndarray | None:
        """(n_items,) item offsets of the scores, or None."""
        return None

    def _solve_user(
        self, inner: np.ndarray, values: np.ndarray, user: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, float]:
        """(factors (n_factors,) float64, user bias) of one user from its interactions.

        ``inner`` are known inner item indices, ``values`` the float64 values of
        those interactions; the item side stays as fitted.
        """
        raise NotImplementedError

    def _scoring_factors(self, factors: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, Q) whose products are the scores of the users of ``factors``, for :func:`fastrec.topn`.

        An item bias ``b_i`` becomes one more column: ``[p_u, 1] . [q_i, b_i]``.
        """
        k, dtype, item_bias = self._k, self._P.dtype, self._item_bias()
        if item_bias is None:
            return np.ascontiguousarray(factors), np.ascontiguousarray(self._Q[:, :k])
        U = np.ones((factors.shape[0], k + 1), dtype=dtype)
        U[:, :k] = factors
        Q = np.empty((self._Q.shape[0], k + 1), dtype=dtype)
        Q[:, :k] = self._Q[:, :k]
        Q[:, k] = item_bias
        return U, Q

    def _add_offsets(self, scores: np.ndarray, bias: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Float64 ``scores`` (users x candidates) of the products plus the model's offsets."""
        item_bias = self._item_bias()
        if item_bias is not None:
            scores += item_bias[candidates].astype(np.float64)[None, :]
        return scores

    # -- scoring ------------------------------------------------------------------------

    def _user_rows(
        self, rows: np.ndarray, given: sp.csr_matrix | None, raw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Factors (len(rows), n_factors) and user biases (len(rows),), model dtype, of scored users.

        Training rows read the fitted parameters; rows of given interactions are
        solved on the fly by :meth:`_solve_user` (nothing is stored).
        """
        k, dtype = self._k, self._P.dtype
        if given is None:
            bias = self.user_bias_[rows] if self._HAS_USER_BIAS else np.zeros(rows.size, dtype=dtype)
            return self._P[rows, :k], bias
        params = self._checked_params()
        factors = np.zeros((rows.size, k), dtype=dtype)
        bias = np.zeros(rows.size, dtype=dtype)
        for position, row in enumerate(rows):
            start, stop = given.indptr[row], given.indptr[row + 1]
            factors[position], bias[position] = self._solve_user(
                given.indices[start:stop], given.data[start:stop].astype(np.float64), raw[position], params
            )
        return factors, bias

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
        out_idx = np.full((rows.size, n), -1, dtype=np.int64)
        out_scores = np.full((rows.size, n), -np.inf, dtype=self._P.dtype)
        active = np.flatnonzero(rows >= 0)
        if active.size == 0 or (allowed.size and not allowed.any()):
            return out_idx, out_scores
        U, Q = self._scoring_factors(*self._user_rows(rows[active], given, raw[active]))
        exclude = self._history(given)[rows[active]] if exclude_seen else None
        candidates = np.flatnonzero(allowed) if allowed.size else None
        idx, scores = topn(
            U, Q, n, exclude=exclude, candidates=candidates, n_threads=n_threads, backend=backend
        )
        out_idx[active, : idx.shape[1]] = idx
        out_scores[active, : idx.shape[1]] = scores
        return out_idx, out_scores

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        factors, bias = self._user_rows(rows, given, raw)
        scores = factors.astype(np.float64) @ self._Q[candidates, : self._k].astype(np.float64).T
        return self._add_offsets(scores, bias, candidates)

    # -- similarity ---------------------------------------------------------------------

    @reads
    def similar_items(self, items: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The items whose factor vectors have the largest cosine with those of ``items``.

        Exact: the unit item factors are ranked by :func:`fastrec.topn`.

        Parameters
        ----------
        items : raw id or array-like of raw ids
        n : int, default 10

        Returns
        -------
        item_ids : ndarray, shape (n,) or (len(items), n)
            Raw ids, most similar first (ties to the smaller inner index), never
            the item itself; -1 (``None`` for non-integer ids) in empty slots.
        scores : ndarray of the model dtype, shape (n,) or (len(items), n)
            Cosines of the factor vectors (0 against a zero vector).

        Raises
        ------
        UnknownIdError
            For an item id the model was not fitted with.
        """
        self._check_fitted()
        return self._similar(self._Q[:, : self._k], self._item_map, items, n, "item", "items")

    @reads
    def similar_users(self, users: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The users whose factor vectors have the largest cosine with those of ``users``.

        As :meth:`similar_items`, on the user factors.
        """
        self._check_fitted()
        return self._similar(self._P[:, : self._k], self._user_map, users, n, "user", "users")

    def _similar(
        self, factors: np.ndarray, id_map: IdMap, ids: Any, n: int, side: str, argument: str
    ) -> tuple[np.ndarray, np.ndarray]:
        n = min(V.check_int(n, "n", minimum=1), max(1, len(id_map)))
        single, raw = raw_id_array(ids, argument)
        inner = id_map.lookup(raw).astype(np.int64)
        raise_unknown(raw, inner, side, argument)
        norms = np.linalg.norm(factors.astype(np.float64), axis=1)
        unit = (factors / np.where(norms > 0, norms, 1.0)[:, None]).astype(factors.dtype)
        itself = sp.csr_matrix(
            (np.ones(inner.size, dtype=np.int8), inner, np.arange(inner.size + 1)),
            shape=(inner.size, len(id_map)),
        )
        idx, scores = topn(
            unit[inner], unit, n, exclude=itself, n_threads=self.n_threads, backend=self.backend
        )
        out_idx = np.full((inner.size, n), -1, dtype=np.int64)
        out_scores = np.full((inner.size, n), -np.inf, dtype=factors.dtype)
        out_idx[:, : idx.shape[1]], out_scores[:, : idx.shape[1]] = idx, scores
        out = raw_item_ids(id_map, out_idx)
        return (out[0], out_scores[0]) if single else (out, out_scores)

    # -- persistence --------------------------------------------------------------------

    def _saved_param_values(self) -> dict[str, Any]:
        params = super()._saved_param_values()
        seed = params.get("random_state")
        # A generator cannot be written without pickle; the seed it gave is kept as seed_.
        params["random_state"] = int(seed) if isinstance(seed, (int, np.integer)) else None
        params["n_factors"] = self._k
        return params

    def _read_factors(self, archive: Any, *, item_bias: bool = False):
        """(user factors, item factors, item bias or None, saved params, seed) of a saved model.

        Each is checked against the model's interactions and the others: the
        model's dtype, one n_factors >= 1 as saved, a seed >= 0.
        """
        n_users, n_items = self._R.shape
        P = archive.array("user_factors", 2, "f", n_users, finite=True)
        Q = archive.array("item_factors", 2, "f", n_items, finite=True)
        bias = archive.array("item_bias", 1, "f", n_items, finite=True) if item_bias else None
        saved = archive.params("params", (*self._PARAMS, "dtype"))
        dtypes = [P.dtype, Q.dtype] + ([] if bias is None else [bias.dtype])
        if any(dtype != self._R.dtype for dtype in dtypes):
            what = "factors and biases" if item_bias else "factors"
            raise archive.error(
                f"the {what} are {', '.join(map(str, dtypes))} but the model is {self._R.dtype}"
            )
        if P.shape[1] < 1 or Q.shape[1] != P.shape[1] or saved["n_factors"] != P.shape[1]:
            raise archive.error(
                f"n_factors is {saved['n_factors']} but the factors have {P.shape[1]} and "
                f"{Q.shape[1]} columns (both need that n_factors >= 1)"
            )
        seed = archive.scalar("seed", "i")
        if seed < 0:
            raise archive.error(f"seed must be >= 0, got {seed}")
        return P, Q, bias, saved, int(seed)

    # -- fold-in ------------------------------------------------------------------------

    @staticmethod
    def _fold_in_arrays(items: Any, values: Any, name: str = "values") -> tuple[np.ndarray, np.ndarray]:
        """(raw item ids, float64 values) of one user's fold-in; ``values=None`` means ones."""
        item_ids = V.id_array(items, "items")
        if values is None:
            parsed = np.ones(item_ids.size, dtype=np.float64)
        else:
            parsed = np.asarray(V._rating_values(values, name), dtype=np.float64)
        if item_ids.size != parsed.size:
            raise ValueError(
                f"items and {name} must have the same length, got {item_ids.size} and {parsed.size}."
            )
        return item_ids, parsed

    def _fold_in(self, user: Any, item_ids: np.ndarray, values: np.ndarray) -> None:
        """Store the solve of one user's factors (and bias) from raw item ids and float64 values.

        Unknown items are ignored; a new user is appended; the items join the
        user's interactions.
        """
        inner = self._item_map.lookup(item_ids)
        keep = inner >= 0
        inner, values = inner[keep], values[keep]
        factors, bias = self._solve_user(inner, values, user, self._checked_params())
        user_map, row = self._user_map.append(user)
        if row >= self._P.shape[0]:
            grown = aligned_zeros(row + 1, self._P.shape[1], self._P.dtype)
            grown[: self._P.shape[0]] = self._P
            self._P = grown
            if self._HAS_USER_BIAS:
                self.user_bias_ = np.concatenate([self.user_bias_, np.zeros(1, self.user_bias_.dtype)])
            self._user_map = user_map
        self._P[row, : self._k] = factors
        if self._HAS_USER_BIAS:
            self.user_bias_[row] = bias
        self._R = grown_interactions(
            self._R,
            interactions(
                np.full(inner.size, row, dtype=np.int32),
                inner.astype(np.int32),
                values.astype(self._P.dtype),
                len(self._user_map),
                len(self._item_map),
            ),
        )


def interactions(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """The users x items CSR of triples by inner index, repeated pairs summed.

    A value of 0 stays stored: it is an interaction (seen) all the same.
    """
    R = sp.csr_matrix((values, (users, items)), shape=(n_users, n_items))
    R.sum_duplicates()
    return R


def grown_interactions(R: sp.csr_matrix, new: sp.csr_matrix) -> sp.csr_matrix:
    """``R`` padded to the shape of ``new`` (more users or items), plus ``new``."""
    R = sp.csr_matrix((R.data, R.indices, R.indptr), shape=R.shape)
    R.resize(new.shape)
    total = sp.csr_matrix(R + new)
    total.sum_duplicates()
    return total
