"""Metric names and the scores of a fitted recommender on held-out ratings.

Ranking metrics follow :func:`fastrec.metrics.evaluate`: every test user gets
``model.recommend(users, n=k, exclude_seen=True)`` (``unknown="skip"`` when the
model takes it), its test items (those rated ``>= threshold`` when given) are
the relevant ones, and each metric is the mean over users with at least one
relevant item, computed by :func:`fastrec.metrics.per_user_metrics`.  Only the
public ``recommend`` and ``predict`` of the model are used, so any object with
that interface can be scored.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.datasets._triples import rating_triples
from fastrec.metrics.ranking import METRIC_NAMES, per_user_metrics
from fastrec.metrics.rating import mae, rmse
from fastrec.model_selection._data import fit_form

RATING_METRICS = {"rmse": rmse, "mae": mae}
RANKING_METRICS = METRIC_NAMES  # precision, recall, f1, ndcg, map, hit_rate

_KNOWN = (
    "rmse, mae, or a ranking metric at k: "
    + ", ".join(f"{name}@10" for name in RANKING_METRICS)
    + " (any k >= 1; a bare ranking name such as 'ndcg' uses the k argument)"
)


@dataclass(frozen=True)
class Metric:
    """One metric to compute: its result key, its family name and its cutoff.

    Attributes
    ----------
    key : str
        ``"rmse"``, ``"mae"`` or ``"<name>@<k>"`` (e.g. ``"ndcg@10"``).
    name : str
        ``"rmse"``, ``"mae"`` or one of :data:`fastrec.metrics.ranking.METRIC_NAMES`.
    k : int or None
        Cutoff of a ranking metric; None for rating metrics.
    """

    key: str
    name: str
    k: int | None

    @property
    def greater_is_better(self) -> bool:
        """False for the error metrics (rmse, mae), True for the ranking metrics."""
        return self.name not in RATING_METRICS

    @property
    def needs(self) -> str:
        """The model method this metric calls: ``"predict"`` or ``"recommend"``."""
        return "predict" if self.name in RATING_METRICS else "recommend"


def parse_metrics(metrics: Any, k: Any, name: str = "metrics") -> tuple[Metric, ...]:
    """Metric names (a string or a sequence of strings) as :class:`Metric` objects.

    Parameters
    ----------
    metrics : str or sequence of str
        ``"rmse"``, ``"mae"``, ``"precision@10"``, ``"recall@5"``, ``"f1@k"``,
        ``"ndcg@k"``, ``"map@k"``, ``"hit_rate@k"``; a bare ranking name uses ``k``.
    k : int
        Cutoff of bare ranking names.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    tuple of Metric
        In the given order, duplicates (after naming every ranking metric with
        its k) removed.
    """
    k = V.check_int(k, "k", minimum=1)
    given = [metrics] if isinstance(metrics, str) else metrics
    try:
        given = list(given)
    except TypeError:
        raise TypeError(f"{name} must be a metric name or a sequence of them, got {metrics!r}.") from None
    if not given:
        raise ValueError(f"{name} is empty: name at least one metric, e.g. {name}=('rmse', 'ndcg@10').")
    parsed: dict[str, Metric] = {}
    for entry in given:
        if not isinstance(entry, str):
            raise TypeError(f"{name} entries must be metric names (str), got {entry!r}.")
        metric = _parse_one(entry.strip().lower(), k, name, entry)
        parsed.setdefault(metric.key, metric)
    return tuple(parsed.values())


def _parse_one(text: str, k: int, name: str, given: str) -> Metric:
    base, at, cutoff = text.partition("@")
    if base in RATING_METRICS and not at:
        return Metric(base, base, None)
    if base in RANKING_METRICS:
        if not at:
            return Metric(f"{base}@{k}", base, k)
        if cutoff.isdigit() and int(cutoff) >= 1:
            return Metric(f"{base}@{int(cutoff)}", base, int(cutoff))
        raise ValueError(f"{name}: {given!r} has no valid cutoff; write it as '{base}@10' (k >= 1).")
    raise ValueError(f"{name}: unknown metric {given!r}; use {_KNOWN}.")


def check_model(model: Any, metrics: tuple[Metric, ...], name: str) -> None:
    """Raise a ValueError when ``model`` lacks ``fit`` or a method the metrics call.

    Parameters
    ----------
    model : object
    metrics : tuple of Metric
    name : str
        The argument's name (``"model"``, ``"estimator"``), for the message.
    """
    if not callable(getattr(model, "fit", None)):
        raise ValueError(
            f"{name}={model!r} has no fit method: pass a recommender such as fastrec.ItemKNN() "
            "(fit(ratings), recommend(users, n, exclude_seen=...), optionally predict(users, items))."
        )
    for method in ("predict", "recommend"):
        wanted = [m.key for m in metrics if m.needs == method]
        if wanted and not callable(getattr(model, method, None)):
            fix = (
                "use ranking metrics such as 'ndcg@10' for a model without predict"
                if method == "predict"
                else "pass a recommender with recommend(users, n, exclude_seen=...)"
            )
            raise ValueError(
                f"{name} {type(model).__name__} has no {method} method, which the metrics "
                f"{', '.join(wanted)} need: {fix}."
            )


def check_threshold(threshold: Any) -> float | None:
    """``threshold`` as a float, or None."""
    return None if threshold is None else V.check_float(threshold, "threshold")


def score(
    model: Any,
    data: Any,
    metrics: tuple[Metric, ...],
    *,
    threshold: float | None = None,
    exclude_seen: bool = True,
    n_threads: int | None = None,
    which: str = "test",
) -> dict[str, float]:
    """Every metric of a fitted model on one set of ratings.

    Parameters
    ----------
    model : fitted recommender
        With ``recommend`` (ranking metrics) and ``predict`` (rating metrics).
    data : ratings
        Held-out ratings in any form the splitters yield (a 4-tuple's timestamps
        are ignored).
    metrics : tuple of Metric
    threshold : float, optional
        Ratings below it are not relevant for the ranking metrics.
    exclude_seen : bool, default True
        Passed to ``recommend``; False when scoring the training ratings themselves.
    n_threads : int, optional
        Threads of the metric kernel.
    which : str
        ``"test"`` or ``"train"``, for error messages.

    Returns
    -------
    dict of str to float
        One value per metric key; ``nan`` for a ranking metric when no user has
        a relevant item.
    """
    try:
        triples = rating_triples(fit_form(data))
    except (TypeError, ValueError) as exc:  # the checks speak of "ratings": say which set
        raise type(exc)(f"{which} ratings: {exc}") from exc
    result: dict[str, float] = {}
    ranking = [m for m in metrics if m.needs == "recommend"]
    if ranking:
        result.update(_ranking_scores(model, triples, ranking, threshold, exclude_seen, n_threads))
    rating = [m for m in metrics if m.needs == "predict"]
    if rating:
        predictions = np.asarray(model.predict(triples.users, triples.items))
        for metric in rating:
            result[metric.key] = float(RATING_METRICS[metric.name](triples.ratings, predictions))
    return {m.key: result[m.key] for m in metrics}


def _empty_slots(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Padding of a recommendation table: score -inf, or id None for non-integer ids."""
    empty = np.isneginf(scores)
    if ids.dtype == object:
        empty |= np.frompyfunc(lambda value: value is None, 1, 1)(ids).astype(bool)
    return empty


