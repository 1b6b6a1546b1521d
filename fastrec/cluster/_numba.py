"""Numba k-means kernels: the blocking of csrc/include/fastrec/cluster.hpp with ``prange``.

Rows are cut into the same fixed chunks as the C++ kernel (a function of n
only), chunks run in parallel, and each chunk keeps float64 partial sums that
are reduced in chunk order, so results do not depend on the thread count.

Dense assignment is the C++ kernel's GEMM with an argmin epilogue: -2 C is
packed into panels of centres (as the scoring kernels pack items), a tile of
rows that stays in L2 is scored panel by panel, ``GROUP_ROWS`` rows at a time,
by the register-tiled :func:`fastrec._gemm_tile.dot_tile`, and each micro-tile
is folded at once into a per-row, per-lane running minimum (:func:`fold_min`);
the distance matrix never exists.  CSR rows add each stored value times the
transposed centre row ``C[:, t]`` to the row's k distances, a loop over
centres that LLVM vectorises.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from fastrec._gemm_tile import GROUP_ROWS, VECTOR_BYTES, VECTORS, dot_tile, pack_panels
from fastrec._runtime import NUMBA_KERNEL_OPTIONS

_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")
TILE_BYTES = 96 * 1024  # rows of X per tile: see rows_per_tile in cluster.hpp
MIN_CHUNK_ROWS = 2048  # see kmeans_n_chunks in cluster.hpp
MAX_CHUNKS = 64
FUSED_BUDGET_BYTES = 64 * 1024 * 1024


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _n_chunks(n):
    return max(1, min(MAX_CHUNKS, (n + MIN_CHUNK_ROWS - 1) // MIN_CHUNK_ROWS))


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _rows_per_tile(d, itemsize):
    """Rows of X kept in L2 while one panel of centres (in L1) streams over them."""
    fit = TILE_BYTES // max(1, d * itemsize)
    rows = min(512, max(GROUP_ROWS, fit))
    return rows - rows % GROUP_ROWS


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


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _padded_norms(centers, padded):
    """||c_j||^2 in the dtype of ``centers``, +inf past k so padding never wins."""
    k = centers.shape[0]
    out = np.full(padded, np.inf, dtype=centers.dtype)
    out[:k] = _center_norms(centers)
    return out


@intrinsic
def fold_min(typingctx, best, best_idx, row0, acc, cn, first):
    """Fold one micro-tile of -2 x.c into the running minimum of its rows, lane by lane.

    ``acc`` is (GROUP_ROWS, W) from dot_tile for the centres first .. first + W - 1,
    ``cn`` their ||c||^2 (padded with +inf), ``best`` / ``best_idx`` (rows, L)
    the running minimum of rows row0 .. row0 + GROUP_ROWS - 1 and its centre,
    L = VECTOR_BYTES / itemsize lanes.  All C-contiguous; no bounds check.
    Lane l of a row sees its centres (l modulo L) in increasing order and
    replaces only on a strictly smaller value, so it keeps the earliest of
    ties.  Written as vector IR because Numba's loops leave it scalar.
    """
    arrays = (best, best_idx, acc, cn)
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return None
    if not (best.dtype == acc.dtype == cn.dtype and best.dtype in (types.float32, types.float64)):
        return None
    if best_idx.dtype != types.int32 or (best.ndim, best_idx.ndim, acc.ndim, cn.ndim) != (2, 2, 2, 1):
        return None
    sig = types.void(best, best_idx, row0, acc, cn, first)

    def codegen(context, builder, signature, args):
        best_t, idx_t, row_t, acc_t, cn_t, first_t = signature.args
        lanes = VECTOR_BYTES // (best_t.dtype.bitwidth // 8)
        element = context.get_value_type(best_t.dtype)
        vector = ir.VectorType(element, lanes)
        i32 = ir.IntType(32)
        idx_vector = ir.VectorType(i32, lanes)
        intp = context.get_value_type(types.intp)
        align = best_t.dtype.bitwidth // 8
        best_a = context.make_array(best_t)(context, builder, args[0])
        idx_a = context.make_array(idx_t)(context, builder, args[1])
        acc_a = context.make_array(acc_t)(context, builder, args[3])
        cn_a = context.make_array(cn_t)(context, builder, args[4])
        row0 = context.cast(builder, args[2], row_t, types.intp)
        first = context.cast(builder, args[5], first_t, types.intp)

        def pointer(array_type, array, indices, vtype):
            ptr = cgutils.get_item_pointer(context, builder, array_type, array, indices)
            return builder.bitcast(ptr, vtype.as_pointer())

        splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        steps = ir.Constant(idx_vector, list(range(lanes)))
        norms, centres = [], []
        for v in range(VECTORS):
            start = builder.add(first, ir.Constant(intp, v * lanes))
            norms.append(builder.load(pointer(cn_t, cn_a, [start], vector), align=align))
            base = builder.insert_element(
                ir.Constant(idx_vector, None), builder.trunc(start, i32), ir.Constant(i32, 0)
            )
            centres.append(
                builder.add(builder.shuffle_vector(base, ir.Constant(idx_vector, None), splat), steps)
            )
        for r in range(GROUP_ROWS):
            row = builder.add(row0, ir.Constant(intp, r))
            zero = ir.Constant(intp, 0)
            best_ptr = pointer(best_t, best_a, [row, zero], vector)
            idx_ptr = pointer(idx_t, idx_a, [row, zero], idx_vector)
            low = builder.load(best_ptr, align=align)
            arg = builder.load(idx_ptr, align=4)
            for v in range(VECTORS):
                dots = builder.load(
                    pointer(acc_t, acc_a, [ir.Constant(intp, r), ir.Constant(intp, v * lanes)], vector),
                    align=align,
                )
                value = builder.fadd(dots, norms[v])
                less = builder.fcmp_ordered("<", value, low)
                low = builder.select(less, value, low)
                arg = builder.select(less, centres[v], arg)
            builder.store(low, best_ptr, align=align)
            builder.store(arg, idx_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(**_INLINE)
def _lane_argmin(best, best_idx):
    """The smallest value of one row's lanes and its centre, ties to the smaller centre."""
    value = best[0]
    label = best_idx[0]
    for j in range(1, best.shape[0]):
        if best[j] < value or (best[j] == value and best_idx[j] < label):
            value = best[j]
            label = best_idx[j]
    return label, value


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
    x = np.ascontiguousarray(x)  # dot_tile reads whole rows
    lanes = VECTOR_BYTES // x.itemsize
    width = VECTORS * lanes  # centres per panel, as panel_width()
    packed = pack_panels(centers, width)
    packed *= -2.0  # exact, so the micro-kernel yields -2 x.c directly
    n_panels = packed.shape[0]
    cn = _padded_norms(centers, n_panels * width)
    tile_rows = _rows_per_tile(d, x.itemsize)
    n_chunks = _n_chunks(n)
    chunk_rows = (n + n_chunks - 1) // n_chunks
    fused = compute_sums and n_chunks * k * d * 8 <= FUSED_BUDGET_BYTES
    part_sums = np.zeros((n_chunks if fused else 0, k, d), dtype=np.float64)
    part_counts = np.zeros((n_chunks if fused else 0, k), dtype=np.float64)
    part_inertia = np.zeros(n_chunks, dtype=np.float64)
    for c in nb.prange(n_chunks):
        acc = np.empty((GROUP_ROWS, width), dtype=x.dtype)
        tail = np.empty((GROUP_ROWS, d), dtype=x.dtype)
        best = np.empty((tile_rows, lanes), dtype=x.dtype)
        best_idx = np.empty((tile_rows, lanes), dtype=np.int32)
        r_end = min(n, (c + 1) * chunk_rows)
        chunk_inertia = 0.0
        for t0 in range(c * chunk_rows, r_end, tile_rows):
            rows = min(tile_rows, r_end - t0)
            full = rows - rows % GROUP_ROWS
            for r in range(GROUP_ROWS):  # the last, partial micro-tile, padded with its last row
                tail[r] = x[t0 + min(full + r, rows - 1)]
            best[:] = np.inf  # all rows: a padded micro-tile folds past ``rows``
            best_idx[:] = 0
            for p in range(n_panels):
                for g in range(0, rows, GROUP_ROWS):
                    if g < full:
                        dot_tile(acc, x, t0 + g, packed, p)
                    else:
                        dot_tile(acc, tail, 0, packed, p)
                    fold_min(best, best_idx, g, acc, cn, p * width)
            for r in range(rows):
                i = t0 + r
                arg, value = _lane_argmin(best[r], best_idx[r])
                dist = max(x_sqnorm[i] + value, 0.0)
                labels[i] = arg
                min_dist[i] = dist
                w = np.float64(sample_weight[i])
                chunk_inertia += w * np.float64(min_dist[i])
                if fused:
                    for t in range(d):
                        part_sums[c, arg, t] += w * x[i, t]
                    part_counts[c, arg] += w
        part_inertia[c] = chunk_inertia
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
