"""BPR: the reference kernels against the objective, every backend against the reference, the estimator."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant
from sklearn.base import clone

from fastrec import BPR, available_backends
from fastrec._aligned import aligned_zeros, padded_width
from fastrec._runtime import kernel_module
from fastrec.implicit.bpr import _reference
from fastrec.implicit.bpr.model import positives_of

COMPILED = [b for b in ("cpp", "numba") if b in available_backends()]
BACKENDS = [*COMPILED, "numpy"]
FAST = "numba"  # the fastest backend every build has
DTYPES = [np.float32, np.float64]


def _kernels(backend):
    return kernel_module(backend, "implicit.bpr")


def _matrix(n_users=40, n_items=30, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_users, n_items)) < density, rng.integers(1, 5, (n_users, n_items)), 0)
    dense[0] = 1  # a user with every item: never gets a negative
    dense[1] = 0  # a user without positives: never sampled
    return sp.csr_matrix(dense.astype(np.float64))


def _factors(n_users, n_items, k, dtype, seed=1):
    rng = np.random.default_rng(seed)
    stride = padded_width(k, dtype)
    P, Q = aligned_zeros(n_users, stride, dtype), aligned_zeros(n_items, stride, dtype)
    P[:, :k] = rng.normal(0, 0.3, (n_users, k))
    Q[:, :k] = rng.normal(0, 0.3, (n_items, k))
    bi = rng.normal(0, 0.1, n_items).astype(dtype)
    return P, Q, bi


def _draw(backend, R, n_samples, seed, popularity=False, n_threads=1, group=64):
    indptr, indices, users = positives_of(R)
    out = [np.empty(n_samples, dtype=np.int32) for _ in range(3)]
    _kernels(backend).bpr_draw(
        indptr=indptr,
        indices=indices,
        users=users,
        n_items=R.shape[1],
        n_samples=n_samples,
        seed=seed,
        popularity=popularity,
        max_tries=16,
        out_users=out[0],
        out_items=out[1],
        out_negatives=out[2],
        n_threads=n_threads,
        group=group,
    )
    return out


# -- the reference against the objective --------------------------------------------------


@pytest.mark.parametrize("item_bias", [True, False])
def test_reference_step_is_the_gradient_of_the_sample_objective(item_bias):
    """One step is lr times the gradient of ln sigmoid(x_ui - x_uj) - reg/2 |theta|^2 (finite differences)."""
    k, lr, reg = 5, 1e-3, 0.03
    P, Q, bi = _factors(3, 4, k, np.float64)
    u, i, j = 1, 2, 0

    def objective(P, Q, bi):
        x = P[u] @ (Q[i] - Q[j]) + ((bi[i] - bi[j]) if item_bias else 0.0)
        penalty = P[u] @ P[u] + Q[i] @ Q[i] + Q[j] @ Q[j] + ((bi[i] ** 2 + bi[j] ** 2) if item_bias else 0.0)
        return -math.log1p(math.exp(-x)) - 0.5 * reg * penalty

    def numeric_gradient(array):
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-6
            up = objective(P, Q, bi)
            array[index] = saved - 1e-6
            down = objective(P, Q, bi)
            array[index] = saved
            grad[index] = (up - down) / 2e-6
        return grad

    gP, gQ, gb = numeric_gradient(P), numeric_gradient(Q), numeric_gradient(bi)
    P1, Q1, b1 = P.copy(), Q.copy(), bi.copy()
    _reference.update_one(P1, Q1, b1, u, i, j, lr, reg, item_bias)
    np.testing.assert_allclose((P1 - P)[u, :k] / lr, gP[u, :k], atol=1e-7)
    np.testing.assert_allclose((Q1 - Q)[[i, j], :k] / lr, gQ[[i, j], :k], atol=1e-7)
    if item_bias:
        np.testing.assert_allclose((b1 - bi)[[i, j]] / lr, gb[[i, j]], atol=1e-7)
    else:
        np.testing.assert_array_equal(b1, bi)
    untouched = [r for r in range(4) if r not in (i, j)]
    np.testing.assert_array_equal(Q1[untouched], Q[untouched])
    np.testing.assert_array_equal(P1[[0, 2]], P[[0, 2]])


def test_reference_lane_dot_is_the_dot_product():
    rng = np.random.default_rng(3)
    for dtype, n in [(np.float64, 8), (np.float64, 21), (np.float32, 40)]:
        p, d = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
        assert abs(float(_reference.lane_dot(p, d)) - float(p.astype(np.float64) @ d)) < 1e-5


# -- every backend against the reference ---------------------------------------------------


@pytest.mark.parametrize("backend, level", compiled_variants())  # cpp at every SIMD level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [3, 20, 140])
def test_samples_match_reference_bit_for_bit(backend, level, dtype, k):
    """For one given sample order every backend computes the same bits."""
    rng = np.random.default_rng(4)
    n_users, n_items, n = 9, 12, 300
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    negatives = rng.integers(0, n_items, n).astype(np.int32)
    negatives[negatives == items] = -1  # skipped
    negatives[::37] = -1
    results = []
    for name in ("numpy", backend):
        P, Q, bi = _factors(n_users, n_items, k, dtype)
        stats = np.zeros(3)
        with variant(level if name == backend else None):
            _kernels(name).bpr_samples(
                users=users,
                items=items,
                negatives=negatives,
                P=P,
                Q=Q,
                bi=bi,
                lr=0.1,
                reg=0.02,
                item_bias=True,
                out_stats=stats,
            )
        results.append((P, Q, bi, stats))
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, expected)
    assert results[0][3][0] + results[0][3][2] == n and results[0][3][2] == np.sum(negatives < 0)
    assert np.all(results[0][0][:, k:] == 0)  # padding stays zero


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("popularity", [False, True])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("group", [1, 37, 1000])
def test_draws_match_reference(backend, popularity, n_threads, group):
    R = _matrix()
    expected = _draw("numpy", R, 500, 123, popularity, n_threads, group)
    got = _draw(backend, R, 500, 123, popularity, n_threads, group)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_groups_take_their_positives_in_entry_order(backend, n_threads):
    """A group takes the positive stream's draws by entry (so by user), from its chunk's start entry on."""
    R = _matrix(n_users=50, n_items=40, density=0.3)
    indptr, indices, users = positives_of(R)
    n, group = 700, 64
    one_by_one = _draw(backend, R, n, 7, n_threads=n_threads, group=1)
    grouped = _draw(backend, R, n, 7, n_threads=n_threads, group=group)
    entry_of = {(int(u), int(i)): e for e, (u, i) in enumerate(zip(users, indices))}
    drawn = np.array([entry_of[int(u), int(i)] for u, i in zip(one_by_one[0], one_by_one[1])])
    taken = np.array([entry_of[int(u), int(i)] for u, i in zip(grouped[0], grouped[1])])
    for t in range(n_threads):
        begin, end = _reference.chunk_bounds(n, n_threads, t)
        start = indices.size * t // n_threads
        for first in range(begin, end, group):
            last = min(first + group, end)
            ordered = np.sort(drawn[first:last])
            expected = np.concatenate([ordered[ordered >= start], ordered[ordered < start]])
            np.testing.assert_array_equal(taken[first:last], expected)
    assert np.any(np.diff(drawn) < 0)  # the draws themselves are not ordered
    # the negatives of the grouped samples are drawn from one stream in the new order
    dense = R.toarray() > 0
    ok = grouped[2] >= 0
    assert not np.any(dense[grouped[0][ok], grouped[2][ok]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_group_must_be_positive(backend):
    R = _matrix()
    with pytest.raises(ValueError, match="group must be >= 1"):
        _draw(backend, R, 10, 1, group=0)


@pytest.mark.parametrize("backend, level", [*compiled_variants(), ("numpy", None)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("item_bias", [True, False])
def test_epoch_is_its_draws_then_its_steps(backend, level, dtype, item_bias):
    """One thread: bpr_epoch equals bpr_draw followed by the reference's bpr_samples, bit for bit."""
    R = _matrix()
    indptr, indices, users = positives_of(R)
    n_samples, seed, group = 400, 99, 150  # two whole groups and a shorter one
    su, si, sj = _draw("numpy", R, n_samples, seed, group=group)
    P0, Q0, b0 = _factors(*R.shape, 6, dtype)
    expected = np.zeros(3)
    _reference.bpr_samples(su, si, sj, P0, Q0, b0, 0.05, 0.01, item_bias, expected)
    P, Q, bi = _factors(*R.shape, 6, dtype)
    stats = np.zeros(3)
    with variant(level):
        _kernels(backend).bpr_epoch(
            indptr=indptr,
            indices=indices,
            users=users,
            P=P,
            Q=Q,
            bi=bi,
            lr=0.05,
            reg=0.01,
            item_bias=item_bias,
            popularity=False,
            n_samples=n_samples,
            seed=seed,
            max_tries=16,
            out_stats=stats,
            n_threads=1,
            group=group,
        )
    for got, want in [(P, P0), (Q, Q0), (bi, b0), (stats, expected)]:
        np.testing.assert_array_equal(got, want)


