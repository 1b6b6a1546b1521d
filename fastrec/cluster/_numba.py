"""Numba k-means kernels: the blocking of csrc/include/fastrec/cluster.hpp with ``prange``.

Rows are cut into the same fixed chunks as the C++ kernel (a function of n
only), chunks run in parallel, and each chunk keeps float64 partial sums that
are reduced in chunk order, so results do not depend on the thread count.
Inside a chunk a micro-tile of ``TILE_ROWS`` rows is scored against all
centres at once: for every feature the transposed centre row ``C[:, t]`` is
read once and applied to the tile's distance rows, a loop over centres that
LLVM vectorises.  The distance matrix exists only as the small tile.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_KERNEL_OPTIONS

TILE_ROWS = 8
MIN_CHUNK_ROWS = 2048  # see kmeans_n_chunks in cluster.hpp
MAX_CHUNKS = 64
FUSED_BUDGET_BYTES = 64 * 1024 * 1024


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _n_chunks(n):
    return max(1, min(MAX_CHUNKS, (n + MIN_CHUNK_ROWS - 1) // MIN_CHUNK_ROWS))


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _center_norms(centers):
    k, d = centers.shape
    out = np.empty(k, dtype=centers.dtype)
    for j in range(k):
        s = 0.0
        for t in range(d):
            s += np.float64(centers[j, t]) * np.float64(centers[j, t])
        out[j] = s
    return out


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _neg2_transpose(centers):
    """A new (d, k) array holding -2 C^T in the dtype of ``centers``."""
    k, d = centers.shape
    out = np.empty((d, k), dtype=centers.dtype)
    for j in range(k):
        for t in range(d):
            out[t, j] = -2.0 * centers[j, t]
    return out


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _first_min(row, k):
    best = row[0]
    arg = 0
    for j in range(1, k):
        if row[j] < best:
            best = row[j]
            arg = j
    return arg, best


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _bucket_by_label(labels, k):
    """Stable counting sort: rows of cluster j are order[start[j]:start[j + 1]]."""
    n = labels.shape[0]
    start = np.zeros(k + 1, dtype=np.int64)
    for i in range(n):
        start[labels[i] + 1] += 1
    for j in range(k):
        start[j + 1] += start[j]
    nxt = start[:k].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[nxt[labels[i]]] = i
        nxt[labels[i]] += 1
    return start, order


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _dense_sums_by_label(x, labels, sample_weight, sums, counts):
    k, d = sums.shape
    start, order = _bucket_by_label(labels, k)
    for j in nb.prange(k):
        total = 0.0
        for t in range(d):
            sums[j, t] = 0.0
        for p in range(start[j], start[j + 1]):
            i = order[p]
            w = np.float64(sample_weight[i])
            total += w
            for t in range(d):
                sums[j, t] += w * x[i, t]
        counts[j] = total


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def kmeans_assign_dense(
    x,
    x_sqnorm,
    sample_weight,  # IN  (n, d) rows, (n,) ||x||^2, (n,) weights
    centers,  # IN  (k, d)
    labels,
    min_dist,  # OUT (n,) int32 nearest centre, (n,) squared distance to it
    sums,
    counts,  # OUT (k, d) float64 weighted row sums per cluster, (k,) float64 weights
    inertia,  # OUT (1,) float64 sum of weight * min_dist
    compute_sums,  # IN  False skips sums and counts
    n_threads,  # IN  unused: the pool size is set by the caller
):
    n, d = x.shape
    k = centers.shape[0]
    ct = _neg2_transpose(centers)
    c_sq = _center_norms(centers)
    n_chunks = _n_chunks(n)
    chunk_rows = (n + n_chunks - 1) // n_chunks
    fused = compute_sums and n_chunks * k * d * 8 <= FUSED_BUDGET_BYTES
    part_sums = np.zeros((n_chunks if fused else 0, k, d), dtype=np.float64)
    part_counts = np.zeros((n_chunks if fused else 0, k), dtype=np.float64)
    part_inertia = np.zeros(n_chunks, dtype=np.float64)
    for c in nb.prange(n_chunks):
        tile = np.empty((TILE_ROWS, k), dtype=x.dtype)
        r_end = min(n, (c + 1) * chunk_rows)
        acc = 0.0
        for g in range(c * chunk_rows, r_end, TILE_ROWS):
            rows = min(TILE_ROWS, r_end - g)
            for r in range(rows):
                tile[r, :] = c_sq
            for t in range(d):
                crow = ct[t]
                for r in range(rows):
                    a = x[g + r, t]
                    trow = tile[r]
                    for j in range(k):
                        trow[j] += a * crow[j]
            for r in range(rows):
                i = g + r
                arg, best = _first_min(tile[r], k)
                dist = max(x_sqnorm[i] + best, 0.0)
                labels[i] = arg
                min_dist[i] = dist
                w = np.float64(sample_weight[i])
                acc += w * np.float64(min_dist[i])
                if fused:
                    for t in range(d):
                        part_sums[c, arg, t] += w * x[i, t]
                    part_counts[c, arg] += w
        part_inertia[c] = acc
    total = 0.0
    for c in range(n_chunks):
        total += part_inertia[c]
    inertia[0] = total
    if fused:
        for j in nb.prange(k):
            for t in range(d):
                s = 0.0
                for c in range(n_chunks):
                    s += part_sums[c, j, t]
                sums[j, t] = s
            s = 0.0
            for c in range(n_chunks):
                s += part_counts[c, j]
            counts[j] = s
    elif compute_sums:
        _dense_sums_by_label(x, labels, sample_weight, sums, counts)


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _csr_sums_by_label(indptr, indices, data, labels, sample_weight, sums, counts):
    k, d = sums.shape
    start, order = _bucket_by_label(labels, k)
    for j in nb.prange(k):
        total = 0.0
        for t in range(d):
            sums[j, t] = 0.0
        for p in range(start[j], start[j + 1]):
            i = order[p]
            w = np.float64(sample_weight[i])
            total += w
            for q in range(indptr[i], indptr[i + 1]):
                sums[j, indices[q]] += w * data[q]
        counts[j] = total


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def kmeans_assign_csr(
    indptr,
    indices,
    data,
    n_features,  # IN  CSR rows (n, d)
    x_sqnorm,
    sample_weight,
    centers,  # IN  as in kmeans_assign_dense
    labels,
    min_dist,
    sums,
    counts,
    inertia,  # OUT as in kmeans_assign_dense
    compute_sums,
    n_threads,  # IN
):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    ct = _neg2_transpose(centers)
    c_sq = _center_norms(centers)
    n_chunks = _n_chunks(n)
    chunk_rows = (n + n_chunks - 1) // n_chunks
    part_inertia = np.zeros(n_chunks, dtype=np.float64)
    for c in nb.prange(n_chunks):
        row = np.empty(k, dtype=data.dtype)
        acc = 0.0
        for i in range(c * chunk_rows, min(n, (c + 1) * chunk_rows)):
            row[:] = c_sq
            for q in range(indptr[i], indptr[i + 1]):
                a = data[q]
                crow = ct[indices[q]]
                for j in range(k):
                    row[j] += a * crow[j]
            arg, best = _first_min(row, k)
            labels[i] = arg
            min_dist[i] = max(x_sqnorm[i] + best, 0.0)
            acc += np.float64(sample_weight[i]) * np.float64(min_dist[i])
        part_inertia[c] = acc
    total = 0.0
    for c in range(n_chunks):
        total += part_inertia[c]
    inertia[0] = total
    if compute_sums:
        _csr_sums_by_label(indptr, indices, data, labels, sample_weight, sums, counts)


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def sqdist_dense(
    x,
    x_sqnorm,  # IN  (n, d) rows, (n,) ||x||^2
    y,  # IN  (m, d)
    out,  # OUT (n, m) squared distances, clamped at 0
    n_threads,  # IN  unused
):
    n, d = x.shape
    m = y.shape[0]
    yt = _neg2_transpose(y)
    y_sq = _center_norms(y)
    for i in nb.prange(n):
        row = out[i]
        for j in range(m):
            row[j] = y_sq[j]
        for t in range(d):
            a = x[i, t]
            for j in range(m):
                row[j] += a * yt[t, j]
        for j in range(m):
            row[j] = max(row[j] + x_sqnorm[i], 0.0)
