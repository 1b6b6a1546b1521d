"""MatrixFactorization: kernels against the reference, determinism, accuracy, API, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant

import fastrec
from fastrec import MatrixFactorization, _runtime
from fastrec.base import NotFittedError
from fastrec.mf import DivergenceError, _numba, _reference
from fastrec.mf.grid import (
    aligned_zeros,
    arrange_blocks,
    grid_groups,
    make_schedules,
    padded_width,
    standard_normal,
)
from fastrec.mf.model import INIT_CHUNK_ROWS, INIT_CHUNKS_PER_THREAD
from fastrec.recommenders import UnknownIdError

BACKENDS = list(_runtime.available_backends())
COMPILED = [b for b in BACKENDS if b != "numpy"]


def kernel(backend):
    if backend == "cpp":
        return _runtime._cpp.sgd_mf_epoch
    return {"numba": _numba.sgd_mf_epoch, "numpy": _reference.sgd_mf_epoch}[backend]


def make_grid(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_threads: int,
    rng: np.random.Generator,
    row_bytes: int = 0,
):
    """The grid of :func:`grid_groups` as a permutation of the ratings.

    The layout the ``group_by_block`` kernels must give (training arranges the
    ratings with them), written independently of any backend.

    Returns
    -------
    side : int
    order : ndarray of int64, shape (nnz,)
        Permutation that groups the ratings by block, and within a block by
        user (stable within a user's ratings).
    block_ptr : ndarray of int64, shape (side * side + 1,)
    user_order, item_order : ndarray of int64, or None for a 1 x 1 grid
    """
    grid = grid_groups(users, items, n_users, n_items, n_threads, rng, row_bytes)
    side = grid.side
    by_user = np.arange(users.size) if grid.by_user is None else grid.by_user
    key = (grid.user_group * side)[users[by_user]] + grid.item_group[items[by_user]]
    order = by_user[np.argsort(key, kind="stable")]
    block_ptr = np.zeros(side * side + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=side * side), out=block_ptr[1:])
    return side, order, block_ptr, grid.user_order, grid.item_order


def low_rank(n_users=120, n_items=90, n_ratings=3000, rank=4, noise=0.1, seed=0):
    """Continuous ratings mu + b_u + b_i + p.q + N(0, noise^2), ids as int arrays."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    users, items = np.divmod(keys, n_items)
    P = rng.normal(0, 0.6, (n_users, rank))
    Q = rng.normal(0, 0.6, (n_items, rank))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    values = 3.0 + bu[users] + bi[items] + np.einsum("ij,ij->i", P[users], Q[items])
    values += rng.normal(0, noise, n_ratings)
    return users, items, values


def kernel_problem(dtype, n_factors=5, seed=0, side=1, by_user=False):
    users, items, values = low_rank(n_ratings=600, seed=seed)
    n_users, n_items = users.max() + 1, items.max() + 1
    rng = np.random.default_rng(seed)
    stride = padded_width(n_factors, dtype)
    P, Q = aligned_zeros(n_users, stride, dtype), aligned_zeros(n_items, stride, dtype)
    P[:, :n_factors] = rng.normal(0, 0.1, (n_users, n_factors))
    Q[:, :n_factors] = rng.normal(0, 0.1, (n_items, n_factors))
    if side == 1:
        order = rng.permutation(users.size)  # the stored order, made in Python
        if by_user:  # long runs: each user's ratings together, in random order
            order = order[np.argsort(users[order], kind="stable")]
        block_ptr = np.array([0, users.size], dtype=np.int64)
        schedule = np.zeros((1, 1), dtype=np.int64)
    else:
        side, order, block_ptr, _, _ = make_grid(users, items, n_users, n_items, side // 2, rng)
        schedule = make_schedules(side, 1, rng)[0]
    return {
        "users": users[order].astype(np.int32),
        "items": items[order].astype(np.int32),
        "ratings": values[order].astype(dtype),
        "block_ptr": block_ptr,
        "schedule": schedule,
        "P": P,
        "Q": Q,
        "bu": np.zeros(n_users, dtype),
        "bi": np.zeros(n_items, dtype),
        "n_factors": n_factors,
    }


def run_kernel(
    backend,
    problem,
    *,
    epochs=3,
    shuffle_seed=-1,
    within_runs="first",
    n_threads=1,
    biased=True,
    non_negative=False,
    lr=0.02,
    reg=0.05,
):
    """``epochs`` kernel epochs on a copy of ``problem``; the ratings within the runs are
    shuffled on every epoch (``within_runs=True``), never, or on the first only, as fit does."""
    state = {key: np.copy(value) for key, value in problem.items()}
    for name in ("P", "Q"):  # copies must stay 64-byte aligned
        aligned = aligned_zeros(*state[name].shape, state[name].dtype)
        aligned[...] = state[name]
        state[name] = aligned
    sse = np.zeros(state["block_ptr"].size - 1)
    total = []
    with _runtime.kernel_threads(backend, n_threads):
        for epoch in range(epochs):
            seed = -1 if shuffle_seed < 0 else shuffle_seed + epoch
            within = within_runs is True or (within_runs == "first" and epoch == 0)
            kernel(backend)(
                state["users"],
                state["items"],
                state["ratings"],
                state["block_ptr"],
                state["schedule"],
                state["P"],
                state["Q"],
                state["bu"],
                state["bi"],
                problem["n_factors"],
                3.0 if biased else 0.0,
                lr,
                reg,
                lr / 2,
                reg,
                biased,
                non_negative,
                False,
                seed,
                within,
                sse,
                n_threads,
            )
            total.append(sse.sum())
    state["sse"] = np.array(total)
    return state


def sgd_atol(want: np.ndarray, dtype) -> float:
    """Absolute tolerance between two backends' factors or biases after a few epochs of SGD.

    The backends sum each dot product in their own order (numpy's BLAS, the C++ SIMD
    lanes with FMA, Numba's loop), so a rating's error differs in its last bits and the
    updates carry that on: after 2-3 epochs the arrays differ by up to 6 roundings of
    their largest value, in float32 and float64 alike.  32 roundings leave a margin of 5.
    """
    return 32 * np.finfo(dtype).eps * float(np.abs(want).max())


# The squared errors of an epoch add up in float64 in every backend: they differ by
# the float32 error terms (about eps / 4 relative) or, in float64, by the order of
# the sums (about 1.3 eps).
SSE_RTOL = {np.float32: 2 * np.finfo(np.float32).eps, np.float64: 8 * np.finfo(np.float64).eps}


def formula(model, users, items):
    """(mu + b_u + b_i + p_u . q_i in float64, the sum of the terms' magnitudes) per pair.

    Computed from a biased model's parameters by raw id; an unknown user or item
    contributes neither bias nor factors.
    """
    assert model.biased  # an unbiased model predicts the global mean for unknown ids
    u = model._user_map.lookup(np.asarray(users))
    i = model._item_map.lookup(np.asarray(items))
    P = model.user_factors_.astype(np.float64)[u]
    Q = model.item_factors_.astype(np.float64)[i]
    bu = np.where(u >= 0, model.user_bias_.astype(np.float64)[u], 0.0)
    bi = np.where(i >= 0, model.item_bias_.astype(np.float64)[i], 0.0)
    both = (u >= 0) & (i >= 0)
    dot = np.where(both, np.einsum("ij,ij->i", P, Q), 0.0)
    size = np.where(both, np.einsum("ij,ij->i", np.abs(P), np.abs(Q)), 0.0)
    mu = float(model.global_mean_)
    return mu + bu + bi + dot, abs(mu) + np.abs(bu) + np.abs(bi) + size


def assert_predictions_equal_formula(got, model, users, items):
    """``got`` is :func:`formula` rounded in the model dtype.

    A sum of a few terms in the model dtype is within about one rounding of the
    magnitudes added (measured: at most 1.03); 4 roundings leave a margin of 4.
    """
    want, size = formula(model, users, items)
    bound = 4 * np.finfo(model.user_factors_.dtype).eps * size
    excess = np.abs(np.asarray(got, np.float64) - want) - bound
    assert excess.max() <= 0, f"prediction {excess.argmax()} is {excess.max():.3g} beyond the rounding bound"


# -- kernels ---------------------------------------------------------------------------


def test_visit_order_walks_runs_in_lanes():
    # runs [0, 3), [3, 4), [4, 6), [6, 9), [9, 10) in the order 0, 1, 2, 3, 4; four lanes
    starts = [0, 3, 4, 6, 9, 10]
    assert _reference.VISIT_LANES == 4
    got = _reference.visit_order(starts, [0, 1, 2, 3, 4])
    # step 1: lanes take runs 0..3 -> 0, 3, 4, 6; lane 1 then takes run 4
    # step 2: 1, 9, 5, 7; step 3: 2, 8
    assert got == [0, 3, 4, 6, 1, 9, 5, 7, 2, 8]
    assert _reference.visit_order(starts, [4, 3, 2, 1, 0])[:4] == [9, 6, 4, 3]


def test_find_runs_and_shuffle_runs_keep_runs_together():
    users = np.array([5, 5, 5, 2, 7, 7, 1, 1, 1, 1])
    starts = _reference.find_runs(users, 0, users.size)
    assert starts == [0, 3, 4, 6, 10]
    items = np.arange(10)
    ratings = np.arange(10, dtype=np.float64) * 10
    order = _reference.shuffle_runs(items, ratings, starts, seed=0, within_runs=True, block=0)
    assert sorted(order) == [0, 1, 2, 3]
    for r in range(4):  # each run keeps its own ratings, paired as before
        run = slice(starts[r], starts[r + 1])
        assert sorted(items[run]) == list(range(starts[r], starts[r + 1]))
    np.testing.assert_array_equal(ratings, items * 10.0)
    assert not np.array_equal(items, np.arange(10))
    # a negative seed keeps everything as stored
    items2 = np.arange(10)
    assert _reference.shuffle_runs(items2, ratings.copy(), starts, seed=-1, within_runs=True, block=0) == [
        0,
        1,
        2,
        3,
    ]
    np.testing.assert_array_equal(items2, np.arange(10))
    # without within_runs the runs keep their stored order, and only the run order is drawn
    orders = set()
    for seed in range(8):
        order = _reference.shuffle_runs(items2, ratings, starts, seed=seed, within_runs=False, block=0)
        assert sorted(order) == [0, 1, 2, 3]
        orders.add(tuple(order))
    np.testing.assert_array_equal(items2, np.arange(10))
    assert len(orders) > 1


@pytest.mark.parametrize("backend, level", compiled_variants())  # cpp at every SIMD level
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"biased": False}, {"non_negative": True}])
@pytest.mark.parametrize("by_user", [False, True])
# 5 and 14 leave room for the biases in the padding of a float32 row (C++ carries
# them there); 15 leaves one spare lane, and the kernel keeps them as scalars.
@pytest.mark.parametrize("n_factors", [5, 14, 15])
def test_kernel_matches_reference_on_python_visit_order(backend, level, dtype, options, by_user, n_factors):
    problem = kernel_problem(dtype, n_factors=n_factors, by_user=by_user)
    expected = run_kernel("numpy", problem, **options)
    with variant(level):
        got = run_kernel(backend, problem, **options)
    for key in ("P", "Q", "bu", "bi"):
        atol = sgd_atol(expected[key], dtype)
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=atol, err_msg=key)
    np.testing.assert_allclose(got["sse"], expected["sse"], rtol=SSE_RTOL[dtype], atol=0)
    np.testing.assert_array_equal(got["users"], problem["users"])  # no shuffle asked
    if options.get("non_negative"):
        assert got["P"].min() >= 0 and got["Q"].min() >= 0
    assert not got["P"][:, n_factors:].any(), "padding lanes must stay zero"
    assert not got["Q"][:, n_factors:].any(), "padding lanes must stay zero"