# -- sampling -----------------------------------------------------------------------------


@pytest.mark.parametrize("popularity", [False, True])
def test_negatives_are_never_positives(popularity):
    R = _matrix()
    dense = R.toarray() > 0
    users, items, negatives = _draw(FAST, R, 3000, 5, popularity, 2)
    assert np.all(dense[users, items])  # the positive is one
    drawn = negatives >= 0
    assert not np.any(dense[users[drawn], negatives[drawn]])
    assert np.all(negatives[users == 0] == -1)  # user 0 has every item
    assert np.all(drawn[users != 0])  # every other user has a negative, found within 16 tries
    assert not np.any(users == 1)  # no positives, never drawn


def test_positives_are_uniform_and_popularity_negatives_follow_popularity():
    rng = np.random.default_rng(8)
    n_users, n_items = 300, 20
    weights = 1.0 / np.arange(1, n_items + 1)  # power-law popularity
    dense = rng.random((n_users, n_items)) < 0.5 * weights / weights.max()
    R = sp.csr_matrix(dense.astype(np.float64))
    n = 60_000
    users, items, negatives = _draw(FAST, R, n, 17, True, 1)
    # negatives: the popularity distribution restricted to each user's non-positives
    pop = dense.sum(axis=0).astype(np.float64)
    expected = np.zeros(n_items)
    counts_u = np.bincount(users, minlength=n_users)
    for u in np.flatnonzero(counts_u):
        allowed = pop * ~dense[u]
        expected += counts_u[u] * allowed / allowed.sum()
    observed = np.bincount(negatives[negatives >= 0], minlength=n_items)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    assert chi2 < 60, chi2  # 19 degrees of freedom: p < 1e-5 above 60
    # positives: every stored entry equally likely
    expected_items = n * dense.sum(axis=0) / dense.sum()
    chi2_items = np.sum((np.bincount(items, minlength=n_items) - expected_items) ** 2 / expected_items)
    assert chi2_items < 60, chi2_items


