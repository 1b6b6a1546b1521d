"""Metrics: hand-computed cases, the reference against brute force, backends, evaluate()."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant

import fastrec
from fastrec import _runtime
from fastrec.datasets import make_ratings
from fastrec.metrics import (
    RankingScore,
    coverage,
    evaluate,
    f1_at_k,
    hit_rate_at_k,
    mae,
    map_at_k,
    ndcg_at_k,
    per_user_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    rmse,
)

BACKENDS = list(_runtime.available_backends())
D = 1 / np.log2(np.arange(2, 12))  # discounts of slots 0..9


def hand_case():
    # user 0: relevant {1, 4, 7}; list 4, 2, 1 -> hits at slots 0 and 2
    # user 1: no test items (excluded)
    # user 2: relevant {0}; list -1, 0, 5 -> hit at slot 1
    # user 3: relevant {2, 3, 5, 6}; list 8, 9, -1 -> no hit
    recs = np.array([[4, 2, 1], [0, 1, 2], [-1, 0, 5], [8, 9, -1]])
    test = sp.csr_matrix((np.ones(8), ([0, 0, 0, 2, 3, 3, 3, 3], [1, 4, 7, 0, 2, 3, 5, 6])), shape=(4, 10))
    return recs, test


def test_hand_computed_values():
    recs, test = hand_case()
    k = 3
    precision = [2 / 3, 1 / 3, 0]
    recall = [2 / 3, 1, 0]
    f1 = [2 * p * r / (p + r) if p + r else 0 for p, r in zip(precision, recall)]
    ndcg = [(D[0] + D[2]) / (D[0] + D[1] + D[2]), D[1] / D[0], 0]
    ap = [(1 / 1 + 2 / 3) / 3, (1 / 2) / 1, 0]
    hit = [1, 1, 0]
    expected = {"precision": precision, "recall": recall, "f1": f1, "ndcg": ndcg, "map": ap, "hit_rate": hit}
    functions = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "f1": f1_at_k,
        "ndcg": ndcg_at_k,
        "map": map_at_k,
        "hit_rate": hit_rate_at_k,
    }
    for backend in BACKENDS:
        for name, function in functions.items():
            score = function(recs, test, k=k, backend=backend)
            assert isinstance(score, RankingScore) and score.n_users == 3
            assert score.value == pytest.approx(np.mean(expected[name]), abs=1e-15), name
        everything = ranking_metrics(recs, test, k=k, backend=backend)
        assert everything["n_users"] == 3
        assert everything["coverage"] == pytest.approx(7 / 10)  # items 0, 1, 2, 4, 5, 8, 9
        assert coverage(recs, test, k=k, backend=backend) == pytest.approx(0.7)
        assert coverage(recs, test, k=1, backend=backend) == pytest.approx(0.3)  # 4, 0, 8
    # k smaller than the table: only the first slots count
    assert precision_at_k(recs, test, k=1).value == pytest.approx(1 / 3)
    per_user, flags = per_user_metrics(recs, test, k=3)
    assert np.all(np.isnan(per_user[1])) and flags.sum() == 7


def brute_force(recs, test, k):
    """Per-user metrics written from the definitions, with Python sets."""
    dense = test.toarray() != 0
    rows = []
    for u in range(recs.shape[0]):
        relevant = set(np.flatnonzero(dense[u]).tolist())
        if not relevant:
            rows.append([np.nan] * 6)
            continue
        hits, dcg, ap = 0, 0.0, 0.0
        for p, item in enumerate(recs[u, :k]):
            if item in relevant:
                hits += 1
                dcg += 1 / np.log2(p + 2)
                ap += hits / (p + 1)
        ideal = min(k, len(relevant))
        idcg = sum(1 / np.log2(p + 2) for p in range(ideal))
        p_, r_ = hits / k, hits / len(relevant)
        rows.append(
            [p_, r_, 2 * p_ * r_ / (p_ + r_) if hits else 0.0, dcg / idcg, ap / ideal, float(hits > 0)]
        )
    return np.array(rows)


def random_case(seed, n_users=300, n_items=80, width=12):
    rng = np.random.default_rng(seed)
    recs = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    recs[rng.random(recs.shape) < 0.1] = -1  # empty slots anywhere
    test = sp.random(n_users, n_items, density=0.08, format="csr", random_state=rng)
    test.data[:] = rng.integers(1, 6, test.nnz)
    return recs, test


@pytest.mark.parametrize("k", [1, 5, 12])
def test_reference_matches_brute_force(k):
    recs, test = random_case(0)
    per_user, flags = per_user_metrics(recs, test, k, backend="numpy")
    np.testing.assert_allclose(per_user, brute_force(recs, test, k), rtol=1e-13, equal_nan=True)
    head = recs[:, :k]
    np.testing.assert_array_equal(np.flatnonzero(flags), np.unique(head[head >= 0]))


@pytest.mark.parametrize("backend,level", compiled_variants())
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_compiled_backends_match_reference(backend, level, index_dtype):
    recs, test = random_case(1)
    test.indices = test.indices.astype(index_dtype)
    want = per_user_metrics(recs, test, 10, threshold=3, backend="numpy")
    with variant(level):
        for threads in (1, 3):
            got = per_user_metrics(recs, test, 10, threshold=3, backend=backend, n_threads=threads)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-14, equal_nan=True)
            np.testing.assert_array_equal(got[1], want[1])


def test_threshold_keeps_only_high_ratings_and_input_is_untouched():
    recs, test = random_case(2)
    before = test.copy()
    high = sp.csr_matrix(test.multiply(test >= 4))
    high.eliminate_zeros()
    a = ranking_metrics(recs, test, 5, threshold=4)
    b = ranking_metrics(recs, high, 5)
    assert a == b
    assert (test != before).nnz == 0


def test_recommendation_tables_are_checked():
    recs, test = hand_case()
    with pytest.raises(ValueError, match="item index 10, outside"):
        precision_at_k(np.array([[10, 0, 1]] * 4), test, k=3)
    with pytest.raises(ValueError, match="item index -2, outside"):
        precision_at_k(np.array([[-2, 0, 1]] * 4), test, k=3)
    with pytest.raises(ValueError, match="row 2 lists an item more than once"):
        precision_at_k(np.array([[1, 2, 3], [1, 2, 3], [4, 5, 4], [1, 2, 3]]), test, k=3)
    with pytest.raises(ValueError, match="3 rows but test has 4 users"):
        precision_at_k(recs[:3], test, k=3)
    with pytest.raises(ValueError, match="fewer than k=5"):
        precision_at_k(recs, test, k=5)
    with pytest.raises(TypeError, match="integer item indices"):
        precision_at_k(recs.astype(float), test, k=3)
    with pytest.raises(TypeError, match="test must be a users x items scipy sparse matrix"):
        precision_at_k(recs, test.toarray(), k=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(recs, test, k=0)
    # out-of-range slots beyond k are not looked at
    wide = np.hstack([recs, np.full((4, 1), 99)])
    assert precision_at_k(wide, test, k=3) == precision_at_k(recs, test, k=3)


def test_no_user_with_test_items_gives_nan_and_zero_count():
    recs = np.zeros((2, 3), dtype=np.int64) + np.arange(3)
    score = ndcg_at_k(recs, sp.csr_matrix((2, 5)), k=3)
    assert np.isnan(score.value) and score.n_users == 0


def test_rmse_and_mae():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse(3.0, 4.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        mae([1, 2], [1, np.nan])
    with pytest.raises(ValueError, match="empty"):
        rmse([], [])


def test_rmse_and_mae_of_any_finite_magnitude():
    rng = np.random.default_rng(0)
    y, p = rng.uniform(1, 5, 200), rng.uniform(1, 5, 200)
    base_rmse = np.sqrt(np.mean((y - p) ** 2))
    base_mae = np.mean(np.abs(y - p))
    # float64 errors near 1e160 (squares overflow), 1e300, 1e-170 (squares underflow)
    # and in the subnormals: exactly the unit-range values, scaled back
    for e in (530, 990, -560, -1040):
        ys, ps = np.ldexp(y, e), np.ldexp(p, e)
        rel = 1e-13 if e > -1000 else 1e-6  # subnormal inputs carry fewer digits
        assert rmse(ys, ps) == pytest.approx(np.ldexp(base_rmse, e), rel=rel), e
        assert mae(ys, ps) == pytest.approx(np.ldexp(base_mae, e), rel=rel), e
    # float32 errors near 1e20 and 1e-20 are computed in float64
    y32, p32 = (y * 1e20).astype(np.float32), (p * 1e20).astype(np.float32)
    expected = np.sqrt(np.mean((y32.astype(np.float64) - p32.astype(np.float64)) ** 2))
    assert rmse(y32, p32) == pytest.approx(expected, rel=1e-13)
    # inputs near the top of float64 whose differences overflow, but whose means do not
    top = np.finfo(np.float64).max
    assert mae([0.75 * top, 1.0], [-0.5 * top, 1.0]) == pytest.approx(0.625 * top, rel=1e-14)
    assert rmse([0.75 * top, 1.0], [-0.5 * top, 1.0]) == pytest.approx(1.25 / np.sqrt(2) * top, rel=1e-14)
    assert rmse([1e-320, 0.0], [0.0, 0.0]) == pytest.approx(1e-320 / np.sqrt(2), rel=1e-2)
    # ordinary values: the direct formula, bit for bit
    assert rmse(y, p) == float(np.sqrt(np.mean((y - p) ** 2)))
    assert mae(y, p) == float(np.mean(np.abs(y - p)))
    before = (y.copy(), p.copy())
    rmse(np.ldexp(y, 990), np.ldexp(p, 990))
    np.testing.assert_array_equal(y, before[0])
    np.testing.assert_array_equal(p, before[1])


def test_rmse_and_mae_beyond_float64_raise():
    top = np.finfo(np.float64).max
    with pytest.raises(ValueError, match="RMSE of these ratings exceeds the largest float64"):
        rmse([0.9 * top] * 3, [-0.9 * top] * 3)
    with pytest.raises(ValueError, match="MAE of these ratings exceeds the largest float64"):
        mae([0.9 * top] * 3, [-0.9 * top] * 3)


def test_metrics_over_many_users_match_reference():
    # a larger table through the compiled path, against the reference on a slice
    R = make_ratings(3000, 500, 60_000, seed=0)
    recs = np.argsort(-np.random.default_rng(0).random((3000, 500)), axis=1)[:, :10]
    got = per_user_metrics(recs, R, 10)[0]
    want = per_user_metrics(recs[:200], R[:200], 10, backend="numpy")[0]
    np.testing.assert_allclose(got[:200], want, rtol=1e-14, equal_nan=True)


# --- evaluate ---------------------------------------------------------------------------------


def split_ids(seed=0):
    R = make_ratings(120, 80, 3000, seed=seed, dtype=np.float64).tocoo()
    users = np.array([f"user{u}" for u in R.row])
    items = np.array([f"item{i}" for i in R.col])
    rng = np.random.default_rng(seed)
    test = rng.random(R.nnz) < 0.2
    return (users[~test], items[~test], R.data[~test]), (users[test], items[test], R.data[test])


def test_evaluate_maps_raw_ids_and_matches_manual_computation():
    train, test = split_ids()
    # a test user and a test item the model never saw; the stranger's test item is
    # the most popular training item, which a user without history is served
    values, counts = np.unique(train[1], return_counts=True)
    popular = values[np.argmax(counts)]
    test = (
        np.append(test[0], ["stranger", "user0"]),
        np.append(test[1], [popular, "brand-new"]),
        np.append(test[2], [4.0, 5.0]),
    )
    model = fastrec.ItemKNN(k=10)
    result = evaluate(model, train, test, k=5)
    assert model.n_users_ > 0  # evaluate fitted the unfitted model
    assert "rmse" not in result
    users = np.unique(test[0])
    ids, _ = model.recommend(users, n=5, unknown="skip")
    stranger = np.flatnonzero(users == "stranger")
    ids[stranger] = model.recommend(
        ["stranger"], n=5, unknown="skip", user_items=sp.csr_matrix((1, model.n_items_))
    )[0]
    assert popular in ids[stranger[0]]
    items = np.unique(np.concatenate([model.item_ids_, test[1]]))
    column = {item: c for c, item in enumerate(items)}
    recs = np.array([[column[i] if i is not None else -1 for i in row] for row in ids])
    row = {u: r for r, u in enumerate(users)}
    truth = sp.csr_matrix(
        (np.ones(test[0].size), ([row[u] for u in test[0]], [column[i] for i in test[1]])),
        shape=(users.size, items.size),
    )
    manual = ranking_metrics(recs, truth, 5)
    for name in ("precision", "recall", "f1", "ndcg", "map", "hit_rate"):
        assert result[f"{name}@5"] == pytest.approx(manual[name], abs=1e-12), name
    assert result["n_users"] == manual["n_users"] == users.size
    recommended = {i for r in ids for i in r if i is not None}
    assert result["coverage@5"] == pytest.approx(len(recommended) / model.n_items_)


def test_evaluate_rating_model_threshold_and_frame():
    pd = pytest.importorskip("pandas")
    train, test = split_ids(1)
    model = fastrec.MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit(train)
    result = evaluate(model, None, test, k=3, threshold=4.0)
    prediction = model.predict(test[0], test[1])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((prediction - test[2]) ** 2)), rel=1e-6)
    assert result["mae"] == pytest.approx(np.mean(np.abs(prediction - test[2])), rel=1e-6)
    assert result["n_users"] == np.unique(test[0][test[2] >= 4]).size
    frame = evaluate(model, None, test, k=3, threshold=4.0, as_frame=True)
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == ["MatrixFactorization"]
    assert frame.loc["MatrixFactorization", "ndcg@3"] == pytest.approx(result["ndcg@3"])


def test_evaluate_on_matrices_and_bad_input():
    R = make_ratings(200, 100, 4000, seed=2)
    train, test = fastrec.datasets.train_test_split(R, 0.2, method="leave_k_out", k=2, seed=0)
    result = evaluate(fastrec.UserKNN(k=10), train, test, k=10)
    assert result["n_users"] == np.count_nonzero(np.diff(test.indptr))
    assert 0 <= result["precision@10"] <= 1
    with pytest.raises(ValueError, match="train is None"):
        evaluate(fastrec.ItemKNN(), None, test)
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate(fastrec.ItemKNN(), train, test, k=0)


# --- k beyond the catalogue, and what a mutation run found untested -----------------------------


def short_catalogue_case(seed=5, n_users=60, n_items=6):
    rng = np.random.default_rng(seed)
    recs = np.stack([rng.permutation(n_items) for _ in range(n_users)])
    recs[rng.random(recs.shape) < 0.2] = -1
    test = sp.random(n_users, n_items, density=0.3, format="csr", random_state=rng)
    test.data[:] = rng.integers(1, 6, test.nnz)
    return recs, test


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [6, 7, 10])
def test_k_beyond_n_items_matches_brute_force_for_every_user(backend, k):
    recs, test = short_catalogue_case()
    want = brute_force(recs, test, k)
    # the case has users without test items, users without hits and users with hits
    assert np.isnan(want[:, 0]).any() and (want[:, 0] == 0).any() and (want[:, 0] > 0).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # users without hits have P + R = 0: no 0/0 warning
        per_user, flags = per_user_metrics(recs, test, k, backend=backend)
    assert per_user.dtype == np.float64 and flags.dtype == np.bool_
    np.testing.assert_allclose(per_user, want, rtol=1e-13, atol=0, equal_nan=True)
    np.testing.assert_array_equal(np.flatnonzero(flags), np.unique(recs[recs >= 0]))
    valid = ~np.isnan(want[:, 0])
    means = want[valid].mean(axis=0)
    everything = ranking_metrics(recs, test, k, backend=backend)
    functions = (precision_at_k, recall_at_k, f1_at_k, ndcg_at_k, map_at_k, hit_rate_at_k)
    for column, (name, function) in enumerate(zip(everything, functions)):
        assert everything[name] == pytest.approx(means[column], rel=1e-13, abs=0), name
        score = function(recs, test, k, backend=backend)
        assert score == pytest.approx((means[column], valid.sum()), rel=1e-13)
    assert everything["n_users"] == valid.sum()
    assert everything["coverage"] == flags.mean()
    assert coverage(recs, test, k, backend=backend) == flags.mean()


def manual_evaluate(model, test, k, threshold=None):
    """evaluate()'s ranking metrics from the definitions, on raw ids and Python sets."""
    users, items, ratings = test
    user_ids = sorted(set(users.tolist()))
    ids, _ = model.recommend(np.array(user_ids), n=k, exclude_seen=True, unknown="skip")
    known = set(np.asarray(model.user_ids_).tolist())
    ids = list(ids)
    for r, user in enumerate(user_ids):  # a user the model never saw is one with no history
        if user not in known:
            ids[r] = model.recommend([user], n=k, user_items=sp.csr_matrix((1, model.n_items_)))[0][0]
    rows = []
    for r, user in enumerate(user_ids):
        relevant = {
            i for u, i, x in zip(users, items, ratings) if u == user and (threshold is None or x >= threshold)
        }
        if not relevant:
            continue
        hits, dcg, ap = 0, 0.0, 0.0
        for p, item in enumerate(ids[r][:k]):
            if item is not None and item in relevant:
                hits += 1
                dcg += 1 / np.log2(p + 2)
                ap += hits / (p + 1)
        ideal = min(k, len(relevant))
        precision, recall = hits / k, hits / len(relevant)
        rows.append(
            [
                precision,
                recall,
                2 * precision * recall / (precision + recall) if hits else 0.0,
                dcg / sum(1 / np.log2(p + 2) for p in range(ideal)),
                ap / ideal,
                float(hits > 0),
            ]
        )
    shown = {i for row in ids for i in row if i is not None}
    return np.array(rows), len(shown) / model.n_items_


