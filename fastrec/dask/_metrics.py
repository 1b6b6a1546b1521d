"""Evaluation on Dask: ranking metrics per block of test users, rating errors per partition, summed."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.dask._interactions import DaskInteractions, interactions
from fastrec.dask._recommend import _with_threads
from fastrec.dask._workers import current_client
from fastrec.metrics.evaluate import _recommended_columns
from fastrec.metrics.ranking import METRIC_NAMES, per_user_metrics


def _ranking_block(
    model: Any,
    users: np.ndarray,
    start: int,
    columns: np.ndarray,
    n_columns: int,
    k: int,
    threshold: float | None,
    n_threads: int | None,
    *pieces: Any,
) -> tuple[np.ndarray, int, np.ndarray]:
    """(sum of each metric over the block's users with test items, their count, items recommended)."""
    import pandas as pd

    local = _with_threads(model, n_threads)
    frame = pd.concat(pieces, ignore_index=True) if pieces else None
    rows = np.zeros(0, dtype=np.int64)
    cols = np.zeros(0, dtype=np.int64)
    if frame is not None and len(frame):
        relevant = np.ones(len(frame), dtype=bool)
        if threshold is not None:
            relevant = frame["value"].to_numpy() >= threshold
        rows = frame["user"].to_numpy()[relevant].astype(np.int64) - start
        cols = columns[frame["item"].to_numpy()[relevant]].astype(np.int64)
    # the relevance pattern of the block's users, columns numbered as fastrec.metrics.evaluate does
    truth = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(users.size, n_columns))
    model_items = IdMap(np.asarray(local.item_ids_))
    width = min(k, max(n_columns, 1))
    recs = _recommended_columns(local, users, k, width, len(model_items), model_items)
    per_user, flags = per_user_metrics(recs, truth, k, n_threads=local.n_threads)
    valid = ~np.isnan(per_user[:, 0])
    return per_user[valid].sum(axis=0), int(valid.sum()), flags[: len(model_items)]


def _add_ranking(*parts: tuple[np.ndarray, int, np.ndarray]) -> tuple[np.ndarray, int, np.ndarray]:
    sums = np.sum([p[0] for p in parts], axis=0)
    count = sum(p[1] for p in parts)
    flags = np.logical_or.reduce([p[2] for p in parts])
    return sums, count, flags


def _rating_partition(
    model: Any, frame: Any, user_ids: np.ndarray, item_ids: np.ndarray, n_threads: int | None
) -> np.ndarray:
    """[sum of squared errors, sum of absolute errors, count] of one partition, in float64."""
    if not len(frame):
        return np.zeros(3)
    model = _with_threads(model, n_threads)
    users = user_ids[frame["user"].to_numpy()]
    items = item_ids[frame["item"].to_numpy()]
    errors = frame["value"].to_numpy().astype(np.float64) - np.asarray(
        model.predict(users, items), dtype=np.float64
    )
    return np.array([np.sum(errors**2), np.sum(np.abs(errors)), errors.size], dtype=np.float64)


def _add(*parts: Any) -> Any:
    return np.sum(parts, axis=0)


def _tree(parts: list[Any], combine: Any, width: int = 8) -> Any:
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(combine)(*parts[i : i + width]) for i in range(0, len(parts), width)]
    return parts[0]


