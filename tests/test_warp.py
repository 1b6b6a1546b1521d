"""WARP: the kernel against its numpy reference and finite differences, and the estimator."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant

from fastrec import WARP, _runtime
from fastrec._aligned import aligned_zeros, padded_width
from fastrec.implicit._positives import positives_of
from fastrec.implicit.warp import _reference

BACKENDS = list(_runtime.available_backends())
COMPILED = [b for b in BACKENDS if b != "numpy"]
VARIANTS = compiled_variants()


def positives(R: sp.csr_matrix) -> sp.csr_matrix:
    """The pattern of the entries > 0 of ``R`` as float32 ones (what the kernels train on)."""
    indptr, indices, _ = positives_of(sp.csr_matrix(R))
    return sp.csr_matrix((np.ones(indices.size, dtype=np.float32), indices, indptr), shape=R.shape)


def kernel(backend):
    return _runtime.kernel_module(backend, "implicit.warp").warp_epoch


def _aligned(values: np.ndarray, stride: int) -> np.ndarray:
    out = aligned_zeros(values.shape[0], stride, values.dtype)
    out[:, : values.shape[1]] = values
    return out


def _ones(rows: int, stride: int, dtype) -> np.ndarray:
    out = aligned_zeros(rows, stride, dtype)
    out[:] = 1
    return out


def problem(
    dtype=np.float64,
    adagrad=True,
    explicit=True,
    n_users=30,
    n_items=25,
    k=5,
    density=0.2,
    max_sampled=4,
    seed=0,
    scale=0.3,
):
    """Keyword arguments of one warp_epoch call on random data (fresh arrays on every call)."""
    rng = np.random.default_rng(seed)
    X = positives(sp.random(n_users, n_items, density=density, random_state=seed, format="csr"))
    stride = padded_width(k, dtype)
    nnz = X.nnz
    return dict(
        indptr=X.indptr.astype(np.int64),
        indices=X.indices.astype(np.int32),
        users=np.repeat(np.arange(n_users, dtype=np.int32), np.diff(X.indptr)),
        order=rng.permutation(nnz).astype(np.int64),
        draws=(
            rng.integers(0, n_items, nnz * max_sampled).astype(np.int32)
            if explicit
            else np.zeros(0, np.int32)
        ),
        P=_aligned((rng.standard_normal((n_users, k)) * scale).astype(dtype), stride),
        Q=_aligned((rng.standard_normal((n_items, k)) * scale).astype(dtype), stride),
        bi=(rng.standard_normal(n_items) * 0.1).astype(dtype),
        P_acc=_ones(n_users, stride, dtype) if adagrad else np.zeros((0, stride), dtype),
        Q_acc=_ones(n_items, stride, dtype) if adagrad else np.zeros((0, stride), dtype),
        bi_acc=np.ones(n_items, dtype) if adagrad else np.zeros(0, dtype),
        n_factors=k,
        lr=0.1,
        reg=0.01,
        margin=1.0,
        max_sampled=max_sampled,
        adagrad=adagrad,
        seed=7,
        out_stats=np.zeros(3),
        n_threads=1,
    )


def _run(backend, args, level=None):
    with variant(level):
        kernel(backend)(**args)
    return args


# --- the reference: gradient, rank weight, negatives --------------------------------------------


def test_the_step_is_minus_lr_times_the_gradient_of_the_weighted_hinge():
    """One update (constant schedule) against central differences of L * hinge + reg / 2 * |x|^2."""
    n_items, k, lr, reg, margin = 9, 4, 1e-3, 0.05, 1.0
    rng = np.random.default_rng(3)
    p, q = rng.standard_normal(k) * 0.3, rng.standard_normal((n_items, k)) * 0.3
    b = rng.standard_normal(n_items) * 0.1
    i, j = 2, 5
    b[j] = b[i] + 0.5  # j violates the margin: s_j > s_i - margin
    draws = [1, 1, j]  # item 1 is a positive (skipped): j is found at draw 3
    weight = math.log((n_items - 1) // 3)
    stride = padded_width(k, np.float64)
    args = dict(
        indptr=np.array([0, 2], np.int64),
        indices=np.array([1, i], np.int32),
        users=np.zeros(2, np.int32),
        order=np.array([1], np.int64),
        draws=np.array(draws, np.int32),
        P=_aligned(p[None, :], stride),
        Q=_aligned(q, stride),
        bi=b.copy(),
        P_acc=np.zeros((0, stride)),
        Q_acc=np.zeros((0, stride)),
        bi_acc=np.zeros(0),
        n_factors=k,
        lr=lr,
        reg=reg,
        margin=margin,
        max_sampled=3,
        adagrad=False,
        seed=0,
        out_stats=np.zeros(3),
        n_threads=1,
    )
    _reference.warp_epoch(**args)

    def objective(x):
        pp, qi, qj, bi_, bj = x[:k], x[k : 2 * k], x[2 * k : 3 * k], x[3 * k], x[3 * k + 1]
        hinge = margin - (pp @ qi + bi_) + (pp @ qj + bj)
        return weight * hinge + reg / 2 * (x @ x)

    x0 = np.concatenate([p, q[i], q[j], [b[i], b[j]]])
    eps = 1e-6
    grad = np.array(
        [(objective(x0 + eps * e) - objective(x0 - eps * e)) / (2 * eps) for e in np.eye(x0.size)]
    )
    x1 = np.concatenate([args["P"][0, :k], args["Q"][i, :k], args["Q"][j, :k], args["bi"][[i, j]]])
    np.testing.assert_allclose((x0 - x1) / lr, grad, rtol=1e-6, atol=1e-8)
    hinge = margin - (p @ q[i] + b[i]) + (p @ q[j] + b[j])
    np.testing.assert_allclose(args["out_stats"], [weight * hinge, 1, 1], rtol=1e-12)
    untouched = [x for x in range(n_items) if x not in (i, j)]
    np.testing.assert_array_equal(args["Q"][untouched, :k], q[untouched])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_drawn", [1, 2, 3, 5, 8, 9])
def test_rank_weight_is_log_of_the_floor_of_items_over_draws(backend, n_drawn):
    """The violator found at draw N weighs log(floor((n_items - 1) / N)); an estimate of 1 updates nothing."""
    n_items = 17
    args = problem(n_users=1, n_items=n_items, density=1.0, max_sampled=n_drawn, explicit=True)
    X = np.zeros((1, n_items))
    X[0, [0, 3]] = 1
    user = positives(sp.csr_matrix(X))
    args.update(
        indptr=user.indptr.astype(np.int64),
        indices=user.indices.astype(np.int32),
        users=np.zeros(2, np.int32),
        order=np.array([0], np.int64),
        adagrad=False,
        P_acc=np.zeros((0, args["P"].shape[1])),
        Q_acc=np.zeros((0, args["P"].shape[1])),
        bi_acc=np.zeros(0),
    )
    bi = np.full(n_items, -50.0)  # nothing violates ...
    bi[[3, 9]] = 50.0  # ... but the positive 3 (skipped) and the negative 9
    args["bi"] = bi
    args["draws"] = np.array([3] * (n_drawn - 1) + [9], np.int32)
    s_i = args["P"][0] @ args["Q"][0] + bi[0]
    s_j = args["P"][0] @ args["Q"][9] + bi[9]
    _run(backend, args)
    rank = (n_items - 1) // n_drawn
    expected = [math.log(rank) * (1.0 - s_i + s_j), 1, 1] if rank > 1 else [0, 0, 1]
    np.testing.assert_allclose(args["out_stats"], expected, rtol=1e-12)
    assert (args["bi"][9] < 50.0) == (rank > 1)
    assert _reference.rank_weight(n_items, n_drawn) == pytest.approx(math.log(rank) if rank > 1 else 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("explicit", [True, False])
def test_positives_are_never_taken_as_negatives(backend, explicit):
    """A user's other positives score far above the margin; they are drawn but never used."""
    n_items = 40
    X = np.zeros((1, n_items))
    X[0, [0, 11, 23, 30]] = 1
    user = positives(sp.csr_matrix(X))
    args = problem(n_users=1, n_items=n_items, max_sampled=200, explicit=explicit)
    bi = np.full(n_items, -100.0)
    bi[[11, 23, 30]] = 100.0
    bi[0] = 50.0  # the positive visited: only its fellow positives score above it minus the margin
    before = {key: args[key].copy() for key in ("P", "Q")}
    args.update(
        indptr=user.indptr.astype(np.int64),
        indices=user.indices.astype(np.int32),
        users=np.zeros(4, np.int32),
        order=np.zeros(50, np.int64),  # the positive 0, fifty times
        bi=bi.copy(),
    )
    if explicit:
        args["draws"] = np.tile(np.array([11, 23, 30, 5], np.int32), 2500)
    _run(backend, args)
    np.testing.assert_array_equal(args["out_stats"], [0, 0, 50])
    np.testing.assert_array_equal(args["bi"], bi)
    for key, value in before.items():
        np.testing.assert_array_equal(args[key], value)


