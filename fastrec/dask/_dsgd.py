"""MatrixFactorization on Dask by DSGD (Gemulla et al. 2011): strata of a d x d grid of blocks.

Users are cut into d groups and items into d groups, each a contiguous range of
inner indices holding about nnz / d ratings; the ratings fall into the d x d
blocks (user group, item group).  A stratum is d blocks sharing no user group
and no item group, so its blocks run at once, each on its own worker, without
conflicts.  Sub-epoch s of an epoch runs the stratum of blocks
(i, (i + shift_s) mod d), the shifts a fresh permutation every epoch (drawn as
the single-machine fit draws its strata), so that every block runs once per
epoch.

Placement: the ratings of user group i and its user factors and biases live on
worker i (a hint: ``allow_other_workers`` lets Dask move them when a worker
dies); item factor blocks move to the worker of the block that needs them
next.  Every block, every factor block and every update is a task result
(a future), never state kept on a worker, so Dask recomputes what a dead
worker held from its lineage and the fit ends as it would have.
"""

from __future__ import annotations

import math
import operator
import time
import uuid
from typing import Any

import numpy as np

from fastrec import _validation as V
from fastrec._concurrency import model_lock
from fastrec._idmap import IdMap
from fastrec.base import seed_from
from fastrec.dask._workers import current_client, task_threads
from fastrec.mf._blocks import init_rows, init_seeds, sgd_block_epoch
from fastrec.mf.grid import aligned_zeros, make_schedules
from fastrec.mf.model import DivergenceError, MatrixFactorization, _check_factor_memory, _scale_hint
from fastrec.recommenders._factors import interactions as interactions_matrix

# -- tasks --------------------------------------------------------------------------------


def _partition_stats(frame: Any, n_users: int, n_items: int) -> tuple[Any, ...]:
    """(user counts, item counts, sum, count, min, max) of one mapped partition's ratings."""
    values = frame["value"].to_numpy()
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    if values.size == 0:
        return np.zeros(n_users, np.int64), np.zeros(n_items, np.int64), 0.0, 0, math.inf, -math.inf
    return (
        np.bincount(users, minlength=n_users).astype(np.int64),
        np.bincount(items, minlength=n_items).astype(np.int64),
        float(np.sum(values, dtype=np.float64)),
        int(values.size),
        float(values.min()),
        float(values.max()),
    )


def _add_stats(*parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """The statistics of several partitions together."""
    return (
        np.sum([p[0] for p in parts], axis=0),
        np.sum([p[1] for p in parts], axis=0),
        math.fsum(p[2] for p in parts),
        sum(p[3] for p in parts),
        min(p[4] for p in parts),
        max(p[5] for p in parts),
    )


def _split_partition(frame: Any, user_bounds: np.ndarray, item_bounds: np.ndarray) -> list[tuple]:
    """A mapped partition's (users, items, values) cut into the d x d blocks, input order kept."""
    d = user_bounds.size - 1
    users = frame["user"].to_numpy().astype(np.int32, copy=False)
    items = frame["item"].to_numpy().astype(np.int32, copy=False)
    values = frame["value"].to_numpy()
    key = (np.searchsorted(user_bounds, users, side="right") - 1) * d
    key += np.searchsorted(item_bounds, items, side="right") - 1
    order = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[order], np.arange(d * d + 1))
    return [
        (users[take], items[take], values[take])
        for take in (order[starts[b] : starts[b + 1]] for b in range(d * d))
    ]


def _build_block(first_user: int, first_item: int, dtype: Any, *pieces: tuple) -> tuple:
    """One block's ratings from its pieces (partitions in order): rows local to the block's
    groups, sorted by user, each user's ratings in input order (as the single-machine fit sorts)."""
    users = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0, np.int32)
    items = np.concatenate([p[1] for p in pieces]) if pieces else np.empty(0, np.int32)
    values = np.concatenate([p[2] for p in pieces]) if pieces else np.empty(0, np.float32)
    order = np.argsort(users, kind="stable")
    return (
        np.ascontiguousarray(users[order] - first_user, dtype=np.int32),
        np.ascontiguousarray(items[order] - first_item, dtype=np.int32),
        np.ascontiguousarray(values[order], dtype=dtype),
    )