def small_catalogue_split():
    # 5 items in training; the test adds an unseen item and an unseen user, and the user
    # last in id order has only low ratings (not relevant under threshold=3)
    train = (
        np.array(["u1", "u1", "u2", "u2", "u3", "u3", "u4"]),
        np.array(["a", "b", "b", "c", "d", "e", "a"]),
        np.array([5.0, 4.0, 3.0, 5.0, 4.0, 2.0, 1.0]),
    )
    test = (
        np.array(["u1", "u1", "u2", "u3", "u3", "u9", "u9", "zz"]),
        np.array(["c", "new", "a", "a", "b", "b", "e", "c"]),
        np.array([4.0, 5.0, 3.0, 5.0, 1.0, 4.0, 3.0, 1.0]),
    )
    return train, test


@pytest.mark.parametrize("threshold", [None, 3.0])
@pytest.mark.parametrize("k", [2, 10])
def test_evaluate_matches_definitions_when_k_exceeds_the_catalogue(k, threshold):
    train, test = small_catalogue_split()
    model = fastrec.ItemKNN(k=3).fit(train)
    want, want_coverage = manual_evaluate(model, test, k, threshold)
    result = evaluate(model, None, test, k=k, threshold=threshold)
    assert result["n_users"] == want.shape[0]
    for column, name in enumerate(("precision", "recall", "f1", "ndcg", "map", "hit_rate")):
        assert result[f"{name}@{k}"] == pytest.approx(want[:, column].mean(), rel=1e-12, abs=0), name
    assert result[f"coverage@{k}"] == pytest.approx(want_coverage, rel=1e-15)
    # the default k is 10
    if k == 10:
        assert evaluate(model, None, test, threshold=threshold) == result


