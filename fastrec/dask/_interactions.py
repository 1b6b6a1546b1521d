"""Interactions from a Dask DataFrame: raw ids numbered across partitions, CSR blocks of users."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.datasets._checks import check_duplicates_policy, check_no_repeated_pairs, timestamp_values


def _distinct(column: Any, name: str) -> np.ndarray:
    """Sorted distinct ids of one partition's column."""
    values = V.id_array(column.to_numpy(), name)
    ids, _ = IdMap.from_values(values)
    if ids.ids.size and not _ordered(ids.ids):
        raise TypeError(
            f"{name} holds ids of mixed or unorderable types; fastrec.dask numbers ids in sorted order "
            "across partitions, so give them one orderable type (all integers or all strings)."
        )
    return ids.ids


def _ordered(ids: np.ndarray) -> bool:
    if ids.dtype != object:
        return True
    try:
        return bool(np.all(ids[:-1] < ids[1:]))
    except TypeError:
        return False


def _union(*parts: np.ndarray) -> np.ndarray:
    """Sorted union of sorted id arrays (a tree-reduction step)."""
    parts = tuple(p for p in parts if p.size) or parts[:1]
    if len(parts) == 1:
        return parts[0]
    try:
        return np.unique(np.concatenate(parts))
    except TypeError as exc:
        raise TypeError(
            "the id columns mix types between partitions (e.g. integers and strings); give every "
            "partition ids of one type."
        ) from exc


def _tree_union(parts: list[Any], width: int = 8) -> Any:
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(_union)(*parts[i : i + width]) for i in range(0, len(parts), width)]
    return parts[0]


def _mapped_partition(
    frame: Any, user: str, item: str, value: str | None, timestamp: str | None, users: Any, items: Any
) -> Any:
    """One partition as inner (user, item) indices, float32 values and optional times."""
    import pandas as pd

    u = IdMap(users).lookup(V.id_array(frame[user].to_numpy(), user))
    i = IdMap(items).lookup(V.id_array(frame[item].to_numpy(), item))
    n = len(frame)
    values = (
        np.ones(n, dtype=np.float32)
        if value is None
        else V._rating_values(frame[value].to_numpy(), value).astype(np.float32)
    )
    out = {"user": u, "item": i, "value": values}
    if timestamp is not None:
        out["timestamp"] = timestamp_values(frame[timestamp])
    return pd.DataFrame(out, index=frame.index)


def _block_pieces(frame: Any, bounds: np.ndarray) -> list[Any]:
    """The rows of a mapped partition split by user block (positions kept in input order)."""
    block = np.searchsorted(bounds, frame["user"].to_numpy(), side="right") - 1
    order = np.argsort(block, kind="stable")
    starts = np.searchsorted(block[order], np.arange(bounds.size))
    pieces = []
    for b in range(bounds.size - 1):
        pieces.append(frame.iloc[order[starts[b] : starts[b + 1]]])
    return pieces


def _block_matrix(
    start: int, stop: int, n_items: int, duplicates: str, users: np.ndarray, items: np.ndarray, *pieces: Any
) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """Rows ``start:stop`` of the users x items CSR (and times), as Interactions.from_arrays builds them."""
    import pandas as pd

    frame = pd.concat(pieces, ignore_index=True) if pieces else None
    n_rows = stop - start
    if frame is None or len(frame) == 0:
        empty = sp.csr_matrix((n_rows, n_items), dtype=np.float32)
        return empty, None
    rows = frame["user"].to_numpy().astype(np.int64) - start
    cols = frame["item"].to_numpy().astype(np.int64)
    values = frame["value"].to_numpy()
    times = frame["timestamp"].to_numpy() if "timestamp" in frame else None
    n = rows.size
    key = rows * n_items + cols
    order = np.lexsort((np.arange(n), times, key)) if times is not None else np.argsort(key, kind="stable")
    key = key[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    if duplicates == "error" and not last.all():
        first = order[int(np.argmin(last))]
        check_no_repeated_pairs(users[rows[first] + start], items[cols[first]])
    if duplicates == "sum" and not last.all():
        starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
        values = np.add.reduceat(values[order].astype(np.float64), starts).astype(np.float32)
    else:
        values = values[order][last]
    kept = order[last]
    index_dtype = V.index_dtype_for(len(users), n_items, kept.size)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows[kept], minlength=n_rows), out=indptr[1:])
    indices = cols[kept].astype(index_dtype)
    matrix = sp.csr_matrix((values, indices, indptr), shape=(n_rows, n_items))
    stamps = None if times is None else sp.csr_matrix((times[kept], indices, indptr), shape=(n_rows, n_items))
    return matrix, stamps


