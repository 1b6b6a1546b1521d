"""Planning of one SGD training run: the block grid, the block order and aligned buffers.

The ratings are cut into a users x items grid of blocks (LIBMF's scheme): the
blocks of one stratum share no user and no item, so threads run them at once
without conflicts.  This module decides the grid, renumbers rows in group order,
groups the ratings by block, draws every epoch's block order, and allocates the
64-byte aligned factor rows the kernels expect.  It holds no estimator state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastrec._aligned import aligned_zeros, padded_width  # noqa: F401 (the row width planned here)

# Grid side per thread: with two blocks per thread in every stratum, a thread that
# drew a small block takes another one, which evens out power-law block sizes.
BLOCKS_PER_THREAD = 2
# Within a block each user's ratings are visited as one run, so the user's row
# stays in L1 and user rows stream; the item rows of a block are read at random
# and should stay in a core's L2.  A finer grid keeps them within about this many
# bytes, while a user still meets at least MIN_RUN_LENGTH ratings per block on
# average: each run pays for its user row, its lane refill and its place in the
# shuffled run order, and on the L benchmark data (70k users, 115 ratings each)
# runs of 19 ratings (a 6 x 6 grid) made epochs 3-9% faster than runs of 11 (the
# 10 x 10 grid of the working set alone), on 1 and 2 threads (paired; whole
# fits, with their noise, 2% in the median of 10 pairs).
BLOCK_WORKING_SET = 1 << 19
MIN_RUN_LENGTH = 20


def grid_side(n_users: int, n_items: int, nnz: int, n_threads: int, row_bytes: int = 0) -> int:
    """Side of the users x items block grid (see BLOCK_WORKING_SET)."""
    side = -(-n_items * row_bytes // BLOCK_WORKING_SET)
    side = max(1, min(side, nnz // (MIN_RUN_LENGTH * max(n_users, 1))))
    if n_threads > 1:
        side = max(side, BLOCKS_PER_THREAD * n_threads)
        side = -(-side // n_threads) * n_threads  # whole rounds of blocks per stratum
    return max(1, min(side, n_users, n_items))


class BlockGrid(NamedTuple):
    """The users x items grid of one fit (see :func:`grid_groups`)."""

    side: int
    by_user: np.ndarray | None  # stable permutation sorting the ratings by user; None if sorted
    user_group: np.ndarray  # (n_users,) int64 row group of every user
    item_group: np.ndarray  # (n_items,) int64 column group of every item
    user_order: np.ndarray | None  # users in group order; None for a 1 x 1 grid
    item_order: np.ndarray | None


def grid_groups(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_threads: int,
    rng: np.random.Generator,
    row_bytes: int = 0,
) -> BlockGrid:
    """Cut users and items into the groups of a side x side grid.

    Users (items) are put in random order and cut into ``side`` groups of about
    equal rating counts, so blocks are balanced even on power-law data.  The
    side comes from :func:`grid_side`: at least two blocks per thread in each
    stratum, more when the factor rows (``row_bytes`` each) would not fit in a
    core's cache.  Small data on one thread gets a 1 x 1 grid: the epoch is then
    one block, visited in one shuffled order.

    ``user_order`` / ``item_order`` list the users (items) in group order: each
    group is a contiguous run of them.  Training renumbers rows in this order,
    so that the biases and factor rows of one group are contiguous in memory and
    two threads never write to the same cache line.
    """
    nnz = users.size
    side = grid_side(n_users, n_items, nnz, n_threads, row_bytes)
    by_user = _stable_order(users)
    if side == 1:
        return BlockGrid(
            1, by_user, np.zeros(n_users, dtype=np.int64), np.zeros(n_items, dtype=np.int64), None, None
        )

    def groups(index: np.ndarray, n: int, is_sorted: bool) -> tuple[np.ndarray, np.ndarray]:
        if is_sorted:
            # On sorted ids (users read from a CSR matrix), n binary searches count
            # them 5x faster than np.bincount's pass over all ratings.  The
            # searched ids share the ratings' dtype, so nothing is cast.
            fits = n < np.iinfo(index.dtype).max
            bounds = np.arange(n + 1, dtype=index.dtype if fits else np.int64)
            counts = np.diff(np.searchsorted(index, bounds))
        else:
            counts = np.bincount(index, minlength=n)
        perm = rng.permutation(n)
        start = np.cumsum(counts[perm]) - counts[perm]
        group = np.empty(n, dtype=np.int64)
        group[perm] = np.minimum(start * side // max(nnz, 1), side - 1)
        return group, perm  # groups are contiguous, in order, along perm

    user_group, user_order = groups(users, n_users, is_sorted=by_user is None)
    item_group, item_order = groups(items, n_items, is_sorted=False)
    return BlockGrid(side, by_user, user_group, item_group, user_order, item_order)


def arrange_blocks(
    grid: BlockGrid, users: np.ndarray, items: np.ndarray, values: np.ndarray, group_by_block: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Working copies of the ratings grouped by block, rows renumbered in group order.

    Returns (users, items, values, block_ptr) as the epoch kernels take them; a
    backend's ``group_by_block`` kernel does the counting sort in two passes.
    """
    nnz = values.size
    out_users = np.empty(nnz, dtype=np.int32)
    out_items = np.empty(nnz, dtype=np.int32)
    out_values = np.empty(nnz, dtype=values.dtype)
    block_ptr = np.empty(grid.side * grid.side + 1, dtype=np.int64)
    order = np.empty(0, dtype=np.int64) if grid.by_user is None else grid.by_user
    group_by_block(
        users=np.ascontiguousarray(users, dtype=np.int32),
        items=np.ascontiguousarray(items, dtype=np.int32),
        ratings=np.ascontiguousarray(values),
        order=order,
        user_block=grid.user_group * grid.side,
        item_block=grid.item_group,
        user_row=_rank(grid.user_order, grid.user_group.size)[:-1],
        item_row=_rank(grid.item_order, grid.item_group.size)[:-1],
        out_users=out_users,
        out_items=out_items,
        out_ratings=out_values,
        block_ptr=block_ptr,
    )
    return out_users, out_items, out_values, block_ptr


