"""Implicit ALS on Dask: blocks of users and of items solved on the workers, the other side sent once.

The interactions stay on the workers as two persisted sets of CSR blocks: rows
of users (from :meth:`DaskInteractions.blocks`) and rows of items (their
transpose, built by a shuffle of Dask tasks: each user block sends its columns
to the item blocks).  Each half-step sends the fixed side's factors to every
worker once and solves every block of the other side with fastrec's own row
solver (:func:`fastrec.implicit.als.model.solve_rows`); the client concatenates
the solved blocks.  A row's solve reads only its own entries, the fixed factors
and their Gram matrix, which the kernel sums in an order fixed by the fixed
factors alone, so the blocks put together are bit for bit the single-machine
half-step.
"""

from __future__ import annotations

import functools
import operator
import sys
import time
import uuid
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._aligned import aligned_copy, aligned_zeros, padded_width
from fastrec._idmap import IdMap
from fastrec.base import seed_from
from fastrec.dask._interactions import DaskInteractions
from fastrec.dask._workers import broadcast, current_client, task_threads
from fastrec.implicit.als.model import ALS, als_loss, check_values, initial_factors, solve_rows


class _Shared:
    """Factor rows sent to every worker once, put back on 64-byte boundaries where they are unpickled.

    The compiled kernel reads factor rows as aligned vectors; a pickle does not
    keep the alignment, so the copy each worker stores is re-aligned once there
    rather than by every task.
    """

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self._token = uuid.uuid4().hex

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray]]:
        return _shared_rows, (self.rows,)

    def __dask_tokenize__(self) -> str:
        # one token per matrix sent: hashing the factors would cost a pass over them
        return self._token


def _shared_rows(rows: np.ndarray) -> _Shared:
    return _Shared(aligned_copy(rows, rows.shape[1]))


# -- the two sides' blocks, built and kept on the workers --------------------------------


def _item_pieces(matrix: sp.csr_matrix, item_bounds: np.ndarray) -> tuple[sp.csr_matrix, ...]:
    """One user block's columns cut by item block: piece ``j`` is (items of block j) x (the block's users)."""
    by_item = matrix.tocsc()  # each column's users in increasing order
    indptr = by_item.indptr.astype(np.int64)
    pieces = []
    for j in range(item_bounds.size - 1):
        a, b = int(item_bounds[j]), int(item_bounds[j + 1])
        lo, hi = int(indptr[a]), int(indptr[b])
        pieces.append(
            sp.csr_matrix(
                (by_item.data[lo:hi], by_item.indices[lo:hi], indptr[a : b + 1] - lo),
                shape=(b - a, matrix.shape[0]),
            )
        )
    return tuple(pieces)