def test_run_order_is_drawn_in_windows_of_neighbouring_runs():
    width = _reference.RUN_WINDOW
    window_sequences = set()
    for seed in range(6):
        state = _reference.block_state(seed, 2)
        for n_runs in (1, width - 1, width, 3 * width + 5):
            order = _reference.draw_run_order(state, n_runs)
            assert sorted(order) == list(range(n_runs))
            # the order is a sequence of whole windows of neighbouring runs
            at, windows = 0, []
            while at < n_runs:
                first = order[at] // width * width
                size = min(width, n_runs - first)
                assert sorted(order[at : at + size]) == list(range(first, first + size))
                windows.append(first // width)
                at += size
            if n_runs > width:
                window_sequences.add(tuple(windows))
                assert order[:width] != sorted(order[:width])  # runs shuffled in a window
            # Numba draws the same order from the same state
            np.testing.assert_array_equal(_numba._draw_run_order(np.uint64(state), n_runs), order)
    assert len(window_sequences) > 3  # the windows come in a different order per seed


@pytest.mark.parametrize("backend", COMPILED)
# side 4: a few dozen runs per block; side 1: one block of hundreds of short runs,
# so the run order spans many windows
@pytest.mark.parametrize("side", [1, 4])
@pytest.mark.parametrize("within_runs", [True, "first", False])
def test_kernel_shuffle_is_the_same_in_every_backend(backend, side, within_runs):
    problem = kernel_problem(np.float32, side=side)
    expected = run_kernel("numpy", problem, epochs=2, shuffle_seed=11, within_runs=within_runs)
    got = run_kernel(backend, problem, epochs=2, shuffle_seed=11, within_runs=within_runs)
    for key in ("users", "items", "ratings"):
        np.testing.assert_array_equal(got[key], expected[key])
    np.testing.assert_array_equal(got["users"], problem["users"])  # runs stay in place
    # the ratings move within their runs only when asked
    assert np.array_equal(got["items"], problem["items"]) == (within_runs is False)
    # every user keeps its own (item, rating) pairs
    before = sorted(zip(problem["users"], problem["items"], problem["ratings"]))
    assert sorted(zip(got["users"], got["items"], got["ratings"])) == before
    for key in ("P", "Q", "bu", "bi"):
        atol = sgd_atol(expected[key], np.float32)
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=atol, err_msg=key)