# -- the estimator ------------------------------------------------------------------------


def _planted(seed=0, n_users=150, n_items=80, rank=3, per_user=12):
    """(train CSR, held-out positive per user): each user's positives are its top items of a rank-3 model."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, rank)) @ rng.normal(size=(rank, n_items))
    top = np.argsort(-scores, axis=1)[:, :per_user]
    held = top[np.arange(n_users), rng.integers(0, per_user, n_users)]
    dense = np.zeros((n_users, n_items))
    dense[np.repeat(np.arange(n_users), per_user), top.ravel()] = rng.integers(1, 4, top.size)
    train = dense.copy()
    train[np.arange(n_users), held] = 0
    return sp.csr_matrix(train), held, dense > 0


def _auc(model, train, held, positives):
    scores = model.score_items(np.arange(train.shape[0]), np.arange(train.shape[1]))
    aucs = []
    for u in range(train.shape[0]):
        negative = ~positives[u]
        aucs.append(np.mean(scores[u, held[u]] > scores[u, negative]))
    return float(np.mean(aucs))


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_learns_planted_rankings(backend):
    train, held, positives = _planted()
    epochs = 4 if backend == "numpy" else 40
    model = BPR(8, epochs, lr=0.1, reg=0.01, random_state=0, n_threads=1, backend=backend).fit(train)
    auc = _auc(model, train, held, positives)
    if backend == "numpy":  # a few epochs only: better than chance already
        assert auc > 0.6, auc
    else:
        assert auc > 0.85, auc
        assert model.history_["sampled_auc"][-1] > model.history_["sampled_auc"][0]
    assert len(model.history_["seconds"]) == epochs


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_same_seed_same_model_and_backends_agree(sampling):
    train, _, _ = _planted(1, 60, 40)
    fits = {}
    for backend in BACKENDS:
        fits[backend] = [
            BPR(6, 3, negative_sampling=sampling, random_state=7, n_threads=1, backend=backend).fit(train)
            for _ in range(2 if backend != "numpy" else 1)
        ]
    reference = fits["numpy"][0]
    for models in fits.values():
        for model in models:
            np.testing.assert_array_equal(model.user_factors_, reference.user_factors_)
            np.testing.assert_array_equal(model.item_factors_, reference.item_factors_)
            np.testing.assert_array_equal(model.item_bias_, reference.item_bias_)
    other = BPR(6, 3, negative_sampling=sampling, random_state=8, n_threads=1, backend="numpy").fit(train)
    assert not np.array_equal(other.item_factors_, reference.item_factors_)


@pytest.mark.parametrize("backend", COMPILED)
def test_threads_learn_too(backend):
    train, held, positives = _planted()
    model = BPR(8, 40, lr=0.1, random_state=0, n_threads=2, backend=backend).fit(train)
    assert _auc(model, train, held, positives) > 0.85


def test_values_are_presence_not_weights():
    train, _, _ = _planted(2, 50, 30)
    scaled = train.copy()
    scaled.data = scaled.data * 7.5
    a = BPR(4, 2, random_state=3, n_threads=1, backend="numpy").fit(train)
    b = BPR(4, 2, random_state=3, n_threads=1, backend="numpy").fit(scaled)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


def test_solve_user_ranks_its_positives_high_and_is_deterministic():
    train, held, positives = _planted(3)
    model = BPR(8, 40, lr=0.1, random_state=0, n_threads=1, backend=FAST)
    model.fit(train)
    user = 5
    given = train[user]
    ids, _ = model.recommend(user, 10, user_items=given)
    again, _ = model.recommend(user, 10, user_items=given)
    np.testing.assert_array_equal(ids, again)
    factors, _ = model._solve_user(given.indices, given.data, user, model._checked_params())
    scores = model.item_factors_.astype(np.float64) @ factors + model.item_bias_
    pos = given.indices
    neg = np.setdiff1d(np.arange(train.shape[1]), pos)
    assert np.mean(scores[pos][:, None] > scores[neg][None, :]) > 0.9
    # the solve maximises the objective: a small step anywhere does not improve it
    m = pos.size * neg.size

    def objective(p):
        x = (scores_of(p)[pos])[:, None] - scores_of(p)[neg][None, :]
        return -np.logaddexp(0, -x).sum() / m - 0.5 * model.reg * p @ p

    def scores_of(p):
        return model.item_factors_.astype(np.float64) @ p + model.item_bias_

    best = objective(factors)
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert objective(factors + 1e-3 * rng.normal(size=factors.size)) <= best + 1e-12


def test_fold_in_new_user_and_values_default():
    train, _, _ = _planted(4)
    model = BPR(6, 10, random_state=0, n_threads=1, backend=FAST).fit(train)
    items = train[7].indices
    model.fold_in("newcomer", items)
    assert model.n_users_ == train.shape[0] + 1
    via_given, _ = model._solve_user(items, np.ones(items.size), "x", model._checked_params())
    np.testing.assert_allclose(model.user_factors_[-1], via_given.astype(model.user_factors_.dtype))
    ids, _ = model.recommend("newcomer", 5)
    assert not set(ids.tolist()) & set(items.tolist())
    with pytest.raises(ValueError, match="same length"):
        model.fold_in("x", [1, 2], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        model.fold_in("x", [1, 2], [1.0, np.nan])


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_pickle_clone(tmp_path, dtype):
    train, _, _ = _planted(5, 40, 25)
    model = BPR(5, 3, item_bias=False, random_state=2, dtype=dtype, n_threads=1, backend="numpy").fit(train)
    path = tmp_path / "bpr.npz"
    model.save(path)
    for loaded in (BPR.load(path), pickle.loads(pickle.dumps(model))):
        assert loaded.user_factors_.dtype == dtype
        np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)
        np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
        np.testing.assert_array_equal(
            loaded.score_items(np.arange(5), np.arange(25)), model.score_items(np.arange(5), np.arange(25))
        )
        assert loaded.item_bias is False
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "_P")


def test_bad_input_raises():
    train, _, _ = _planted(6, 20, 16)
    with pytest.raises(ValueError, match="negative_sampling"):
        BPR(negative_sampling="hard").fit(train)
    with pytest.raises(ValueError, match="lr must be > 0"):
        BPR(lr=0).fit(train)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        BPR(reg=-1).fit(train)
    with pytest.raises(ValueError, match="n_factors must be >= 1"):
        BPR(n_factors=0).fit(train)
    with pytest.raises(TypeError, match="item_bias must be True or False"):
        BPR(item_bias=1).fit(train)
    with pytest.raises(TypeError, match="random_state"):
        BPR(random_state="seed").fit(train)
    with pytest.raises(TypeError, match="dtype"):
        BPR(dtype=np.int32).fit(train)
    negative = train.copy()
    negative.data = -negative.data
    with pytest.raises(ValueError, match="at least one positive"):
        BPR(backend="numpy").fit(negative)
    with pytest.raises(FloatingPointError, match="lower lr"):
        BPR(2, 20, lr=1e30, reg=1e10, random_state=0, n_threads=1, backend="numba").fit(
            _planted(6, 10, 16, per_user=4)[0]
        )


@pytest.mark.parametrize("backend", [b for b in COMPILED if b == "cpp"])
def test_compiled_kernels_reject_bad_arrays(backend):
    R = _matrix()
    indptr, indices, users = positives_of(R)
    P, Q, bi = _factors(*R.shape, 4, np.float32)
    kw = dict(
        lr=0.1,
        reg=0.0,
        item_bias=True,
        popularity=False,
        n_samples=10,
        seed=0,
        max_tries=4,
        out_stats=np.zeros(3),
        n_threads=1,
        group=8,
    )
    cpp = _kernels(backend)
    with pytest.raises(ValueError, match="P: expected 2-D rows padded"):
        cpp.bpr_epoch(
            indptr=indptr,
            indices=indices,
            users=users,
            P=np.zeros(P.shape[:1] + (4,), np.float32),
            Q=np.zeros(Q.shape[:1] + (4,), np.float32),
            bi=bi,
            **kw,
        )
    with pytest.raises(ValueError, match="Q: expected shape"):
        cpp.bpr_epoch(
            indptr=indptr, indices=indices, users=users, P=P, Q=np.ascontiguousarray(Q[:, :8]), bi=bi, **kw
        )
    bad = indices.copy()
    bad[0] = R.shape[1]
    with pytest.raises(ValueError, match="indices: item out of range"):
        cpp.bpr_epoch(indptr=indptr, indices=bad, users=users, P=P, Q=Q, bi=bi, **kw)
    unsorted = indices.copy()
    unsorted[[0, 1]] = unsorted[[1, 0]]
    with pytest.raises(ValueError, match="sorted"):
        cpp.bpr_epoch(indptr=indptr, indices=unsorted, users=users, P=P, Q=Q, bi=bi, **kw)
    wrong_users = users.copy()
    wrong_users[0] += 1
    with pytest.raises(ValueError, match="users"):
        cpp.bpr_epoch(indptr=indptr, indices=indices, users=wrong_users, P=P, Q=Q, bi=bi, **kw)
    one = np.zeros(1, np.int32)
    with pytest.raises(ValueError, match="negatives: equal to the positive"):
        cpp.bpr_samples(
            users=one,
            items=one,
            negatives=one,
            P=P,
            Q=Q,
            bi=bi,
            lr=0.1,
            reg=0.0,
            item_bias=True,
            out_stats=np.zeros(3),
        )
    with pytest.raises(ValueError, match="max_tries must be >= 1"):
        cpp.bpr_epoch(indptr=indptr, indices=indices, users=users, P=P, Q=Q, bi=bi, **{**kw, "max_tries": 0})
    with pytest.raises(ValueError, match="group must be >= 1"):
        cpp.bpr_epoch(indptr=indptr, indices=indices, users=users, P=P, Q=Q, bi=bi, **{**kw, "group": 0})


def test_positives_are_the_entries_above_zero():
    rng = np.random.default_rng(12)
    rows, cols = rng.integers(0, 7, 60), rng.integers(0, 9, 60)
    values = rng.choice([-1.0, 0.0, 1.0, 2.5], 60)
    R = sp.csr_matrix((values, (rows, cols)), shape=(7, 9))  # duplicates, explicit zeros, negatives
    R.has_canonical_format = False
    before = (R.data.copy(), R.indices.copy(), R.indptr.copy())
    indptr, indices, users = positives_of(R)
    dense = np.zeros((7, 9))
    np.add.at(dense, (rows, cols), values)
    expected = sp.csr_matrix(dense > 0)
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(users, np.repeat(np.arange(7), np.diff(expected.indptr)))
    assert indices.dtype == users.dtype == np.int32 and indptr.dtype == np.int64
    for got, want in zip((R.data, R.indices, R.indptr), before):
        np.testing.assert_array_equal(got, want)  # input unchanged


@pytest.mark.parametrize("backend", BACKENDS)
def test_threaded_epoch_draws_the_chunked_samples(backend):
    """With several threads the epoch skips exactly the samples bpr_draw leaves without a negative."""
    R = _matrix(density=0.6)  # dense rows: many skipped samples with max_tries=1
    indptr, indices, users = positives_of(R)
    out = [np.empty(900, dtype=np.int32) for _ in range(3)]
    _reference.bpr_draw(indptr, indices, users, R.shape[1], 900, 4, False, 1, *out, 3, 100)
    P, Q, bi = _factors(*R.shape, 4, np.float64)
    stats = np.zeros(3)
    _kernels(backend).bpr_epoch(
        indptr=indptr,
        indices=indices,
        users=users,
        P=P,
        Q=Q,
        bi=bi,
        lr=0.05,
        reg=0.01,
        item_bias=True,
        popularity=False,
        n_samples=900,
        seed=4,
        max_tries=1,
        out_stats=stats,
        n_threads=3,
        group=100,
    )
    assert stats[2] == np.sum(out[2] < 0) > 0
    assert stats[0] + stats[2] == 900