def test_evaluate_single_item_model_coverage():
    model = fastrec.ItemKNN(k=3).fit((np.array(["a", "b"]), np.array(["x", "x"]), np.array([5.0, 3.0])))
    test = (np.array(["a", "c"]), np.array(["x", "w"]), np.array([5.0, 3.0]))
    result = evaluate(model, None, test, k=3)
    _, want_coverage = manual_evaluate(model, test, 3)
    assert want_coverage == 1.0 and result["coverage@3"] == 1.0


def test_evaluate_without_relevant_items_gives_nan_without_warnings():
    train, test = small_catalogue_split()
    model = fastrec.ItemKNN(k=3).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate(model, None, test, k=3, threshold=100.0)
    assert result["n_users"] == 0
    for name in ("precision", "recall", "f1", "ndcg", "map", "hit_rate"):
        assert np.isnan(result[f"{name}@3"]), name


def test_evaluate_dataframe_columns_and_fit_modes():
    pd = pytest.importorskip("pandas")
    train, test = small_catalogue_split()
    names = ("who", "what", "stars")
    train_frame = pd.DataFrame(dict(zip(names, train)))
    test_frame = pd.DataFrame(dict(zip(names, test)))
    want = evaluate(fastrec.ItemKNN(k=3).fit(train), None, test, k=4, threshold=3.0)
    model = fastrec.ItemKNN(k=3)
    got = evaluate(model, train_frame, test_frame, k=4, threshold=3.0, columns=names)
    assert got == want and model.n_items_ == 5
    # fit=True refits a fitted model on the new train; fit=False keeps it
    fitted = fastrec.ItemKNN(k=3).fit(test)
    refit = evaluate(fitted, train_frame, test_frame, k=4, threshold=3.0, columns=names, fit=True)
    assert refit == want and fitted.n_items_ == 5
    kept = evaluate(fastrec.ItemKNN(k=3).fit(train), train_frame[:1], test, k=4, threshold=3.0, fit=False)
    assert kept == want


