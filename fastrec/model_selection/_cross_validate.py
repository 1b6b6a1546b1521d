"""``cross_validate``: fit a clone of a recommender per fold and score it on the fold's test ratings."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastrec import _validation as V
from fastrec.model_selection._fit import check_n_jobs, clone_of, run
from fastrec.model_selection._scoring import check_model, check_threshold, parse_metrics
from fastrec.model_selection._split import check_cv, check_random_state

_RATING_DEFAULT = ("rmse", "mae")
_RANKING_DEFAULT = ("precision", "recall", "ndcg", "map")


def default_metrics(model: Any) -> tuple[str, ...]:
    """rmse and mae for a model with ``predict``; precision, recall, ndcg and map at k with ``recommend``."""
    names: tuple[str, ...] = ()
    if callable(getattr(model, "predict", None)):
        names += _RATING_DEFAULT
    if callable(getattr(model, "recommend", None)) or not names:
        names += _RANKING_DEFAULT
    return names


def folds_of(cv: Any, data: Any, random_state: Any) -> list[tuple[Any, Any]]:
    """Every (train, test) pair of ``cv`` on ``data``, drawn once so all candidates share them."""
    splitter = check_cv(cv, check_random_state(random_state))
    folds = list(splitter.split(data))
    if not folds:
        raise ValueError(f"cv={cv!r} yielded no (train, test) split for this data.")
    return folds


def cross_validate(
    model: Any,
    data: Any,
    *,
    cv: Any = 5,
    metrics: Any = None,
    k: int = 10,
    threshold: float | None = None,
    n_jobs: int | None = 1,
    return_train_score: bool = False,
    return_estimator: bool = False,
    random_state: int | None = None,
    columns: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """Cross-validate a recommender: per fold, fit a clone on train and score it on test.

    Parameters
    ----------
    model : recommender
        An unfitted or fitted estimator with ``fit(ratings)``, following
        scikit-learn's estimator protocol (``get_params`` / ``set_params``) so
        that ``sklearn.base.clone`` can copy it; ``recommend(users, n,
        exclude_seen=...)`` for ranking metrics and ``predict(users, items)``
        for rating metrics.  It is not modified.
    data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
        All the ratings, in any form the splitters take (see
        :func:`fastrec.datasets.train_test_split`).
    cv : int or splitter, default 5
        A number of folds (a shuffled :class:`KFold` seeded by
        ``random_state``) or a splitter such as :class:`KFold`,
        :class:`LeaveKOut` or :class:`TemporalSplit`.  Its splits are drawn once.
    metrics : str or sequence of str, optional
        ``"rmse"``, ``"mae"`` (through ``predict``) and ranking metrics
        ``"precision@10"``, ``"recall@k"``, ``"f1@k"``, ``"ndcg@k"``, ``"map@k"``,
        ``"hit_rate@k"`` (through ``recommend``; a bare name uses ``k``).
        Default: rmse and mae when the model has ``predict``, and precision,
        recall, ndcg and map at ``k`` when it has ``recommend``.  Ranking metrics
        are computed as :func:`fastrec.metrics.evaluate` computes them.
    k : int, default 10
        Cutoff of ranking metrics named without one.
    threshold : float, optional
        Test ratings below it are not relevant for the ranking metrics.
    n_jobs : int, default 1
        Folds fitted at once (joblib workers; ``-1`` for one per host thread).
        Each clone whose ``n_threads`` is None runs with ``max(1,
        host_threads() // workers)`` threads; an explicit ``n_threads`` is kept
        and fewer workers run so that the total stays within the host.
    return_train_score : bool, default False
        Also score each fold's model on its training ratings (ranking metrics
        then keep the training items in the lists: ``exclude_seen=False``).
    return_estimator : bool, default False
        Also return the fitted clone of every fold.
    random_state : int, optional
        Seed of the folds when ``cv`` is an int.  A model with randomness of its
        own needs its own seed (``MatrixFactorization(random_state=0)``) for repeatable scores.
    columns : (str, str, str), optional
        DataFrame column names of user, item and rating, passed to ``fit``.

    Returns
    -------
    dict
        ``test_<metric>``: ndarray of float64, shape (n_splits,), one score per
        fold (e.g. ``test_rmse``, ``test_ndcg@10``); ``train_<metric>`` likewise
        with ``return_train_score``; ``fit_time`` and ``score_time``: ndarray of
        float64, shape (n_splits,), seconds; ``estimator``: list of the fitted
        clones with ``return_estimator``.

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_ratings
    >>> from fastrec.model_selection import cross_validate
    >>> R = make_ratings(200, 100, 4000, seed=0)
    >>> scores = cross_validate(fastrec.ItemKNN(k=20), R, cv=3, metrics=["ndcg@10"], random_state=0)
    >>> scores["test_ndcg@10"].shape
    (3,)
    """
    parsed = parse_metrics(default_metrics(model) if metrics is None else metrics, k)
    check_model(model, parsed, "model")
    threshold = check_threshold(threshold)
    return_train_score = V.check_bool(return_train_score, "return_train_score")
    return_estimator = V.check_bool(return_estimator, "return_estimator")
    n_jobs = check_n_jobs(n_jobs)
    clone_of(model, None, "model")  # refuse an uncloneable model before splitting
    folds = folds_of(cv, data, random_state)
    tasks = [(clone_of(model, None, "model"), train, test) for train, test in folds]
    results = run(
        tasks,
        parsed,
        n_jobs=n_jobs,
        threshold=threshold,
        return_train_score=return_train_score,
        columns=columns,
    )
    out: dict[str, Any] = {}
    for metric in parsed:
        out[f"test_{metric.key}"] = np.array([r["test"][metric.key] for r in results], dtype=np.float64)
    if return_train_score:
        for metric in parsed:
            out[f"train_{metric.key}"] = np.array([r["train"][metric.key] for r in results], dtype=np.float64)
    out["fit_time"] = np.array([r["fit_time"] for r in results], dtype=np.float64)
    out["score_time"] = np.array([r["score_time"] for r in results], dtype=np.float64)
    if return_estimator:
        out["estimator"] = [r["estimator"] for r in results]
    return out