def _stable_order(index: np.ndarray) -> np.ndarray | None:
    """Stable permutation sorting non-negative ``index``, or None when it is sorted.

    Two 16-bit passes of numpy's radix argsort (an LSD radix sort), linear in
    the length, where a plain stable argsort of int64 keys is a merge sort.
    """
    if index.size == 0 or np.all(index[1:] >= index[:-1]):
        return None
    index = index.astype(np.uint64, copy=False)
    order = np.argsort((index & 0xFFFF).astype(np.uint16), kind="stable")
    if index.max() > 0xFFFF:
        high = (index[order] >> 16).astype(np.uint16 if index.max() >> 32 == 0 else np.uint64)
        order = order[np.argsort(high, kind="stable")]
    return order.astype(np.int64, copy=False)


def _rows_in_order(values: np.ndarray, row_order: np.ndarray) -> np.ndarray:
    """``values[row_order]``, 64-byte aligned for 2-D factor matrices."""
    if values.ndim == 1:
        return values[row_order]
    out = aligned_zeros(row_order.size, values.shape[1], values.dtype)
    # row_order holds valid rows; mode="raise" would build the result in a
    # buffer and copy it (9x slower on MovieLens 1M's user rows).
    np.take(values, row_order, axis=0, out=out, mode="clip")
    return out


def _rank(row_order: np.ndarray | None, n: int) -> np.ndarray:
    """int32 training row of each of ``n`` ids: its position in ``row_order``
    (the identity if None), with a last slot mapping -1 (unknown) to -1."""
    rank = np.empty(n + 1, dtype=np.int32)
    if row_order is None:
        rank[:n] = np.arange(n, dtype=np.int32)
    else:
        rank[row_order] = np.arange(n, dtype=np.int32)
    rank[-1] = -1
    return rank


def standard_normal(rng: np.random.Generator, size: int, dtype: np.dtype) -> np.ndarray:
    """(size,) draws from N(0, 1) in float ``dtype``, by the Box-Muller transform.

    Two uniforms make two normals through one log, one square root, one cosine
    and one sine, all vectorised in the model's dtype: about half the time of
    ``Generator.standard_normal`` (1.1 ms against 2.1 ms for 100k float32
    draws here).  float32 uniforms have 24 bits, so the draws stop at 5.8
    standard deviations (a tail of 1e-8).
    """
    half = (size + 1) // 2
    out = rng.random(2 * half, dtype=dtype)  # computed in place: fresh arrays cost page faults
    radius, angle = out[:half], out[half:]
    np.negative(radius, out=radius)
    np.log1p(radius, out=radius)  # log(1 - u), 1 - u in (0, 1]
    radius *= dtype.type(-2)
    np.sqrt(radius, out=radius)
    angle *= dtype.type(2 * np.pi)
    cosine = np.cos(angle)
    np.sin(angle, out=angle)
    angle *= radius
    radius *= cosine
    return out[:size]


def make_schedules(side: int, n_epochs: int, rng: np.random.Generator) -> np.ndarray:
    """(n_epochs, side, side) int64: every epoch's strata, ``side`` rows of ``side`` blocks.

    Stratum ``s`` of an epoch holds the blocks (r, (r + shift_s) mod side) for
    every row group r, so its blocks share no row or column group; the shifts
    are a fresh permutation each epoch, so every block runs once per epoch, in
    an order that changes from epoch to epoch.  All epochs are drawn at once: a
    generator and schedule per epoch cost 0.2-0.4 ms here, a tenth of an epoch
    on MovieLens 100K.
    """
    rows = np.arange(side, dtype=np.int64)
    shifts = rng.permuted(np.broadcast_to(rows, (n_epochs, side)), axis=1)
    return np.ascontiguousarray(rows * side + (rows + shifts[:, :, None]) % side)
