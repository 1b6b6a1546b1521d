"""Numba WARP kernel: the algorithm of ``_reference.py`` and csrc/include/fastrec/warp.hpp.

The visit order is cut into ``n_threads`` chunks that ``prange`` runs at once,
each with its own splitmix64 draw stream; the chunks update shared rows without
locks (Hogwild), as the C++ kernel does.  With one chunk the arithmetic follows
the reference step by step.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from fastrec._numba_helpers import GOLDEN, cast_like, mix
from fastrec._runtime import NUMBA_KERNEL_OPTIONS

# Helpers inlined into the chunk loop: a call or a row slice per candidate costs
# reference-count updates of the arrays, shared by the threads.
_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")

_S32 = np.uint64(32)


@intrinsic
def _prefetch(typingctx, array, row, col):
    """Prefetch the cache line of ``array[row, col]`` (2-D) for reading; no bounds check."""
    if not (isinstance(array, types.Array) and array.ndim == 2):
        return None

    def codegen(context, builder, signature, args):
        array_type, row_type, col_type = signature.args
        ary = context.make_array(array_type)(context, builder, args[0])
        r = context.cast(builder, args[1], row_type, types.intp)
        c = context.cast(builder, args[2], col_type, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [r, c])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(
            fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        )
        return context.get_dummy_value()

    return types.void(array, row, col), codegen


@nb.njit(**_INLINE)
def _prefetch_row(A, row, line):
    """Prefetch every cache line of row ``row`` of ``A`` (``line`` elements per line)."""
    for c in range(0, A.shape[1], line):
        _prefetch(A, row, c)


DRAW_AHEAD = 4  # candidates prefetched ahead of scoring, as kDrawAhead in warp.hpp
VISIT_AHEAD = 4  # visits whose rows are prefetched ahead, as kVisitAhead in warp.hpp


@nb.njit(**_INLINE)
def _is_positive(indices, begin, end, item):
    """Binary search of ``item`` in the sorted indices[begin:end]."""
    lo, hi = begin, end
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == item


@nb.njit(**_INLINE)
def _candidate(draws, explicit, cursor, state, n, n_items):
    """Candidate ``n`` (from 0) of a visit whose draws start at ``cursor`` / after ``state``."""
    if explicit:
        return np.int64(draws[cursor + n])
    z = state + np.uint64(n + 1) * GOLDEN
    return np.int64(((mix(z) >> _S32) * np.uint64(n_items)) >> _S32)


@nb.njit(**_INLINE)
def _dot(P, u, Q, i, k, zero):
    acc = zero
    for f in range(k):
        acc += P[u, f] * Q[i, f]
    return acc


@nb.njit(**_INLINE)
def _step_adagrad(P, Q, P_acc, Q_acc, u, i, j, k, L, lr, reg):
    """The adagrad step of one violating pair; every gradient at the values before the step."""
    for f in range(k):
        pf = P[u, f]
        qif = Q[i, f]
        qjf = Q[j, f]
        g_p = reg * pf - L * (qif - qjf)
        g_i = reg * qif - L * pf
        g_j = reg * qjf + L * pf
        a_p = P_acc[u, f] + g_p * g_p
        a_i = Q_acc[i, f] + g_i * g_i
        a_j = Q_acc[j, f] + g_j * g_j
        P_acc[u, f] = a_p
        Q_acc[i, f] = a_i
        Q_acc[j, f] = a_j
        P[u, f] = pf - lr * g_p / np.sqrt(a_p)
        Q[i, f] = qif - lr * g_i / np.sqrt(a_i)
        Q[j, f] = qjf - lr * g_j / np.sqrt(a_j)


@nb.njit(**_INLINE)
def _step_constant(P, Q, u, i, j, k, L, lr, reg):
    """The constant-rate step of one violating pair."""
    for f in range(k):
        pf = P[u, f]
        qif = Q[i, f]
        qjf = Q[j, f]
        P[u, f] = pf - lr * (reg * pf - L * (qif - qjf))
        Q[i, f] = qif - lr * (reg * qif - L * pf)
        Q[j, f] = qjf - lr * (reg * qjf + L * pf)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _run_chunk(
    indptr,
    indices,
    users,
    order,
    begin_at,
    end_at,
    draws,
    P,
    Q,
    bi,
    P_acc,
    Q_acc,
    bi_acc,
    k,
    lr,
    reg,
    margin,
    max_sampled,
    adagrad,
    state,
    stats,
    slot,
):
    n_items = Q.shape[0]
    lr_t, reg_t, margin_t = cast_like(lr, P), cast_like(reg, P), cast_like(margin, P)
    zero = cast_like(0.0, P)  # made once: _cast allocates
    cast = np.empty(1, dtype=P.dtype)
    explicit = draws.shape[0] > 0
    cursor = 0
    loss = 0.0
    updates = 0
    line = 64 // P.itemsize
    for position in range(begin_at, end_at):
        # the visit order is random: fetch the rows of the visits ahead
        if position + VISIT_AHEAD < end_at:
            ahead = order[position + VISIT_AHEAD]
            _prefetch_row(P, users[ahead], line)
            _prefetch_row(Q, indices[ahead], line)
            if adagrad:
                _prefetch_row(P_acc, users[ahead], line)
        t = order[position]
        u = users[t]
        i = indices[t]
        begin = indptr[u]
        end = indptr[u + 1]
        s_i = _dot(P, u, Q, i, k, zero) + bi[i]
        threshold = s_i - margin_t
        available = max_sampled
        if explicit:
            available = min(available, draws.shape[0] - cursor)
        for n in range(min(available, DRAW_AHEAD)):
            _prefetch_row(Q, _candidate(draws, explicit, cursor, state, n, n_items), line)
        n_drawn = 0
        j = -1
        s_j = s_i
        while n_drawn < available:
            if n_drawn + DRAW_AHEAD < available:
                later = _candidate(draws, explicit, cursor, state, n_drawn + DRAW_AHEAD, n_items)
                _prefetch_row(Q, later, line)
            j = _candidate(draws, explicit, cursor, state, n_drawn, n_items)
            n_drawn += 1
            s_j = _dot(P, u, Q, j, k, zero) + bi[j]
            # a positive is passed over whether or not it violates: look it up only when it does
            if s_j > threshold and not _is_positive(indices, begin, end, j):
                break
            j = -1
        if explicit:
            cursor += n_drawn
        else:
            state = state + np.uint64(n_drawn) * GOLDEN
        if j < 0:
            continue
        rank = (n_items - 1) // n_drawn
        if rank <= 1:
            continue
        weight = math.log(rank)
        cast[0] = weight  # rounded to the factor dtype without an allocation per update
        L = cast[0]
        loss += weight * np.float64(margin_t - s_i + s_j)
        updates += 1
        if adagrad:
            _step_adagrad(P, Q, P_acc, Q_acc, u, i, j, k, L, lr_t, reg_t)
        else:
            _step_constant(P, Q, u, i, j, k, L, lr_t, reg_t)
        g_bi = reg_t * bi[i] - L
        g_bj = reg_t * bi[j] + L
        if adagrad:
            bi_acc[i] += g_bi * g_bi
            bi[i] = bi[i] - lr_t * g_bi / np.sqrt(bi_acc[i])
            bi_acc[j] += g_bj * g_bj
            bi[j] = bi[j] - lr_t * g_bj / np.sqrt(bi_acc[j])
        else:
            bi[i] = bi[i] - lr_t * g_bi
            bi[j] = bi[j] - lr_t * g_bj
    stats[slot, 0] = loss
    stats[slot, 1] = updates


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def warp_epoch(
    indptr,  # IN    (n_users + 1) int64 positives of every user
    indices,  # IN    (nnz) int32, sorted within every row
    users,  # IN    (nnz) int32 row of every entry
    order,  # IN    (n_visits) int64 entries to visit, in this order
    draws,  # IN    (n_draws) int32 explicit candidates, or empty
    P,  # INOUT (n_users, stride)
    Q,  # INOUT (n_items, stride)
    bi,  # INOUT (n_items)
    P_acc,  # INOUT like P (adagrad), or empty
    Q_acc,  # INOUT like Q
    bi_acc,  # INOUT like bi
    n_factors,  # IN
    lr,  # IN
    reg,  # IN
    margin,  # IN
    max_sampled,  # IN
    adagrad,  # IN
    seed,  # IN
    out_stats,  # OUT   (3) float64: weighted hinge summed, updates, positives visited
    n_threads,  # IN    chunks of order, one draw stream each
):
    """One WARP epoch; see ``_reference.warp_epoch``."""
    n_visits = order.shape[0]
    n_chunks = 1 if draws.shape[0] > 0 else max(1, n_threads)
    stats = np.zeros((n_chunks, 2), dtype=np.float64)
    for c in nb.prange(n_chunks):
        state = mix(np.uint64(seed) + np.uint64(c + 1) * GOLDEN)
        _run_chunk(
            indptr,
            indices,
            users,
            order,
            (n_visits * c) // n_chunks,
            (n_visits * (c + 1)) // n_chunks,
            draws,
            P,
            Q,
            bi,
            P_acc,
            Q_acc,
            bi_acc,
            n_factors,
            lr,
            reg,
            margin,
            max_sampled,
            adagrad,
            state,
            stats,
            c,
        )
    out_stats[0] = 0.0
    out_stats[1] = 0.0
    for c in range(n_chunks):  # a fixed order, whatever thread ran the chunk
        out_stats[0] += stats[c, 0]
        out_stats[1] += stats[c, 1]
    out_stats[2] = n_visits


@nb.njit(**_INLINE)
def _representation(x, feature_indptr, feature_indices, feature_data, E, eb, k, out, zero):
    """q_x into ``out`` (k) and b_x returned: the item's features weighted by its values, in row order."""
    for f in range(k):
        out[f] = zero
    b = zero
    for t in range(feature_indptr[x], feature_indptr[x + 1]):
        row = feature_indices[t]
        w = feature_data[t]
        for f in range(k):
            out[f] = out[f] + w * E[row, f]
        b = b + w * eb[row]
    return b