@pytest.mark.parametrize("backend", [b for b in COMPILED if b == "cpp"])
@pytest.mark.parametrize("n_factors", [0, 17])
def test_cpp_kernel_rejects_n_factors_outside_the_row(backend, n_factors):
    problem = kernel_problem(np.float32)  # rows of 16 lanes
    problem["n_factors"] = n_factors
    with pytest.raises(ValueError, match="n_factors: expected 1 <= n_factors"):
        run_kernel(backend, problem, epochs=1)


@pytest.mark.parametrize("backend", COMPILED)
def test_kernel_result_does_not_depend_on_thread_count_for_a_fixed_grid(backend):
    problem = kernel_problem(np.float32, side=4)
    one = run_kernel(backend, problem, shuffle_seed=3, n_threads=1)
    two = run_kernel(backend, problem, shuffle_seed=3, n_threads=2)
    for key in ("P", "Q", "bu", "bi", "sse"):
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


def test_grid_blocks_share_no_user_or_item_within_a_stratum():
    users, items, _ = low_rank(n_ratings=2000)
    side, order, ptr, user_order, item_order = make_grid(users, items, 120, 90, 2, np.random.default_rng(0))
    assert side == 4 and ptr[-1] == users.size
    # each row group is one contiguous run of user_order (its rows are adjacent in
    # training), so the runs of different groups do not overlap
    user_rank = np.argsort(user_order)
    runs = []
    for r in range(side):
        ranks = np.concatenate(
            [user_rank[users[order][ptr[r * side + c] : ptr[r * side + c + 1]]] for c in range(side)]
        )
        runs.append((ranks.min(), ranks.max()))
    runs.sort()
    assert all(a[1] < b[0] for a, b in zip(runs, runs[1:]))
    np.testing.assert_array_equal(np.sort(order), np.arange(users.size))
    schedules = make_schedules(side, 6, np.random.default_rng(1))
    assert schedules.shape == (6, side, side) and schedules.flags.c_contiguous
    assert len({schedule.tobytes() for schedule in schedules}) > 1  # a fresh order per epoch
    u, i = users[order], items[order]
    for schedule in schedules:  # every epoch runs every block once, strata disjoint
        np.testing.assert_array_equal(np.sort(schedule.ravel()), np.arange(side * side))
        for stratum in schedule:
            seen_u, seen_i = set(), set()
            for b in stratum:
                bu, bi = set(u[ptr[b] : ptr[b + 1]]), set(i[ptr[b] : ptr[b + 1]])
                assert not (bu & seen_u) and not (bi & seen_i)
                seen_u |= bu
                seen_i |= bi
    sizes = np.diff(ptr)
    assert sizes.max() < 3 * sizes.mean()  # balanced by rating counts
    for b in range(side * side):  # within a block, each user's ratings are one run
        block_users = u[ptr[b] : ptr[b + 1]]
        changes = np.count_nonzero(block_users[1:] != block_users[:-1])
        assert changes + 1 == np.unique(block_users).size or block_users.size == 0


@pytest.mark.parametrize("shuffled", [False, True])
def test_grid_groups_ratings_by_user_and_keeps_each_users_order(shuffled):
    users, items, _ = low_rank(n_ratings=3000, seed=2)
    perm = np.random.default_rng(4).permutation(users.size) if shuffled else np.argsort(users, kind="stable")
    users, items = users[perm], items[perm]
    for threads in (1, 2):
        side, order, ptr, _, _ = make_grid(
            users, items, users.max() + 1, items.max() + 1, threads, np.random.default_rng(0)
        )
        np.testing.assert_array_equal(np.sort(order), np.arange(users.size))
        u = users[order]
        for b in range(side * side):
            block = order[ptr[b] : ptr[b + 1]]
            block_users = u[ptr[b] : ptr[b + 1]]
            assert np.count_nonzero(np.diff(block_users)) + 1 == np.unique(block_users).size
            for user in np.unique(block_users):  # a user's ratings keep their input order
                positions = block[block_users == user]
                assert np.all(np.diff(positions) > 0)


def test_grid_groups_count_sorted_and_unsorted_users_alike():
    # sorted user ids are counted by binary search, others by bincount: same groups
    users, items, _ = low_rank(n_users=300, n_items=200, n_ratings=20000, seed=8)
    by_user = np.argsort(users, kind="stable")
    n_users, n_items = users.max() + 1, items.max() + 1
    grids = [
        grid_groups(u.astype(np.int32), i.astype(np.int32), n_users, n_items, 2, np.random.default_rng(4))
        for u, i in ((users[by_user], items[by_user]), (users, items))
    ]
    assert grids[0].by_user is None and grids[1].by_user is not None
    assert grids[0].side == grids[1].side > 1
    for field in ("user_group", "item_group", "user_order", "item_order"):
        np.testing.assert_array_equal(getattr(grids[0], field), getattr(grids[1], field))
    # groups of about equal rating counts: within a user's ratings of nnz / side
    side, counts = grids[0].side, np.bincount(users, minlength=n_users)
    per_group = np.bincount(grids[0].user_group, weights=counts, minlength=side)
    assert np.abs(per_group - users.size / side).max() <= counts.max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_group_by_block_kernel_gives_the_layout_of_make_grid(backend, shuffled, threads):
    users, items, values = low_rank(n_ratings=3000, seed=5)
    perm = np.random.default_rng(6).permutation(users.size) if shuffled else np.argsort(users, kind="stable")
    users, items, values = users[perm].astype(np.int32), items[perm].astype(np.int32), values[perm]
    n_users, n_items = users.max() + 1, items.max() + 1
    side, order, ptr, user_order, item_order = make_grid(
        users, items, n_users, n_items, threads, np.random.default_rng(0)
    )
    grid = grid_groups(users, items, n_users, n_items, threads, np.random.default_rng(0))
    group_by_block = _runtime.kernel_module(backend, "mf").group_by_block
    work_users, work_items, work_values, block_ptr = arrange_blocks(
        grid, users, items, values, group_by_block
    )
    user_row = np.arange(n_users) if user_order is None else np.argsort(user_order)
    item_row = np.arange(n_items) if item_order is None else np.argsort(item_order)
    np.testing.assert_array_equal(block_ptr, ptr)
    np.testing.assert_array_equal(work_users, user_row[users[order]])
    np.testing.assert_array_equal(work_items, item_row[items[order]])
    np.testing.assert_array_equal(work_values, values[order])
    assert work_users.dtype == work_items.dtype == np.int32