def test_evaluate_argument_errors_name_the_argument():
    train, test = small_catalogue_split()
    R = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0]]))
    bad = R.copy()
    bad.indices[0] = 7
    with pytest.raises(ValueError, match="^train is a malformed sparse matrix"):
        evaluate(fastrec.ItemKNN(), bad, R)
    with pytest.raises(ValueError, match="^test is a malformed sparse matrix"):
        evaluate(fastrec.ItemKNN(), R, bad)
    with pytest.raises(TypeError, match="^as_frame must be True or False"):
        evaluate(fastrec.ItemKNN(), train, test, as_frame="no")
    with pytest.raises(TypeError, match="^fit must be True or False"):
        evaluate(fastrec.ItemKNN(), train, test, fit="yes")
    with pytest.raises(TypeError, match="^threshold must be a real number"):
        evaluate(fastrec.ItemKNN(), train, test, threshold="high")
    with pytest.raises(
        ValueError,
        match=r"^The model is not fitted and train is None: pass training "
        r"ratings\.$",
    ):
        evaluate(fastrec.ItemKNN(), None, test)
    with pytest.raises(RuntimeError, match=r"^This ItemKNN is not fitted; pass fit=True with train\.$"):
        evaluate(fastrec.ItemKNN(), None, test, fit=False)
    with pytest.raises(TypeError, match=r"^test: Pass ratings as a \(user_ids, item_ids, ratings\)"):
        evaluate(fastrec.ItemKNN(), train, test[:2])
    with pytest.raises(ValueError, match="backend='nope'"):
        evaluate(fastrec.ItemKNN(), train, test, backend="nope")


