"""Numba top-N scoring: the algorithm of csrc/include/fastrec/scoring.hpp with ``prange``.

Every item a candidate: V is packed into panels of ``PANEL`` items stored
feature-major, and a tile of ``TILE_ROWS`` queries is scored panel by panel,
``GROUP_ROWS`` queries at a time, by a register-blocked micro-kernel
(:func:`dot_tile`, written as LLVM vector IR: Numba's own loops keep such a
block of accumulators in memory).  A row of the block is first tested as a
whole against the query's threshold (the score of the worst of its n kept
items); only rows with a score above it are walked item by item, skipping
excluded items with a forward cursor.  Per-query candidates: one dot product
per candidate.  Each query is scored by one thread in a fixed order, so the
result does not depend on the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._gemm_tile import GROUP_ROWS, dot_tile, pack_panels, panel_width
from fastrec._numba_helpers import heap_drain_sorted, heap_push, heap_threshold
from fastrec._runtime import NUMBA_KERNEL_OPTIONS

TILE_ROWS = 240  # queries per parallel task (a multiple of every GROUP_ROWS)
SORTED_MAX = 64  # see kSortedMax in scoring.hpp: sorted insertion up to here, a heap beyond

_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")


@nb.njit(**_INLINE)
def _excluded(excl_indices, cursor, ends, i, item):
    """True when ``item`` is excluded for tile query i; items come in increasing order."""
    pos = cursor[i]
    end = ends[i]
    while pos < end and excl_indices[pos] < item:
        pos += 1
    cursor[i] = pos
    return pos < end and excl_indices[pos] == item


@nb.njit(**_INLINE)
def _offer(
    q,
    i,
    score,
    item,
    capacity,
    out_indices,
    out_scores,
    sizes,
    thresholds,
    heap_scores,
    heap_indices,
    excl_indices,
    cursor,
    ends,
):
    """Keep (score, item) for query q (tile slot i) unless excluded; score > threshold was checked.

    Items arrive in increasing order, so a kept entry tied with ``score`` has a
    smaller index and stays ahead of it.
    """
    if _excluded(excl_indices, cursor, ends, i, item):
        return
    if capacity > SORTED_MAX:
        sizes[i] = heap_push(heap_scores[i], heap_indices[i], sizes[i], score, item)
        thresholds[i] = heap_threshold(heap_scores[i], sizes[i])
        return
    size = sizes[i]
    pos = size
    if size < capacity:
        sizes[i] = size + 1
    else:
        pos = capacity - 1  # the last entry drops out
    while pos > 0 and out_scores[q, pos - 1] < score:
        out_scores[q, pos] = out_scores[q, pos - 1]
        out_indices[q, pos] = out_indices[q, pos - 1]
        pos -= 1
    out_scores[q, pos] = score
    out_indices[q, pos] = item
    if sizes[i] == capacity:
        thresholds[i] = out_scores[q, capacity - 1]


@nb.njit(**_INLINE)
def _start(q0, rows, capacity, heap_rows, exclude_indptr, u, out_indices):
    """One tile's selection state: (sizes, thresholds, exclusion cursor and end, heap)."""
    sizes = np.empty(TILE_ROWS, dtype=np.int64)
    thresholds = np.empty(TILE_ROWS, dtype=u.dtype)
    cursor = np.empty(TILE_ROWS, dtype=np.int64)
    ends = np.empty(TILE_ROWS, dtype=np.int64)
    heap_scores = np.empty((heap_rows, capacity), dtype=u.dtype)
    heap_indices = np.empty((heap_rows, capacity), dtype=out_indices.dtype)
    has_exclusions = exclude_indptr.shape[0] > 0
    for i in range(rows):
        sizes[i] = 0
        thresholds[i] = -np.inf
        cursor[i] = exclude_indptr[q0 + i] if has_exclusions else 0
        ends[i] = exclude_indptr[q0 + i + 1] if has_exclusions else 0
    return sizes, thresholds, cursor, ends, heap_scores, heap_indices