@pytest.mark.skipif(_runtime._cpp is None, reason="checks the compiled core's binding")
def test_group_by_block_binding_rejects_bad_input():
    kernel = _runtime.kernel_module("cpp", "mf").group_by_block
    users = np.array([0, 1, 2], dtype=np.int32)
    items = np.array([0, 1, 0], dtype=np.int32)
    values = np.ones(3, dtype=np.float32)
    blocks = np.zeros(3, dtype=np.int64)
    rows = np.arange(3, dtype=np.int32)
    in_order = np.empty(0, dtype=np.int64)  # empty: the ratings' own order

    def call(users=users, order=in_order, user_block=blocks, ptr_size=2):
        out = [np.empty(3, dtype=np.int32), np.empty(3, dtype=np.int32), np.empty(3, np.float32)]
        kernel(
            users,
            items,
            values,
            order,
            user_block,
            blocks,
            rows,
            rows,
            *out,
            np.empty(ptr_size, dtype=np.int64),
        )
        return out

    np.testing.assert_array_equal(call()[0], users)
    with pytest.raises(ValueError, match="users"):
        call(users=np.array([0, 1, 3], dtype=np.int32))
    with pytest.raises(ValueError, match="order"):
        call(order=np.array([0, 1, 5], dtype=np.int64))
    with pytest.raises(ValueError, match="block id"):
        call(user_block=np.array([0, 2, 0], dtype=np.int64))
    with pytest.raises(ValueError, match="block_ptr"):
        call(ptr_size=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_kernel_fallbacks(backend, dtype):
    model = MatrixFactorization(n_factors=3, n_epochs=2, random_state=0, backend=backend, dtype=dtype)
    users, items, values = low_rank(n_ratings=400)
    model.fit((users, items, values))
    u, i = int(users[0]), int(items[0])
    # every training pair, then the fallbacks: unknown user, unknown item, both unknown
    pred_users = np.concatenate([users, [10_000, u, 10_000]])
    pred_items = np.concatenate([items, [i, 10_000, 10_000]])
    got = model.predict(pred_users, pred_items, clip=False)
    assert got.dtype == dtype
    assert_predictions_equal_formula(got, model, pred_users, pred_items)
    # a fallback is one addition in the dtype, the same in every backend: exact
    mu = dtype(model.global_mean_)
    bu = model.user_bias_[model._user_map.lookup(np.array([u]))[0]]
    bi = model.item_bias_[model._item_map.lookup(np.array([i]))[0]]
    np.testing.assert_array_equal(got[-3:], np.array([mu + bi, mu + bu, mu], dtype=dtype))


# -- estimator: backends, determinism ----------------------------------------------------


def test_estimator_backends_agree_with_one_thread():
    users, items, values = low_rank(n_ratings=800)
    models = {
        b: MatrixFactorization(n_factors=4, n_epochs=3, random_state=5, n_threads=1, backend=b).fit(
            (users, items, values)
        )
        for b in BACKENDS
    }
    ref = models["numpy"]
    for model in models.values():
        for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            want = getattr(ref, name)
            atol = sgd_atol(want, np.float32)
            np.testing.assert_allclose(getattr(model, name), want, rtol=0, atol=atol, err_msg=name)
        # float64 sums of float32 errors (measured: 1.3e-8 relative)
        np.testing.assert_allclose(model.history_["train_rmse"], ref.history_["train_rmse"], rtol=1e-7)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_seed_and_threads_give_a_bit_identical_model(backend, n_threads):
    users, items, values = low_rank(n_ratings=1500)

    def fit(seed):
        return MatrixFactorization(
            n_factors=6, n_epochs=3, random_state=seed, n_threads=n_threads, backend=backend
        ).fit((users, items, values))

    a, b, c = fit(1), fit(1), fit(2)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_bias_, b.user_bias_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


@pytest.mark.parametrize("backend", COMPILED)
def test_accuracy_reaches_the_noise_floor_on_low_rank_data(backend):
    noise = 0.2
    users, items, values = low_rank(n_users=300, n_items=200, n_ratings=24000, rank=3, noise=noise, seed=1)
    train, test = slice(0, 20000), slice(20000, None)
    model = MatrixFactorization(
        n_factors=8,
        n_epochs=40,
        lr=0.01,
        reg=0.02,
        lr_bias=0.01,
        reg_bias=0.02,
        random_state=0,
        n_threads=2,
        backend=backend,
        clip=False,
    )
    model.fit(
        (users[train], items[train], values[train]), validation=(users[test], items[test], values[test])
    )
    rmse = np.sqrt(np.mean((model.predict(users[test], items[test]) - values[test]) ** 2))
    biases_only = np.std(values[test] - model.global_mean_)
    assert rmse < 1.35 * noise, rmse  # close to the noise floor
    assert rmse < 0.4 * biases_only
    assert model.history_["valid_rmse"][-1] == rmse  # the same predictions, summed alike
    assert model.history_["train_rmse"][-1] < model.history_["train_rmse"][0]


def test_hogwild_trains_to_similar_accuracy():
    users, items, values = low_rank(n_ratings=3000, noise=0.2)
    kw = dict(n_factors=6, n_epochs=30, lr=0.01, reg=0.02, random_state=0, n_threads=2, backend="auto")
    locked = MatrixFactorization(**kw).fit((users, items, values))
    hog = MatrixFactorization(hogwild=True, **kw).fit((users, items, values))
    assert hog.history_["train_rmse"][-1] == pytest.approx(locked.history_["train_rmse"][-1], rel=0.05)


def test_float64_is_kept_and_unbiased_model_has_no_biases():
    users, items, values = low_rank(n_ratings=500)
    model = MatrixFactorization(n_factors=3, n_epochs=2, dtype=np.float64, biased=False, random_state=0).fit(
        (users, items, values)
    )
    assert model.user_factors_.dtype == np.float64
    assert not model.user_bias_.any() and not model.item_bias_.any()
    # an unknown side falls back to the global mean in an unbiased model
    assert model.predict(10_000, int(items[0]), clip=False) == model.global_mean_
    assert model.global_mean_ == pytest.approx(np.mean(values), rel=4 * np.finfo(np.float64).eps)


# -- estimator: inputs, ids, predict, recommend ---------------------------------------


def test_sparse_tuple_and_dataframe_inputs_give_the_same_model():
    pd = pytest.importorskip("pandas")
    users, items, values = low_rank(n_ratings=700)
    R = sp.csr_matrix((values, (users, items)), shape=(120, 90))
    kw = dict(n_factors=4, n_epochs=2, random_state=3, n_threads=1)
    from_tuple = MatrixFactorization(**kw).fit((users, items, values), n_users=120, n_items=90)
    from_sparse = MatrixFactorization(**kw).fit(R)
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": values})
    from_frame = MatrixFactorization(**kw).fit(frame, n_users=120, n_items=90)
    np.testing.assert_array_equal(from_frame.user_factors_, from_tuple.user_factors_)
    # the sparse matrix sorts each user's ratings by item: SGD visits them in another
    # order, which moves the predictions by up to 0.005 after 2 epochs
    np.testing.assert_allclose(from_sparse.predict(users, items), from_tuple.predict(users, items), atol=0.02)
    # the tuple in the matrix's order gives the same model, bit for bit
    coo = R.tocoo()
    in_order = MatrixFactorization(**kw).fit((coo.row, coo.col, coo.data), n_users=120, n_items=90)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_mean_"):
        np.testing.assert_array_equal(getattr(in_order, name), getattr(from_sparse, name), err_msg=name)


def test_string_ids_and_caller_data_untouched():
    users, items, values = low_rank(n_ratings=600)
    su = np.array([f"user-{u}" for u in users])
    si = np.array([f"item-{i}" for i in items], dtype=object)
    values_before = values.copy()
    model = MatrixFactorization(n_factors=3, n_epochs=2, random_state=0).fit((su, si, values))
    np.testing.assert_array_equal(values, values_before)
    assert set(model.user_ids_) == set(su) and model.n_items_ == len(set(si))
    pred = model.predict(su[:5], si[:5])
    assert pred.shape == (5,) and np.isfinite(pred).all()
    ids, scores = model.recommend(su[0], n=3)
    assert ids.dtype == object and all(str(x).startswith("item-") for x in ids)


def test_predict_clips_to_the_training_range_by_default():
    users, items, _ = low_rank(n_ratings=600)
    # ratings 1 and 5 by the signs of user and item: the fitted model overshoots both ends
    sign = np.where(np.arange(120) % 2, 1.0, -1.0)
    values = 3.0 + 2.0 * sign[users] * sign[items]
    model = MatrixFactorization(n_factors=3, n_epochs=20, random_state=0).fit((users, items, values))
    raw = model.predict(users, items, clip=False)
    clipped = model.predict(users, items)
    lo, hi = model.rating_range_
    assert (lo, hi) == (values.min(), values.max()) == (1.0, 5.0)
    assert (raw < lo).any() and (raw > hi).any()  # both ends are clipped
    np.testing.assert_array_equal(clipped, np.clip(raw, lo, hi))


def test_recommend_is_exact_best_first_and_excludes_seen():
    users, items, values = low_rank(n_ratings=2000)
    model = MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit((users, items, values))
    u = int(users[0])
    ids, scores = model.recommend(u, n=7)
    row = model._user_map.lookup(np.array([u]))[0]
    full = (
        model.global_mean_
        + model.user_bias_[row]
        + model.item_bias_
        + model.item_factors_ @ model.user_factors_[row]
    )
    seen = set(items[users == u])
    candidates = [j for j in np.argsort(-full, kind="stable") if model.item_ids_[j] not in seen]
    np.testing.assert_array_equal(ids, model.item_ids_[candidates[:7]])
    # the scores are the formula in float64, rounded as float32 predictions are
    assert_predictions_equal_formula(scores, model, np.full(7, u), ids)
    assert not seen & set(ids)
    with_seen, _ = model.recommend(u, n=7, exclude_seen=False)
    np.testing.assert_array_equal(with_seen, model.item_ids_[np.argsort(-full, kind="stable")[:7]])
    with pytest.raises(UnknownIdError, match="user id 99999"):
        model.recommend([u, 99_999], n=7)
    with pytest.raises(TypeError, match="users must be a raw id"):
        model.recommend(None)
    batch_ids, batch_scores = model.recommend([u, 99_999], n=7, unknown="skip")
    assert batch_ids.shape == (2, 7)
    np.testing.assert_array_equal(batch_ids[0], ids)
    # an unknown user skipped: an empty row
    np.testing.assert_array_equal(batch_ids[1], np.full(7, -1))
    assert np.all(batch_scores[1] == -np.inf)


def test_recommend_restricted_candidates_and_padding():
    users, items, values = low_rank(n_ratings=1000)
    model = MatrixFactorization(n_factors=3, n_epochs=2, random_state=0).fit((users, items, values))
    u = int(users[0])
    unseen = [j for j in model.item_ids_ if j not in set(items[users == u])][:3]
    with pytest.raises(UnknownIdError, match="item id 123456"):
        model.recommend(u, n=5, items=unseen + [123_456])
    ids, scores = model.recommend(u, n=5, items=unseen + [123_456], unknown="skip")
    assert ids.shape == (3,)  # n is capped at the 3 known candidates
    assert set(ids) == set(unseen) and np.all(np.diff(scores) <= 0)
    seen_item = int(items[users == u][0])
    ids, scores = model.recommend(u, n=2**31, items=unseen + [seen_item])
    assert ids.shape == (4,) and set(ids[:3]) == set(unseen)
    assert ids[3] == -1 and np.isneginf(scores[3])  # the seen candidate is excluded: padding


# -- fold-in, partial_fit, history, save/load -----------------------------------------


def test_fold_in_solves_the_per_user_objective_and_serves_the_new_user():
    users, items, values = low_rank(n_ratings=3000, noise=0.05)
    target = int(users[0])
    mine = users == target
    # trained long enough that the item side is learnt for any seed (the error
    # ratio below is 0.09-0.11 over seeds 0-7)
    model = MatrixFactorization(
        n_factors=4, n_epochs=60, lr=0.02, reg=0.02, reg_bias=0.05, random_state=0, clip=False
    ).fit((users[~mine], items[~mine], values[~mine]))
    before = model.predict(np.full(mine.sum(), target), items[mine])
    model.fold_in(target, items[mine], values[mine])
    after = model.predict(np.full(mine.sum(), target), items[mine])
    err_before = np.sqrt(np.mean((before - values[mine]) ** 2))
    err_after = np.sqrt(np.mean((after - values[mine]) ** 2))
    assert err_after < 0.3 * err_before
    # the stationary point of sum e^2 + n reg |p|^2 + n reg_bias b^2 over x = (p, b),
    # from the frozen item side and the ratings, in float64
    row = model._user_map.lookup(np.array([target]))[0]
    inner = model._item_map.lookup(items[mine])
    known = inner >= 0
    n = known.sum()
    X = np.hstack([model.item_factors_[inner[known]].astype(np.float64), np.ones((n, 1))])
    residual = values[mine][known] - model.global_mean_ - model.item_bias_[inner[known]].astype(np.float64)
    penalty = n * np.array([0.02] * 4 + [0.05])
    A = X.T @ X + np.diag(penalty)
    x = np.append(model.user_factors_[row], model.user_bias_[row]).astype(np.float64)
    # stored in float32, x is the solution rounded: within half an ulp of each value
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(x, np.linalg.solve(A, X.T @ residual), rtol=eps, atol=0)
    # so the gradient vanishes up to |A| |dx| <= |A| |x| eps / 2 (measured: 0.14-0.5 of it)
    gradient = X.T @ (residual - X @ x) - penalty * x
    assert np.all(np.abs(gradient) <= np.abs(A) @ np.abs(x) * eps / 2), gradient
    ids, _ = model.recommend(target, n=20)
    assert not set(ids) & set(items[mine])


def test_fold_in_new_user_non_negative():
    users, items, values = low_rank(n_ratings=1500)
    model = MatrixFactorization(n_factors=3, n_epochs=5, non_negative=True, random_state=0)
    model.fit((users, items, values))
    assert model.user_factors_.min() >= 0 and model.item_factors_.min() >= 0
    model.fold_in("new", items[:30], values[:30])
    row = model._user_map.lookup(np.array(["new"], dtype=object))[0]
    assert row == model.n_users_ - 1 and model.user_factors_[row].min() >= 0
    assert model.user_factors_.ctypes.data % 64 == 0
    pred = model.predict(["new"] * 30, items[:30])
    baseline = model.predict([10**9] * 30, items[:30])  # unknown user: mu + b_i
    assert np.mean((pred - values[:30]) ** 2) < np.mean((baseline - values[:30]) ** 2)


def test_partial_fit_continues_training_and_adds_ids():
    users, items, values = low_rank(n_ratings=2000)
    model = MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit((users, items, values))
    n_users = model.n_users_
    model.partial_fit((users, items, values), n_epochs=4)
    assert model.epochs_trained_ == 7 and len(model.history_["train_rmse"]) == 7
    assert model.history_["train_rmse"][-1] < model.history_["train_rmse"][2]
    model.partial_fit((np.array([5000, 5000]), items[:2], values[:2]), n_epochs=1)
    assert model.n_users_ == n_users + 1 and 5000 in set(model.user_ids_)


def test_partial_fit_divergence_leaves_the_model_as_it_was():
    users, items, values = low_rank(n_ratings=800)
    model = MatrixFactorization(n_factors=4, n_epochs=2, random_state=0).fit((users, items, values))
    before = model.user_factors_.copy()
    model.lr = 50.0
    with pytest.raises(DivergenceError, match="lr=50.0.*reg"):
        model.partial_fit((users, items, values * 1000), n_epochs=3)
    np.testing.assert_array_equal(model.user_factors_, before)
    assert model.epochs_trained_ == 2


def test_divergence_raises_and_never_returns_a_nan_model():
    users, items, values = low_rank(n_ratings=800)
    model = MatrixFactorization(n_factors=4, n_epochs=5, lr=50.0, random_state=0)
    with pytest.raises(DivergenceError, match=r"lr=50\.0, reg=0\.09"):
        model.fit((users, items, values * 100))
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict([0], [0])


def test_early_stopping_keeps_the_best_epoch():
    users, items, values = low_rank(n_ratings=3000, noise=0.3)
    train, valid = slice(0, 2000), slice(2000, None)
    model = MatrixFactorization(
        n_factors=20,
        n_epochs=60,
        lr=0.05,
        reg=0.0,
        reg_bias=0.0,
        random_state=0,
        early_stopping=3,
        clip=False,
    )
    model.fit(
        (users[train], items[train], values[train]), validation=(users[valid], items[valid], values[valid])
    )
    history = model.history_["valid_rmse"]
    assert len(history) < 60  # overfitting without penalty stops early
    rmse = np.sqrt(np.mean((model.predict(users[valid], items[valid]) - values[valid]) ** 2))
    assert rmse == min(history)  # the best epoch's parameters, predicted and summed alike


def test_verbose_progress_bar(capsys):
    users, items, values = low_rank(n_ratings=300)
    model = MatrixFactorization(n_factors=2, n_epochs=4, random_state=0, verbose=True)
    model.fit((users, items, values))
    err = capsys.readouterr().err
    shown = [
        found.groups()
        for line in re.split(r"[\r\n]", err)
        if (found := re.search(r"(\d+)/4 .*train_rmse=([\d.]+)", line))
    ]
    assert shown and shown[-1][0] == "4"
    for epochs_done, rmse in shown:  # the RMSE shown is that of the epochs counted
        assert int(epochs_done) >= 1
        assert rmse == f"{model.history_['train_rmse'][int(epochs_done) - 1]:.4f}"
    # verbose=None: a bar only when stderr is a terminal (it is captured here); False: never
    for verbose in (None, False):
        MatrixFactorization(n_factors=2, n_epochs=2, random_state=0, verbose=verbose).fit(
            (users, items, values)
        )
        assert "train_rmse" not in capsys.readouterr().err
    with pytest.raises(TypeError, match="verbose must be True or False"):
        MatrixFactorization(n_epochs=1, verbose="yes").fit((users, items, values))


@pytest.mark.parametrize("random_state", [np.random.default_rng(5), np.random.RandomState(5)])
def test_random_state_takes_an_int_or_a_generator(random_state):
    data = low_rank(n_ratings=300)
    kw = dict(n_factors=2, n_epochs=2, n_threads=1)
    first = MatrixFactorization(random_state=random_state, **kw).fit(data)
    again = MatrixFactorization(random_state=first.seed_, **kw).fit(data)
    np.testing.assert_array_equal(first.user_factors_, again.user_factors_)  # the seed it drew
    second = MatrixFactorization(random_state=random_state, **kw).fit(data)
    assert second.seed_ != first.seed_  # the generator was advanced
    for bad, error in (("0", TypeError), (True, TypeError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="random_state"):
            MatrixFactorization(random_state=bad, **kw).fit(data)


def test_float64_data_trains_in_the_dtype_asked_for():
    users, items, values = low_rank(n_ratings=300)
    for dtype in (np.float32, np.float64):
        model = MatrixFactorization(n_factors=2, n_epochs=2, random_state=0, dtype=dtype)
        model.fit((users, items, values.astype(np.float64)))
        assert model.user_factors_.dtype == model.item_bias_.dtype == dtype
        assert model.recommend(users[0])[1].dtype == model.predict(users[0], items[0]).dtype == dtype
        assert model.score_items(users[0]).dtype == np.float64
    assert (
        MatrixFactorization(n_factors=2, n_epochs=1)
        .fit((users, items, values.astype(np.float64)))
        .user_factors_.dtype
        == np.float32
    )  # the default


def test_save_load_round_trip(tmp_path):
    users, items, values = low_rank(n_ratings=900)
    su = np.array([f"u{u}" for u in users])
    model = MatrixFactorization(n_factors=5, n_epochs=2, random_state=0).fit((su, items, values))
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = MatrixFactorization.load(path)
    np.testing.assert_array_equal(loaded.predict(su, items), model.predict(su, items))
    for a, b in zip(loaded.recommend(su[:4], n=5), model.recommend(su[:4], n=5)):
        np.testing.assert_array_equal(a, b)
    assert loaded.n_factors == 5 and loaded.rating_range_ == model.rating_range_
    numba_model = MatrixFactorization.load(path, backend="numba", clip=False)
    assert numba_model.backend == "numba" and numba_model.clip is False
    got = numba_model.predict(su, items, clip=False)
    assert_predictions_equal_formula(got, model, su, items)
    clipped = numba_model.predict(su, items, clip=True)
    np.testing.assert_array_equal(clipped, np.clip(got, *model.rating_range_))
    numba_model.partial_fit((su, items, values), n_epochs=1)  # a loaded model trains on
    assert numba_model.epochs_trained_ == 3
    assert loaded.user_factors_.ctypes.data % 64 == 0


def test_load_rejects_foreign_and_newer_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a saved fastrec MatrixFactorization"):
        MatrixFactorization.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a fastrec model file"):
        MatrixFactorization.load(tmp_path / "junk.npz")
    users, items, values = low_rank(n_ratings=300)
    model = MatrixFactorization(n_factors=2, n_epochs=1, random_state=0).fit((users, items, values))
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        content = dict(archive)
    content["format_version"] = np.array(99)
    np.savez(tmp_path / "newer.npz", **content)
    with pytest.raises(ValueError, match="format 99, newer"):
        MatrixFactorization.load(tmp_path / "newer.npz")


def test_save_refuses_ids_that_need_pickle(tmp_path):
    ids = np.empty(3, dtype=object)
    ids[:] = [(1, 2), (3, 4), (5, 6)]
    model = MatrixFactorization(n_factors=2, n_epochs=1, random_state=0)
    model.fit((ids, np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0])))
    assert model.predict([(3, 4)], [1]).shape == (1,)
    with pytest.raises(TypeError, match="user ids are neither all integers nor all strings"):
        model.save(tmp_path / "m.npz")


