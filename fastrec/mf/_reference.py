"""numpy reference of the SGD matrix factorization kernels: plain per-rating loops.

These define what the C++ (csrc/include/fastrec/mf.hpp) and Numba
(``_numba.py``) kernels compute.  They are slow (Python-level loop per rating)
and meant for tiny data and tests.  Arithmetic is done in the factor dtype, in the
same order as the compiled kernels, so results agree within float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fastrec._draws import GOLDEN, MASK, mix


def block_state(seed: int, block: int) -> int:
    """Generator state of one block for one epoch (same as ``sgd_rng::block_state``)."""
    return mix((seed + (block + 1) * GOLDEN) & MASK)


VISIT_LANES = 4  # lanes of the visit order, as ``kVisitLanes`` in mf.hpp
RUN_WINDOW = 16  # runs per window of the run order, as ``kRunWindow`` in mf.hpp


def _draw_index(state: int, i: int) -> tuple[int, int]:
    """(new state, j uniform in [0, i]): one step of the shared generator."""
    state = (state + GOLDEN) & MASK
    return state, ((mix(state) >> 32) * (i + 1)) >> 32


def find_runs(users, begin: int, end: int) -> list[int]:
    """Starts of the runs of equal users in ``[begin, end)``, then ``end``."""
    starts = [t for t in range(begin, end) if t == begin or users[t] != users[t - 1]]
    return starts + [end]


def shuffle_runs(items, ratings, starts: list[int], seed: int, within_runs: bool, block: int) -> list[int]:
    """Shuffle every run in place (INOUT items, ratings) if ``within_runs``; return the run order.

    A negative seed keeps the stored order and visits the runs as stored.
    """
    n_runs = len(starts) - 1
    if seed < 0:
        return list(range(n_runs))
    state = block_state(seed, block)
    if within_runs:
        for r in range(n_runs):
            for i in range(starts[r + 1] - starts[r] - 1, 0, -1):
                state, j = _draw_index(state, i)
                a, b = starts[r] + i, starts[r] + j
                items[a], items[b] = items[b], items[a]
                ratings[a], ratings[b] = ratings[b], ratings[a]
    return draw_run_order(state, n_runs)


def _shuffled(state: int, values: Iterable[int]) -> tuple[int, list[int]]:
    """(new state, ``values`` after a Fisher-Yates shuffle from the shared generator)."""
    values = list(values)
    for i in range(len(values) - 1, 0, -1):
        state, j = _draw_index(state, i)
        values[i], values[j] = values[j], values[i]
    return state, values


def draw_run_order(state: int, n_runs: int) -> list[int]:
    """The visit order of ``n_runs`` runs, drawn in windows of RUN_WINDOW.

    The runs are cut into windows of RUN_WINDOW neighbours (the last one
    shorter); the windows come in random order and, as each comes, its runs in
    random order.  Neighbouring runs lie close together in memory, which is
    what the compiled kernels gain from.
    """
    state, windows = _shuffled(state, range(-(-n_runs // RUN_WINDOW)))
    run_order = []
    for w in windows:
        state, runs = _shuffled(state, range(w * RUN_WINDOW, min(n_runs, (w + 1) * RUN_WINDOW)))
        run_order += runs
    return run_order


def visit_order(starts: list[int], run_order: list[int]) -> list[int]:
    """The ratings of a block in visit order: VISIT_LANES lanes walk the runs.

    A lane whose run is used up takes the next run of ``run_order`` (lanes in
    order); every step visits the next rating of each active lane, lanes in order.
    """
    lanes = [[0, 0] for _ in range(VISIT_LANES)]  # [cursor, end] per lane
    next_run = 0

    def take_run(lane: list[int]) -> None:
        nonlocal next_run
        lane[0] = lane[1] = 0
        if next_run < len(run_order):
            r = run_order[next_run]
            next_run += 1
            lane[0], lane[1] = starts[r], starts[r + 1]

    for lane in lanes:
        take_run(lane)
    order: list[int] = []
    while True:
        step = [lane for lane in lanes if lane[0] < lane[1]]
        if not step:
            return order
        for lane in step:
            order.append(lane[0])
            lane[0] += 1
        for lane in lanes:
            if lane[0] >= lane[1]:
                take_run(lane)


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
    dtype = P.dtype.type
    shrink = dtype(1) - dtype(lr * reg)  # as the kernels: 1 - (lr * reg) rounded once
    lr, lr_bias, reg_bias, mu = dtype(lr), dtype(lr_bias), dtype(reg_bias), dtype(mu)
    sse = 0.0
    for t in order:
        u, i = users[t], items[t]
        p, q = P[u, :n_factors].copy(), Q[i, :n_factors].copy()
        base = (mu + bu[u]) + bi[i] if biased else dtype(0)
        err = ratings[t] - (base + np.dot(p, q))
        sse += float(err) * float(err)
        if biased:
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
        step = lr * err
        new_p, new_q = p * shrink + step * q, q * shrink + step * p
        if non_negative:
            np.maximum(new_p, 0, out=new_p)
            np.maximum(new_q, 0, out=new_q)
        P[u, :n_factors], Q[i, :n_factors] = new_p, new_q
    return sse


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
    hogwild,  # IN  bools (hogwild only changes threading)
    shuffle_seed,  # IN  >= 0: draw the run order of every block; < 0: as stored
    shuffle_within_runs,  # IN  bool: with shuffle_seed >= 0, first shuffle every run in place
    out_block_sse,  # OUT (n_blocks) float64 squared errors met during the epoch
    n_threads,  # IN  unused: the reference runs serially in schedule order
):
    """One epoch of SGD, serially in schedule order (see mf.hpp for the contract)."""
    out_block_sse[:] = 0.0
    for block in np.asarray(schedule).reshape(-1):
        block = int(block)
        if block < 0:
            continue
        starts = find_runs(users, int(block_ptr[block]), int(block_ptr[block + 1]))
        run_order = shuffle_runs(items, ratings, starts, int(shuffle_seed), bool(shuffle_within_runs), block)
        order = visit_order(starts, run_order)
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
    """Stable counting sort of the ratings by block (the contract in mf.hpp)."""
    visit = np.arange(users.shape[0]) if order.shape[0] == 0 else order
    key = user_block[users[visit]] + item_block[items[visit]]
    by_block = visit[np.argsort(key, kind="stable")]
    out_users[:] = user_row[users[by_block]]
    out_items[:] = item_row[items[by_block]]
    out_ratings[:] = ratings[by_block]
    block_ptr[0] = 0
    np.cumsum(np.bincount(key, minlength=block_ptr.shape[0] - 1), out=block_ptr[1:])


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
    n_threads,  # IN  unused
):
    """r_hat for every pair; an unknown side contributes neither bias nor factors."""
    dtype = P.dtype.type
    for t in range(users.shape[0]):
        u, i = int(users[t]), int(items[t])
        value = dtype(mu)
        if biased:
            if u >= 0:
                value += bu[u]
            if i >= 0:
                value += bi[i]
        if u >= 0 and i >= 0:
            value += np.dot(P[u], Q[i])
        out[t] = value
