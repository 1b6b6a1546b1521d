"""Numba BPR kernels: the algorithm and arithmetic of ``_reference`` and csrc/include/fastrec/bpr.hpp.

The chunks of an epoch's samples run in parallel (``prange``), updating the
shared factors without locks (Hogwild), as the C++ kernel does.  The kernels
compile with strict IEEE arithmetic (no fastmath): the dot product is summed in
the lanes and order of the SIMD kernel and nothing is fused, so for one sample
order the result is bit-identical to the reference and the C++ kernel.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba.core import cgutils, types
from numba.extending import intrinsic

from fastrec._aligned import ALIGN
from fastrec._numba_helpers import GOLDEN, mix
from fastrec._runtime import NUMBA_STRICT_OPTIONS

_S11 = np.uint64(11)
# The prefetch intrinsic's name: LLVM 15 and later have opaque pointers.
_PREFETCH = "llvm.prefetch.p0" if llvm_version_info >= (15,) else "llvm.prefetch.p0i8"


def _factor_arrays(P, Q) -> bool:
    """Whether P and Q type as C-contiguous 2-D arrays of one float dtype (the intrinsics' rows)."""
    return all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in (P, Q)) and (
        P.dtype == Q.dtype and isinstance(P.dtype, types.Float)
    )


def _row_pointer(context, builder, array_type, array, index_type, index):
    """Pointer to the first element of row ``index`` of a 2-D array."""
    zero = context.get_constant(types.intp, 0)
    row = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, array, [row, zero])


@intrinsic
def _lane_dot(typingctx, P, u, Q, i, j):
    """<P[u], Q[i] - Q[j]> summed in 64-byte vectors, lanes added by halving (the C++ order).

    Rows must hold whole 64-byte vectors (the kernels check).  Emitted as LLVM
    vector code: Numba's own loops would not vectorize this exact order.
    """
    if not _factor_arrays(P, Q):
        return None

    def codegen(context, builder, signature, args):
        P_type, u_type, Q_type, i_type, j_type = signature.args
        pa = context.make_array(P_type)(context, builder, args[0])
        qa = context.make_array(Q_type)(context, builder, args[2])
        elem = context.get_value_type(P_type.dtype)
        itemsize = P_type.dtype.bitwidth // 8
        lanes = ALIGN // itemsize
        vector = ir.VectorType(elem, lanes)
        rows = [
            builder.bitcast(_row_pointer(context, builder, P_type, pa, u_type, args[1]), vector.as_pointer()),
            builder.bitcast(_row_pointer(context, builder, Q_type, qa, i_type, args[3]), vector.as_pointer()),
            builder.bitcast(_row_pointer(context, builder, Q_type, qa, j_type, args[4]), vector.as_pointer()),
        ]
        n_vec = builder.udiv(builder.extract_value(pa.shape, 1), context.get_constant(types.intp, lanes))
        acc = cgutils.alloca_once_value(builder, ir.Constant(vector, None))
        with cgutils.for_range(builder, n_vec) as loop:
            p, qi, qj = (builder.load(builder.gep(row, [loop.index]), align=itemsize) for row in rows)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(p, builder.fsub(qi, qj))), acc)
        total = builder.load(acc)
        half = lanes // 2
        while half:
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [lane ^ half for lane in range(lanes)])
            total = builder.fadd(total, builder.shuffle_vector(total, total, mask))
            half //= 2
        return builder.extract_element(total, ir.Constant(ir.IntType(32), 0))

    return P.dtype(P, u, Q, i, j), codegen