def test_rmse_and_mae_overflow_messages_name_the_fix():
    top = np.finfo(np.float64).max
    fix = "Rescale y_true and y_pred by the same constant (for example 2.0**-64) and scale the result back."
    for function, name in ((rmse, "RMSE"), (mae, "MAE")):
        with pytest.raises(ValueError) as info:
            function([0.9 * top] * 3, [-0.9 * top] * 3)
        message = str(info.value)
        assert message.startswith(f"The {name} of these ratings exceeds the largest float64 value")
        assert message.endswith(fix)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Wrap every backend's ranking kernel; record (backend, threads argument, Numba threads)."""
    import numba

    import fastrec.metrics._numba as numba_kernels
    import fastrec.metrics._reference as reference_kernels

    calls = []
    modules = {"numpy": reference_kernels, "numba": numba_kernels}
    if "cpp" in BACKENDS:
        modules["cpp"] = _runtime._cpp
    for name, module in modules.items():

        def spy(*args, _name=name, _kernel=module.ranking_metrics, **kwargs):
            threads = kwargs["n_threads"] if "n_threads" in kwargs else args[-1]
            calls.append((_name, threads, numba.get_num_threads()))
            return _kernel(*args, **kwargs)

        monkeypatch.setattr(module, "ranking_metrics", spy)
    return calls