# --- the backends against the reference ---------------------------------------------------------


@pytest.mark.parametrize("backend,level", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("adagrad", [True, False])
@pytest.mark.parametrize("explicit", [True, False])
def test_compiled_kernels_equal_the_reference(backend, level, dtype, adagrad, explicit):
    """Given draws (or one draw stream), every backend makes the reference's updates, to rounding."""
    want = problem(dtype, adagrad, explicit)
    _reference.warp_epoch(**want)
    got = _run(backend, problem(dtype, adagrad, explicit), level)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for key in ("P", "Q", "bi", "P_acc", "Q_acc", "bi_acc"):
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol, err_msg=key)
    np.testing.assert_array_equal(got["out_stats"][1:], want["out_stats"][1:])
    np.testing.assert_allclose(got["out_stats"][0], want["out_stats"][0], rtol=1e-5)
    assert want["out_stats"][1] > 0
    # the padding lanes stay zero
    k = want["n_factors"]
    assert not got["P"][:, k:].any() and not got["Q"][:, k:].any()


@pytest.mark.parametrize("backend", COMPILED)
def test_each_thread_draws_from_its_own_stream(backend):
    """With several threads the updates race, but the draws are the reference's per-chunk streams."""
    args = problem(n_users=200, n_items=300, density=0.05, explicit=False, max_sampled=3)
    args.update(n_threads=2, lr=0.0)  # no step: every thread sees the starting scores
    want = dict(args, out_stats=np.zeros(3))
    _reference.warp_epoch(**want)
    _run(backend, args)
    np.testing.assert_array_equal(args["out_stats"][1:], want["out_stats"][1:])
    np.testing.assert_allclose(args["out_stats"][0], want["out_stats"][0], rtol=1e-10)