def _init_group(
    seeds: np.ndarray,
    n: int,
    start: int,
    stop: int,
    n_factors: int,
    dtype: Any,
    init_std: float,
    nonneg: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(factors, zero biases) of rows ``start:stop``: the single-machine initial values."""
    factors = init_rows(seeds, n, start, stop, n_factors, dtype, init_std, nonneg)
    return factors, np.zeros(stop - start, dtype=dtype)


def _writable_aligned(factors: np.ndarray) -> np.ndarray:
    """A fresh 64-byte aligned copy: the kernel updates in place, and a task's inputs stay as they were."""
    out = aligned_zeros(factors.shape[0], factors.shape[1], factors.dtype)
    out[...] = factors
    return out


def _train_block(
    block: tuple,
    user_state: tuple,
    item_state: tuple,
    block_id: int,
    side: int,
    params: dict[str, Any],
    mu: float,
    shuffle_seed: int,
    first: bool,
    n_threads: int | None,
) -> tuple:
    """One block's SGD epoch: (user state, item state, squared errors, block ratings).

    The inputs are never modified (they may be another task's results, needed again
    if Dask recomputes): the factors are copied, and the first epoch, which shuffles
    every user's ratings in place, works on a copy of the ratings and returns it for
    the later epochs.
    """
    users, items, ratings = block
    if first or not (items.flags.writeable and ratings.flags.writeable):
        items, ratings = items.copy(), ratings.copy()
    P, bu = _writable_aligned(user_state[0]), user_state[1].copy()
    Q, bi = _writable_aligned(item_state[0]), item_state[1].copy()
    if users.size == 0:  # an empty block (a group may hold no ratings of another): nothing to train
        return (P, bu), (Q, bi), 0.0, ((users, items, ratings) if first else None)
    if not users.flags.writeable:  # the kernel takes it as a writable buffer (never writes it)
        users = users.copy()
    sse = sgd_block_epoch(
        users,
        items,
        ratings,
        P,
        Q,
        bu,
        bi,
        block=block_id,
        side=side,
        params=params,
        mu=mu,
        shuffle_seed=shuffle_seed,
        shuffle_within_runs=first,
        n_threads=task_threads(n_threads),
    )
    return (P, bu), (Q, bi), sse, ((users, items, ratings) if first else None)


def _stack_states(*states: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Factor and bias blocks of consecutive groups as one (aligned) matrix and vector."""
    rows = sum(s[0].shape[0] for s in states)
    factors = aligned_zeros(rows, states[0][0].shape[1], states[0][0].dtype)
    at = 0
    for s in states:
        factors[at : at + s[0].shape[0]] = s[0]
        at += s[0].shape[0]
    return factors, np.concatenate([s[1] for s in states])


# -- where tasks run ----------------------------------------------------------------------


class _Runner:
    """Submits tasks to a distributed client (with worker hints) or to Dask's local scheduler."""

    def __init__(self, client: Any):
        self.client = client
        self.token = uuid.uuid4().hex[:12]
        self.workers: list[str] = sorted(client.scheduler_info()["workers"]) if client is not None else []

    def submit(self, name: str, fn: Any, *args: Any, group: int | None = None) -> Any:
        key = f"fastrec-dsgd-{name}-{self.token}"
        if self.client is None:
            import dask

            return dask.delayed(fn, pure=False)(*args, dask_key_name=key)
        workers = None if group is None or not self.workers else [self.workers[group % len(self.workers)]]
        placement = {} if workers is None else {"workers": workers, "allow_other_workers": True}
        return self.client.submit(fn, *args, key=key, pure=False, **placement)

    def partitions(self, frame: Any) -> list[Any]:
        parts = frame.to_delayed()
        return self.client.compute(parts) if self.client is not None else parts

    def value(self, delayed: Any) -> Any:
        """The value of one Delayed, computed where the tasks run."""
        if self.client is not None:
            return self.client.compute(delayed).result()
        return delayed.compute()

    def compute(self, *objects: Any) -> list[Any]:
        """The values of tasks (waited for)."""
        if self.client is not None:
            return self.client.gather(list(objects))
        import dask

        return list(dask.compute(*objects))

    def settle_all(self, *lists: list[Any]) -> list[Any]:
        """Lists (of lists) of Delayed with their values, computed at once (local scheduler only):
        the next tasks then take values, and nothing is computed twice."""
        import dask

        return list(dask.compute(*lists))


# -- the fit ------------------------------------------------------------------------------


def _group_bounds(counts: np.ndarray, d: int) -> np.ndarray:
    """int64 bounds of d contiguous index ranges of about equal rating counts (as grid_groups cuts)."""
    nnz = int(counts.sum())
    start = np.cumsum(counts) - counts
    group = np.minimum(start * d // max(nnz, 1), d - 1)
    return np.searchsorted(group, np.arange(d + 1), side="left").astype(np.int64)


def _check_options(model: Any, data: Any, options: dict[str, Any]) -> tuple[int | None, bool]:
    from fastrec.dask._interactions import DaskInteractions

    n_blocks = options.pop("n_blocks", None)
    keep = options.pop("keep_interactions", True)
    if options:
        raise TypeError(
            f"fastrec.dask.fit(MatrixFactorization) got unknown options {sorted(options)}; "
            "it takes n_blocks and keep_interactions."
        )
    if not isinstance(data, DaskInteractions):
        raise TypeError(
            f"data must be a fastrec.dask.DaskInteractions, got {type(data).__name__}; number the ids of "
            "a Dask DataFrame first with fastrec.dask.interactions(frame, user, item, value)."
        )
    if n_blocks is not None:
        n_blocks = V.check_int(n_blocks, "n_blocks", minimum=1)
    return n_blocks, V.check_bool(keep, "keep_interactions")


def fit_mf(
    model: MatrixFactorization, data: Any, *, client: Any = None, n_threads: int | None = None, **options: Any
) -> MatrixFactorization:
    """Fit ``model`` on ``data`` by DSGD and return it, an ordinary fitted MatrixFactorization.

    Parameters
    ----------
    model : fastrec.MatrixFactorization
        Its parameters are the training parameters (``n_factors``, ``n_epochs``,
        learning rates, penalties, ``init_std``, ``biased``, ``non_negative``,
        ``dtype``, ``random_state``, ``clip``, ``verbose``, ``backend``).
        ``early_stopping`` and ``hogwild`` are not supported; the model's
        ``n_threads`` serves it after the fit, the tasks use this call's.
    data : fastrec.dask.DaskInteractions
        From :func:`fastrec.dask.interactions`.  Every row is one training rating,
        as in ``MatrixFactorization.fit`` on the same rows (the ``duplicates``
        policy applies to ``data.blocks`` only); the values are its float32 values.
    client : distributed.Client, optional
        As in :func:`fastrec.dask.fit`; without one, Dask's local scheduler runs the
        same tasks (and gives the same model).
    n_threads : int, optional
        Threads per task; each task trains one block, on one thread.
    **options
        ``n_blocks`` (int, default the number of workers, 1 without a client, at
        most the number of users and of items): the grid side d; d = 1 is the
        single-machine fit on one worker.  ``n_blocks`` blocks run at once: with
        workers of several threads, set it to the total thread count.
        ``keep_interactions`` (bool, default True): gather the training ratings to
        the client as ``interactions_`` (what ``recommend``'s ``exclude_seen``
        excludes and its popularity fallback counts, about 12 bytes per rating);
        ``False`` leaves ``interactions_`` empty (nothing excluded).

    Returns
    -------
    model
        ``model``, fitted: factors, biases, ``global_mean_``, ``rating_range_``,
        ``user_ids_`` / ``item_ids_`` (those of ``data``), ``seed_``,
        ``epochs_trained_`` and ``history_`` (``train_rmse`` and ``seconds`` per epoch).

    Notes
    -----
    The model depends on ``random_state`` and d only: the same seed and d give the
    same model, whatever the scheduling, the workers and their threads.  The
    initial factors are those of the single-machine fit with the same seed, and with
    d = 1 the whole fit is, where that fit trains one block (``n_threads=1``, and
    fewer than 20 ratings per user on average or item factors within 512 KiB: see
    :func:`fastrec.mf.grid.grid_side`).
    """
    n_blocks, keep_interactions = _check_options(model, data, dict(options))
    params = model._checked_params()
    if params["early_stopping"] is not None:
        raise ValueError(
            "early_stopping is not supported by fastrec.dask.fit (DSGD has no validation data); "
            "set early_stopping=None and choose n_epochs, e.g. by a single-machine fit on a sample."
        )
    if params["hogwild"]:
        raise ValueError(
            "hogwild is not supported by fastrec.dask.fit: DSGD runs conflict-free blocks; set hogwild=False."
        )
    if n_threads is not None:
        n_threads = V.check_int(n_threads, "n_threads", minimum=1)
    n_users, n_items = data.shape
    if n_users == 0 or n_items == 0:
        raise ValueError("data holds no ratings; MatrixFactorization needs at least one.")
    _check_factor_memory(n_users, n_items, params)
    client = current_client(client)
    runner = _Runner(client)
    # the default never exceeds the ids: small data on many workers gets fewer blocks
    d = n_blocks if n_blocks is not None else max(1, min(len(runner.workers), n_users, n_items))
    if d > min(n_users, n_items):
        raise ValueError(
            f"n_blocks={d} exceeds the {n_users} users or {n_items} items of data: every group of the "
            f"d x d grid needs an id; pass n_blocks <= {min(n_users, n_items)}."
        )
    dtype, k = params["dtype"], params["n_factors"]
    seed = seed_from(model.random_state)
    # what a block task needs: the checked parameters, less the random state (the seed is drawn)
    kernel_params = {name: value for name, value in params.items() if name != "random_state"}

    # Pass 1: rating counts per user and item, and the values' sum, count and range.
    import dask

    parts = data.frame.to_delayed()
    stats = [dask.delayed(_partition_stats)(p, n_users, n_items) for p in parts]
    while len(stats) > 1:
        stats = [dask.delayed(_add_stats)(*stats[i : i + 8]) for i in range(0, len(stats), 8)]
    (user_counts, item_counts, total, count, low, high) = runner.value(stats[0])
    if count == 0:
        raise ValueError("data holds no ratings; MatrixFactorization needs at least one.")
    mean = total / count
    mu = mean if params["biased"] else 0.0
    user_bounds, item_bounds = _group_bounds(user_counts, d), _group_bounds(item_counts, d)
    del user_counts, item_counts

    # The d x d blocks of ratings, block (i, j) on the worker of user group i.
    parts = runner.partitions(data.frame)
    splits = [
        runner.submit(f"split-{p}", _split_partition, part, user_bounds, item_bounds)
        for p, part in enumerate(parts)
    ]
    blocks: list[list[Any]] = []
    for i in range(d):
        row = []
        for j in range(d):
            pieces = [
                runner.submit(f"piece-{p}-{i}-{j}", operator.getitem, s, i * d + j, group=i)
                for p, s in enumerate(splits)
            ]
            row.append(
                runner.submit(
                    f"block-{i}-{j}",
                    _build_block,
                    int(user_bounds[i]),
                    int(item_bounds[j]),
                    dtype,
                    *pieces,
                    group=i,
                )
            )
        blocks.append(row)
    del splits, parts
    # Initial factors, each group's rows drawn where they will be trained.
    rng = np.random.default_rng([seed, 0])
    user_seeds, item_seeds = init_seeds(rng, n_users), init_seeds(rng, n_items)
    init = (k, dtype, params["init_std"], params["non_negative"])
    user_states = [
        runner.submit(
            f"init-user-{i}",
            _init_group,
            user_seeds,
            n_users,
            int(user_bounds[i]),
            int(user_bounds[i + 1]),
            *init,
            group=i,
        )
        for i in range(d)
    ]
    item_states = [
        runner.submit(
            f"init-item-{j}",
            _init_group,
            item_seeds,
            n_items,
            int(item_bounds[j]),
            int(item_bounds[j + 1]),
            *init,
            group=j,
        )
        for j in range(d)
    ]
    if client is None:
        user_states, item_states, blocks = runner.settle_all(user_states, item_states, blocks)

    # Every epoch's strata and shuffle seed, drawn as the single-machine fit draws them.
    plan_rng = np.random.default_rng([seed, 2, 0])
    schedules = make_schedules(d, params["n_epochs"], plan_rng)
    shuffle_seeds = plan_rng.integers(0, np.iinfo(np.int64).max, size=params["n_epochs"]).tolist()
    history: dict[str, list[float]] = {"train_rmse": [], "seconds": []}
    progress = None
    if params["verbose"] is not False:
        from tqdm.auto import tqdm

        progress = tqdm(
            total=params["n_epochs"],
            desc="MatrixFactorization (DSGD)",
            unit="epoch",
            disable=None if params["verbose"] is None else False,
        )
    rating_range = (low, high)
    try:
        for epoch, (schedule, shuffle_seed) in enumerate(zip(schedules, shuffle_seeds)):
            start = time.perf_counter()
            first = epoch == 0
            errors = []
            for s, stratum in enumerate(schedule):
                for block_id in stratum.tolist():
                    i, j = divmod(block_id, d)
                    name = f"{epoch}-{s}-{i}-{j}"
                    result = runner.submit(
                        f"train-{name}",
                        _train_block,
                        blocks[i][j],
                        user_states[i],
                        item_states[j],
                        block_id,
                        d,
                        kernel_params,
                        mu,
                        shuffle_seed,
                        first,
                        n_threads,
                        group=i,
                    )
                    user_states[i] = runner.submit(f"user-{name}", operator.getitem, result, 0, group=i)
                    item_states[j] = runner.submit(f"item-{name}", operator.getitem, result, 1, group=i)
                    errors.append(runner.submit(f"sse-{name}", operator.getitem, result, 2, group=i))
                    if first:
                        blocks[i][j] = runner.submit(f"shuffled-{name}", operator.getitem, result, 3, group=i)
                if client is None:  # the local scheduler runs each stratum now and hands the values on
                    user_states, item_states, blocks, errors = runner.settle_all(
                        user_states, item_states, blocks, errors
                    )
            sse = math.fsum(runner.compute(*errors))
            train_rmse = math.sqrt(sse / count)
            if not np.isfinite(train_rmse):
                raise DivergenceError(
                    f"SGD diverged at epoch {epoch + 1}: the parameters became NaN or infinite "
                    f"(lr={params['lr']}, reg={params['reg']}). Lower lr (and lr_bias), or raise reg."
                    + _scale_hint(rating_range)
                )
            history["train_rmse"].append(train_rmse)
            history["seconds"].append(time.perf_counter() - start)
            if progress is not None:
                progress.set_postfix({"train_rmse": f"{train_rmse:.4f}"}, refresh=False)
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()

    P, bu = _stack_states(*runner.compute(*user_states))
    Q, bi = _stack_states(*runner.compute(*item_states))
    if not all(np.isfinite(a).all() for a in (P, Q, bu, bi)):
        raise DivergenceError(
            f"SGD diverged: the parameters became NaN or infinite (lr={params['lr']}, reg={params['reg']}). "
            "Lower lr (and lr_bias), or raise reg." + _scale_hint(rating_range)
        )
    if keep_interactions:
        users, items, values = [], [], []
        for i, row in enumerate(blocks):
            for j, (u, it, v) in enumerate(runner.compute(*row)):
                users.append(u + np.int32(user_bounds[i]))
                items.append(it + np.int32(item_bounds[j]))
                values.append(v)
        R = interactions_matrix(
            np.concatenate(users), np.concatenate(items), np.concatenate(values), n_users, n_items
        )
    else:
        R = interactions_matrix(
            np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, dtype), n_users, n_items
        )
    with model_lock(model).writing():
        model._k = k
        model._P, model._Q = P, Q
        model.user_bias_, model.item_bias_ = bu, bi
        model._user_map, model._item_map = IdMap(data.user_ids), IdMap(data.item_ids)
        model.global_mean_ = mean
        model._mu = mu
        model._biased = params["biased"]
        model.rating_range_ = rating_range
        model.seed_ = seed
        model.epochs_trained_ = params["n_epochs"]
        model.history_ = history
        model._R = R
    return model
