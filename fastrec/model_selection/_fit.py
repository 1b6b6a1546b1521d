"""Fitting and scoring clones on folds, in parallel without oversubscribing the host.

``n_jobs`` workers run the (candidate, fold) tasks; every clone whose
``n_threads`` is None gets ``host_threads() // workers`` threads (no more than
:func:`fastrec.get_num_threads`, which a lower ``set_num_threads`` sets), and a clone
with an explicit ``n_threads`` keeps it while the number of workers is lowered
so that workers x threads stays within the host.  Tasks and their results keep
their order whatever the number of workers, so results do not depend on
``n_jobs`` for models whose output does not depend on their thread count (and,
for those that do, such as :class:`fastrec.MatrixFactorization`, when their
``n_threads`` is set explicitly).
"""

from __future__ import annotations

import numbers
import time
from typing import Any

import numpy as np
from sklearn.base import clone

from fastrec import _runtime
from fastrec.model_selection._data import fit_form
from fastrec.model_selection._scoring import Metric, score


def check_n_jobs(n_jobs: Any) -> int:
    """Workers asked for: ``None`` is 1, ``-1`` every host thread, ``-2`` all but one, ..."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r} of type {type(n_jobs).__name__}.")
    if n_jobs == 0:
        raise ValueError("n_jobs=0 runs nothing: use n_jobs=1 (sequential), k > 1 workers, or -1 for all.")
    host = _runtime.host_threads()
    n_jobs = int(n_jobs)
    return n_jobs if n_jobs > 0 else max(1, host + 1 + n_jobs)


def clone_of(estimator: Any, params: dict[str, Any] | None, name: str) -> Any:
    """An unfitted copy of ``estimator`` with ``params`` set (scikit-learn's ``clone``)."""
    try:
        model = clone(estimator)
    except TypeError as exc:
        raise ValueError(
            f"{name} {type(estimator).__name__} cannot be cloned: model selection fits a fresh copy "
            "per fold, which needs scikit-learn's estimator protocol (get_params / set_params, "
            f"parameters stored unchanged in __init__); derive it from fastrec.base.Estimator. ({exc})"
        ) from exc
    if params:
        model.set_params(**params)
    return model


def explicit_threads(model: Any) -> int | None:
    """The model's own ``n_threads`` parameter when it is set, else None."""
    if not hasattr(model, "get_params"):
        return None
    value = model.get_params(deep=False).get("n_threads")
    return None if value is None else _runtime.check_threads(value, f"{type(model).__name__}.n_threads")


def thread_plan(models: list[Any], n_jobs: int, n_tasks: int) -> tuple[int, int]:
    """(workers, threads of each model without explicit n_threads) that fit the host.

    Parameters
    ----------
    models : list of estimators
        The clones that will run, each with its parameters set.
    n_jobs : int
        Workers asked for (already resolved by :func:`check_n_jobs`).
    n_tasks : int
        Number of tasks; more workers than tasks would idle.

    Returns
    -------
    workers : int
        At most ``n_jobs`` and ``n_tasks``, and at most ``host_threads() //
        largest explicit n_threads`` (at least 1).
    threads : int
        ``max(1, host_threads() // workers)``, or :func:`fastrec.get_num_threads`
        when that is lower (a default lowered by ``set_num_threads``).
    """
    host = _runtime.host_threads()
    explicit = [t for t in map(explicit_threads, models) if t is not None]
    room = host // max(explicit) if explicit else host
    workers = max(1, min(n_jobs, n_tasks, room))
    return workers, max(1, min(host // workers, _runtime.get_num_threads()))


def with_threads(model: Any, threads: int) -> Any:
    """Give ``threads`` to a model whose ``n_threads`` parameter is None (in place)."""
    if (
        hasattr(model, "get_params")
        and "n_threads" in model.get_params(deep=False)
        and model.get_params(deep=False)["n_threads"] is None
    ):
        model.set_params(n_threads=threads)
    return model


def fit_and_score(
    model: Any,
    train: Any,
    test: Any,
    metrics: tuple[Metric, ...],
    *,
    threshold: float | None,
    return_train_score: bool,
    columns: Any,
    n_threads: int,
) -> dict[str, Any]:
    """Fit ``model`` on ``train`` and score it on ``test`` (and on ``train``).

    Returns
    -------
    dict
        ``test`` (dict of metric key to float), ``train`` (same, or None),
        ``fit_time`` and ``score_time`` (seconds, float) and ``estimator``
        (the fitted model).
    """
    threads = explicit_threads(model) or n_threads
    start = time.perf_counter()
    if columns is None:
        model.fit(fit_form(train))
    else:
        model.fit(fit_form(train), columns=columns)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    test_scores = score(
        model, _with_columns(test, columns), metrics, threshold=threshold, n_threads=threads, which="test"
    )
    score_time = time.perf_counter() - start
    train_scores = None
    if return_train_score:  # seen items stay in the lists: they are what is scored here
        train_scores = score(
            model,
            _with_columns(train, columns),
            metrics,
            threshold=threshold,
            exclude_seen=False,
            n_threads=threads,
            which="train",
        )
    return {
        "test": test_scores,
        "train": train_scores,
        "fit_time": fit_time,
        "score_time": score_time,
        "estimator": model,
    }


def _with_columns(data: Any, columns: Any) -> Any:
    """A DataFrame reduced to its (user, item, rating) columns in that order, when they are named."""
    if columns is None or not (hasattr(data, "columns") and hasattr(data, "iloc")):
        return data
    return tuple(data[name].to_numpy() for name in columns)


def run(
    tasks: list[tuple[Any, Any, Any]],
    metrics: tuple[Metric, ...],
    *,
    n_jobs: int,
    threshold: float | None,
    return_train_score: bool,
    columns: Any,
) -> list[dict[str, Any]]:
    """Run every (model, train, test) task; results in task order.

    Each model is given its thread count before it runs (see :func:`thread_plan`);
    with more than one worker, joblib's ``inner_max_num_threads`` also caps the
    OpenMP and BLAS pools of process workers at that count.
    """
    models = [task[0] for task in tasks]
    workers, threads = thread_plan(models, n_jobs, len(tasks))
    for model in models:
        with_threads(model, threads)
    options = {
        "threshold": threshold,
        "return_train_score": return_train_score,
        "columns": columns,
        "n_threads": threads,
    }
    if workers == 1:
        return [fit_and_score(model, train, test, metrics, **options) for model, train, test in tasks]
    from joblib import Parallel, delayed, parallel_config
    from joblib.parallel import LokyBackend, get_active_backend

    jobs = (delayed(fit_and_score)(model, train, test, metrics, **options) for model, train, test in tasks)
    if not isinstance(get_active_backend()[0], LokyBackend):  # threads, dask: capped by n_threads alone
        return Parallel(n_jobs=workers)(jobs)
    inner = max([threads] + [t for t in map(explicit_threads, models) if t is not None])
    with parallel_config(backend="loky", inner_max_num_threads=inner):
        return Parallel(n_jobs=workers)(jobs)