@intrinsic
def _lane_update(typingctx, P, u, Q, i, j, lr, reg, z):
    """The step's row updates in 64-byte vectors, each operation rounded once (the C++ code).

    p += lr (z (qi - qj) - reg p);  qi += lr (z p - reg qi);  qj += lr (-z p - reg qj),
    p on the right its value before the step.
    """
    if not _factor_arrays(P, Q):
        return None
    if not (lr == P.dtype and reg == P.dtype and z == P.dtype):
        return None

    def codegen(context, builder, signature, args):
        P_type, u_type, Q_type, i_type, j_type = signature.args[:5]
        pa = context.make_array(P_type)(context, builder, args[0])
        qa = context.make_array(Q_type)(context, builder, args[2])
        elem = context.get_value_type(P_type.dtype)
        itemsize = P_type.dtype.bitwidth // 8
        lanes = ALIGN // itemsize
        vector = ir.VectorType(elem, lanes)
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)

        def splat(value):
            one = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, one, zeros)

        lr_v, reg_v, z_v = splat(args[5]), splat(args[6]), splat(args[7])
        nz_v = builder.fneg(z_v)
        rows = [
            builder.bitcast(_row_pointer(context, builder, P_type, pa, u_type, args[1]), vector.as_pointer()),
            builder.bitcast(_row_pointer(context, builder, Q_type, qa, i_type, args[3]), vector.as_pointer()),
            builder.bitcast(_row_pointer(context, builder, Q_type, qa, j_type, args[4]), vector.as_pointer()),
        ]
        n_vec = builder.udiv(builder.extract_value(pa.shape, 1), context.get_constant(types.intp, lanes))
        with cgutils.for_range(builder, n_vec) as loop:
            at = [builder.gep(row, [loop.index]) for row in rows]
            p, qi, qj = (builder.load(a, align=itemsize) for a in at)
            fadd, fsub, fmul = builder.fadd, builder.fsub, builder.fmul
            new_p = fadd(p, fmul(lr_v, fsub(fmul(z_v, fsub(qi, qj)), fmul(reg_v, p))))
            new_qi = fadd(qi, fmul(lr_v, fsub(fmul(z_v, p), fmul(reg_v, qi))))
            new_qj = fadd(qj, fmul(lr_v, fsub(fmul(nz_v, p), fmul(reg_v, qj))))
            builder.store(new_p, at[0], align=itemsize)
            builder.store(new_qi, at[1], align=itemsize)
            builder.store(new_qj, at[2], align=itemsize)
        return context.get_dummy_value()

    return types.void(P, u, Q, i, j, lr, reg, z), codegen


