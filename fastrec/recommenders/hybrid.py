"""Weighted blends of fitted recommenders (collaborative + content, or any mix)."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._archive import format_name_of, open_archive
from fastrec._concurrency import SharedModel, reads, writes
from fastrec._idmap import IdMap
from fastrec.recommenders._base import (
    FORMAT_VERSION,
    columns_of,
    dense_topn,
    min_max_rows,
    raw_item_ids,
    z_score_rows,
)

NORMALIZATIONS = ("minmax", "zscore", "none")
# Users per dense score block: blocks hold about this many scores (32 MiB of float64).
_BLOCK_SCORES = 1 << 22


def _model_classes() -> dict[str, type]:
    from fastrec.mf import MatrixFactorization
    from fastrec.mf.model import FORMAT_NAME as MF_FORMAT
    from fastrec.recommenders.content import ContentKNN
    from fastrec.recommenders.knn import ItemKNN, UserKNN

    return {MF_FORMAT: MatrixFactorization, ItemKNN._FORMAT_NAME: ItemKNN,
            UserKNN._FORMAT_NAME: UserKNN, ContentKNN._FORMAT_NAME: ContentKNN,
            Hybrid._FORMAT_NAME: Hybrid}


class Hybrid(SharedModel):
    r"""A weighted sum of fitted recommenders' per-user normalised scores.

    .. math:: \mathrm{score}(u, j) = \sum_m w_m\, \mathrm{norm}_u\big(\mathrm{score}_m(u, j)\big)

    The classic collaborative + content blend is
    ``Hybrid([(cf, alpha), (content, 1 - alpha)])``; any number of models and any
    real weights work (:class:`ItemKNN`, :class:`UserKNN`, :class:`ContentKNN`,
    :class:`fastrec.MatrixFactorization`, or another Hybrid).

    Normalisation makes scores of different scales comparable.  For each user
    and model it is computed over the user's candidate items that the user did
    not rate in training (the items that can be recommended):

    * ``"minmax"`` (default): :math:`(s - \min) / (\max - \min)`, so every model
      spans [0, 1] for every user;
    * ``"zscore"``: :math:`(s - \mathrm{mean}) / \mathrm{std}`;
    * ``"none"``: raw scores.

    A model whose scores are constant for a user (for a neighbourhood model: a
    user it cannot score) contributes 0 for that user, and so does a model that
    was not fitted with the user at all.  Items a model does not know also get 0
    from it.  A neighbourhood or content model scores the items it cannot reach
    (no neighbour, no shared feature) 0 before normalisation.

    The Hybrid's users and items are the union of its models' ids (the first
    model's items first, so ties go to its order).  Users with no training
    history in any model are served by popularity (the number of users who
    rated an item, summed over the models).

    Parameters
    ----------
    models : list of (model, weight)
        Fitted recommenders and their weights.  Call :meth:`fit` to fit them all
        on the same data instead.
    normalization : {"minmax", "zscore", "none"}, default "minmax"
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}
        Backend of the top-n selection.

    Notes
    -----
    Threads: ``recommend`` and ``save`` may run from many threads at once;
    ``fit`` runs alone.  A component model refitted elsewhere is picked up by the
    next call.  The blend pickles with its models.

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_ratings
    >>> R = make_ratings(300, 200, 5_000, seed=0)
    >>> features = make_ratings(200, 40, 1_000, seed=1)       # stand-in item features
    >>> blend = fastrec.Hybrid([(fastrec.ItemKNN(k=20), 0.7),
    ...                         (fastrec.ContentKNN(features), 0.3)]).fit(R)
    >>> items, scores = blend.recommend(0, n=5)
    """

    _FORMAT_NAME = "fastrec.Hybrid"

    def __init__(self, models: Any, *, normalization: str = "minmax", n_threads: int | None = None,
                 backend: str = "auto"):
        self.models = models
        self.normalization = normalization
        self.n_threads = n_threads
        self.backend = backend
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    @writes
    def fit(self, ratings: Any, *, columns: tuple[str, str, str] | None = None) -> Hybrid:
        """Fit every component model on the same ratings (forms as in ``ItemKNN.fit``)."""
        for model, _ in V.check_model_weights(self.models):
            model.fit(ratings, columns=columns)
        self._cache = None
        self._combined()
        return self

    # -- the union of the models' ids, rebuilt whenever a model was refitted ---------------

    def _combined(self) -> dict[str, Any]:
        pairs = V.check_model_weights(self.models)
        for position, (model, _) in enumerate(pairs):
            if getattr(model, "_user_map", None) is None or getattr(model, "_item_map", None) is None:
                raise RuntimeError(
                    f"models[{position}] ({type(model).__name__}) is not fitted yet. Fit it first, "
                    "or call Hybrid.fit(ratings) to fit every model."
                )
        key = tuple(obj for model, _ in pairs
                    for obj in (model._user_map, model._item_map, model._seen_matrix()))
        if self._cache is not None and len(key) == len(self._cache[0]) and all(
                a is b for a, b in zip(key, self._cache[0])):
            return self._cache[1]
        user_map, item_map = pairs[0][0]._user_map, pairs[0][0]._item_map
        for model, _ in pairs[1:]:
            user_map, _ = user_map.extend(model._user_map.ids)
            item_map, _ = item_map.extend(model._item_map.ids)
        parts, user_index, item_index = [], [], []
        for model, _ in pairs:
            users_here = user_map.lookup(model._user_map.ids)  # model inner -> hybrid inner
            items_here = item_map.lookup(model._item_map.ids)
            seen = model._seen_matrix().tocoo()
            parts.append(sp.csr_matrix((np.ones(seen.nnz, dtype=np.float32),
                                        (users_here[seen.row], items_here[seen.col])),
                                       shape=(len(user_map), len(item_map))))
            user_index.append(model._user_map.lookup(user_map.ids))  # hybrid inner -> model inner
            item_index.append(model._item_map.lookup(item_map.ids))
        popularity = np.zeros(len(item_map), dtype=np.int64)
        for part in parts:
            popularity += np.bincount(part.indices, minlength=len(item_map))
        seen = parts[0]
        for part in parts[1:]:
            seen = seen + part
        seen = sp.csr_matrix(seen)
        seen.sum_duplicates()
        state = {"pairs": pairs, "user_map": user_map, "item_map": item_map, "seen": seen,
                 "user_index": user_index, "item_index": item_index, "popularity": popularity}
        self._cache = (key, state)
        return state

    # -- the recommender interface the Hybrid shares with its models ----------------------

    @property
    def _user_map(self) -> IdMap | None:
        return self._combined()["user_map"] if self._fitted() else None

    @property
    def _item_map(self) -> IdMap | None:
        return self._combined()["item_map"] if self._fitted() else None

    def _fitted(self) -> bool:
        try:
            pairs = V.check_model_weights(self.models)
        except (TypeError, ValueError):
            return False
        return all(getattr(m, "_user_map", None) is not None for m, _ in pairs)

    def _seen_matrix(self) -> sp.csr_matrix:
        return self._combined()["seen"]

    @property
    def user_ids_(self) -> np.ndarray:
        return self._combined()["user_map"].ids

    @property
    def item_ids_(self) -> np.ndarray:
        return self._combined()["item_map"].ids

    def _normalise(self, scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.normalization == "minmax":
            return min_max_rows(scores, valid)
        if self.normalization == "zscore":
            return z_score_rows(scores, valid)
        return scores

    def _score_block(self, inner_users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Blended scores (float64) of users x candidates, by hybrid inner index (user -1: zeros)."""
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization={self.normalization!r} is not one of {', '.join(map(repr, NORMALIZATIONS))}."
            )
        state = self._combined()
        known_users = inner_users >= 0
        seen_rows = columns_of(state["seen"][np.maximum(inner_users, 0)], candidates).toarray() > 0
        valid = ~seen_rows & known_users[:, None]
        total = np.zeros((inner_users.size, candidates.size))
        for (model, weight), user_index, item_index in zip(state["pairs"], state["user_index"],
                                                           state["item_index"]):
            model_items = item_index[candidates]
            known = model_items >= 0
            if weight == 0 or not known.any():
                continue
            model_users = np.where(known_users, user_index[np.maximum(inner_users, 0)], -1)
            scores = np.asarray(model._score_block(model_users.astype(np.int32),
                                                   model_items[known].astype(np.int64)), dtype=np.float64)
            scores = self._normalise(scores, valid[:, known])
            scores[model_users < 0] = 0.0  # the model has nothing to say about this user
            total[:, known] += weight * scores
        return total

    @reads
    def recommend(self, users: Any, n: int = 10, *, exclude_seen: bool = True, items: Any = None,
                  unknown: str = "raise") -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best items by blended score, for one user or a batch.

        Parameters, returns and the popularity fallback are those of
        :meth:`ItemKNN.recommend`; ``exclude_seen`` excludes the items the user
        rated in the training data of any model.
        """
        n = V.check_int(n, "n", minimum=1)
        exclude_seen = V.check_bool(exclude_seen, "exclude_seen")
        unknown = V.check_unknown(unknown)
        state = self._combined()
        n = min(n, max(1, len(state["item_map"])))
        backend, n_threads = _runtime.resolve_backend(self.backend), _runtime.resolve_threads(self.n_threads)
        single = np.ndim(users) == 0
        raw = np.asarray([users]) if single else V.id_array(users, "users")
        inner = state["user_map"].lookup(raw)
        if unknown == "raise":
            V.raise_unknown(raw, inner, "user", "users")
        if items is None:
            candidates = np.arange(len(state["item_map"]), dtype=np.int64)
        else:
            raw_items = V.id_array(items, "items")
            found = state["item_map"].lookup(raw_items)
            if unknown == "raise":
                V.raise_unknown(raw_items, found, "item", "items")
            candidates = np.unique(found[found >= 0]).astype(np.int64)
        n = min(n, max(1, candidates.size))  # no more slots than candidates
        seen = state["seen"]
        history = np.diff(seen.indptr)
        cold = (inner < 0) | (history[np.maximum(inner, 0)] == 0)
        out_idx = np.full((raw.size, n), -1, dtype=np.int64)
        out_scores = np.full((raw.size, n), -np.inf)
        warm = np.flatnonzero(~cold)
        block = max(1, _BLOCK_SCORES // max(candidates.size, 1))
        for start in range(0, warm.size if candidates.size else 0, block):
            positions = warm[start:start + block]
            rows = inner[positions]
            scores = self._score_block(rows, candidates)
            if exclude_seen:
                scores[columns_of(seen[rows], candidates).toarray() > 0] = -np.inf
            idx, top = dense_topn(scores, n, backend, n_threads)
            out_idx[positions] = np.where(idx >= 0, candidates[np.maximum(idx, 0)], -1)
            out_scores[positions] = top
        if cold.any() and candidates.size:
            popular = np.full((1, len(state["item_map"])), -np.inf)
            popular[0, candidates] = state["popularity"][candidates]
            idx, top = dense_topn(popular, n, backend, n_threads)
            out_idx[cold], out_scores[cold] = idx, top
        out_ids = raw_item_ids(state["item_map"], out_idx)
        if single:
            return out_ids[0], out_scores[0]
        return out_ids, out_scores

    # -- persistence --------------------------------------------------------------------

    @reads
    def save(self, path: str | os.PathLike | Any) -> None:
        """Write the blend and every component model to one ``.npz`` file (no pickle).

        Each model is stored as its own ``save`` output, embedded as bytes.
        """
        pairs = V.check_model_weights(self.models)
        self._combined()  # raises when a model is not fitted
        fields = {}
        for position, (model, _) in enumerate(pairs):
            buffer = io.BytesIO()
            model.save(buffer)
            fields[f"model_{position}"] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
        np.savez(
            path,
            format_name=np.array(self._FORMAT_NAME),
            format_version=np.array(FORMAT_VERSION),
            weights=np.array([weight for _, weight in pairs], dtype=np.float64),
            normalization=np.array(self.normalization),
            **fields,
        )

    @classmethod
    def load(cls, path: str | os.PathLike | Any, **overrides: Any) -> Hybrid:
        """Read a blend written by :meth:`save` (``overrides`` set Hybrid parameters).

        Raises
        ------
        ValueError
            If the file or one of the models embedded in it cannot be read, is of
            another kind, or is inconsistent (the message says which).
        """
        classes = _model_classes()
        with open_archive(path, cls._FORMAT_NAME, cls.__name__, FORMAT_VERSION) as archive:
            weights = archive.array("weights", 1, "fiu", finite=True)
            stored = sorted(name for name in archive.files if name.startswith("model_"))
            if weights.size == 0 or stored != sorted(f"model_{i}" for i in range(weights.size)):
                raise archive.error(f"it holds {weights.size} weights but the models {stored}")
            normalization = archive.scalar("normalization", "U")
            if normalization not in NORMALIZATIONS:
                raise archive.error(f"unknown normalization {normalization!r}")
            pairs = []
            for position, weight in enumerate(weights):
                blob = io.BytesIO(archive.array(f"model_{position}", 1, "u").tobytes())
                blob.name = f"{archive.label} (model {position})"
                name = format_name_of(blob)
                if name not in classes:
                    raise archive.error(f"model {position} has the unknown format {name!r}")
                blob.seek(0)
                pairs.append((classes[name].load(blob), float(weight)))
        return cls(pairs, **{"normalization": normalization, **overrides})
