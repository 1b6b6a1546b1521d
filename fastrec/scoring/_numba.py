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
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from fastrec._numba_helpers import heap_drain_sorted, heap_push, heap_threshold
from fastrec._runtime import NUMBA_KERNEL_OPTIONS


def _vector_bytes() -> int:
    """Width of the SIMD registers Numba compiles for: 64 (AVX-512), 32 (AVX2) or 16 bytes."""
    if getattr(nb.config, "CPU_NAME", None) is not None:  # a fixed, possibly generic, target: assume nothing
        return 16
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if features.get("avx512f", False):
        return 64
    if features.get("avx2", False) and features.get("fma", False):
        return 32
    return 16


# Register blocking as in scoring.hpp: GROUP_ROWS x VECTORS accumulators of
# VECTOR_BYTES each (+ VECTORS panel vectors + a broadcast) fit the register file.
VECTOR_BYTES = _vector_bytes()
GROUP_ROWS, VECTORS = {64: (8, 3), 32: (6, 2), 16: (4, 2)}[VECTOR_BYTES]
TILE_ROWS = 240  # queries per parallel task (a multiple of every GROUP_ROWS)
SORTED_MAX = 64  # see kSortedMax in scoring.hpp: sorted insertion up to here, a heap beyond

_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")


def panel_width(dtype) -> int:
    """Items per packed panel for ``dtype``: VECTORS vectors of VECTOR_BYTES."""
    return VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize


# Measured on topn L (69,878 x 10,677, 64 factors, numba, 2 threads): a plain Numba loop takes 2.9x as long.
@intrinsic
def dot_tile(typingctx, acc, u, row0, packed, panel):
    """acc[r, :] = scores of queries u[row0 + r] (r < GROUP_ROWS) against the items of one panel.

    ``acc`` is (GROUP_ROWS, W), ``u`` (queries, f) and ``packed`` (panels, f, W),
    all C-contiguous of one float dtype, W = panel_width(dtype); rows and the
    panel must be in range (no bounds check).  Emitted as one loop over the
    features whose GROUP_ROWS x VECTORS vector accumulators are SSA values, so
    LLVM keeps them in registers: per feature, VECTORS loads of the panel, one
    broadcast per row and one fused multiply-add per accumulator, in feature
    order (the C++ kernel's order of operations).
    """
    arrays = (acc, u, packed)
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return None
    if acc.ndim != 2 or u.ndim != 2 or packed.ndim != 3:
        return None
    if not (acc.dtype == u.dtype == packed.dtype and acc.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(acc, u, row0, packed, panel)

    def codegen(context, builder, signature, args):
        acc_t, u_t, row_t, packed_t, panel_t = signature.args
        lanes = VECTOR_BYTES // (acc_t.dtype.bitwidth // 8)
        width = VECTORS * lanes
        intp = context.get_value_type(types.intp)
        element = context.get_value_type(acc_t.dtype)
        vector = ir.VectorType(element, lanes)
        zero = ir.Constant(intp, 0)
        acc_a = context.make_array(acc_t)(context, builder, args[0])
        u_a = context.make_array(u_t)(context, builder, args[1])
        packed_a = context.make_array(packed_t)(context, builder, args[3])
        row0 = context.cast(builder, args[2], row_t, types.intp)
        panel = context.cast(builder, args[4], panel_t, types.intp)
        f = builder.extract_value(u_a.shape, 1)
        u_base = cgutils.get_item_pointer(context, builder, u_t, u_a, [row0, zero])
        p_base = cgutils.get_item_pointer(context, builder, packed_t, packed_a, [panel, zero, zero])
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        zeros = ir.Constant(vector, [0.0] * lanes)
        align = acc_t.dtype.bitwidth // 8

        entry = builder.block
        loop = builder.append_basic_block("dot_tile.loop")
        done = builder.append_basic_block("dot_tile.done")
        builder.cbranch(builder.icmp_signed(">", f, zero), loop, done)

        builder.position_at_end(loop)
        t = builder.phi(intp)
        accs = [[builder.phi(vector) for _ in range(VECTORS)] for _ in range(GROUP_ROWS)]
        row = builder.gep(p_base, [builder.mul(t, ir.Constant(intp, width))])
        b = [
            builder.load(
                builder.bitcast(builder.gep(row, [ir.Constant(intp, v * lanes)]), vector.as_pointer()),
                align=align,
            )
            for v in range(VECTORS)
        ]
        updated = []
        for r in range(GROUP_ROWS):
            offset = builder.add(builder.mul(ir.Constant(intp, r), f), t)
            a = builder.load(builder.gep(u_base, [offset]), align=align)
            a = builder.insert_element(ir.Constant(vector, None), a, ir.Constant(ir.IntType(32), 0))
            a = builder.shuffle_vector(a, ir.Constant(vector, None), splat_mask)
            updated.append(
                [
                    builder.fadd(accs[r][v], builder.fmul(a, b[v], flags=["contract"]), flags=["contract"])
                    for v in range(VECTORS)
                ]
            )
        t_next = builder.add(t, ir.Constant(intp, 1))
        t.add_incoming(zero, entry)
        t.add_incoming(t_next, loop)
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                accs[r][v].add_incoming(zeros, entry)
                accs[r][v].add_incoming(updated[r][v], loop)
        builder.cbranch(builder.icmp_signed("<", t_next, f), loop, done)

        builder.position_at_end(done)
        results = []
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                result = builder.phi(vector)
                result.add_incoming(zeros, entry)
                result.add_incoming(updated[r][v], loop)
                results.append(result)
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                dst = cgutils.get_item_pointer(
                    context, builder, acc_t, acc_a, [ir.Constant(intp, r), ir.Constant(intp, v * lanes)]
                )
                builder.store(
                    results[r * VECTORS + v], builder.bitcast(dst, vector.as_pointer()), align=align
                )
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _pack_panels(v, width):
    """V as (n_panels, f, width): panel p, feature t, lane j is V[p * width + j, t]; zeros past the end."""
    m, f = v.shape
    n_panels = (m + width - 1) // width
    out = np.zeros((n_panels, f, width), dtype=v.dtype)
    for p in nb.prange(n_panels):
        for j in range(min(width, m - p * width)):
            for t in range(f):
                out[p, t, j] = v[p * width + j, t]
    return out


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
    packed = _pack_panels(v, width)
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