def test_every_function_passes_k_threshold_backend_and_threads_on(kernel_calls):
    recs, test = random_case(3)
    high = sp.csr_matrix(test.multiply(test >= 4))
    high.eliminate_zeros()
    threads = fastrec.get_num_threads() + 1  # not the default
    functions = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "f1": f1_at_k,
        "ndcg": ndcg_at_k,
        "map": map_at_k,
        "hit_rate": hit_rate_at_k,
    }
    want = brute_force(recs, high, 10)
    valid = ~np.isnan(want[:, 0])
    for backend in BACKENDS:
        every = ranking_metrics(recs, test, threshold=4, backend=backend, n_threads=threads)
        assert kernel_calls[-1][:2] == (backend, threads)
        if backend == "numba":  # Numba runs the kernel on the threads asked for
            ranking_metrics(recs, test, backend=backend, n_threads=1)
            assert kernel_calls[-1] == ("numba", 1, 1)
        for column, (name, function) in enumerate(functions.items()):
            score = function(recs, test, threshold=4, backend=backend, n_threads=threads)
            assert kernel_calls[-1][:2] == (backend, threads), name
            assert score.n_users == every["n_users"] == valid.sum()
            assert score.value == pytest.approx(want[valid, column].mean(), rel=1e-13, abs=0), name
            assert every[name] == score.value
        assert coverage(recs, test, backend=backend, n_threads=threads) == every["coverage"]
        assert kernel_calls[-1][:2] == (backend, threads)
    # the defaults: k=10, every stored entry relevant, backend "auto", the default threads
    want = brute_force(recs, test, 10)
    valid = ~np.isnan(want[:, 0])
    auto = _runtime.resolve_backend("auto")
    for column, function in enumerate(functions.values()):
        assert function(recs, test).value == pytest.approx(want[valid, column].mean(), rel=1e-13)
        assert kernel_calls[-1][:2] == (auto, fastrec.get_num_threads())
    assert ranking_metrics(recs, test)["precision"] == pytest.approx(want[valid, 0].mean(), rel=1e-13)
    head = recs[:, :10]
    assert coverage(recs, test) == np.unique(head[head >= 0]).size / test.shape[1]
    assert kernel_calls[-1][:2] == (auto, fastrec.get_num_threads())


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_user_with_test_items_and_tiny_catalogues(backend):
    # exactly one user with test items: the means are that user's values
    recs, test = hand_case()
    only = sp.csr_matrix(test.multiply(sp.csr_matrix(([1.0], ([2], [0])), shape=test.shape)))
    want = brute_force(recs, only, 3)
    assert ranking_metrics(recs, only, 3, backend=backend)["n_users"] == 1
    assert ndcg_at_k(recs, only, 3, backend=backend) == (pytest.approx(want[2, 3], rel=1e-15), 1)
    # one item: k past it reads one slot, and the table needs only that one
    one = sp.csr_matrix(np.array([[1.0], [0.0], [2.0]]))
    table = np.array([[0], [0], [-1]])
    per_user, flags = per_user_metrics(table, one, 3, backend=backend)
    np.testing.assert_allclose(per_user, brute_force(table, one, 3), rtol=1e-15, equal_nan=True)
    assert flags.tolist() == [True]
    # no item at all: empty slots only, nothing to cover, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = sp.csr_matrix((2, 0))
        everything = ranking_metrics(np.full((2, 1), -1), empty, 3, backend=backend)
        assert np.isnan(everything["coverage"]) and everything["n_users"] == 0
        assert np.isnan(coverage(np.full((2, 1), -1), empty, 3, backend=backend))