def _item_block(n_users: int, offsets: list[int], *pieces: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of one item block over every user: the pieces of the user blocks side by side, in order."""
    n_rows = pieces[0].shape[0]
    rows = np.concatenate([np.repeat(np.arange(n_rows), np.diff(p.indptr)) for p in pieces])
    cols = np.concatenate([p.indices.astype(np.int64) + offset for p, offset in zip(pieces, offsets)])
    data = np.concatenate([p.data for p in pieces])
    # a stable sort by item keeps the pieces' order: each row's users stay increasing
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    index_dtype = V.index_dtype_for(n_users, order.size)
    return sp.csr_matrix((data[order], cols[order].astype(index_dtype), indptr), shape=(n_rows, n_users))


def _side(
    matrix: sp.csr_matrix, params: dict[str, Any], dtype: np.dtype
) -> tuple[dict[str, np.ndarray], tuple]:
    """(the kernel's CSR of one block, (largest |value|, longest row)) as single-machine ALS builds it."""
    R = matrix.astype(dtype)
    check_values(R.data, "ratings")
    stats = (float(np.abs(R.data).max()) if R.nnz else 0.0, int(np.diff(R.indptr).max()) if R.shape[0] else 0)
    return ALS._weights(R, params, dtype), stats


# -- the tasks of a half-step ---------------------------------------------------------------


def _solve_block(
    side: tuple[dict[str, np.ndarray], Any],
    rows: tuple[int, int],
    X: _Shared | None,
    Y: _Shared,
    params: dict[str, Any],
    backend: str,
    n_threads: int | None,
) -> np.ndarray:
    """Rows ``rows[0]:rows[1]`` of the side solved with ``Y`` fixed, from their values in ``X``.

    ``X`` None (the exact solve, which needs no start) starts from zeros.
    """
    start, stop = rows
    out = aligned_zeros(stop - start, Y.rows.shape[1], Y.rows.dtype)  # never the shared matrix itself
    if X is not None:
        out[...] = X.rows[start:stop]
    solve_rows(side[0], out, Y.rows, params, backend, task_threads(n_threads))
    return out


def _block_loss(
    side: tuple[dict[str, np.ndarray], Any], rows: tuple[int, int], X: _Shared, Y: _Shared, k: int
) -> float:
    """The loss terms of one block of users, without the penalty (see :func:`als_loss`)."""
    return als_loss(side[0], X.rows[rows[0] : rows[1]], Y.rows, k, 0.0)


# -- running on a client or on Dask's local scheduler ------------------------------------------


def _persist(objs: list[Any], client: Any) -> list[Any]:
    import dask

    return list(client.persist(objs)) if client is not None else list(dask.persist(*objs))


def _compute(objs: list[Any], client: Any) -> list[Any]:
    import dask

    return client.gather(client.compute(objs)) if client is not None else list(dask.compute(*objs))


def _share(rows: np.ndarray, client: Any) -> Any:
    return broadcast(_Shared(rows), client)


def _ranges(bounds: np.ndarray) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _half_step(
    sides: list[Any],
    bounds: np.ndarray,
    X: Any,
    Y: Any,
    *,
    params: dict[str, Any],
    backend: str,
    n_threads: int | None,
    client: Any,
) -> np.ndarray:
    """The side of ``sides`` solved with ``Y`` fixed, its blocks put together on the client.

    Every task reads only persisted blocks and factors sent to every worker, so
    a task lost with its worker runs again elsewhere.
    """
    import dask

    tasks = [
        dask.delayed(_solve_block, pure=False)(side, rows, X, Y, params, backend, n_threads)
        for side, rows in zip(sides, _ranges(bounds))
    ]
    blocks = _compute(tasks, client)
    out = aligned_zeros(int(bounds[-1]), blocks[0].shape[1], blocks[0].dtype)
    for (start, stop), block in zip(_ranges(bounds), blocks):
        out[start:stop] = block
    return out


# -- the entry point ----------------------------------------------------------------------------


def _check_data(data: Any) -> DaskInteractions:
    if isinstance(data, DaskInteractions):
        return data
    try:
        import dask.dataframe as dd

        is_frame = isinstance(data, dd.DataFrame)
    except ImportError:  # pragma: no cover - fastrec.dask imported dask.dataframe already
        is_frame = False
    if is_frame:
        raise TypeError(
            "fastrec.dask.fit(fastrec.ALS(...), data) takes the interactions of "
            "fastrec.dask.interactions: call data = fastrec.dask.interactions(frame, user, item, value) "
            "on the Dask DataFrame first (it numbers the ids across partitions)."
        )
    raise TypeError(
        f"fastrec.dask.fit(fastrec.ALS(...), data) takes a fastrec.dask.DaskInteractions, got "
        f"{type(data).__name__}; build it with fastrec.dask.interactions(frame, user, item, value) "
        "from a Dask DataFrame, or fit on one machine with model.fit(data)."
    )


def _bounds(n: int, block_size: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, n, block_size, dtype=np.int64), n))