@pytest.mark.parametrize("backend", [b for b in COMPILED if b == "cpp"])
def test_the_binding_refuses_bad_kernel_input(backend):
    args = problem()
    with pytest.raises(ValueError, match="draws: item out of range"):
        kernel("cpp")(**dict(args, draws=np.array([25], np.int32)))
    with pytest.raises(ValueError, match="users\\[t\\] must be the row"):
        kernel("cpp")(**dict(args, users=np.zeros_like(args["users"])))
    with pytest.raises(ValueError, match="order: entry out of range"):
        kernel("cpp")(**dict(args, order=np.array([10**6], np.int64)))
    shifted = np.zeros(args["P"].size + 1)[1:].reshape(args["P"].shape)  # 8 bytes off the 64-byte grid
    shifted[:] = args["P"]
    with pytest.raises(ValueError, match="P: rows must start on 64-byte boundaries"):
        kernel("cpp")(**dict(args, P=shifted))


# --- the estimator ------------------------------------------------------------------------------


def planted(n_users=300, n_items=200, per_user=20, rank=4, seed=0):
    """Users x items positives drawn from a low-rank preference, and a held-out part of them."""
    rng = np.random.default_rng(seed)
    U, V = rng.standard_normal((n_users, rank)), rng.standard_normal((n_items, rank))
    scores = U @ V.T + rng.gumbel(size=(n_users, n_items)) * 0.5
    top = np.argsort(-scores, axis=1)[:, :per_user]
    rows = np.repeat(np.arange(n_users), per_user)
    test = rng.random(rows.size) < 0.25
    shape = (n_users, n_items)
    train = sp.csr_matrix((np.ones((~test).sum()), (rows[~test], top.ravel()[~test])), shape=shape)
    held = sp.csr_matrix((np.ones(test.sum()), (rows[test], top.ravel()[test])), shape=shape)
    return train, held