def _ranking_scores(
    model: Any,
    triples: Any,
    metrics: list[Metric],
    threshold: float | None,
    exclude_seen: bool,
    n_threads: int | None,
) -> dict[str, float]:
    cutoffs = sorted({m.k for m in metrics if m.k is not None})  # every ranking metric has one
    largest = cutoffs[-1]
    user_map, user_rows = IdMap.from_values(triples.users)
    options: dict[str, Any] = {"n": largest, "exclude_seen": exclude_seen}
    if "unknown" in inspect.signature(model.recommend).parameters:
        options["unknown"] = "skip"  # users or items unseen in this training set are normal here
    ids, scores = model.recommend(user_map.ids, **options)
    ids, scores = np.asarray(ids), np.asarray(scores)
    if ids.ndim != 2 or ids.shape[0] != len(user_map) or scores.shape != ids.shape:
        raise ValueError(
            f"{type(model).__name__}.recommend(users, n={largest}) returned ids of shape {ids.shape} "
            f"and scores of shape {scores.shape}; model selection needs two arrays of shape "
            f"({len(user_map)}, <= {largest}), one row per user."
        )
    width = min(ids.shape[1], largest)
    ids, scores = ids[:, :width], scores[:, :width]
    filled = ~_empty_slots(ids, scores)
    item_map, item_cols = IdMap.from_values(triples.items)
    item_map, recommended = item_map.extend(ids[filled])
    table = np.full((len(user_map), width), -1, dtype=np.int64)
    table[filled] = recommended
    relevant = (
        np.ones(triples.ratings.size, dtype=bool) if threshold is None else triples.ratings >= threshold
    )
    truth = sp.csr_matrix(
        (np.ones(int(relevant.sum()), dtype=np.float32), (user_rows[relevant], item_cols[relevant])),
        shape=(len(user_map), len(item_map)),
    )
    result = {}
    for k in cutoffs:
        # the metric kernel reads min(k, n_items) slots: pad a narrower table as empty
        cut = np.full((len(user_map), min(k, max(len(item_map), 1))), -1, dtype=np.int64)
        used = min(width, cut.shape[1])
        cut[:, :used] = table[:, :used]
        per_user, _ = per_user_metrics(cut, truth, k, n_threads=n_threads)
        valid = ~np.isnan(per_user[:, 0])
        means = per_user[valid].mean(axis=0) if valid.any() else np.full(per_user.shape[1], np.nan)
        for metric in metrics:
            if metric.k == k:
                result[metric.key] = float(means[RANKING_METRICS.index(metric.name)])
    return result