def test_slots_past_the_catalogue_are_checked_up_to_k():
    recs, test = short_catalogue_case(n_users=4)
    wide = np.hstack([recs, np.full((4, 3), -1)])  # 9 slots over 6 items
    assert precision_at_k(wide, test, 8) == precision_at_k(recs, test, 8)
    bad = wide.copy()
    bad[1, 7] = 99
    with pytest.raises(ValueError, match="item index 99, outside"):
        precision_at_k(bad, test, 8)
    assert precision_at_k(bad, test, 7) == precision_at_k(recs, test, 7)  # slot 7 is past k
    bad = wide.copy()
    bad[2, 6] = recs[2, 0] if recs[2, 0] >= 0 else recs[2, 1]
    with pytest.raises(ValueError, match="row 2 lists an item more than once"):
        recall_at_k(bad, test, 7)
    with pytest.raises(ValueError):  # ragged rows
        per_user_metrics([[0, 1], [2]], sp.csr_matrix((2, 4)), 2)


def test_per_user_metrics_and_coverage_default_to_k_10():
    recs, test = random_case(4, n_users=6, width=12)
    head = recs[:, :10]
    assert not np.isin(recs[:, 10], head).all()  # slot 10 adds items: k=11 would cover more
    per_user, flags = per_user_metrics(recs, test)
    np.testing.assert_allclose(per_user, brute_force(recs, test, 10), rtol=1e-13, equal_nan=True)
    np.testing.assert_array_equal(np.flatnonzero(flags), np.unique(head[head >= 0]))
    assert coverage(recs, test) == np.unique(head[head >= 0]).size / test.shape[1]


def test_evaluate_passes_backend_and_threads_to_the_kernel(kernel_calls):
    train, test = small_catalogue_split()
    model = fastrec.ItemKNN(k=3).fit(train)
    threads = fastrec.get_num_threads() + 1
    for backend in BACKENDS:
        evaluate(model, None, test, k=4, backend=backend, n_threads=threads)
        assert kernel_calls[-1][:2] == (backend, threads)