# -- bad input ---------------------------------------------------------------------------


GOOD = (np.array([0, 1, 2]), np.array([0, 1, 1]), np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    "data, error, match",
    [
        ((GOOD[0], GOOD[1], np.array([1.0, np.nan, 3.0])), ValueError, "ratings contains NaN"),
        ((GOOD[0], GOOD[1], np.array([1.0, np.inf, 3.0])), ValueError, "ratings contains infinite"),
        ((np.array([0, -1, 2]), GOOD[1], GOOD[2]), ValueError, "user_ids contains the negative id -1"),
        ((GOOD[0], np.array([0.0, np.nan, 1.0]), GOOD[2]), ValueError, "item_ids contains NaN"),
        ((GOOD[0], GOOD[1][:2], GOOD[2]), ValueError, "same length, got 3, 2 and 3"),
        ((np.array([]), np.array([]), np.array([])), ValueError, "No ratings given"),
        (sp.csr_matrix((3, 3)), ValueError, "no stored entries"),
        ((GOOD[0], GOOD[1], np.array(["a", "b", "c"])), TypeError, "ratings must hold numbers"),
        ([[0, 0, 1.0]], TypeError, r"\(user_ids, item_ids, ratings\) tuple"),
        ("ratings.csv", TypeError, "got str"),
    ],
)
def test_bad_training_data(data, error, match):
    with pytest.raises(error, match=match):
        MatrixFactorization(n_epochs=1).fit(data)