def evaluate(
    model: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    columns: tuple[str, str, str] = ("user", "item", "rating"),
    block_size: int = 10_000,
    n_threads: int | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """:func:`fastrec.metrics.evaluate` of a fitted model on test ratings held by Dask.

    Each block of ``block_size`` test users is one task: the model (sent to
    every worker once) recommends ``k`` items to them, as
    :func:`fastrec.metrics.evaluate` does (training items excluded; users the
    model never saw served as users without interactions), and fastrec's
    ranking-metric kernel scores the block against its test items.  A task
    returns only the sums of its users' metrics, their count and the items
    recommended; these are summed in a tree.  Rating errors (for models with
    ``predict``) are summed per partition the same way.

    Parameters
    ----------
    model : fitted fastrec recommender
    test : DaskInteractions or dask.dataframe.DataFrame
        Held-out ratings (from :func:`fastrec.dask.interactions`, or a frame
        read with ``columns``).
    k : int, default 10
    threshold : float, optional
        Only test ratings >= threshold are relevant.
    columns : (str, str, str), default ("user", "item", "rating")
        User, item and rating columns when ``test`` is a DataFrame.
    block_size : int, default 10000
        Test users per task.
    n_threads : int, optional
        Threads per task; ``None`` takes the task's share of its worker's threads.
    client : distributed.Client, optional

    Returns
    -------
    dict
        The keys of :func:`fastrec.metrics.evaluate`: ``precision@k``,
        ``recall@k``, ``f1@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``,
        ``coverage@k``, ``n_users`` (and ``rmse``, ``mae`` for models with
        ``predict``).  ``n_users`` and coverage are equal to the single-machine
        values; the means equal them up to the order of floating-point
        summation (a relative difference of about 1e-15), as do RMSE and MAE.
        A (user, item) pair given twice is relevant when any of its ratings
        passes ``threshold``, as on one machine.
    """
    import dask

    if not hasattr(model, "recommend") or not hasattr(type(model), "item_ids_"):
        raise TypeError(f"model must be a fitted fastrec recommender, got {type(model).__name__}.")
    model_items = np.asarray(model.item_ids_)  # raises NotFittedError before fit
    k = V.check_int(k, "k", minimum=1)
    block_size = V.check_int(block_size, "block_size", minimum=1)
    if threshold is not None:
        threshold = V.check_float(threshold, "threshold")
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    if not isinstance(test, DaskInteractions):
        if not isinstance(columns, tuple) or len(columns) != 3:
            raise ValueError(f"columns must be (user, item, rating) column names, got {columns!r}.")
        test = interactions(test, *columns)
    if test.shape[0] == 0:
        raise ValueError("test holds no ratings: there is nothing to evaluate.")
    # columns as fastrec.metrics.evaluate numbers them: the model's items, then the new test items
    item_map, columns_of_test = IdMap(model_items).extend(np.asarray(test.item_ids))
    client = current_client(client)
    shared = client.scatter(model, broadcast=True, hash=False) if client else dask.delayed(model, pure=True)
    columns_delayed = dask.delayed(columns_of_test.astype(np.int64), pure=True)
    bounds, pieces = test.block_pieces(block_size)
    parts = [
        dask.delayed(_ranking_block, pure=True)(
            shared,
            np.asarray(test.user_ids)[bounds[b] : bounds[b + 1]],
            int(bounds[b]),
            columns_delayed,
            len(item_map),
            k,
            threshold,
            n_threads,
            *block,
        )
        for b, block in enumerate(pieces)
    ]
    todo = [_tree(parts, _add_ranking)]
    if hasattr(model, "predict"):
        ids = dask.delayed(test.user_ids, pure=True), dask.delayed(test.item_ids, pure=True)
        errors = [
            dask.delayed(_rating_partition)(shared, part, *ids, n_threads) for part in test.frame.to_delayed()
        ]
        todo.append(_tree(errors, _add))
    if client is not None:
        done = client.gather(client.compute(todo))
    else:
        done = dask.compute(*todo)
    (sums, count, flags), *rating = done
    result: dict[str, Any] = {}
    if rating:
        sse, sae, n = rating[0]
        result["rmse"] = float(math.sqrt(sse / n))
        result["mae"] = float(sae / n)
    means = sums / count if count else np.full(len(METRIC_NAMES), np.nan)
    for name, value in zip(METRIC_NAMES, means):
        result[f"{name}@{k}"] = float(value)
    result[f"coverage@{k}"] = float(flags.sum() / max(model_items.size, 1))
    result["n_users"] = int(count)
    return result


def _recommendation_pieces(
    frame: Any, user_ids: np.ndarray, item_ids: np.ndarray, bounds: np.ndarray, k: int
) -> list[Any]:
    """A partition of (user, rank, item) rows as (row, rank, col) by test numbering, split by user block.

    Rows of users without test ratings and ranks past ``k`` are dropped; items
    that are not test items get column -1 (a miss in that slot).
    """
    import pandas as pd

    rows = IdMap(user_ids).lookup(V.id_array(frame["user"].to_numpy(), "recommendations user"))
    ranks = frame["rank"].to_numpy().astype(np.int64)
    keep = (rows >= 0) & (ranks >= 0) & (ranks < k)
    rows, ranks = rows[keep], ranks[keep]
    cols = IdMap(item_ids).lookup(V.id_array(frame["item"].to_numpy()[keep], "recommendations item"))
    block = np.searchsorted(bounds, rows, side="right") - 1
    order = np.argsort(block, kind="stable")
    starts = np.searchsorted(block[order], np.arange(bounds.size))
    table = pd.DataFrame({"row": rows, "rank": ranks, "col": cols})
    return [table.iloc[order[starts[b] : starts[b + 1]]] for b in range(bounds.size - 1)]


def _table_block(
    start: int,
    stop: int,
    n_items: int,
    k: int,
    threshold: float | None,
    n_threads: int | None,
    n_test_pieces: int,
    *pieces: Any,
) -> tuple[np.ndarray, int]:
    """(sum of each metric over the block's users with test items, their count) of given lists."""
    import pandas as pd

    from fastrec.dask._workers import task_threads

    test = pd.concat(pieces[:n_test_pieces], ignore_index=True)
    recs = pd.concat(pieces[n_test_pieces:], ignore_index=True)
    relevant = np.ones(len(test), dtype=bool)
    if threshold is not None:
        relevant = test["value"].to_numpy() >= threshold
    truth = sp.csr_matrix(
        (
            np.ones(int(relevant.sum()), dtype=np.float32),
            (test["user"].to_numpy()[relevant] - start, test["item"].to_numpy()[relevant]),
        ),
        shape=(stop - start, n_items),
    )
    table = np.full((stop - start, k), -1, dtype=np.int64)
    table[recs["row"].to_numpy() - start, recs["rank"].to_numpy()] = recs["col"].to_numpy()
    per_user, _ = per_user_metrics(table, truth, k, n_threads=task_threads(n_threads))
    valid = ~np.isnan(per_user[:, 0])
    return per_user[valid].sum(axis=0), int(valid.sum())


def _add_sums(*parts: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    return np.sum([p[0] for p in parts], axis=0), sum(p[1] for p in parts)


def ranking_metrics(
    recommendations: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    columns: tuple[str, str, str] = ("user", "item", "rating"),
    block_size: int = 10_000,
    n_threads: int | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Ranking metrics at ``k`` of stored recommendation lists against held-out ratings, on Dask.

    The lists and the test ratings are both split by block of test users (each
    partition once); one task per block builds that block's recommendation
    table and relevance matrix and runs fastrec's ranking-metric kernel on
    them, returning only sums and a count.

    Parameters
    ----------
    recommendations : dask.dataframe.DataFrame
        Columns ``user``, ``rank`` (0 = first slot) and ``item`` in raw ids, one
        list per user (what :func:`fastrec.dask.recommend` returns, or its
        Parquet files read back).  Rows of users without test ratings are
        ignored, items that are not test items are misses.
    test : DaskInteractions or dask.dataframe.DataFrame
        Held-out ratings (from :func:`fastrec.dask.interactions`, or a frame read
        with ``columns``).
    k : int, default 10
    threshold : float, optional
        Only test ratings >= threshold are relevant.
    columns : (str, str, str), default ("user", "item", "rating")
        User, item and rating columns when ``test`` is a DataFrame.
    block_size : int, default 10000
        Test users per task.
    n_threads : int, optional
        Threads per task; ``None`` takes the task's share of its worker's threads.
    client : distributed.Client, optional

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``ndcg``, ``map``, ``hit_rate`` and
        ``n_users``, as :func:`fastrec.metrics.ranking_metrics` gives them for
        the same lists and test items (one row per test user, raw ids mapped to
        columns): ``n_users`` exactly, the means up to the order of
        floating-point summation.
    """
    import dask
    import dask.dataframe as dd

    if not isinstance(recommendations, dd.DataFrame):
        raise TypeError(
            f"recommendations must be a dask.dataframe.DataFrame, got {type(recommendations).__name__}."
        )
    missing = [c for c in ("user", "rank", "item") if c not in recommendations.columns]
    if missing:
        raise ValueError(
            f"recommendations lacks the columns {missing}; it needs user, rank and item "
            "(as fastrec.dask.recommend gives)."
        )
    k = V.check_int(k, "k", minimum=1)
    block_size = V.check_int(block_size, "block_size", minimum=1)
    if threshold is not None:
        threshold = V.check_float(threshold, "threshold")
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    if not isinstance(test, DaskInteractions):
        if not isinstance(columns, tuple) or len(columns) != 3:
            raise ValueError(f"columns must be (user, item, rating) column names, got {columns!r}.")
        test = interactions(test, *columns)
    bounds, test_pieces = test.block_pieces(block_size)
    user_ids = dask.delayed(test.user_ids, pure=True)
    item_ids = dask.delayed(test.item_ids, pure=True)
    split = [
        dask.delayed(_recommendation_pieces)(part, user_ids, item_ids, bounds, k)
        for part in recommendations.to_delayed()
    ]
    parts = []
    for b, block in enumerate(test_pieces):
        rec_block = [dask.delayed(operator.getitem)(s, b) for s in split]
        parts.append(
            dask.delayed(_table_block)(
                int(bounds[b]),
                int(bounds[b + 1]),
                test.item_ids.size,
                k,
                threshold,
                n_threads,
                len(block),
                *block,
                *rec_block,
            )
        )
    if not parts:
        raise ValueError("test holds no ratings: there is nothing to evaluate.")
    total = _tree(parts, _add_sums)
    client = current_client(client)
    sums, count = client.compute(total).result() if client is not None else total.compute()
    means = sums / count if count else np.full(len(METRIC_NAMES), np.nan)
    result: dict[str, Any] = {name: float(value) for name, value in zip(METRIC_NAMES, means)}
    result["n_users"] = int(count)
    return result
