"""Numba SGD matrix factorization: the algorithm of csrc/include/fastrec/mf.hpp.

The strata of the schedule run one after another; the blocks of a stratum share
no user and no item, so ``prange`` runs them in parallel without locks and the
model does not depend on which thread ran which block.  (The C++ kernel lets a
block start as soon as the earlier blocks of its row and column groups are
done, without barriers between strata; the model is the same for a schedule.)
Within a block the runs of each user's ratings are shuffled (when asked) and
walked in lanes with the same splitmix64 stream as the C++ kernel, so all
backends visit ratings in the same order.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._numba_helpers import GOLDEN, cast_like, mix
from fastrec._runtime import NUMBA_KERNEL_OPTIONS

_S32 = np.uint64(32)


VISIT_LANES = 4  # lanes of the visit order, as kVisitLanes in mf.hpp
RUN_WINDOW = 16  # runs per window of the run order, as kRunWindow in mf.hpp


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _draw_index(state, i):
    state = state + GOLDEN
    return state, np.int64(((mix(state) >> _S32) * np.uint64(i + 1)) >> _S32)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _find_runs(users, begin, end):
    """Starts of the runs of equal users in [begin, end), then end."""
    starts = np.empty(end - begin + 1, dtype=np.int64)
    n = 0
    for t in range(begin, end):
        if t == begin or users[t] != users[t - 1]:
            starts[n] = t
            n += 1
    starts[n] = end
    return starts[: n + 1]


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _shuffle_runs(items, ratings, starts, seed, within_runs, block):
    """Shuffle every run in place if within_runs; return the run visit order (see _reference)."""
    n_runs = starts.shape[0] - 1
    if seed < 0:
        return np.arange(n_runs)
    state = mix(np.uint64(seed) + np.uint64(block + 1) * GOLDEN)
    if within_runs:
        for r in range(n_runs):
            for i in range(starts[r + 1] - starts[r] - 1, 0, -1):
                state, j = _draw_index(state, i)
                a = starts[r] + i
                b = starts[r] + j
                items[a], items[b] = items[b], items[a]
                ratings[a], ratings[b] = ratings[b], ratings[a]
    return _draw_run_order(state, n_runs)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _shuffle_indices(state, order):
    """Fisher-Yates shuffle of ``order`` in place; returns the new state."""
    for i in range(order.shape[0] - 1, 0, -1):
        state, j = _draw_index(state, i)
        order[i], order[j] = order[j], order[i]
    return state


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _draw_run_order(state, n_runs):
    """The run visit order, drawn in windows of RUN_WINDOW (see _reference)."""
    windows = np.arange((n_runs + RUN_WINDOW - 1) // RUN_WINDOW)
    state = _shuffle_indices(state, windows)
    run_order = np.empty(n_runs, dtype=np.int64)
    at = 0
    for w in windows:
        n = min(RUN_WINDOW, n_runs - w * RUN_WINDOW)
        for r in range(n):
            run_order[at + r] = w * RUN_WINDOW + r
        state = _shuffle_indices(state, run_order[at : at + n])
        at += n
    return run_order


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _visit_order(starts, run_order, n_ratings):
    """The block's ratings in visit order: VISIT_LANES lanes walk the runs."""
    order = np.empty(n_ratings, dtype=np.int64)
    cursor = np.zeros(VISIT_LANES, dtype=np.int64)
    end = np.zeros(VISIT_LANES, dtype=np.int64)
    next_run = 0
    for lane in range(VISIT_LANES):
        if next_run < run_order.shape[0]:
            cursor[lane] = starts[run_order[next_run]]
            end[lane] = starts[run_order[next_run] + 1]
            next_run += 1
    n = 0
    while n < n_ratings:
        for lane in range(VISIT_LANES):
            if cursor[lane] < end[lane]:
                order[n] = cursor[lane]
                n += 1
                cursor[lane] += 1
        for lane in range(VISIT_LANES):
            if cursor[lane] >= end[lane]:
                cursor[lane] = 0
                end[lane] = 0
                if next_run < run_order.shape[0]:
                    cursor[lane] = starts[run_order[next_run]]
                    end[lane] = starts[run_order[next_run] + 1]
                    next_run += 1
    return order


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _run_block(
    users,
    items,
    ratings,
    order,
    P,
    Q,
    bu,
    bi,
    n_factors,
    mu,
    lr,
    reg,
    lr_bias,
    reg_bias,
    biased,
    non_negative,
):
    # The padding lanes after n_factors hold zeros and add nothing: skip them.
    # Scalars in the factor dtype, rounded as the C++ kernel rounds them.
    zero = cast_like(0.0, P)
    shrink = cast_like(1.0, P) - cast_like(lr * reg, P)
    lr_t = cast_like(lr, P)
    lr_b = cast_like(lr_bias, P)
    reg_b = cast_like(reg_bias, P)
    mu_t = cast_like(mu, P)
    sse = 0.0
    for t in order:
        u = users[t]
        i = items[t]
        p = P[u]
        q = Q[i]
        dot = zero
        for f in range(n_factors):
            dot += p[f] * q[f]
        base = zero
        if biased:
            base = (mu_t + bu[u]) + bi[i]
        err = ratings[t] - (base + dot)
        sse += np.float64(err) * np.float64(err)
        if biased:
            bu[u] += lr_b * (err - reg_b * bu[u])
            bi[i] += lr_b * (err - reg_b * bi[i])
        step = lr_t * err
        if non_negative:
            for f in range(n_factors):
                pf = p[f]
                qf = q[f]
                p[f] = max(pf * shrink + step * qf, zero)
                q[f] = max(qf * shrink + step * pf, zero)
        else:
            for f in range(n_factors):
                pf = p[f]
                qf = q[f]
                p[f] = pf * shrink + step * qf
                q[f] = qf * shrink + step * pf
    return sse


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _train_block(
    block,
    users,
    items,
    ratings,
    block_ptr,
    P,
    Q,
    bu,
    bi,
    n_factors,
    mu,
    lr,
    reg,
    lr_bias,
    reg_bias,
    biased,
    non_negative,
    shuffle_seed,
    shuffle_within_runs,
    out_block_sse,
):
    """Shuffle its runs (when asked) and train one block of the schedule; -1 is an empty slot."""
    if block < 0:
        return
    begin = block_ptr[block]
    end = block_ptr[block + 1]
    starts = _find_runs(users, begin, end)
    run_order = _shuffle_runs(items, ratings, starts, shuffle_seed, shuffle_within_runs, block)
    order = _visit_order(starts, run_order, end - begin)
    out_block_sse[block] = _run_block(
        users,
        items,
        ratings,
        order,
        P,
        Q,
        bu,
        bi,
        n_factors,
        mu,
        lr,
        reg,
        lr_bias,
        reg_bias,
        biased,
        non_negative,
    )


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def sgd_mf_epoch(
    users,
    items,
    ratings,  # INOUT (nnz) int32, int32, float: ratings grouped by block
    block_ptr,  # IN  (n_blocks + 1) int64 block offsets
    schedule,  # IN  (n_strata, width) int64 block ids, -1 = empty slot
    P,
    Q,  # INOUT (n_users, stride), (n_items, stride) factors, zero padding
    bu,
    bi,  # INOUT (n_users), (n_items) biases
    n_factors,  # IN  factors per row; the lanes after them are padding
    mu,
    lr,
    reg,
    lr_bias,
    reg_bias,  # IN  floats
    biased,
    non_negative,
    hogwild,  # IN  bools
    shuffle_seed,  # IN  >= 0: draw the run order of every block; < 0: as stored
    shuffle_within_runs,  # IN  bool: with shuffle_seed >= 0, first shuffle every run in place
    out_block_sse,  # OUT (n_blocks) float64 squared errors met during the epoch
    n_threads,  # IN  threads (set by the caller through numba.set_num_threads)
):
    out_block_sse[:] = 0.0
    n_strata, width = schedule.shape
    if hogwild:  # every block at once, lock-free
        flat = schedule.reshape(-1)
        for slot in nb.prange(flat.shape[0]):
            _train_block(
                flat[slot],
                users,
                items,
                ratings,
                block_ptr,
                P,
                Q,
                bu,
                bi,
                n_factors,
                mu,
                lr,
                reg,
                lr_bias,
                reg_bias,
                biased,
                non_negative,
                shuffle_seed,
                shuffle_within_runs,
                out_block_sse,
            )
        return
    for s in range(n_strata):  # strata in turn; a stratum's blocks share no user or item
        for w in nb.prange(width):
            _train_block(
                schedule[s, w],
                users,
                items,
                ratings,
                block_ptr,
                P,
                Q,
                bu,
                bi,
                n_factors,
                mu,
                lr,
                reg,
                lr_bias,
                reg_bias,
                biased,
                non_negative,
                shuffle_seed,
                shuffle_within_runs,
                out_block_sse,
            )


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def group_by_block(
    users,
    items,
    ratings,  # IN  (nnz) int32, int32, float
    order,  # IN  (nnz) int64 visit order, or empty for 0..nnz-1
    user_block,
    item_block,  # IN  (n_users), (n_items) int64 row group x side, column group
    user_row,
    item_row,  # IN  (n_users), (n_items) int32 training rows
    out_users,
    out_items,
    out_ratings,  # OUT (nnz) grouped by block
    block_ptr,  # OUT (n_blocks + 1) int64
):
    nnz = users.shape[0]
    ordered = order.shape[0] > 0
    block_ptr[:] = 0
    for k in range(nnz):
        t = order[k] if ordered else k
        block_ptr[user_block[users[t]] + item_block[items[t]] + 1] += 1
    for b in range(block_ptr.shape[0] - 1):
        block_ptr[b + 1] += block_ptr[b]
    cursor = block_ptr[:-1].copy()
    for k in range(nnz):
        t = order[k] if ordered else k
        b = user_block[users[t]] + item_block[items[t]]
        at = cursor[b]
        cursor[b] = at + 1
        out_users[at] = user_row[users[t]]
        out_items[at] = item_row[items[t]]
        out_ratings[at] = ratings[t]


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def mf_predict(
    P,
    Q,
    bu,
    bi,  # IN  factors and biases
    mu,
    biased,  # IN
    users,
    items,  # IN  (n) int32 inner indices, -1 = unknown
    out,  # OUT (n)
    n_threads,  # IN  threads (set by the caller)
):
    stride = P.shape[1]
    mu_t = cast_like(mu, P)
    for t in nb.prange(users.shape[0]):
        u = users[t]
        i = items[t]
        value = mu_t
        if biased:
            if u >= 0:
                value += bu[u]
            if i >= 0:
                value += bi[i]
        if u >= 0 and i >= 0:
            dot = cast_like(0.0, P)
            for f in range(stride):
                dot += P[u, f] * Q[i, f]
            value += dot
        out[t] = value