def test_out_of_range_ids_with_declared_sizes():
    with pytest.raises(ValueError, match=r"user_ids contains 2, outside \[0, n_users=2\)"):
        MatrixFactorization(n_epochs=1).fit(GOOD, n_users=2)
    with pytest.raises(ValueError, match=r"item_ids contains the negative id -1"):
        MatrixFactorization(n_epochs=1).fit((GOOD[0], np.array([0, -1, 1]), GOOD[2]), n_items=5)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_factors": 0}, ValueError, "n_factors must be >= 1"),
        ({"n_factors": 2.5}, TypeError, "n_factors must be an integer"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"lr": float("nan")}, ValueError, "lr must be finite"),
        ({"reg": -0.1}, ValueError, "reg must be >= 0"),
        ({"lr_bias": -1.0}, ValueError, "lr_bias must be > 0"),
        ({"n_epochs": 0}, ValueError, "n_epochs must be >= 1"),
        ({"dtype": np.int32}, TypeError, "dtype must be np.float32 or np.float64"),
        ({"backend": "gpu"}, ValueError, "backend='gpu' is not one of"),
        ({"n_threads": 0}, ValueError, "n_threads must be >= 1"),
        ({"biased": "yes"}, TypeError, "biased must be True or False"),
        ({"early_stopping": 2}, ValueError, "early_stopping needs validation data"),
    ],
)
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        MatrixFactorization(**{"n_epochs": 1, **params}).fit(GOOD)