@intrinsic
def _as_dtype_of(typingctx, value, array):
    """``value`` rounded to the dtype of ``array`` (a store and load would cost a memory round trip)."""
    if not (isinstance(array, types.Array) and isinstance(value, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], signature.args[1].dtype)

    return array.dtype(value, array), codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to fetch the cache line of ``array.flat[index]`` (a hint: no effect on results)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        ary = context.make_array(array_type)(context, builder, args[0])
        offset = context.cast(builder, args[1], index_type, types.intp)
        byte = ir.IntType(8).as_pointer()
        itemsize = context.get_constant(types.intp, array_type.dtype.bitwidth // 8)
        at = builder.gep(builder.bitcast(ary.data, byte), [builder.mul(offset, itemsize)])
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]), _PREFETCH
        )
        builder.call(function, [at, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _stream(seed, key):
    return mix(np.uint64(seed) + np.uint64(key) * GOLDEN)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _below(state, n):
    """(new state, index uniform in [0, n)), as _reference._Stream.below."""
    state = state + GOLDEN
    u = np.float64(mix(state) >> _S11) * 1.1102230246251565e-16  # 2^-53
    index = np.int64(u * np.float64(n))
    return state, min(index, n - 1)


@intrinsic
def _is_positive(typingctx, indices, begin, end, item):
    """Whether item is in the sorted, repeat-free indices[begin:end]: branch-free halving, as bpr.hpp.

    Written as LLVM code whose select is marked unpredictable, so that it stays
    a conditional move: the same halving in Numba compiles to branches that
    mispredict on about half the draws (26 ns a search instead of 5).
    """
    if not (isinstance(indices, types.Array) and indices.ndim == 1 and indices.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        array_type, begin_type, end_type, item_type = signature.args
        ary = context.make_array(array_type)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        lo = context.cast(builder, args[1], begin_type, types.intp)
        hi = context.cast(builder, args[2], end_type, types.intp)
        item = context.cast(builder, args[3], item_type, types.int64)
        one = ir.Constant(intp, 1)
        found = cgutils.alloca_once_value(builder, cgutils.false_bit)
        base = cgutils.alloca_once_value(builder, lo)
        n = cgutils.alloca_once_value(builder, builder.sub(hi, lo))

        def element(at):
            value = builder.load(builder.gep(ary.data, [at]))
            return context.cast(builder, value, array_type.dtype, types.int64)

        with builder.if_then(builder.icmp_signed(">", builder.load(n), ir.Constant(intp, 0))):
            check = builder.append_basic_block("search.check")
            body = builder.append_basic_block("search.body")
            done = builder.append_basic_block("search.done")
            builder.branch(check)
            builder.position_at_end(check)
            builder.cbranch(builder.icmp_signed(">", builder.load(n), one), body, done)
            builder.position_at_end(body)
            count = builder.load(n)
            half = builder.ashr(count, one)
            at = builder.load(base)
            ahead = builder.add(at, half)
            choice = builder.select(builder.icmp_signed("<=", element(ahead), item), ahead, at)
            choice.set_metadata("unpredictable", builder.module.add_metadata([]))
            builder.store(choice, base)
            builder.store(builder.sub(count, half), n)
            builder.branch(check)
            builder.position_at_end(done)
            builder.store(builder.icmp_signed("==", element(builder.load(base)), item), found)
        return builder.load(found)

    return types.boolean(indices, begin, end, item), codegen


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _draw_negative(state, indptr, indices, u, n_items, popularity, max_tries):
    """(new state, negative item of user u or -1)."""
    row_begin = indptr[u]
    row_end = indptr[u + 1]
    if row_end - row_begin >= n_items:
        return state, -1
    nnz = indices.shape[0]
    for _ in range(max_tries):
        if popularity:
            state, c = _below(state, nnz)
            candidate = np.int64(indices[c])
        else:
            state, candidate = _below(state, n_items)
        if not _is_positive(indices, row_begin, row_end, candidate):
            return state, candidate
    return state, -1


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _draw_sorted(state, nnz, n, start):
    """(new state, a group's n positives: entries uniform in [0, nnz), ascending from start, then from 0)."""
    entries = np.empty(n, dtype=np.int64)
    for k in range(n):
        state, entries[k] = _below(state, nnz)
    entries = np.sort(entries)
    split = np.searchsorted(entries, start)
    return state, np.concatenate((entries[split:], entries[:split]))


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _check_group(group):
    if group < 1:
        raise ValueError("group must be >= 1")


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _step(P, Q, bi, u, i, j, lr_t, reg_t, item_bias, scratch):
    """One SGD step on sample (u, i, j); 1 if x_ui > x_uj before it, else 0."""
    x = _lane_dot(P, u, Q, i, j)
    if item_bias:
        x = x + (bi[i] - bi[j])
    z = _as_dtype_of(1.0 / (1.0 + math.exp(np.float64(x))), P)  # exp overflows to inf: z = 0
    nz = -z
    _lane_update(P, u, Q, i, j, lr_t, reg_t, z)
    if item_bias:
        b_i = bi[i]
        b_j = bi[j]
        bi[i] = b_i + lr_t * (z - reg_t * b_i)
        bi[j] = b_j + lr_t * (nz - reg_t * b_j)
    return 1 if x > 0 else 0


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _scalars(P, Q, lr, reg):
    """lr, reg rounded to the factor dtype, and a scratch array; checks the rows' padding."""
    lanes = ALIGN // P.itemsize
    if P.shape[1] % lanes != 0 or Q.shape[1] != P.shape[1]:
        raise ValueError("P and Q: expected rows of the same length, padded to whole 64-byte vectors")
    scratch = np.empty(2, dtype=P.dtype)
    scratch[0] = lr
    scratch[1] = reg
    return scratch[0], scratch[1], scratch


@nb.njit(**NUMBA_STRICT_OPTIONS)
def bpr_draw(
    indptr,  # IN  (n_users + 1) int64 sorted positives per user
    indices,  # IN  (nnz) int32
    users,  # IN  (nnz) int32 user of every positive
    n_items,  # IN  int
    n_samples,  # IN  int
    seed,  # IN  int >= 0
    popularity,  # IN  bool
    max_tries,  # IN  int >= 1
    out_users,  # OUT (n_samples) int32
    out_items,  # OUT (n_samples) int32
    out_negatives,  # OUT (n_samples) int32, -1 for a skipped sample
    n_threads,  # IN  int >= 1: chunks
    group,  # IN  int >= 1: samples a group
):
    """The samples ``bpr_epoch`` draws (see ``_reference.bpr_draw``)."""
    nnz = indices.shape[0]
    if nnz == 0 and n_samples > 0:
        raise ValueError("indices: expected at least one positive")
    _check_group(group)
    n_threads = max(n_threads, 1)
    for t in range(n_threads):
        pos_state = _stream(seed, 2 * t + 1)
        neg_state = _stream(seed, 2 * t + 2)
        begin = n_samples * t // n_threads
        end = n_samples * (t + 1) // n_threads
        start = nnz * t // n_threads
        for first in range(begin, end, group):
            pos_state, entries = _draw_sorted(pos_state, nnz, min(group, end - first), start)
            for k in range(entries.shape[0]):
                u = users[entries[k]]
                out_users[first + k] = u
                out_items[first + k] = indices[entries[k]]
                neg_state, j = _draw_negative(neg_state, indptr, indices, u, n_items, popularity, max_tries)
                out_negatives[first + k] = j


@nb.njit(**NUMBA_STRICT_OPTIONS)
def bpr_samples(
    users,  # IN  (n) int32
    items,  # IN  (n) int32
    negatives,  # IN  (n) int32, -1 to skip
    P,  # INOUT (n_users, stride) float, stride a multiple of 64 bytes
    Q,  # INOUT (n_items, stride)
    bi,  # INOUT (n_items)
    lr,  # IN  float
    reg,  # IN  float
    item_bias,  # IN  bool
    out_stats,  # OUT (3,) float64: used, ranked right, skipped
):
    """SGD over the given samples, one after the other."""
    lr_t, reg_t, scratch = _scalars(P, Q, lr, reg)
    used = 0
    right = 0
    skipped = 0
    for s in range(users.shape[0]):
        j = negatives[s]
        if j < 0:
            skipped += 1
            continue
        right += _step(P, Q, bi, users[s], items[s], j, lr_t, reg_t, item_bias, scratch)
        used += 1
    out_stats[0] = used
    out_stats[1] = right
    out_stats[2] = skipped


AHEAD = 4  # samples between the stages of the pipeline, as kAhead in bpr.hpp
RING = 32  # slots of the pipeline, a power of two > 4 AHEAD


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _prefetch_rows(P, row, lanes):
    base = row * P.shape[1]
    for at in range(0, P.shape[1], lanes):
        _prefetch(P, base + at)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _prefetch_search(indices, row_begin, n):
    """Fetch what a binary search of the row reads, as bpr.hpp's prefetch_search."""
    if n <= 2048:
        for at in range(0, n, 16):
            _prefetch(indices, row_begin + at)
    else:
        for q in range(1, 16):
            _prefetch(indices, row_begin + n * q // 16)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _run_chunk(
    indptr,
    indices,
    users,
    P,
    Q,
    bi,
    lr,
    reg,
    item_bias,
    popularity,
    begin,
    end,
    seed,
    t,
    max_tries,
    group,
    start,  # the entry the chunk's sweeps begin at
):
    """One chunk of an epoch, group by group, pipelined as bpr.hpp's run_chunk: (used, right, skipped)."""
    lr_t, reg_t, scratch = _scalars(P, Q, lr, reg)
    lanes = ALIGN // P.itemsize
    nnz = indices.shape[0]
    n_items = Q.shape[0]
    pos_state = _stream(seed, 2 * t + 1)
    neg_state = _stream(seed, 2 * t + 2)
    su = np.empty(RING, dtype=np.int64)
    si = np.empty(RING, dtype=np.int64)
    sj = np.empty(RING, dtype=np.int64)
    mask = RING - 1
    used = 0
    right = 0
    skipped = 0
    for first in range(begin, end, group):
        pos_state, entries = _draw_sorted(pos_state, nnz, min(group, end - first), start)
        n = entries.shape[0]
        for s in range(n + 4 * AHEAD):
            if s < n:  # fetch the entry
                _prefetch(users, entries[s])
                _prefetch(indices, entries[s])
            s1 = s - AHEAD
            if s1 >= 0 and s1 < n:  # its user and item; fetch the row bounds and two rows
                e = entries[s1]
                u = users[e]
                su[s1 & mask] = u
                si[s1 & mask] = indices[e]
                _prefetch(indptr, u)
                _prefetch_rows(P, u, lanes)
                _prefetch_rows(Q, indices[e], lanes)
            s2 = s - 2 * AHEAD
            if s2 >= 0 and s2 < n:  # fetch what the negative's search reads, once per user
                u = su[s2 & mask]
                if s2 == 0 or u != su[(s2 - 1) & mask]:
                    _prefetch_search(indices, indptr[u], indptr[u + 1] - indptr[u])
            s3 = s - 3 * AHEAD
            if s3 >= 0 and s3 < n:  # draw the negative; fetch its row
                neg_state, j = _draw_negative(
                    neg_state, indptr, indices, su[s3 & mask], n_items, popularity, max_tries
                )
                sj[s3 & mask] = j
                if j >= 0:
                    _prefetch_rows(Q, j, lanes)
                    if item_bias:
                        _prefetch(bi, si[s3 & mask])
                        _prefetch(bi, j)
            s4 = s - 4 * AHEAD
            if s4 >= 0:
                slot = s4 & mask
                if sj[slot] < 0:
                    skipped += 1
                else:
                    right += _step(P, Q, bi, su[slot], si[slot], sj[slot], lr_t, reg_t, item_bias, scratch)
                    used += 1
    return used, right, skipped


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def bpr_epoch(
    indptr,  # IN  (n_users + 1) int64 sorted positives per user
    indices,  # IN  (nnz) int32
    users,  # IN  (nnz) int32 user of every positive
    P,  # INOUT (n_users, stride) float, stride a multiple of 64 bytes
    Q,  # INOUT (n_items, stride)
    bi,  # INOUT (n_items)
    lr,  # IN  float
    reg,  # IN  float
    item_bias,  # IN  bool
    popularity,  # IN  bool
    n_samples,  # IN  int
    seed,  # IN  int >= 0
    max_tries,  # IN  int >= 1
    out_stats,  # OUT (3,) float64, as bpr_samples
    n_threads,  # IN  int >= 1: chunks, one per thread, Hogwild
    group,  # IN  int >= 1: samples a group
):
    """One epoch: each chunk draws its samples group by group and steps through them as it goes."""
    if indices.shape[0] == 0 and n_samples > 0:
        raise ValueError("indices: expected at least one positive")
    _check_group(group)
    n_threads = max(n_threads, 1)
    counts = np.zeros((n_threads, 3), dtype=np.int64)
    for t in nb.prange(n_threads):
        begin = n_samples * t // n_threads
        end = n_samples * (t + 1) // n_threads
        start = indices.shape[0] * t // n_threads
        used, right, skipped = _run_chunk(
            indptr,
            indices,
            users,
            P,
            Q,
            bi,
            lr,
            reg,
            item_bias,
            popularity,
            begin,
            end,
            seed,
            t,
            max_tries,
            group,
            start,
        )
        counts[t, 0] = used
        counts[t, 1] = right
        counts[t, 2] = skipped
    for c in range(3):
        out_stats[c] = counts[:, c].sum()
