"""Top-N for many users: blocks of users as tasks, each calling the model's own ``recommend``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from fastrec import _validation as V
from fastrec.dask._workers import broadcast, current_client, task_threads


def _with_threads(model: Any, n_threads: int | None) -> Any:
    """A shallow copy of ``model`` (arrays shared) whose n_threads is this task's share."""
    local = copy.copy(model)
    local.n_threads = task_threads(n_threads)
    return local


def _frame(users: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> Any:
    """(user, rank, item, score) rows of a block's top-N, empty slots (score -inf) left out."""
    import pandas as pd

    n = ids.shape[1] if ids.ndim == 2 else 0
    keep = np.isfinite(scores).reshape(-1) if n else np.zeros(0, dtype=bool)
    return pd.DataFrame(
        {
            "user": np.repeat(users, n)[keep],
            "rank": np.tile(np.arange(n, dtype=np.int32), users.size)[keep],
            "item": ids.reshape(-1)[keep],
            "score": scores.reshape(-1)[keep],
        }
    )


def _recommend_block(
    model: Any, users: np.ndarray, n: int, options: dict[str, Any], n_threads: int | None, user_items: Any
) -> Any:
    local = _with_threads(model, n_threads)
    if user_items is not None:
        options = {**options, "user_items": user_items}
    ids, scores = local.recommend(users, n, **options)
    return _frame(users, np.asarray(ids), np.asarray(scores))


def recommend(
    model: Any,
    users: Any = None,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    items: Any = None,
    filter_items: Any = None,
    unknown: str = "raise",
    interactions: Any = None,
    block_size: int = 10_000,
    n_threads: int | None = None,
    client: Any = None,
) -> Any:
    """The top ``n`` items of many users, computed in blocks of users on Dask workers.

    The fitted model goes to every worker once (``client.scatter(...,
    broadcast=True)``; without a distributed client, once into the graph).  Each
    block of ``block_size`` users is one task that calls the model's own
    :meth:`~fastrec.recommenders.Recommender.recommend` (fastrec's compiled
    kernels) on a copy of the model whose ``n_threads`` is the task's share of
    its worker's threads; no process-wide setting changes.

    Parameters
    ----------
    model : fitted fastrec recommender
    users : array-like of raw user ids, optional
        Users to serve; ``None`` serves every user of the model
        (``model.user_ids_``), or of ``interactions`` when it is given.
    n : int, default 10
    exclude_seen, items, filter_items, unknown
        As in ``model.recommend``.
    interactions : DaskInteractions, optional
        The users' interactions now (from :func:`fastrec.dask.interactions`),
        with the model's items: each task reads its block's rows as
        ``user_items``.  ``users`` must then be None (its users are served).
    block_size : int, default 10000
        Users per task.
    n_threads : int, optional
        Threads per task; ``None`` takes the task's share of its worker's threads
        (the worker's ``nthreads`` over the tasks it is running).  The result does
        not depend on it.
    client : distributed.Client, optional
        ``None`` uses the default client if there is one, else Dask's current scheduler.

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``user`` (raw id), ``rank`` (int32, 0 = best), ``item`` (raw id)
        and ``score``, one partition per block, users in the order given.  Row
        for row it is ``model.recommend(users, n, ...)`` on one machine with the
        empty slots (item -1 or None, score ``-inf``) left out; write it with
        ``.to_parquet(path)``.
    """
    import dask
    import dask.dataframe as dd

    if not hasattr(model, "recommend") or not hasattr(type(model), "user_ids_"):
        raise TypeError(f"model must be a fitted fastrec recommender, got {type(model).__name__}.")
    model_users = np.asarray(model.user_ids_)  # raises NotFittedError before fit
    n = V.check_int(n, "n", minimum=1)
    block_size = V.check_int(block_size, "block_size", minimum=1)
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    options = {"exclude_seen": exclude_seen, "items": items, "filter_items": filter_items, "unknown": unknown}
    blocks: list[Any]
    if interactions is not None:
        if users is not None:
            raise ValueError("pass users=None with interactions: the users served are its users.")
        if not np.array_equal(np.asarray(interactions.item_ids), np.asarray(model.item_ids_)):
            raise ValueError(
                "interactions must have the model's items (interactions.item_ids == model.item_ids_): "
                "its columns are read as the model's item columns."
            )
        all_users = np.asarray(interactions.user_ids)
        bounds = interactions.block_bounds(block_size)
        blocks = interactions.blocks(block_size)
    else:
        all_users = model_users if users is None else V.id_array(users, "users")
        bounds = np.unique(np.append(np.arange(0, all_users.size, block_size), all_users.size))
        blocks = [None] * (bounds.size - 1)
    # one user on the client: the options are checked where a mistake is cheapest to
    # report, and the result's dtypes are those of the model's own answer
    probe_users = all_users[:1] if all_users.size else model_users[:1]
    sample = None if interactions is None else _empty_rows(probe_users.size, len(model.item_ids_))
    probe_ids, probe_scores = model.recommend(probe_users, 1, **options, user_items=sample)
    if unknown == "raise" and interactions is None and users is not None:
        missing = ~np.isin(all_users, model_users)
        if missing.any():
            model.recommend(all_users[missing][:1], 1, **options)  # raises UnknownIdError
    shared = broadcast(model, current_client(client))
    parts = [
        dask.delayed(_recommend_block, pure=True)(
            shared, all_users[bounds[b] : bounds[b + 1]], n, options, n_threads, blocks[b]
        )
        for b in range(bounds.size - 1)
    ]
    meta = _frame(all_users[:0], np.asarray(probe_ids)[:0, :0], np.asarray(probe_scores)[:0, :0])
    if not parts:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _empty_rows(n_rows: int, n_items: int) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
