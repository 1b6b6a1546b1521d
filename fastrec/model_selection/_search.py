"""Parameter searches: ``GridSearchCV`` (every combination) and ``RandomizedSearchCV`` (sampled).

Every candidate is cross-validated on the same folds; ``cv_results_`` follows
scikit-learn's layout, and error metrics (rmse, mae) rank lowest first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.model_selection import ParameterGrid, ParameterSampler

from fastrec import _validation as V
from fastrec.base import Estimator, check_fitted
from fastrec.model_selection._cross_validate import folds_of
from fastrec.model_selection._data import fit_form
from fastrec.model_selection._fit import check_n_jobs, clone_of, run
from fastrec.model_selection._scoring import Metric, check_model, check_threshold, parse_metrics


def _check_grid(grid: Any, name: str) -> list[dict[str, Any]]:
    """A grid (a dict of parameter -> values, or a list of such dicts) as a list of dicts."""
    grids = [grid] if isinstance(grid, Mapping) else grid
    if not isinstance(grids, (list, tuple)) or not all(isinstance(g, Mapping) for g in grids):
        raise TypeError(
            f"{name} must be a dict of parameter -> list of values, or a list of such dicts; "
            f"got {type(grid).__name__}."
        )
    if not grids or any(len(g) == 0 for g in grids):
        raise ValueError(
            f"{name} is empty: give at least one parameter with its values, e.g. {name}={{'k': [10, 50]}}."
        )
    for g in grids:
        for key, values in g.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be parameter names (str), got {key!r}.")
            if isinstance(values, str) or not (hasattr(values, "__len__") or hasattr(values, "rvs")):
                raise TypeError(
                    f"{name}[{key!r}] must be a list of values (or, for a randomized "
                    f"search, a distribution with rvs); got {values!r}."
                )
            if not hasattr(values, "rvs") and len(values) == 0:
                raise ValueError(f"{name}[{key!r}] is an empty list: give at least one value.")
    return [dict(g) for g in grids]


def _check_parameters(estimator: Any, candidates: list[dict[str, Any]], name: str) -> None:
    """Refuse parameter names the estimator does not have, before any fit."""
    known = set(estimator.get_params(deep=True))
    for candidate in candidates:
        unknown = sorted(set(candidate) - known)
        if unknown:
            raise ValueError(
                f"{name} names {', '.join(map(repr, unknown))}, not a parameter of "
                f"{type(estimator).__name__}; its parameters are {', '.join(sorted(known))}."
            )


def _ranks(means: np.ndarray, metric: Metric) -> np.ndarray:
    """Rank 1 for the best mean (highest, lowest for error metrics); ties share the lowest rank; NaN last."""
    key = -means if metric.greater_is_better else means.copy()
    key[np.isnan(key)] = np.inf
    return rankdata(key, method="min").astype(np.int32)


_FITTED = (
    "cv_results_",
    "n_splits_",
    "multimetric_",
    "scorer_names_",
    "refit_metric_",
    "best_index_",
    "best_score_",
    "best_params_",
    "refit_time_",
    "best_estimator_",
)


class _Search(Estimator):
    """What the two searches share: validation, the runs, ``cv_results_`` and the refit."""

    def _candidates(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _scoring_and_refit(self) -> tuple[tuple[Metric, ...], Metric | None]:
        """The metrics to compute and the one that picks the best candidate (None: no refit metric)."""
        scoring = self.scoring
        if scoring is None:  # one metric: rmse when the model predicts ratings, else ndcg@k
            scoring = "rmse" if callable(getattr(self.estimator, "predict", None)) else "ndcg"
        metrics = parse_metrics(scoring, self.k, "scoring")
        refit = self.refit
        if isinstance(refit, str):
            chosen = parse_metrics(refit, self.k, "refit")[0]
            if chosen.key not in {m.key for m in metrics}:
                names = ", ".join(m.key for m in metrics)
                raise ValueError(
                    f"refit={refit!r} is not among scoring ({names}): name one of them, or add it to scoring."
                )
            return metrics, chosen
        V.check_bool(refit, "refit")
        if len(metrics) > 1 and refit:
            raise ValueError(
                f"scoring names {len(metrics)} metrics, so refit=True is ambiguous: pass refit='<metric>' "
                f"(one of {', '.join(m.key for m in metrics)}) or refit=False."
            )
        return metrics, metrics[0] if len(metrics) == 1 else None

    def fit(self, data: Any) -> _Search:
        """Cross-validate every candidate on the same folds, then refit the best on all of ``data``.

        Parameters
        ----------
        data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
            All the ratings (see :func:`cross_validate`).

        Returns
        -------
        self
        """
        for name in _FITTED:  # a new fit leaves nothing of the last one behind
            self.__dict__.pop(name, None)
        metrics, chosen = self._scoring_and_refit()
        check_model(self.estimator, metrics, "estimator")
        threshold = check_threshold(self.threshold)
        return_train_score = V.check_bool(self.return_train_score, "return_train_score")
        n_jobs = check_n_jobs(self.n_jobs)
        clone_of(self.estimator, None, "estimator")  # refuse an uncloneable model before anything else
        candidates = self._candidates()
        _check_parameters(self.estimator, candidates, self._grid_name)
        folds = folds_of(self.cv, data, self.random_state)
        tasks = [
            (clone_of(self.estimator, params, "estimator"), train, test)
            for params in candidates
            for train, test in folds
        ]
        results = run(
            tasks,
            metrics,
            n_jobs=n_jobs,
            threshold=threshold,
            return_train_score=return_train_score,
            columns=self.columns,
        )
        self.cv_results_ = self._results(candidates, len(folds), results, metrics, return_train_score)
        self.n_splits_ = len(folds)
        self.multimetric_ = len(metrics) > 1
        self.scorer_names_ = [m.key for m in metrics]
        self.refit_metric_ = None if chosen is None else chosen.key
        if chosen is not None:
            self.best_index_ = int(np.argmin(self.cv_results_[f"rank_test_{chosen.key}"]))
            self.best_score_ = float(self.cv_results_[f"mean_test_{chosen.key}"][self.best_index_])
            self.best_params_ = dict(candidates[self.best_index_])
        if self.refit:
            model = clone_of(self.estimator, self.best_params_, "estimator")
            start = time.perf_counter()
            if self.columns is None:
                model.fit(fit_form(data))
            else:
                model.fit(fit_form(data), columns=self.columns)
            self.refit_time_ = time.perf_counter() - start
            self.best_estimator_ = model
        return self

    @staticmethod
    def _results(
        candidates: list[dict[str, Any]],
        n_splits: int,
        results: list[dict[str, Any]],
        metrics: tuple[Metric, ...],
        return_train_score: bool,
    ) -> dict[str, Any]:
        n = len(candidates)
        out: dict[str, Any] = {}
        for key in ("fit_time", "score_time"):
            times = np.array([r[key] for r in results], dtype=np.float64).reshape(n, n_splits)
            out[f"mean_{key}"], out[f"std_{key}"] = times.mean(axis=1), times.std(axis=1)
        names = sorted({name for params in candidates for name in params})
        for name in names:
            column = np.ma.MaskedArray(np.empty(n, dtype=object), mask=True)
            for i, params in enumerate(candidates):
                if name in params:
                    column[i] = params[name]
            out[f"param_{name}"] = column
        out["params"] = [dict(params) for params in candidates]
        sides = ("test", "train") if return_train_score else ("test",)
        for metric in metrics:
            for side in sides:
                scores = np.array([r[side][metric.key] for r in results], dtype=np.float64).reshape(
                    n, n_splits
                )
                for split in range(n_splits):
                    out[f"split{split}_{side}_{metric.key}"] = scores[:, split]
                out[f"mean_{side}_{metric.key}"] = scores.mean(axis=1)
                out[f"std_{side}_{metric.key}"] = scores.std(axis=1)
            out[f"rank_test_{metric.key}"] = _ranks(out[f"mean_test_{metric.key}"], metric)
        return out

    # -- the refitted best model -----------------------------------------------------------

    def recommend(self, *args: Any, **kwargs: Any) -> Any:
        """``best_estimator_.recommend`` (needs ``refit``)."""
        check_fitted(self, "best_estimator_", "fit(data) with refit")
        return self.best_estimator_.recommend(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """``best_estimator_.predict`` (needs ``refit``)."""
        check_fitted(self, "best_estimator_", "fit(data) with refit")
        return self.best_estimator_.predict(*args, **kwargs)


_SHARED_PARAMETERS = """
    scoring : str or sequence of str, optional
        Metric names as in :func:`cross_validate` (``"rmse"``, ``"mae"``,
        ``"ndcg@10"``, ...).  Default: ``"rmse"`` for an estimator with
        ``predict``, else ``"ndcg@k"``.
    refit : bool or str, default True
        Refit the best candidate on all the data as ``best_estimator_``.  With
        several metrics, name the one that picks the best (``refit="ndcg@10"``).
        Error metrics (rmse, mae) pick the lowest mean, the others the highest.
    cv : int or splitter, default 5
        Folds, drawn once and shared by every candidate (see :func:`cross_validate`).
    n_jobs : int, default 1
        (candidate, fold) fits run at once, without oversubscription (see
        :func:`cross_validate`).
    k : int, default 10
        Cutoff of ranking metrics named without one.
    threshold : float, optional
        Test ratings below it are not relevant for the ranking metrics.
    random_state : int, optional
        Seed of the folds when ``cv`` is an int{sampler}.
    return_train_score : bool, default False
        Also score each fit on its training ratings (``exclude_seen=False``).
    columns : (str, str, str), optional
        DataFrame column names of user, item and rating, passed to ``fit``.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        scikit-learn's layout, one entry per candidate: ``params`` (list of
        dict), ``param_<name>`` (masked object arrays), ``split<i>_test_<metric>``,
        ``mean_test_<metric>``, ``std_test_<metric>`` (float64),
        ``rank_test_<metric>`` (int32, 1 is best, ties share the lowest rank,
        NaN means last), the same for ``train`` with ``return_train_score``, and
        ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time`` (seconds).
    best_index_ : int
        Index of the best candidate by the refit metric (the first of equals).
    best_score_ : float
        Its mean test score, as computed (a positive RMSE for ``"rmse"``).
    best_params_ : dict
        Its parameters.
    best_estimator_ : estimator
        Clone with ``best_params_`` fitted on all the data (with ``refit``).
    refit_time_ : float
        Seconds the refit took.
    n_splits_ : int
    multimetric_ : bool
    scorer_names_ : list of str
        The metric keys used in ``cv_results_``.
    refit_metric_ : str or None
        The metric that picks the best candidate."""


class GridSearchCV(_Search):
    __doc__ = (
        """Cross-validated search over every combination of a grid of recommender parameters.

    Parameters
    ----------
    estimator : recommender
        Follows scikit-learn's estimator protocol (``get_params`` /
        ``set_params``), with ``fit``, and ``recommend`` or ``predict`` as the
        metrics need.  Not modified: each (candidate, fold) fits a clone.
    param_grid : dict or list of dict
        Parameter name -> list of values (``sklearn.model_selection.ParameterGrid``);
        a list of dicts searches each grid.
    """
        + _SHARED_PARAMETERS.format(sampler="")
        + """

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_ratings
    >>> from fastrec.model_selection import GridSearchCV
    >>> R = make_ratings(200, 100, 4000, seed=0)
    >>> search = GridSearchCV(fastrec.ItemKNN(), {"k": [5, 20]}, scoring="ndcg@10", cv=3,
    ...                       random_state=0).fit(R)
    >>> sorted(search.best_params_)
    ['k']
    """
    )

    _grid_name = "param_grid"

    def __init__(
        self,
        estimator: Any,
        param_grid: Any,
        *,
        scoring: Any = None,
        refit: Any = True,
        cv: Any = 5,
        n_jobs: int | None = 1,
        k: int = 10,
        threshold: float | None = None,
        random_state: int | None = None,
        return_train_score: bool = False,
        columns: tuple[str, str, str] | None = None,
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.refit = refit
        self.cv = cv
        self.n_jobs = n_jobs
        self.k = k
        self.threshold = threshold
        self.random_state = random_state
        self.return_train_score = return_train_score
        self.columns = columns

    def _candidates(self) -> list[dict[str, Any]]:
        grids = _check_grid(self.param_grid, "param_grid")
        for g in grids:
            for key, values in g.items():
                if hasattr(values, "rvs"):
                    raise TypeError(
                        f"param_grid[{key!r}] is a distribution: list its values, or use RandomizedSearchCV."
                    )
        return list(ParameterGrid(grids))


class RandomizedSearchCV(_Search):
    __doc__ = (
        """Cross-validated search over ``n_iter`` sampled settings of recommender parameters.

    Parameters
    ----------
    estimator : recommender
        As in :class:`GridSearchCV`.
    param_distributions : dict or list of dict
        Parameter name -> list of values (drawn uniformly) or a scipy.stats
        distribution (drawn with ``rvs``), as ``sklearn.model_selection.ParameterSampler``
        takes them.  When every entry is a list, settings are drawn without
        replacement (at most the size of the grid).
    n_iter : int, default 10
        Settings drawn.
    """
        + _SHARED_PARAMETERS.format(sampler=", and of the sampling of settings")
        + """
    """
    )

    _grid_name = "param_distributions"

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_iter: int = 10,
        scoring: Any = None,
        refit: Any = True,
        cv: Any = 5,
        n_jobs: int | None = 1,
        k: int = 10,
        threshold: float | None = None,
        random_state: int | None = None,
        return_train_score: bool = False,
        columns: tuple[str, str, str] | None = None,
    ):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.scoring = scoring
        self.refit = refit
        self.cv = cv
        self.n_jobs = n_jobs
        self.k = k
        self.threshold = threshold
        self.random_state = random_state
        self.return_train_score = return_train_score
        self.columns = columns

    def _candidates(self) -> list[dict[str, Any]]:
        from fastrec.model_selection._split import check_random_state

        distributions = _check_grid(self.param_distributions, "param_distributions")
        n_iter = V.check_int(self.n_iter, "n_iter", minimum=1)
        seed = check_random_state(self.random_state)
        return list(ParameterSampler(distributions, n_iter, random_state=seed))