@pytest.mark.parametrize("backend", COMPILED)
def test_the_model_learns_planted_preferences(backend):
    train, held = planted()
    model = WARP(n_factors=8, n_epochs=15, random_state=0, n_threads=2, backend=backend).fit(train)
    ids, _ = model.recommend(np.arange(train.shape[0]), n=5)
    hits = np.mean([np.isin(ids[u], held[u].indices).mean() for u in range(train.shape[0])])
    chance = held.nnz / (train.shape[0] * (train.shape[1] - 15))
    assert hits > 8 * chance, (hits, chance)
    # AUC of the held-out positives against the items the user never had
    scores = model.score_items(np.arange(train.shape[0]))
    aucs = []
    for u in range(train.shape[0]):
        pos = held[u].indices
        neg = np.setdiff1d(np.arange(train.shape[1]), np.concatenate([pos, train[u].indices]))
        if pos.size:
            aucs.append((scores[u, pos][:, None] > scores[u, neg][None, :]).mean())
    assert np.mean(aucs) > 0.8
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    assert set(model.history_) == {"loss", "violated", "seconds"}
    assert len(model.history_["seconds"]) == 15


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_model_and_backends_agree(backend):
    train, _ = planted(n_users=40, n_items=30, per_user=6)

    def fit(seed, backend=backend, dtype=np.float64):
        return WARP(
            n_factors=4, n_epochs=3, random_state=seed, n_threads=1, backend=backend, dtype=dtype
        ).fit(train)

    a, b, c = fit(1), fit(1), fit(2)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    assert not np.array_equal(a.item_factors_, c.item_factors_)
    ref = fit(1, "numpy")
    np.testing.assert_allclose(a.item_factors_, ref.item_factors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.user_factors_, ref.user_factors_, rtol=1e-9, atol=1e-12)


def test_only_positive_values_are_positives():
    # row 0: 1 at item 0, a stored zero at item 1, -2 at item 2, 3 at item 3; row 1: 0.5 at item 3
    R = sp.csr_matrix(([1.0, 0.0, -2.0, 3.0, 0.5], [0, 1, 2, 3, 3], [0, 4, 5]), shape=(2, 4))
    X = positives(R)
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 0, 1], [0, 0, 0, 1]])


def test_fold_in_is_deterministic_and_close_to_the_trained_user():
    train, _ = planted()
    model = WARP(n_factors=8, n_epochs=15, random_state=0, n_threads=1).fit(train)
    user, items = 5, train[5].indices
    trained, _ = model.recommend(user, n=10)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    a.fold_in(user, items)
    b.fold_in(user, items, np.ones(items.size))
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    folded, _ = a.recommend(user, n=10)
    assert np.isin(folded, trained).sum() >= 5
    fresh = copy.deepcopy(model).fold_in("new", items)
    np.testing.assert_array_equal(fresh.user_factors_[-1], a.user_factors_[user])
    # values <= 0 are no positives: an all-zero row folds to zero factors
    zero = copy.deepcopy(model).fold_in("none", items, np.zeros(items.size))
    assert not zero.user_factors_[-1].any()