def test_dataframe_without_recognisable_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1], "b": [2], "c": [3.0]})
    with pytest.raises(ValueError, match="Could not find the user column"):
        MatrixFactorization(n_epochs=1).fit(frame)
    model = MatrixFactorization(n_epochs=1, n_factors=2).fit(frame, columns=("a", "b", "c"))
    assert model.n_users_ == 1
    with pytest.raises(ValueError, match="the user column 'x' is not in"):
        MatrixFactorization(n_epochs=1).fit(frame, columns=("x", "b", "c"))


def test_using_an_unfitted_model_is_a_clear_error():
    model = MatrixFactorization()
    for call in (
        lambda: model.predict([1], [1]),
        lambda: model.recommend(1),
        lambda: model.fold_in(1, [1], [1.0]),
        lambda: model.save("x.npz"),
    ):
        with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(ratings\) first"):
            call()


def test_predict_and_recommend_argument_errors():
    model = MatrixFactorization(n_factors=2, n_epochs=1).fit(GOOD)
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        model.predict([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="n must be >= 1"):
        model.recommend(0, n=0)
    with pytest.raises(ValueError, match="items and ratings must have the same length"):
        model.fold_in(9, [0, 1], [1.0])
    with pytest.raises(ValueError, match="ratings contains NaN"):
        model.fold_in(9, [0], [np.nan])


def test_public_export():
    assert fastrec.MatrixFactorization is MatrixFactorization
    assert "MatrixFactorization" in fastrec.__all__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 200_001])