@nb.njit(**_INLINE)
def _step_feature(E, E_acc, eb, eb_acc, row, c, sign, pu, k, lr, reg, adagrad):
    """The step of one feature of the positive (sign -1) or the violator (sign +1)."""
    for f in range(k):
        ef = E[row, f]
        g = reg * ef - c * pu[f] if sign < 0 else reg * ef + c * pu[f]
        if adagrad:
            a = E_acc[row, f] + g * g
            E_acc[row, f] = a
            E[row, f] = ef - lr * g / np.sqrt(a)
        else:
            E[row, f] = ef - lr * g
    g_b = reg * eb[row] - c if sign < 0 else reg * eb[row] + c
    if adagrad:
        eb_acc[row] += g_b * g_b
        eb[row] = eb[row] - lr * g_b / np.sqrt(eb_acc[row])
    else:
        eb[row] = eb[row] - lr * g_b


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _run_chunk_features(
    indptr,
    indices,
    users,
    order,
    begin_at,
    end_at,
    draws,
    feature_indptr,
    feature_indices,
    feature_data,
    P,
    E,
    eb,
    P_acc,
    E_acc,
    eb_acc,
    k,
    lr,
    reg,
    margin,
    max_sampled,
    adagrad,
    state,
    stats,
    slot,
):
    n_items = feature_indptr.shape[0] - 1
    lr_t, reg_t, margin_t = cast_like(lr, P), cast_like(reg, P), cast_like(margin, P)
    zero = cast_like(0.0, P)
    cast = np.empty(1, dtype=P.dtype)
    qi = np.empty(k, dtype=P.dtype)
    qj = np.empty(k, dtype=P.dtype)
    pu = np.empty(k, dtype=P.dtype)
    explicit = draws.shape[0] > 0
    cursor = 0
    loss = 0.0
    updates = 0
    for position in range(begin_at, end_at):
        t = order[position]
        u = users[t]
        i = indices[t]
        begin = indptr[u]
        end = indptr[u + 1]
        b_i = _representation(i, feature_indptr, feature_indices, feature_data, E, eb, k, qi, zero)
        s_i = zero
        for f in range(k):
            s_i += P[u, f] * qi[f]
        s_i = s_i + b_i
        threshold = s_i - margin_t
        available = max_sampled
        if explicit:
            available = min(available, draws.shape[0] - cursor)
        n_drawn = 0
        j = -1
        s_j = s_i
        while n_drawn < available:
            j = _candidate(draws, explicit, cursor, state, n_drawn, n_items)
            n_drawn += 1
            if _is_positive(indices, begin, end, j):
                j = -1
                continue
            b_j = _representation(j, feature_indptr, feature_indices, feature_data, E, eb, k, qj, zero)
            s_j = zero
            for f in range(k):
                s_j += P[u, f] * qj[f]
            s_j = s_j + b_j
            if s_j > threshold:
                break
            j = -1
        if explicit:
            cursor += n_drawn
        else:
            state = state + np.uint64(n_drawn) * GOLDEN
        if j < 0:
            continue
        rank = (n_items - 1) // n_drawn
        if rank <= 1:
            continue
        weight = math.log(rank)
        cast[0] = weight
        L = cast[0]
        loss += weight * np.float64(margin_t - s_i + s_j)
        updates += 1
        for f in range(k):
            pf = P[u, f]
            pu[f] = pf
            g_p = reg_t * pf - L * (qi[f] - qj[f])
            if adagrad:
                a = P_acc[u, f] + g_p * g_p
                P_acc[u, f] = a
                P[u, f] = pf - lr_t * g_p / np.sqrt(a)
            else:
                P[u, f] = pf - lr_t * g_p
        for side in range(2):  # the positive's features, then the violator's
            x = np.int64(i) if side == 0 else np.int64(j)
            sign = -1 if side == 0 else 1
            for e in range(feature_indptr[x], feature_indptr[x + 1]):
                c = feature_data[e] * L
                _step_feature(E, E_acc, eb, eb_acc, feature_indices[e], c, sign, pu, k, lr_t, reg_t, adagrad)
    stats[slot, 0] = loss
    stats[slot, 1] = updates


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def warp_epoch_features(
    indptr,  # IN    (n_users + 1) int64 positives of every user
    indices,  # IN    (nnz) int32, sorted within every row
    users,  # IN    (nnz) int32 row of every entry
    order,  # IN    (n_visits) int64 entries to visit, in this order
    draws,  # IN    (n_draws) int32 explicit candidates, or empty
    feature_indptr,  # IN    (n_items + 1) int64 features of every item
    feature_indices,  # IN    int32
    feature_data,  # IN    the factor dtype
    P,  # INOUT (n_users, stride)
    E,  # INOUT (n_features, stride)
    eb,  # INOUT (n_features)
    P_acc,  # INOUT like P (adagrad), or empty
    E_acc,  # INOUT like E
    eb_acc,  # INOUT like eb
    n_factors,  # IN
    lr,  # IN
    reg,  # IN
    margin,  # IN
    max_sampled,  # IN
    adagrad,  # IN
    seed,  # IN
    out_stats,  # OUT   (3) float64
    n_threads,  # IN
):
    """One WARP epoch with feature-based items; see ``_reference.warp_epoch_features``."""
    n_visits = order.shape[0]
    n_chunks = 1 if draws.shape[0] > 0 else max(1, n_threads)
    stats = np.zeros((n_chunks, 2), dtype=np.float64)
    for c in nb.prange(n_chunks):
        state = mix(np.uint64(seed) + np.uint64(c + 1) * GOLDEN)
        _run_chunk_features(
            indptr,
            indices,
            users,
            order,
            (n_visits * c) // n_chunks,
            (n_visits * (c + 1)) // n_chunks,
            draws,
            feature_indptr,
            feature_indices,
            feature_data,
            P,
            E,
            eb,
            P_acc,
            E_acc,
            eb_acc,
            n_factors,
            lr,
            reg,
            margin,
            max_sampled,
            adagrad,
            state,
            stats,
            c,
        )
    out_stats[0] = 0.0
    out_stats[1] = 0.0
    for c in range(n_chunks):
        out_stats[0] += stats[c, 0]
        out_stats[1] += stats[c, 1]
    out_stats[2] = n_visits