def test_save_load_and_pickle(tmp_path):
    train, _ = planted(n_users=40, n_items=30, per_user=6)
    model = WARP(n_factors=4, n_epochs=2, random_state=3, learning_schedule="constant", lr=0.01).fit(train)
    model.save(tmp_path / "warp.npz")
    for other in (WARP.load(tmp_path / "warp.npz"), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(other.item_factors_, model.item_factors_)
        np.testing.assert_array_equal(other.item_bias_, model.item_bias_)
        saved, params = other.get_params(), model.get_params()
        assert np.dtype(saved.pop("dtype")) == np.dtype(params.pop("dtype"))
        assert saved == params
        _ = [np.testing.assert_array_equal(x, y) for x, y in zip(other.recommend(1), model.recommend(1))]


@pytest.mark.parametrize(
    "params,match",
    [
        ({"learning_schedule": "adam"}, "learning_schedule must be 'adagrad' or 'constant'"),
        ({"n_factors": 0}, "n_factors"),
        ({"max_sampled": 0}, "max_sampled"),
        ({"margin": -1.0}, "margin"),
        ({"lr": 0.0}, "lr"),
        ({"reg": -0.1}, "reg"),
        ({"item_features": sp.csr_matrix((30, 0))}, "item_features must have at least one column"),
    ],
)
def test_bad_parameters_raise(params, match):
    train, _ = planted(n_users=20, n_items=30, per_user=4)
    with pytest.raises(ValueError, match=match):
        WARP(**params).fit(train)


def test_bad_random_state_and_fold_in_input_raise():
    train, _ = planted(n_users=20, n_items=30, per_user=4)
    with pytest.raises(TypeError, match="random_state"):
        WARP(random_state="x").fit(train)
    model = WARP(n_factors=2, n_epochs=1, random_state=0).fit(train)
    with pytest.raises(ValueError, match="items and values must have the same length"):
        model.fold_in(0, [1, 2], [1.0])


def test_a_diverging_constant_schedule_raises():
    train, _ = planted(n_users=60, n_items=50, per_user=10)
    with pytest.raises(FloatingPointError, match="lower lr"):
        WARP(n_factors=4, n_epochs=30, lr=50.0, init_std=1.0, learning_schedule="constant").fit(train)


# --- item features --------------------------------------------------------------------------------


def _with_features(args, X):
    """warp_epoch arguments turned into warp_epoch_features ones: Q, bi and their accumulators per feature."""
    out = {key: args[key] for key in args if key not in ("Q", "bi", "Q_acc", "bi_acc")}
    out.update(
        E=args["Q"],
        eb=args["bi"],
        E_acc=args["Q_acc"],
        eb_acc=args["bi_acc"],
        feature_indptr=X.indptr.astype(np.int64),
        feature_indices=X.indices.astype(np.int32),
        feature_data=X.data.astype(args["P"].dtype),
    )
    return out


def features_kernel(backend):
    return _runtime.kernel_module(backend, "implicit.warp").warp_epoch_features


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("adagrad", [True, False])
def test_identity_features_are_the_plain_model(backend, dtype, adagrad):
    want = problem(dtype, adagrad, explicit=True)
    _reference.warp_epoch(**want)
    got = _with_features(problem(dtype, adagrad, explicit=True), sp.identity(25, format="csr"))
    features_kernel(backend)(**got)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in (("E", "Q"), ("eb", "bi"), ("P", "P")):
        np.testing.assert_allclose(got[mine], want[theirs], rtol=tol, atol=tol, err_msg=mine)
    np.testing.assert_array_equal(got["out_stats"][1:], want["out_stats"][1:])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("adagrad", [True, False])
@pytest.mark.parametrize("explicit", [True, False])
def test_feature_kernels_equal_the_reference(backend, dtype, adagrad, explicit):
    """Items of several weighted features, shared between items: every backend makes the reference's steps."""
    n_items, n_features = 25, 9
    X = sp.random(n_items, n_features, density=0.35, random_state=4, format="csr", dtype=np.float64)
    X = sp.csr_matrix(X + sp.csr_matrix((np.ones(n_items), (np.arange(n_items), np.arange(n_items) % 9))))
    base = problem(dtype, adagrad, explicit)
    base["Q"], base["bi"] = base["Q"][:n_features], base["bi"][:n_features].copy()
    if adagrad:
        base["Q_acc"], base["bi_acc"] = base["Q_acc"][:n_features], base["bi_acc"][:n_features].copy()
    want = _with_features({key: np.copy(v) if isinstance(v, np.ndarray) else v for key, v in base.items()}, X)
    for key in ("P", "E", "P_acc", "E_acc"):  # copies lose the alignment: restore it
        want[key] = _aligned(want[key], want[key].shape[1]) if want[key].size else want[key]
    got = _with_features(base, X)
    _reference.warp_epoch_features(**want)
    features_kernel(backend)(**got)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for key in ("P", "E", "eb", "P_acc", "E_acc", "eb_acc"):
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol, err_msg=key)
    np.testing.assert_array_equal(got["out_stats"][1:], want["out_stats"][1:])
    assert want["out_stats"][1] > 0