class DaskInteractions:
    """Interactions held as a Dask DataFrame, with raw ids numbered across its partitions.

    Built by :func:`interactions`.  Users and items are numbered in sorted id
    order, exactly as :class:`fastrec.datasets.Interactions` and every fastrec
    model number them: ``user_ids[k]`` is the raw id of inner user ``k``.

    Attributes
    ----------
    frame : dask.dataframe.DataFrame
        Columns ``user`` and ``item`` (int32 inner indices), ``value`` (float32)
        and, when a timestamp column was named, ``timestamp``; one row per input
        row, in input order, partitioned as the input.
    user_ids, item_ids : ndarray
        Distinct raw ids, sorted: the only arrays held on the client.
    duplicates : {"last", "sum", "error"}
        How :meth:`blocks` resolves a (user, item) pair seen more than once.
    """

    def __init__(self, frame: Any, user_ids: np.ndarray, item_ids: np.ndarray, duplicates: str):
        self.frame = frame
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.duplicates = duplicates

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return int(self.user_ids.size), int(self.item_ids.size)

    def __repr__(self) -> str:
        return (
            f"DaskInteractions: {self.shape[0]} users x {self.shape[1]} items, "
            f"{self.frame.npartitions} partitions"
        )

    def block_bounds(self, block_size: int) -> np.ndarray:
        """int64 row bounds ``[0, b, 2b, ..., n_users]`` of blocks of ``block_size`` users."""
        block_size = V.check_int(block_size, "block_size", minimum=1)
        n_users = self.shape[0]
        return np.unique(np.append(np.arange(0, n_users, block_size, dtype=np.int64), n_users))

    def blocks(self, block_size: int = 10_000, *, timestamps: bool = False) -> list[Any]:
        """One Delayed CSR per block of ``block_size`` users.

        Parameters
        ----------
        block_size : int, default 10000
            Users per block (the last block may hold fewer).
        timestamps : bool, default False
            Each Delayed gives ``(matrix, times)`` instead of ``matrix``, with
            ``times`` a CSR of the same pattern (None without a timestamp column).

        Returns
        -------
        list of dask.delayed.Delayed
            Block ``b`` computes to the rows ``bounds[b]:bounds[b+1]`` (see
            :meth:`block_bounds`) of the users x items float32 CSR that
            ``Interactions.from_frame`` builds from the same rows: duplicate
            pairs resolved by :attr:`duplicates`, canonical sorted indices.
            Each partition is split once; every block reads only its pieces.
        """
        import dask

        bounds, pieces = self.block_pieces(block_size)
        # the id arrays enter the graph once, not once per task
        users, items = dask.delayed(self.user_ids, pure=True), dask.delayed(self.item_ids, pure=True)
        n_items = self.item_ids.size
        out = []
        for b, block in enumerate(pieces):
            pair = dask.delayed(_block_matrix, nout=2)(
                int(bounds[b]), int(bounds[b + 1]), n_items, self.duplicates, users, items, *block
            )
            out.append(pair if timestamps else pair[0])
        return out

    def block_pieces(self, block_size: int) -> tuple[np.ndarray, list[list[Any]]]:
        """The rows of :attr:`frame` grouped by block of users, without building matrices.

        Returns
        -------
        bounds : ndarray of int64, shape (n_blocks + 1,)
            As :meth:`block_bounds`.
        pieces : list of lists of dask.delayed.Delayed
            ``pieces[b][p]`` computes to the pandas rows of partition ``p`` whose
            user lies in block ``b`` (columns of :attr:`frame`, input order).
            Each partition is split once.
        """
        import dask

        bounds = self.block_bounds(block_size)
        n_blocks = bounds.size - 1
        if n_blocks == 0:
            return bounds, []
        split = [dask.delayed(_block_pieces)(part, bounds) for part in self.frame.to_delayed()]
        return bounds, [[dask.delayed(operator.getitem)(s, b) for s in split] for b in range(n_blocks)]


def interactions(
    frame: Any,
    user: str = "user",
    item: str = "item",
    value: str | None = "rating",
    timestamp: str | None = None,
    *,
    duplicates: str = "last",
) -> DaskInteractions:
    """Number the raw ids of a Dask DataFrame of interactions across its partitions.

    Each partition's distinct user and item ids are found where the partition
    lives, merged in a tree (sorted unions), and the merged, sorted ids (the
    only data brought to the client) are applied to every partition with
    ``map_partitions``.  The numbering is the one of
    :class:`fastrec.datasets.Interactions` and of fastrec's models.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        One row per interaction (from ``dd.read_parquet``, ``dd.read_csv``, ...).
    user, item : str, default "user", "item"
        Columns of the raw ids: integers or strings (one orderable type).
    value : str or None, default "rating"
        Column of the values; None stores 1.0 per row (implicit data).
    timestamp : str, optional
        Column of the interaction times (numbers, datetimes or date strings).
    duplicates : {"last", "sum", "error"}, default "last"
        What a pair seen more than once becomes in :meth:`DaskInteractions.blocks`,
        as in :meth:`fastrec.datasets.Interactions.from_arrays`.

    Returns
    -------
    DaskInteractions
    """
    import dask
    import dask.dataframe as dd

    if not isinstance(frame, dd.DataFrame):
        raise TypeError(
            f"frame must be a dask.dataframe.DataFrame, got {type(frame).__name__}; "
            "wrap a pandas DataFrame with dask.dataframe.from_pandas(frame, npartitions=...)."
        )
    duplicates = check_duplicates_policy(duplicates)
    names = {"user": user, "item": item, "value": value, "timestamp": timestamp}
    for argument, column in names.items():
        if column is not None and column not in frame.columns:
            raise ValueError(
                f"{argument}={column!r} is not a column of frame; its columns are {list(frame.columns)}."
            )
    parts = frame.to_delayed()
    user_parts = [dask.delayed(_distinct)(p[user], user) for p in parts]
    item_parts = [dask.delayed(_distinct)(p[item], item) for p in parts]
    user_ids, item_ids = dask.compute(_tree_union(user_parts), _tree_union(item_parts))
    import pandas as pd

    meta: dict[str, Any] = {"user": np.int32, "item": np.int32, "value": np.float32}
    if timestamp is not None:
        meta["timestamp"] = np.int64
    meta_frame = pd.DataFrame({k: np.empty(0, dtype=v) for k, v in meta.items()})
    mapped = frame.map_partitions(
        _mapped_partition,
        user,
        item,
        value,
        timestamp,
        dask.delayed(user_ids, pure=True),
        dask.delayed(item_ids, pure=True),
        meta=meta_frame,
    )
    return DaskInteractions(mapped, user_ids, item_ids, duplicates)
