"""Numba cosine top-k: the algorithm of csrc/include/fastrec/cosine.hpp with ``prange``.

Rows are ranked by their scalar work and cut into groups of ``LANES`` rows; a
group whose rows share many features is accumulated through a dense
feature x lane tile (the fixed-length lane loops vectorise), any other group
row by row through a dense accumulator with a touched list.  Groups are dealt
round-robin to chunks, each chunk owns its scratch, and no result depends on
which chunk or thread computed it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._numba_helpers import heap_drain_sorted, heap_push, heap_threshold
from fastrec._runtime import NUMBA_KERNEL_OPTIONS

LANES = 16
VECTOR_WORK_RATIO = 0.5  # see kVectorWorkRatio in cosine.hpp


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _candidate_norms(yt_indptr, yt_indices, yt_data, m):
    sq = np.zeros(m, dtype=np.float64)
    for f in range(yt_indptr.shape[0] - 1):
        for q in range(yt_indptr[f], yt_indptr[f + 1]):
            v = np.float64(yt_data[q])
            sq[yt_indices[q]] += v * v
    return np.sqrt(sq)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _score(dot, x_norm, x_inv, y_norm, y_inv, shrink):
    if shrink == 0:
        return dot * (x_inv * y_inv)
    return dot / (x_norm * y_norm + shrink)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _scalar_row(row, local, x_indptr, x_indices, x_data, yt_indptr, yt_indices, yt_data,
                x_norm, x_inv, y_norm, y_inv, shrink, skip_self, mark, stamp, acc, touched,
                heap_scores, heap_indices, out_indices, out_scores, out_counts):
    n_touched = 0
    for p in range(x_indptr[row], x_indptr[row + 1]):
        f = x_indices[p]
        xv = x_data[p]
        for q in range(yt_indptr[f], yt_indptr[f + 1]):
            j = yt_indices[q]
            prod = xv * yt_data[q]
            if mark[j] != stamp:
                mark[j] = stamp
                acc[j] = prod
                touched[n_touched] = j
                n_touched += 1
            else:
                acc[j] += prod
    size = 0
    threshold = heap_threshold(heap_scores, size)
    for t in range(n_touched):
        j = touched[t]
        dot = acc[j]
        if dot == 0 or (skip_self and j == row):
            continue
        score = _score(dot, x_norm[local], x_inv[local], y_norm[j], y_inv[j], shrink)
        if score < threshold:
            continue
        size = heap_push(heap_scores, heap_indices, size, score, j)
        threshold = heap_threshold(heap_scores, size)
    out_counts[local] = heap_drain_sorted(
        heap_scores, heap_indices, size, out_scores[local], out_indices[local]
    )


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _vector_group(rows, n_lanes, row_begin, x_indptr, x_indices, x_data, yt_indptr, yt_indices,
                  yt_data, x_norm, x_inv, y_norm, y_inv, shrink, skip_self, feature_lo,
                  feature_hi, in_union, tile_rows, tile_acc, mark, stamp, touched, heap_scores,
                  heap_indices, out_indices, out_scores, out_counts):
    for f in range(feature_lo, feature_hi + 1):
        if in_union[f]:
            tile_rows[f, :] = 0
    for lane in range(n_lanes):
        row = rows[lane]
        for p in range(x_indptr[row], x_indptr[row + 1]):
            tile_rows[x_indices[p], lane] = x_data[p]

    n_touched = 0
    for f in range(feature_lo, feature_hi + 1):
        if not in_union[f]:
            continue
        in_union[f] = False
        for q in range(yt_indptr[f], yt_indptr[f + 1]):
            j = yt_indices[q]
            y = yt_data[q]
            if mark[j] != stamp:
                mark[j] = stamp
                touched[n_touched] = j
                n_touched += 1
                for lane in range(LANES):
                    tile_acc[j, lane] = tile_rows[f, lane] * y
            else:
                for lane in range(LANES):
                    tile_acc[j, lane] += tile_rows[f, lane] * y

    sizes = np.zeros(LANES, dtype=np.int64)
    thresholds = np.full(LANES, -np.inf, dtype=np.float64)
    for t in range(n_touched):
        j = touched[t]
        for lane in range(n_lanes):
            dot = tile_acc[j, lane]
            row = rows[lane]
            if dot == 0 or (skip_self and j == row):
                continue
            local = row - row_begin
            score = _score(dot, x_norm[local], x_inv[local], y_norm[j], y_inv[j], shrink)
            if score < thresholds[lane]:
                continue
            sizes[lane] = heap_push(heap_scores[lane], heap_indices[lane], sizes[lane], score, j)
            thresholds[lane] = heap_threshold(heap_scores[lane], sizes[lane])
    for lane in range(n_lanes):
        local = rows[lane] - row_begin
        out_counts[local] = heap_drain_sorted(
            heap_scores[lane], heap_indices[lane], sizes[lane], out_scores[local],
            out_indices[local],
        )


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def cosine_topk(
    x_indptr, x_indices, x_data,  # IN  CSR of X (n x d)
    yt_indptr, yt_indices, yt_data,  # IN  CSR of Y transposed (d x m)
    n_candidates,  # IN  m
    row_begin, row_end,  # IN  block of X's rows to compute
    k, shrink, same_matrix, exclude_self,  # IN
    out_indices, out_scores, out_counts,  # OUT (rows x k), (rows x k), (rows)
    n_threads,  # IN  threads (sets the number of work chunks)
):
    m = n_candidates
    d = yt_indptr.shape[0] - 1
    n_rows = row_end - row_begin
    if n_rows <= 0:
        return
    dtype = out_scores.dtype
    capacity = min(k, m)
    skip_self = same_matrix and exclude_self
    shrink = np.full(1, shrink, dtype=dtype)[0]  # score in the output dtype, as the C++ kernel

    y_norm64 = _candidate_norms(yt_indptr, yt_indices, yt_data, m)
    y_norm = y_norm64.astype(dtype)
    y_inv = np.zeros(m, dtype=dtype)
    for j in range(m):
        if y_norm64[j] > 0:
            y_inv[j] = 1.0 / y_norm64[j]
    x_norm = np.empty(n_rows, dtype=dtype)
    x_inv = np.zeros(n_rows, dtype=dtype)
    cost = np.zeros(n_rows, dtype=np.int64)
    for r in range(n_rows):
        row = row_begin + r
        if same_matrix:
            norm = y_norm64[row]
        else:
            sq = 0.0
            for p in range(x_indptr[row], x_indptr[row + 1]):
                sq += np.float64(x_data[p]) * np.float64(x_data[p])
            norm = np.sqrt(sq)
        x_norm[r] = norm
        if norm > 0:
            x_inv[r] = 1.0 / norm
        for p in range(x_indptr[row], x_indptr[row + 1]):
            f = x_indices[p]
            cost[r] += yt_indptr[f + 1] - yt_indptr[f]
    order = np.argsort(-cost, kind="mergesort") + row_begin

    n_groups = (n_rows + LANES - 1) // LANES
    n_chunks = min(n_groups, max(1, 8 * n_threads))
    for chunk in nb.prange(n_chunks):
        mark = np.zeros(m, dtype=np.int64)
        touched = np.empty(m, dtype=out_indices.dtype)
        acc = np.empty(m, dtype=dtype)
        in_union = np.zeros(d, dtype=np.bool_)
        tile_rows = np.empty((0, LANES), dtype=dtype)
        tile_acc = np.empty((0, LANES), dtype=dtype)
        heap_scores = np.empty((LANES, max(capacity, 1)), dtype=dtype)[:, :capacity]
        heap_indices = np.empty((LANES, max(capacity, 1)), dtype=out_indices.dtype)[:, :capacity]
        stamp = 0
        for group in range(chunk, n_groups, n_chunks):
            first = group * LANES
            n_lanes = min(LANES, n_rows - first)
            rows = order[first:first + n_lanes]
            use_vector = False
            if n_lanes > 1:
                scalar_work = 0
                vector_work = 0
                lo = d
                hi = -1
                for lane in range(n_lanes):
                    scalar_work += cost[rows[lane] - row_begin]
                    for p in range(x_indptr[rows[lane]], x_indptr[rows[lane] + 1]):
                        f = x_indices[p]
                        if not in_union[f]:
                            in_union[f] = True
                            vector_work += yt_indptr[f + 1] - yt_indptr[f]
                            lo = min(lo, f)
                            hi = max(hi, f)
                use_vector = vector_work <= VECTOR_WORK_RATIO * scalar_work
                if use_vector:
                    if tile_acc.shape[0] == 0:
                        tile_rows = np.empty((d, LANES), dtype=dtype)
                        tile_acc = np.empty((m, LANES), dtype=dtype)
                    stamp += 1
                    _vector_group(rows, n_lanes, row_begin, x_indptr, x_indices, x_data,
                                  yt_indptr, yt_indices, yt_data, x_norm, x_inv, y_norm, y_inv,
                                  shrink, skip_self, lo, hi, in_union, tile_rows, tile_acc, mark,
                                  stamp, touched, heap_scores, heap_indices, out_indices,
                                  out_scores, out_counts)
                else:
                    for lane in range(n_lanes):
                        for p in range(x_indptr[rows[lane]], x_indptr[rows[lane] + 1]):
                            in_union[x_indices[p]] = False
            if not use_vector:
                for lane in range(n_lanes):
                    stamp += 1
                    row = rows[lane]
                    _scalar_row(row, row - row_begin, x_indptr, x_indices, x_data, yt_indptr,
                                yt_indices, yt_data, x_norm, x_inv, y_norm, y_inv, shrink,
                                skip_self, mark, stamp, acc, touched, heap_scores[0],
                                heap_indices[0], out_indices, out_scores, out_counts)