def test_the_model_with_item_features():
    train, held = planted()
    n_items = train.shape[1]
    plain = WARP(n_factors=8, n_epochs=6, random_state=0, n_threads=1).fit(train)
    identity = WARP(
        n_factors=8, n_epochs=6, random_state=0, n_threads=1, item_features=sp.identity(n_items, format="csr")
    ).fit(train)
    np.testing.assert_allclose(identity.item_factors_, plain.item_factors_, rtol=1e-4, atol=1e-5)
    groups = np.random.default_rng(0).integers(0, 10, n_items)
    X = sp.hstack(
        [
            sp.identity(n_items),
            sp.csr_matrix((np.ones(n_items), (np.arange(n_items), groups)), shape=(n_items, 10)),
        ]
    ).tocsr()
    model = WARP(n_factors=8, n_epochs=15, random_state=0, n_threads=1, item_features=X).fit(train)
    assert model.feature_factors_.shape == (n_items + 10, 8)
    np.testing.assert_allclose(model.item_factors_, X @ model.feature_factors_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_bias_, X @ model.feature_bias_, rtol=1e-4, atol=1e-5)
    ids, _ = model.recommend(np.arange(train.shape[0]), n=5)
    hits = np.mean([np.isin(ids[u], held[u].indices).mean() for u in range(train.shape[0])])
    assert hits > 8 * held.nnz / (train.shape[0] * (n_items - 15))
    with pytest.raises(ValueError, match="item_features has 30 rows but the data has 200 items"):
        WARP(item_features=sp.identity(30, format="csr")).fit(train)
    with pytest.raises(TypeError, match="item_features must be a scipy sparse matrix"):
        WARP(item_features=np.eye(n_items)).fit(train)


def test_the_fold_in_solve_is_its_documented_formula():
    """Full-batch steps on all violators of every positive, against a dense brute-force loop."""
    from fastrec.implicit.warp import model as warp_model

    train, _ = planted(n_users=60, n_items=80, per_user=8)
    model = WARP(n_factors=6, n_epochs=5, random_state=0, n_threads=1).fit(train)
    k, margin = model._k, model.margin
    Q, b = model.item_factors_.astype(np.float64), model.item_bias_.astype(np.float64)
    pos = np.unique(train[7].indices)
    neg = np.setdiff1d(np.arange(Q.shape[0]), pos)
    p = np.zeros(k)
    scale = warp_model.FOLD_IN_STEP / np.mean((Q * Q).sum(axis=1))
    for _ in range(warp_model.FOLD_IN_STEPS):
        s_pos, s_neg = Q[pos] @ p + b[pos], Q[neg] @ p + b[neg]
        violated = s_neg[None, :] > (s_pos - margin)[:, None]
        counts = violated.sum(axis=1)
        weight = np.where(counts > 1, np.log(np.maximum(counts, 1)), 0.0)
        mean = (violated @ Q[neg]) / np.maximum(counts, 1)[:, None]
        p = p - scale * (weight[:, None] * (mean - Q[pos])).sum(axis=0) / pos.size
    # values <= 0 and repeated items change nothing
    items = np.concatenate([pos, pos[:2], neg[:3]])
    values = np.concatenate([np.ones(pos.size + 2), np.zeros(3)])
    got, bias = model._solve_user(items, values, 7, model._checked_params())
    np.testing.assert_allclose(got, p, rtol=1e-9, atol=1e-12)
    assert bias == 0.0 and np.abs(p).max() > 0.1
