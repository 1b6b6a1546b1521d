"""Weighted blends of fitted recommenders (collaborative + content, or any mix)."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from fastrec import _validation as V
from fastrec._archive import format_name_of, open_archive
from fastrec._concurrency import reads, writes
from fastrec._idmap import IdMap
from fastrec.base import NotFittedError
from fastrec.recommenders._base import (
    FORMAT_VERSION,
    Recommender,
    min_max_rows,
    z_score_rows,
)

NORMALIZATIONS = ("minmax", "zscore", "none")


def _model_classes() -> dict[str, type[Recommender]]:
    from fastrec.mf import MatrixFactorization
    from fastrec.recommenders.content import ContentKNN
    from fastrec.recommenders.knn import ItemKNN, UserKNN

    return {cls._FORMAT_NAME: cls for cls in (MatrixFactorization, ItemKNN, UserKNN, ContentKNN, Hybrid)}


def check_models(models: Any) -> list[tuple[Recommender, float]]:
    """``[(model, weight), ...]`` of a Hybrid: at least one pair of a recommender and a finite weight."""
    if not isinstance(models, (list, tuple)) or len(models) == 0:
        raise TypeError(
            "models must be a non-empty list of (model, weight) pairs, e.g. "
            "[(item_knn, 0.7), (content_knn, 0.3)]."
        )
    pairs = []
    for position, pair in enumerate(models):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"models[{position}] must be a (model, weight) pair, got {type(pair).__name__}.")
        model, weight = pair
        if not isinstance(model, Recommender):
            raise TypeError(
                f"models[{position}] is a {type(model).__name__}, not a fastrec recommender "
                "(ItemKNN, UserKNN, ContentKNN, MatrixFactorization or Hybrid)."
            )
        pairs.append((model, V.check_float(weight, f"weight of models[{position}]")))
    return pairs


class Hybrid(Recommender):
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
    rated an item, summed over the models).  The blend reads its models only
    through their public interface (``user_ids_``, ``item_ids_``,
    ``interactions_``, ``item_popularity_`` and ``score_items``), so any
    :class:`~fastrec.recommenders.Recommender` can take part.

    Parameters
    ----------
    models : list of (model, weight)
        Recommenders and their weights: fitted ones, or call :meth:`fit` to fit
        them all on the same data.  ``sklearn.base.clone`` clones each model.
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
    _cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __init__(
        self,
        models: Any,
        *,
        normalization: str = "minmax",
        n_threads: int | None = None,
        backend: str = "auto",
    ):
        self.models = models
        self.normalization = normalization
        self.n_threads = n_threads
        self.backend = backend

    def _checked_params(self) -> dict[str, Any]:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization={self.normalization!r} is not one of {', '.join(map(repr, NORMALIZATIONS))}."
            )
        return {"pairs": check_models(self.models)}

    @writes
    def fit(self, ratings: Any, *, columns: tuple[str, str, str] | None = None) -> Hybrid:
        """Fit every component model on the same ratings (forms as in ``ItemKNN.fit``)."""
        for model, _ in self._checked_params()["pairs"]:
            model.fit(ratings, columns=columns)
        self._cache = None
        self._combined()
        return self

    # -- the union of the models' ids, rebuilt whenever a model was refitted ---------------

    def _combined(self) -> dict[str, Any]:
        pairs = check_models(self.models)
        for position, (model, _) in enumerate(pairs):
            try:
                check_is_fitted(model)
            except NotFittedError as exc:
                raise NotFittedError(
                    f"This Hybrid is not fitted yet: models[{position}] ({type(model).__name__}) "
                    "is not fitted. Fit it first, or call Hybrid.fit(ratings) to fit every model."
                ) from exc
        key = tuple(
            obj for model, _ in pairs for obj in (model.user_ids_, model.item_ids_, model.interactions_)
        )
        cache = self._cache
        if cache is not None and len(key) == len(cache[0]) and all(a is b for a, b in zip(key, cache[0])):
            return cache[1]
        user_map, item_map = IdMap(pairs[0][0].user_ids_), IdMap(pairs[0][0].item_ids_)
        for model, _ in pairs[1:]:
            user_map, _ = user_map.extend(model.user_ids_)
            item_map, _ = item_map.extend(model.item_ids_)
        seen = sp.csr_matrix((len(user_map), len(item_map)))
        popularity = np.zeros(len(item_map), dtype=np.int64)
        item_columns = []
        for model, _ in pairs:
            users_here = user_map.lookup(model.user_ids_)  # model inner -> hybrid inner
            items_here = item_map.lookup(model.item_ids_)
            interactions = model.interactions_.tocoo()
            seen = seen + sp.csr_matrix(
                (np.ones(interactions.nnz), (users_here[interactions.row], items_here[interactions.col])),
                shape=(len(user_map), len(item_map)),
            )
            np.add.at(popularity, items_here, model.item_popularity_)
            item_columns.append(items_here.astype(np.int64))  # hybrid column of each model item
        seen = sp.csr_matrix(seen)
        seen.sum_duplicates()
        seen.data[:] = 1.0
        item_index = [np.full(len(item_map), -1, dtype=np.int64) for _ in pairs]
        for index, columns in zip(item_index, item_columns):
            index[columns] = np.arange(columns.size)  # hybrid inner -> model inner
        state = {
            "pairs": pairs,
            "user_map": user_map,
            "item_map": item_map,
            "seen": seen,
            "item_index": item_index,
            "item_columns": item_columns,
            "popularity": popularity,
        }
        self._cache = (key, state)
        return state

    def _fitted(self) -> bool:
        try:
            self._combined()
        except (TypeError, ValueError, NotFittedError):
            return False
        return True

    def __sklearn_is_fitted__(self) -> bool:
        return self._fitted()

    # -- the Recommender state, derived from the models ------------------------------------

    @property
    def _R(self) -> sp.csr_matrix | None:  # type: ignore[override]  # derived, None until fitted
        return self._combined()["seen"] if self._fitted() else None

    @property
    def _user_map(self) -> IdMap | None:  # type: ignore[override]  # derived, None until fitted
        return self._combined()["user_map"] if self._fitted() else None

    @property
    def _item_map(self) -> IdMap | None:  # type: ignore[override]  # derived, None until fitted
        return self._combined()["item_map"] if self._fitted() else None

    def _check_fitted(self) -> None:
        self._combined()  # raises NotFittedError naming the unfitted model

    @property
    def item_popularity_(self) -> np.ndarray:
        """Number of users who rated each item, summed over the models (int64, by inner index)."""
        return self._combined()["popularity"]

    def _normalise(self, scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.normalization == "minmax":
            return min_max_rows(scores, valid)
        if self.normalization == "zscore":
            return z_score_rows(scores, valid)
        return scores

    def _score(
        self,
        rows: np.ndarray,
        candidates: np.ndarray,
        given: sp.csr_matrix | None,
        inner: np.ndarray,
        raw: np.ndarray,
    ) -> np.ndarray:
        """Blended scores (float64) of users x candidates through each model's ``score_items``."""
        self._checked_params()
        state = self._combined()
        history = self._history(given)[rows]
        # Normalised over the candidates the user has not interacted with.
        seen_pattern = sp.csr_matrix(
            (np.ones(history.nnz), history.indices, history.indptr), shape=history.shape
        )
        valid = ~(seen_pattern[:, candidates].toarray() > 0)
        total = np.zeros((rows.size, candidates.size))
        for (model, weight), item_index, columns in zip(
            state["pairs"], state["item_index"], state["item_columns"]
        ):
            model_items = item_index[candidates]
            known = model_items >= 0
            if weight == 0 or not known.any():
                continue
            items = model.item_ids_[model_items[known]]
            if given is None:
                scores = model.score_items(raw, items, unknown="skip")
            else:  # the given rows, in the model's item columns
                scores = model.score_items(raw, items, unknown="skip", user_items=history[:, columns])
            scores = np.asarray(scores, dtype=np.float64).reshape(rows.size, -1)
            unknown_user = np.isnan(scores).all(axis=1)
            scores = self._normalise(np.nan_to_num(scores, nan=0.0), valid[:, known])
            scores[unknown_user] = 0.0  # the model has nothing to say about this user
            total[:, known] += weight * scores
        return total

    # -- persistence --------------------------------------------------------------------

    @reads
    def save(self, path: str | os.PathLike | Any) -> None:
        """Write the blend and every component model to one ``.npz`` file (no pickle).

        Each model is stored as its own ``save`` output, embedded as bytes.
        """
        pairs = self._checked_params()["pairs"]
        self._combined()  # raises when a model is not fitted
        fields: dict[str, Any] = {}  # np.savez's keywords: arrays, never its allow_pickle flag
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