def test_standard_normal_draws_follow_the_normal_law(dtype, size):
    dtype = np.dtype(dtype)
    draws = standard_normal(np.random.default_rng(3), size, dtype)
    assert draws.shape == (size,) and draws.dtype == dtype and np.isfinite(draws).all()
    np.testing.assert_array_equal(draws, standard_normal(np.random.default_rng(3), size, dtype))
    if size < 1000:
        return
    x = draws.astype(np.float64)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert abs(np.mean(x**4) / x.var() ** 2 - 3) < 0.05  # kurtosis of the normal law
    for k, inside in ((1, 0.682689), (2, 0.954500), (3, 0.997300)):  # share within k sigma
        assert abs(np.mean(np.abs(x) < k) - inside) < 0.004
    # both halves (cosine and sine) are normal and uncorrelated with each other
    half = (size + 1) // 2
    assert abs(np.corrcoef(x[: half - 1], x[half : half * 2 - 1])[0, 1]) < 0.01


@pytest.mark.parametrize("non_negative", [False, True])
def test_initial_factors_do_not_depend_on_the_thread_count(non_negative):
    # chunks enough for two threads (INIT_CHUNKS_PER_THREAD), the last one short
    n = (2 * INIT_CHUNKS_PER_THREAD) * INIT_CHUNK_ROWS + 37
    assert n // INIT_CHUNK_ROWS + 1 >= 2 * INIT_CHUNKS_PER_THREAD
    params = {"init_std": 0.2, "non_negative": non_negative}
    one, two = (
        MatrixFactorization._init_factors(
            n, 9, np.dtype(np.float32), {**params, "n_threads": t}, np.random.default_rng(5)
        )
        for t in (1, 2)
    )
    np.testing.assert_array_equal(one, two)
    assert one.shape == (n, 16) and not one[:, 9:].any()  # zero padding
    draws = one[:, :9]
    if non_negative:
        assert draws.min() >= 0
        np.testing.assert_allclose(np.sqrt(np.mean(draws.astype(np.float64) ** 2)), 0.2, rtol=0.05)
    else:
        np.testing.assert_allclose(draws.std(), 0.2, rtol=0.05)
        assert abs(draws.mean()) < 0.01
    # every chunk is its own stream: no two chunks repeat each other
    assert not np.array_equal(draws[:INIT_CHUNK_ROWS], draws[INIT_CHUNK_ROWS : 2 * INIT_CHUNK_ROWS])


class _KeywordOnlyKernels:
    """A backend's kernel module whose kernels refuse positional arguments, and log their calls."""

    def __init__(self, module, calls):
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        kernel = getattr(self._module, name)

        def call(**kwargs):
            self._calls.append(name)
            return kernel(**kwargs)

        return call


@pytest.mark.parametrize(
    "backend", [*[b for b in ("cpp", "numba") if b in fastrec.available_backends()], "numpy"]
)
def test_training_and_prediction_pass_every_kernel_argument_by_keyword(monkeypatch, backend):
    from fastrec.datasets import make_ratings

    R = make_ratings(50, 40, 600, seed=3)
    valid = make_ratings(50, 40, 100, seed=4)

    def run():
        model = MatrixFactorization(
            n_factors=6, n_epochs=3, random_state=1, n_threads=2, backend=backend
        ).fit(R, validation=valid)
        model.partial_fit(valid, n_epochs=1)
        return model, model.predict(np.arange(10), np.arange(10))

    want, want_pred = run()
    calls: list[str] = []
    real = _runtime.kernel_module
    monkeypatch.setattr(
        _runtime, "kernel_module", lambda b, family: _KeywordOnlyKernels(real(b, family), calls)
    )
    got, pred = run()
    # bit-identical: the same arguments reach the same kernels
    np.testing.assert_array_equal(got.user_factors_, want.user_factors_)
    np.testing.assert_array_equal(got.item_factors_, want.item_factors_)
    np.testing.assert_array_equal(got.user_bias_, want.user_bias_)
    assert got.history_["train_rmse"] == want.history_["train_rmse"]
    assert got.history_["valid_rmse"] == want.history_["valid_rmse"]
    np.testing.assert_array_equal(pred, want_pred)
    assert calls.count("sgd_mf_epoch") == 4 and {"mf_predict", "group_by_block"} <= set(calls)


def test_bias_rates_of_none_are_the_factor_rates():
    data = low_rank(n_ratings=800)
    given = dict(n_factors=3, n_epochs=2, lr=0.015, reg=0.07, random_state=0, n_threads=1)
    implied = MatrixFactorization(lr_bias=None, reg_bias=None, **given).fit(data)
    explicit = MatrixFactorization(lr_bias=0.015, reg_bias=0.07, **given).fit(data)
    np.testing.assert_array_equal(implied.user_factors_, explicit.user_factors_)
    np.testing.assert_array_equal(implied.item_bias_, explicit.item_bias_)


def test_bad_sizes_and_parameters_are_named():
    data = low_rank(n_ratings=200)
    with pytest.raises(ValueError, match="init_std"):
        MatrixFactorization(init_std=-1.0).fit(data)
    with pytest.raises(ValueError, match="n_users"):
        MatrixFactorization().fit(data, n_users=0)
    with pytest.raises(fastrec.TooLargeError, match="fewer factors"):
        MatrixFactorization(n_factors=4096).fit(data, n_items=10**9)


def test_similar_ids_of_a_zero_factor_vector_and_bad_ids():
    model = MatrixFactorization(n_factors=3, n_epochs=2, random_state=0).fit(low_rank(n_ratings=600))
    model.fold_in("nobody", [], [])  # no known item: zero factors
    ids, scores = model.similar_users("nobody", n=4)
    assert ids.shape == (4,) and np.all(scores == 0)  # cosine with a zero vector is 0
    with pytest.raises(ValueError, match="items"):
        model.similar_items(np.zeros((2, 2), dtype=np.int64))
