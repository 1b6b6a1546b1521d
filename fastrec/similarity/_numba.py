"""Numba cosine top-k: the algorithm of csrc/include/fastrec/similarity.hpp with ``prange``.

Rows are ranked by their scalar work and cut into groups of ``LANES`` rows; a
group whose rows share many features is accumulated through a dense
feature x lane tile (the fixed-length lane loops vectorise), any other group
row by row through a dense accumulator with a touched list.  When Y is X and
every row is requested, candidates are relabelled by processing rank, each row
only computes candidates of higher rank, and every score is offered to both
rows' heaps (shared heaps guarded by per-row spin locks).  Groups are dealt
round-robin to chunks, each chunk owns its scratch, and no result depends on
which chunk or thread computed it: every path sums a dot product's terms in
ascending feature order with a separate multiply and add (strict IEEE, no
contraction), and forms the score with the one function ``_score``.  Scores are
clamped to [-1, 1] and a score of exactly 0 is never a candidate.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fastrec._numba_helpers import (
    LANE_WIDTH,
    heap_drain_sorted,
    heap_push,
    heap_threshold,
    row_axpy16,
    spin_lock,
    spin_unlock,
)
from fastrec._runtime import NUMBA_STRICT_OPTIONS

LANES = LANE_WIDTH  # rows per vector group (row_axpy16 updates 16 lanes at once)
VECTOR_WORK_RATIO = 1.0  # see kVectorWorkRatio in similarity.hpp
COSINE, DOT, JACCARD = 0, 1, 2  # the measures of similarity.hpp


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _candidate_norms(yt_indptr, yt_indices, yt_data, m, squared):
    sq = np.zeros(m, dtype=np.float64)
    for f in range(yt_indptr.shape[0] - 1):
        for q in range(yt_indptr[f], yt_indptr[f + 1]):
            v = np.float64(yt_data[q])
            sq[yt_indices[q]] += v * v
    return sq if squared else np.sqrt(sq)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _score(dot, x_norm, x_inv, y_norm, y_inv, term, inverse, one, measure):
    """Similarity in the dtype of its arguments, clamped to [-1, 1] (``one`` is 1 in
    that dtype): ``dot * (x_inv * y_inv)`` when ``inverse`` (no shrink), else
    ``dot / (x_norm * y_norm + term)`` with ``term`` the pair's shrink term.  The dot
    measure is ``dot`` itself; Jaccard ``dot / (x_norm + y_norm - dot + term)`` with
    squared norms."""
    if measure == DOT:
        return dot
    if measure == JACCARD:
        s = dot / (x_norm + y_norm - dot + term)
    elif inverse:
        s = dot * (x_inv * y_inv)
    else:
        s = dot / (x_norm * y_norm + term)
    if s > one:
        return one
    if s < -one:
        return -one
    return s


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _rescaled_shrink(shrink64, x_exp, label_exp, row, t, out, slot):
    """Store the shrink term of rescaled rows (row, label t), ``ldexp(shrink64, -(x_exp[row] +
    label_exp[t]))``, in ``out[slot]``, which rounds it once to out's dtype."""
    out[slot] = math.ldexp(shrink64, -(np.int64(x_exp[row]) + np.int64(label_exp[t])))


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _first_candidate(cand_indptr, cand_indices, f, first_label):
    """First position of candidate row f whose label is >= first_label."""
    lo = cand_indptr[f]
    hi = cand_indptr[f + 1]
    if first_label <= 0:
        return lo
    while lo < hi:
        mid = (lo + hi) // 2
        if cand_indices[mid] < first_label:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _shared_offer(row, score, index, out_scores, out_indices, out_counts, locks, thresholds):
    """Offer (score, index) to the shared heap of ``row``."""
    if score < thresholds[row]:
        return
    spin_lock(locks, row)
    out_counts[row] = heap_push(out_scores[row], out_indices[row], out_counts[row], score, index)
    thresholds[row] = heap_threshold(out_scores[row], out_counts[row])
    spin_unlock(locks, row)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _finish_row(
    row,
    row_begin,
    heap_scores,
    heap_indices,
    size,
    symmetric,
    out_indices,
    out_scores,
    out_counts,
    locks,
    thresholds,
):
    """Merge a row's local heap into its shared heap (symmetric) or write it out sorted."""
    if symmetric:
        spin_lock(locks, row)
        for e in range(size):
            out_counts[row] = heap_push(
                out_scores[row], out_indices[row], out_counts[row], heap_scores[e], heap_indices[e]
            )
        thresholds[row] = heap_threshold(out_scores[row], out_counts[row])
        spin_unlock(locks, row)
    else:
        local = row - row_begin
        out_counts[local] = heap_drain_sorted(
            heap_scores, heap_indices, size, out_scores[local], out_indices[local]
        )


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _scalar_row(
    row,
    label,
    xn,
    xinv,
    x_indptr,
    x_indices,
    x_data,
    cand_indptr,
    cand_indices,
    cand_data,
    label_col,
    label_norm,
    label_inv,
    shrink64,
    shrink,
    x_exp,
    label_exp,
    scaled,
    one,
    measure,
    term,
    same_matrix,
    exclude_self,
    symmetric,
    row_begin,
    mark,
    stamp,
    acc,
    touched,
    heap_scores,
    heap_indices,
    out_indices,
    out_scores,
    out_counts,
    locks,
    thresholds,
):
    n_touched = 0
    for p in range(x_indptr[row], x_indptr[row + 1]):
        f = x_indices[p]
        xv = x_data[p]
        for q in range(_first_candidate(cand_indptr, cand_indices, f, label), cand_indptr[f + 1]):
            t = cand_indices[q]
            prod = xv * cand_data[q]
            if mark[t] != stamp:
                mark[t] = stamp
                acc[t] = prod
                touched[n_touched] = t
                n_touched += 1
            else:
                acc[t] += prod
    size = 0
    threshold = heap_threshold(heap_scores, size)
    for e in range(n_touched):
        t = touched[e]
        dot = acc[t]
        if dot == 0:
            continue
        col = label_col[t] if symmetric else t
        is_self = same_matrix and col == row
        if is_self and exclude_self:
            continue
        if scaled and shrink64 != 0:
            _rescaled_shrink(shrink64, x_exp, label_exp, row, t, term, 0)
        score = _score(dot, xn, xinv, label_norm[t], label_inv[t], term[0], shrink64 == 0, one, measure)
        if score == 0:  # underflowed: zero scores are not kept
            continue
        if symmetric and not is_self:
            _shared_offer(col, score, row, out_scores, out_indices, out_counts, locks, thresholds)
        if score < threshold:
            continue
        size = heap_push(heap_scores, heap_indices, size, score, col)
        threshold = heap_threshold(heap_scores, size)
    _finish_row(
        row,
        row_begin,
        heap_scores,
        heap_indices,
        size,
        symmetric,
        out_indices,
        out_scores,
        out_counts,
        locks,
        thresholds,
    )


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _vector_group(
    rows,
    n_lanes,
    first_label,
    lane_norm,
    lane_inv,
    x_indptr,
    x_indices,
    x_data,
    cand_indptr,
    cand_indices,
    cand_data,
    label_col,
    label_norm,
    label_inv,
    shrink64,
    shrink,
    x_exp,
    label_exp,
    scaled,
    one,
    measure,
    same_matrix,
    exclude_self,
    symmetric,
    row_begin,
    feature_lo,
    feature_hi,
    in_union,
    tile_rows,
    tile_acc,
    heap_scores,
    heap_indices,
    out_indices,
    out_scores,
    out_counts,
    locks,
    thresholds,
):
    m = tile_acc.shape[0]
    label_begin = first_label if symmetric else 0
    for f in range(feature_lo, feature_hi + 1):
        if in_union[f]:
            tile_rows[f, :] = 0
    for lane in range(n_lanes):
        row = rows[lane]
        for p in range(x_indptr[row], x_indptr[row + 1]):
            tile_rows[x_indices[p], lane] = x_data[p]

    tile_acc[label_begin:, :] = 0
    for f in range(feature_lo, feature_hi + 1):  # ascending features, as the scalar path
        if not in_union[f]:
            continue
        in_union[f] = False
        for q in range(_first_candidate(cand_indptr, cand_indices, f, label_begin), cand_indptr[f + 1]):
            row_axpy16(tile_acc, cand_indices[q], tile_rows, f, cand_data[q])

    sizes = np.zeros(LANES, dtype=np.int64)
    local_threshold = np.full(LANES, -np.inf, dtype=np.float64)
    scores = np.empty(LANES, dtype=tile_acc.dtype)
    terms = np.full(LANES, shrink, dtype=tile_acc.dtype)  # the shrink term of each lane's pair
    for t in range(label_begin, m):
        col = label_col[t] if symmetric else t
        inside_group = symmetric and t < label_begin + n_lanes
        for lane in range(n_lanes):
            if scaled and shrink64 != 0:
                _rescaled_shrink(shrink64, x_exp, label_exp, rows[lane], t, terms, lane)
            scores[lane] = _score(
                tile_acc[t, lane],
                lane_norm[lane],
                lane_inv[lane],
                label_norm[t],
                label_inv[t],
                terms[lane],
                shrink64 == 0,
                one,
                measure,
            )
        if symmetric and not inside_group:
            if thresholds[col] <= scores[:n_lanes].max():
                spin_lock(locks, col)
                for lane in range(n_lanes):
                    if scores[lane] != 0 and scores[lane] >= thresholds[col]:
                        out_counts[col] = heap_push(
                            out_scores[col], out_indices[col], out_counts[col], scores[lane], rows[lane]
                        )
                        thresholds[col] = heap_threshold(out_scores[col], out_counts[col])
                spin_unlock(locks, col)
        for lane in range(n_lanes):
            if scores[lane] == 0:  # zero dot products and underflowed scores
                continue
            if same_matrix and exclude_self and col == rows[lane]:
                continue
            if inside_group:
                lane_label = label_begin + lane
                if t < lane_label:
                    continue  # lower triangle: computed by lane t - label_begin
                if t > lane_label:  # pair inside the group: also offer to that lane
                    other = t - label_begin
                    sizes[other] = heap_push(
                        heap_scores[other], heap_indices[other], sizes[other], scores[lane], rows[lane]
                    )
                    local_threshold[other] = heap_threshold(heap_scores[other], sizes[other])
            if scores[lane] < local_threshold[lane]:
                continue
            sizes[lane] = heap_push(heap_scores[lane], heap_indices[lane], sizes[lane], scores[lane], col)
            local_threshold[lane] = heap_threshold(heap_scores[lane], sizes[lane])
    for lane in range(n_lanes):
        _finish_row(
            rows[lane],
            row_begin,
            heap_scores[lane],
            heap_indices[lane],
            sizes[lane],
            symmetric,
            out_indices,
            out_scores,
            out_counts,
            locks,
            thresholds,
        )


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def _relabel_candidates(yt_indptr, yt_indices, yt_data, order):
    """Y^T with each column relabelled by its rank in ``order``, rows sorted by label."""
    m = order.shape[0]
    rank = np.empty(m, dtype=yt_indices.dtype)
    for t in range(m):
        rank[order[t]] = t
    nnz = yt_indptr[yt_indptr.shape[0] - 1]
    indices = np.empty(nnz, dtype=yt_indices.dtype)
    data = np.empty(nnz, dtype=yt_data.dtype)
    for f in nb.prange(yt_indptr.shape[0] - 1):
        begin, end = yt_indptr[f], yt_indptr[f + 1]
        labels = rank[yt_indices[begin:end]]
        by_label = np.argsort(labels)  # labels in a row are distinct: any sort is stable
        indices[begin:end] = labels[by_label]
        data[begin:end] = yt_data[begin:end][by_label]
    return indices, data


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def cosine_topk(
    x_indptr,
    x_indices,
    x_data,  # IN  CSR of X (n x d)
    yt_indptr,
    yt_indices,
    yt_data,  # IN  CSR of Y transposed (d x m)
    n_candidates,  # IN  m
    row_begin,
    row_end,  # IN  block of X's rows to compute
    k,
    shrink,  # IN
    measure,  # IN  COSINE, DOT or JACCARD
    x_exp,
    y_exp,  # IN  int32 (n), (m): rows were scaled by 2^-exp (for the shrink term), or both empty
    same_matrix,
    exclude_self,  # IN
    out_indices,
    out_scores,
    out_counts,  # OUT (rows x k), (rows x k), (rows)
    n_threads,  # IN  threads (sets the number of work chunks)
):
    m = n_candidates
    d = yt_indptr.shape[0] - 1
    n_rows = row_end - row_begin
    if n_rows <= 0:
        return
    dtype = out_scores.dtype
    capacity = min(k, m)
    shrink64 = np.float64(shrink)
    shrink = np.full(1, shrink, dtype=dtype)[0]  # score in the output dtype, as the C++ kernel
    one = np.ones(1, dtype=dtype)[0]
    scaled = x_exp.shape[0] > 0
    symmetric = same_matrix and row_begin == 0 and row_end == x_indptr.shape[0] - 1 and m > 1

    squared = measure == JACCARD  # Jaccard needs |x|^2, the count of a binary row
    y_norm64 = _candidate_norms(yt_indptr, yt_indices, yt_data, m, squared)
    row_norm = np.empty(n_rows, dtype=dtype)
    row_inv = np.zeros(n_rows, dtype=dtype)
    cost = np.zeros(n_rows, dtype=np.int64)
    for r in range(n_rows):
        row = row_begin + r
        if same_matrix:
            norm = y_norm64[row]
        else:
            sq = 0.0
            for p in range(x_indptr[row], x_indptr[row + 1]):
                sq += np.float64(x_data[p]) * np.float64(x_data[p])
            norm = sq if squared else np.sqrt(sq)
        # an empty row's dot products are all 0: norm 1 keeps its scores from 0 / 0
        row_norm[r] = norm if norm > 0 else 1.0
        if norm > 0:
            row_inv[r] = 1.0 / norm
        for p in range(x_indptr[row], x_indptr[row + 1]):
            f = x_indices[p]
            cost[r] += yt_indptr[f + 1] - yt_indptr[f]
    by_cost = np.argsort(-cost, kind="mergesort")
    order = by_cost + row_begin
    ordered_norm = row_norm[by_cost]
    ordered_inv = row_inv[by_cost]

    label_col = order if symmetric else np.arange(m)
    label_norm = np.empty(m, dtype=dtype)
    label_inv = np.zeros(m, dtype=dtype)
    label_exp = np.zeros(m if scaled else 0, dtype=np.int32)
    for t in range(m):
        norm = y_norm64[label_col[t]]
        label_norm[t] = norm if norm > 0 else 1.0  # as row_norm
        if norm > 0:
            label_inv[t] = 1.0 / norm
        if scaled:
            label_exp[t] = y_exp[label_col[t]]
    if symmetric:
        cand_indices, cand_data = _relabel_candidates(yt_indptr, yt_indices, yt_data, order)
        out_counts[:] = 0
    else:
        cand_indices, cand_data = yt_indices, yt_data
    locks = np.zeros(m if symmetric else 0, dtype=np.int32)
    thresholds = np.full(m if symmetric else 0, -np.inf, dtype=dtype)

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
        term = np.full(1, shrink, dtype=dtype)  # the shrink term of the scalar path's pair
        stamp = 0
        for group in range(chunk, n_groups, n_chunks):
            first = group * LANES
            n_lanes = min(LANES, n_rows - first)
            rows = order[first : first + n_lanes]
            first_label = first if symmetric else -1
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
                use_vector = vector_work + m <= VECTOR_WORK_RATIO * scalar_work
                if use_vector:
                    if tile_acc.shape[0] == 0:
                        tile_rows = np.empty((d, LANES), dtype=dtype)
                        tile_acc = np.empty((m, LANES), dtype=dtype)
                    _vector_group(
                        rows,
                        n_lanes,
                        first_label,
                        ordered_norm[first : first + n_lanes],
                        ordered_inv[first : first + n_lanes],
                        x_indptr,
                        x_indices,
                        x_data,
                        yt_indptr,
                        cand_indices,
                        cand_data,
                        label_col,
                        label_norm,
                        label_inv,
                        shrink64,
                        shrink,
                        x_exp,
                        label_exp,
                        scaled,
                        one,
                        measure,
                        same_matrix,
                        exclude_self,
                        symmetric,
                        row_begin,
                        lo,
                        hi,
                        in_union,
                        tile_rows,
                        tile_acc,
                        heap_scores,
                        heap_indices,
                        out_indices,
                        out_scores,
                        out_counts,
                        locks,
                        thresholds,
                    )
                else:
                    for lane in range(n_lanes):
                        for p in range(x_indptr[rows[lane]], x_indptr[rows[lane] + 1]):
                            in_union[x_indices[p]] = False
            if not use_vector:
                for lane in range(n_lanes):
                    stamp += 1
                    # (a call this long may not hold an inline conditional)
                    own_label = first_label + lane if symmetric else -1
                    _scalar_row(
                        rows[lane],
                        own_label,
                        ordered_norm[first + lane],
                        ordered_inv[first + lane],
                        x_indptr,
                        x_indices,
                        x_data,
                        yt_indptr,
                        cand_indices,
                        cand_data,
                        label_col,
                        label_norm,
                        label_inv,
                        shrink64,
                        shrink,
                        x_exp,
                        label_exp,
                        scaled,
                        one,
                        measure,
                        term,
                        same_matrix,
                        exclude_self,
                        symmetric,
                        row_begin,
                        mark,
                        stamp,
                        acc,
                        touched,
                        heap_scores[0],
                        heap_indices[0],
                        out_indices,
                        out_scores,
                        out_counts,
                        locks,
                        thresholds,
                    )
    if symmetric:  # every shared heap is complete: put each row in rank order
        for chunk in nb.prange(n_chunks):
            tmp_scores = np.empty(max(capacity, 1), dtype=dtype)
            tmp_indices = np.empty(max(capacity, 1), dtype=out_indices.dtype)
            for row in range(chunk, m, n_chunks):
                count = heap_drain_sorted(
                    out_scores[row], out_indices[row], out_counts[row], tmp_scores, tmp_indices
                )
                out_scores[row, :count] = tmp_scores[:count]
                out_indices[row, :count] = tmp_indices[:count]
