"""Evaluate a recommender on held-out ratings: rating metrics and ranking metrics at k."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.datasets._triples import rating_triples
from fastrec.metrics.ranking import METRIC_NAMES, per_user_metrics
from fastrec.metrics.rating import mae, rmse


def _is_fitted(model: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def evaluate(
    model: Any,
    train: Any,
    test: Any,
    k: int = 10,
    *,
    fit: bool | None = None,
    threshold: float | None = None,
    columns: tuple[str, str, str] | None = None,
    as_frame: bool = False,
    n_threads: int | None = None,
    backend: str = "auto",
) -> Any:
    """Score a recommender on test ratings.

    Ranking metrics (always): every test user gets ``model.recommend(user,
    n=k)`` with its training items excluded; the test items (those rated
    ``>= threshold`` when given) are the relevant ones.  Metrics are means over
    the test users with at least one relevant item (definitions in
    :mod:`fastrec.metrics.ranking`).  Raw ids are matched between the model and
    the test data: test users the model never saw are served as the model serves
    a known user without interactions (``user_items`` with an empty row: the most
    popular items), and test items the model never saw
    count as relevant but can never be hit.  Coverage is the fraction of the
    model's items recommended to at least one test user.

    Rating metrics (RMSE and MAE, for models with ``predict``, such as
    :class:`fastrec.MatrixFactorization`): predictions of every test rating.

    Parameters
    ----------
    model : fastrec recommender
        ItemKNN, UserKNN, ContentKNN, Hybrid, MatrixFactorization, or any object
        with their ``fit`` / ``recommend`` interface.
    train : ratings, optional
        The training ratings, in any ``fit`` form.  The model is fitted on them
        when it is not fitted yet (see ``fit``); may be None for a fitted model.
    test : ratings
        Held-out ratings in any ``fit`` form: a ``(user_ids, item_ids, ratings)``
        tuple, a users x items sparse matrix (row and column numbers are then the
        raw ids, as in ``fit``) or a DataFrame.
    k : int, default 10
    fit : bool, optional
        ``True`` always fits on ``train`` first, ``False`` never does, ``None``
        (default) fits only an unfitted model.
    threshold : float, optional
        Test ratings below it are not relevant for the ranking metrics.
    columns : (str, str, str), optional
        DataFrame column names of user, item and rating.
    as_frame : bool, default False
        Return a one-row pandas DataFrame indexed by the model's class name.
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}
        Backend of the metric kernel (the model keeps its own).

    Returns
    -------
    dict or pandas.DataFrame
        ``rmse`` and ``mae`` (rating models only), ``precision@k``,
        ``recall@k``, ``f1@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``,
        ``coverage@k``, and ``n_users``: the users the ranking means average.
    """
    k = V.check_int(k, "k", minimum=1)
    as_frame = V.check_bool(as_frame, "as_frame")
    for data, name in ((train, "train"), (test, "test")):
        if sp.issparse(data):  # refused under its own name here, before fit reads it as ratings
            V.check_sparse_structure(data, name)
    if fit is None:
        fit = not _is_fitted(model)
    if V.check_bool(fit, "fit"):
        if train is None:
            raise ValueError("The model is not fitted and train is None: pass training ratings.")
        if columns is not None:
            model.fit(train, columns=columns)
        else:
            model.fit(train)
    if not _is_fitted(model):
        raise RuntimeError(f"This {type(model).__name__} is not fitted; pass fit=True with train.")
    try:
        data = rating_triples(test, columns)
    except (TypeError, ValueError) as exc:  # the checks speak of "ratings": say which argument
        raise type(exc)(f"test: {exc}") from exc
    result: dict[str, Any] = {}
    if hasattr(model, "predict"):
        result["rmse"] = rmse(data.ratings, model.predict(data.users, data.items))
        result["mae"] = mae(data.ratings, model.predict(data.users, data.items))

    user_map, user_rows = IdMap.from_values(data.users)
    model_items = IdMap(np.asarray(model.item_ids_))
    item_map, item_cols = model_items.extend(data.items)
    relevant = np.ones(data.ratings.size, dtype=bool)
    if threshold is not None:
        relevant = data.ratings >= V.check_float(threshold, "threshold")
    truth = sp.csr_matrix(
        (np.ones(int(relevant.sum()), dtype=np.float32), (user_rows[relevant], item_cols[relevant])),
        shape=(len(user_map), len(item_map)),
    )
    # the metrics read at most n_items slots: the table is never wider than that
    width = min(k, max(len(item_map), 1))
    recs = _recommended_columns(model, user_map.ids, k, width, len(model_items), item_map)
    per_user, flags = per_user_metrics(recs.astype(np.int64), truth, k, n_threads=n_threads, backend=backend)
    valid = ~np.isnan(per_user[:, 0])
    means = per_user[valid].mean(axis=0) if valid.any() else np.full(per_user.shape[1], np.nan)
    for name, value in zip(METRIC_NAMES, means):
        result[f"{name}@{k}"] = float(value)
    n_model_items = len(model_items)
    result[f"coverage@{k}"] = float(flags[:n_model_items].sum() / max(n_model_items, 1))
    result["n_users"] = int(valid.sum())
    if as_frame:
        import pandas as pd

        return pd.DataFrame([result], index=[type(model).__name__])
    return result


def _recommended_columns(
    model: Any, users: np.ndarray, k: int, width: int, n_model_items: int, item_map: IdMap
) -> np.ndarray:
    """(len(users), width) columns of ``item_map`` recommended to ``users`` (top ``k``), -1 padded.

    Users the model knows get its recommendations; the others are served as a user
    with no interactions (an empty ``user_items`` row) when the model takes
    ``user_items``.
    """
    known = np.ones(users.size, dtype=bool)
    if "user_items" in inspect.signature(model.recommend).parameters:
        known = np.isin(users, np.asarray(model.user_ids_))
    table = np.full((users.size, width), -1, dtype=np.int64)
    for rows in (known, ~known):
        if not rows.any():
            continue
        options: dict[str, Any] = {"n": k, "exclude_seen": True}
        if rows is not known:
            options["user_items"] = sp.csr_matrix((int(rows.sum()), n_model_items), dtype=np.float32)
        raw = np.asarray(model.recommend(users[rows], **options)[0])
        if raw.ndim == 2 and raw.shape[1]:
            used = min(raw.shape[1], width)
            table[rows, :used] = item_map.lookup(raw[:, :used].reshape(-1)).reshape(-1, used)
    return table