@nb.njit(**_INLINE)
def _finish(q0, rows, capacity, out_indices, out_scores, sizes, heap_scores, heap_indices):
    n = out_indices.shape[1]
    for i in range(rows):
        q = q0 + i
        if capacity > SORTED_MAX:
            sizes[i] = heap_drain_sorted(
                heap_scores[i], heap_indices[i], sizes[i], out_scores[q], out_indices[q]
            )
        for j in range(sizes[i], n):
            out_scores[q, j] = -np.inf
            out_indices[q, j] = -1


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _score_all_items(u, v, exclude_indptr, exclude_indices, width, out_indices, out_scores):
    n_queries, f = u.shape
    m = v.shape[0]
    capacity = min(out_indices.shape[1], m)
    packed = pack_panels(v, width)
    n_panels = packed.shape[0]
    n_tiles = (n_queries + TILE_ROWS - 1) // TILE_ROWS
    heap_rows = TILE_ROWS if capacity > SORTED_MAX else 0
    for tile in nb.prange(n_tiles):
        q0 = tile * TILE_ROWS
        rows = min(TILE_ROWS, n_queries - q0)
        full = rows - rows % GROUP_ROWS
        acc = np.empty((GROUP_ROWS, width), dtype=u.dtype)
        tail = np.empty((GROUP_ROWS, f), dtype=u.dtype)  # the last, partial group, padded
        for r in range(GROUP_ROWS):
            tail[r] = u[q0 + min(full + r, rows - 1)]
        sizes, thresholds, cursor, ends, heap_scores, heap_indices = _start(
            q0, rows, capacity, heap_rows, exclude_indptr, u, out_indices
        )
        for p in range(n_panels if capacity > 0 else 0):
            first = p * width
            valid = min(width, m - first)
            for g in range(0, rows, GROUP_ROWS):
                if g < full:
                    dot_tile(acc, u, q0 + g, packed, p)
                else:
                    dot_tile(acc, tail, 0, packed, p)
                for r in range(min(GROUP_ROWS, rows - g)):
                    i = g + r
                    threshold = thresholds[i]
                    hits = 0
                    for j in range(width):
                        hits += acc[r, j] > threshold
                    if hits == 0:
                        continue
                    for j in range(valid):
                        score = acc[r, j]
                        if score > thresholds[i]:  # the threshold rises as items are kept
                            _offer(
                                q0 + i,
                                i,
                                score,
                                first + j,
                                capacity,
                                out_indices,
                                out_scores,
                                sizes,
                                thresholds,
                                heap_scores,
                                heap_indices,
                                exclude_indices,
                                cursor,
                                ends,
                            )
        _finish(q0, rows, capacity, out_indices, out_scores, sizes, heap_scores, heap_indices)


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _score_candidates(
    u, v, exclude_indptr, exclude_indices, cand_indptr, cand_indices, out_indices, out_scores
):
    n_queries, f = u.shape
    capacity = min(out_indices.shape[1], v.shape[0])
    n_tiles = (n_queries + TILE_ROWS - 1) // TILE_ROWS
    heap_rows = TILE_ROWS if capacity > SORTED_MAX else 0
    for tile in nb.prange(n_tiles):
        q0 = tile * TILE_ROWS
        rows = min(TILE_ROWS, n_queries - q0)
        sizes, thresholds, cursor, ends, heap_scores, heap_indices = _start(
            q0, rows, capacity, heap_rows, exclude_indptr, u, out_indices
        )
        for i in range(rows if capacity > 0 else 0):
            q = q0 + i
            for p in range(cand_indptr[q], cand_indptr[q + 1]):
                item = cand_indices[p]
                score = u[q, 0] * v[item, 0]
                for t in range(1, f):
                    score += u[q, t] * v[item, t]
                if score > thresholds[i]:
                    _offer(
                        q,
                        i,
                        score,
                        item,
                        capacity,
                        out_indices,
                        out_scores,
                        sizes,
                        thresholds,
                        heap_scores,
                        heap_indices,
                        exclude_indices,
                        cursor,
                        ends,
                    )
        _finish(q0, rows, capacity, out_indices, out_scores, sizes, heap_scores, heap_indices)


def topn(
    u,
    v,  # IN  (n_queries, f), (n_items, f) of one float dtype, C-contiguous
    exclude_indptr,
    exclude_indices,  # IN  excluded items per query (CSR pattern); empty indptr: none
    cand_indptr,
    cand_indices,  # IN  candidates per query (CSR pattern); empty indptr: every item
    out_indices,
    out_scores,  # OUT (n_queries, n): best first, padded with -1 / -inf
    n_threads,  # IN  unused: the pool size is set by the caller
):
    if cand_indptr.shape[0]:
        _score_candidates(
            u, v, exclude_indptr, exclude_indices, cand_indptr, cand_indices, out_indices, out_scores
        )
    else:
        _score_all_items(u, v, exclude_indptr, exclude_indices, panel_width(u.dtype), out_indices, out_scores)