def _default_block_size(n: int, client: Any) -> int:
    """One block per worker (and side), or one block with Dask's local scheduler."""
    workers = len(client.nthreads()) if client is not None else 1
    return max(1, -(-n // max(1, workers)))


def fit_als(
    model: ALS,
    data: Any,
    *,
    client: Any = None,
    n_threads: int | None = None,
    block_size: int | None = None,
    **options: Any,
) -> ALS:
    """Fit a :class:`fastrec.ALS` on the interactions of a Dask cluster, bit-identical to one machine.

    Called by :func:`fastrec.dask.fit`.  The users' rows are CSR blocks of
    :meth:`DaskInteractions.blocks`, the items' rows their transpose, built by a
    shuffle of Dask tasks; both are persisted on the workers for the whole fit.
    The starting factors are those of ``model.fit`` (the same ``random_state``
    draws the same factors).  Every half-step sends the fixed side's factors to
    each worker once and solves each block with fastrec's own row solver
    (:func:`fastrec.implicit.als.model.solve_rows`), the conjugate gradient
    starting from the block's rows of the solved side as last sent; the solved
    blocks come back and are concatenated.  A task reads only persisted blocks
    and factors every worker holds, so a task lost with its worker runs again
    elsewhere.

    Parameters
    ----------
    model : fastrec.ALS
        Fitted in place; its parameters (``dtype``, ``backend``, ``solver``...)
        are the training parameters, its ``n_threads`` is not used (see ``n_threads``).
    data : fastrec.dask.DaskInteractions
        From :func:`fastrec.dask.interactions`; repeated (user, item) pairs are
        resolved by its ``duplicates`` policy (``"sum"`` is what ``model.fit``
        does with a DataFrame).
    client : distributed.Client, optional
        As in :func:`fastrec.dask.fit`.
    n_threads : int, optional
        Threads per task; by default each task takes its share of its worker's
        threads.  The model does not depend on it.
    block_size : int, optional
        Users (and items) per task.  By default each side is cut into one block
        per worker, so that each worker sums the Gram matrix once per half-step
        with all its threads (with Dask's local scheduler: one block).  A task
        reads its block's entries (``nnz_block * (4 + itemsize)`` bytes plus 8
        per row, kept on its worker) and the factor matrices every worker holds
        once, and writes its rows' factors (``block_size * stride * itemsize``
        bytes); ``stride`` is ``n_factors`` rounded up to 64 bytes.

    Returns
    -------
    fastrec.ALS
        ``model``, fitted: its factors equal bit for bit those of ``model.fit``
        on the same interactions (``Interactions.from_frame`` of the same rows
        with the same ``duplicates``), with the same backend (``cpp`` or
        ``numba``), for any ``n_threads``, ``block_size`` and number of
        workers (with ``numba``, as long as both sides run Numba code compiled
        alike: freshly compiled and cache-loaded code may differ in the last
        bits).  ``history_["loss"]`` (``verbose=True``) equals the
        single-machine loss up to summation order.

    Notes
    -----
    During the fit the client holds the two factor matrices (``(n_users +
    n_items) * stride * itemsize`` bytes, one side twice while a half-step's
    blocks are concatenated) and never the interactions, which stay in the
    workers' blocks; each worker holds the factor matrices as last sent (one
    side twice while a new one arrives).  At the end the fitted model gets its ``interactions_`` as every
    fastrec model keeps them (``recommend``'s ``exclude_seen``, cold users,
    ``save``): the users' blocks are gathered once, ``nnz * (4 + itemsize)``
    bytes.  Each task computes the Gram matrix of the fixed side itself (the
    compiled kernel sums it inside its half-step), once per block; with the
    default ``block_size`` that is once per worker.
    """
    import dask

    if options:
        raise TypeError(
            f"fastrec.dask.fit(fastrec.ALS(...), ...) got unknown option(s) {sorted(options)}; "
            "ALS takes block_size."
        )
    data = _check_data(data)
    dtype = V.check_factor_dtype(model.dtype)
    params = model._checked_params()
    backend = _runtime.resolve_backend(model.backend)
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    if block_size is not None:
        block_size = V.check_int(block_size, "block_size", minimum=1)
    client = current_client(client)
    n_users, n_items = data.shape
    if n_users == 0 or n_items == 0:
        raise ValueError("data holds no interactions: there is nothing to fit.")
    k = params["n_factors"]
    stride = padded_width(k, dtype)
    V.check_memory(
        2 * (n_users + n_items) * stride * dtype.itemsize,
        f"the factors of {n_users:,} users and {n_items:,} items at n_factors={k}",
        "pass fewer ids or fewer factors.",
    )
    user_size = block_size or _default_block_size(n_users, client)
    user_bounds = data.block_bounds(user_size)
    item_bounds = _bounds(n_items, block_size or _default_block_size(n_items, client))
    side_params = {"alpha": params["alpha"], "confidence": params["confidence"]}
    # what the row solver reads: the tasks get these, not the random_state
    solver_params = {key: params[key] for key in ("n_factors", "reg", "solver", "cg_steps")}

    # the two sides' blocks, persisted on the workers: the user blocks, then the shuffle to item blocks
    user_csr = _persist(data.blocks(user_size), client)
    n_item_blocks = item_bounds.size - 1
    shared_bounds = dask.delayed(item_bounds, pure=True)
    pieces = [dask.delayed(_item_pieces, nout=n_item_blocks, pure=True)(m, shared_bounds) for m in user_csr]
    offsets = [int(a) for a in user_bounds[:-1]]
    item_csr = [
        dask.delayed(_item_block, pure=True)(n_users, offsets, *[p[j] for p in pieces])
        for j in range(n_item_blocks)
    ]
    sides = _persist(
        [dask.delayed(_side, pure=True)(m, side_params, dtype) for m in (*user_csr, *item_csr)], client
    )
    user_sides, item_sides = sides[: len(user_csr)], sides[len(user_csr) :]
    stats = _compute([dask.delayed(operator.getitem)(s, 1) for s in sides], client)
    _check_scores_fit(stats[: len(user_csr)], stats[len(user_csr) :], dtype)

    seed = seed_from(model.random_state)
    P, Q = initial_factors(seed, n_users, n_items, params, dtype)
    exact = params["solver"] == "cholesky"  # the exact solve starts from nothing: no start to send
    history: dict[str, list[float]] = {"seconds": []}
    if params["verbose"]:
        history["loss"] = []
    half_step = functools.partial(
        _half_step, params=solver_params, backend=backend, n_threads=n_threads, client=client
    )
    shared_p = None if exact else _share(P, client)
    shared_q = _share(Q, client)
    for iteration in range(params["n_iterations"]):
        start = time.perf_counter()
        # each side starts from its factors as sent for the other side's step
        P = half_step(user_sides, user_bounds, shared_p, shared_q)
        shared_p = _share(P, client)
        Q = half_step(item_sides, item_bounds, None if exact else shared_q, shared_p)
        if params["verbose"] or iteration + 1 < params["n_iterations"]:  # read by the loss or the next step
            shared_q = _share(Q, client)
        history["seconds"].append(time.perf_counter() - start)
        if params["verbose"]:
            loss = _loss(user_sides, user_bounds, shared_p, shared_q, P, Q, k, params["reg"], client)
            history["loss"].append(loss)
            print(
                f"ALS iteration {iteration + 1}/{params['n_iterations']}: loss {loss:.6g}, "
                f"{history['seconds'][-1]:.3f} s",
                file=sys.stderr,
            )
        if exact:
            shared_p = None
    if not (np.isfinite(P).all() and np.isfinite(Q).all()):
        raise FloatingPointError("ALS produced non-finite factors; lower alpha or use dtype=np.float64.")
    R = sp.vstack(_compute(user_csr, client), format="csr").astype(dtype)
    model._install(P, Q, k, seed)
    model.history_ = history
    model._user_map, model._item_map, model._R = IdMap(data.user_ids), IdMap(data.item_ids), R
    return model


def _loss(
    user_sides: list[Any],
    user_bounds: np.ndarray,
    shared_p: Any,
    shared_q: Any,
    P: np.ndarray,
    Q: np.ndarray,
    k: int,
    reg: float,
    client: Any,
) -> float:
    """The objective of :func:`als_loss`: per block of users on the workers, the penalty here."""
    import dask

    tasks = [
        dask.delayed(_block_loss, pure=False)(side, rows, shared_p, shared_q, k)
        for side, rows in zip(user_sides, _ranges(user_bounds))
    ]
    X = P[:, :k].astype(np.float64)
    Y = Q[:, :k].astype(np.float64)
    return float(sum(_compute(tasks, client))) + reg * float(np.sum(X * X) + np.sum(Y * Y))


def _check_scores_fit(user_stats: list[tuple], item_stats: list[tuple], dtype: np.dtype) -> None:
    """What ``fit`` checks of every recommender's ratings, from the blocks' largest value and longest row."""
    largest = max(s[0] for s in user_stats)
    longest = max(max(s[1] for s in user_stats), max(s[1] for s in item_stats))
    limit = float(np.finfo(dtype).max)
    if largest * longest > limit:
        raise ValueError(
            f"ratings hold values up to {largest:.3g} in magnitude: summed over up to {longest} "
            f"ratings, scores could overflow {np.dtype(dtype).name} (largest {limit:.3g}). Rescale the "
            "ratings (e.g. divide by their largest value) or pass dtype=np.float64."
        )
