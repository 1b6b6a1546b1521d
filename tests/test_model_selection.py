"""fastrec.model_selection: splitters, cross_validate and the parameter searches.

Most tests use ``Popularity``, a small recommender defined here on fastrec's
estimator base, whose every score is computed again by hand below.  The last
section runs the real recommenders.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import ParameterSampler

import fastrec
from fastrec import _runtime
from fastrec.base import Estimator
from fastrec.datasets import Interactions, make_ratings, train_test_split
from fastrec.datasets._triples import rating_triples
from fastrec.model_selection import (
    GridSearchCV,
    KFold,
    LeaveKOut,
    LeaveLastKOut,
    RandomizedSearchCV,
    ShuffleSplit,
    TemporalSplit,
    _fit,
    check_cv,
    cross_validate,
)


class Popularity(Estimator):
    """Recommends the items most rated in training; predicts ``scale`` x the item's mean rating.

    ``reverse=True`` recommends the least rated items first (a worse ranker);
    users never seen in training get every item by popularity.
    """

    def __init__(self, scale=1.0, reverse=False, n_threads=None):
        self.scale = scale
        self.reverse = reverse
        self.n_threads = n_threads

    def fit(self, ratings, columns=None):
        triples = rating_triples(ratings, columns)
        users, items, values = triples.users, triples.items, triples.ratings.astype(np.float64)
        self.items_ = np.unique(items)
        counts = {item: int(np.sum(items == item)) for item in self.items_}
        self.means_ = {item: float(values[items == item].mean()) for item in self.items_}
        self.global_mean_ = float(values.mean())
        sign = 1 if self.reverse else -1
        self.order_ = sorted(self.items_.tolist(), key=lambda item: (sign * counts[item], item))
        self.counts_ = counts
        self.seen_ = {}
        for user, item in zip(users.tolist(), items.tolist()):
            self.seen_.setdefault(user, set()).add(item)
        self.fitted_threads_ = self.n_threads
        return self

    def predict(self, users, items):
        items = np.asarray(items)
        return np.array([self.scale * self.means_.get(item, self.global_mean_) for item in items.tolist()])

    def recommend(self, users, n=10, *, exclude_seen=True):
        users = np.asarray(users)
        width = min(n, len(self.order_))
        integer = self.items_.dtype.kind in "iu"  # padding: -1 for integer ids, None for others
        ids = np.full((users.size, width), -1 if integer else None, dtype=np.int64 if integer else object)
        scores = np.full((users.size, width), -np.inf)
        for row, user in enumerate(users.tolist()):
            seen = self.seen_.get(user, set()) if exclude_seen else set()
            chosen = [item for item in self.order_ if item not in seen][:width]
            ids[row, : len(chosen)] = chosen
            scores[row, : len(chosen)] = [float(self.counts_[item]) for item in chosen]
        return ids, scores


def small_ratings(n_users=12, n_items=9, n=60, seed=0):
    """(users, items, ratings) triples of distinct pairs, ratings 1..5."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.integers(1, 6, size=n).astype(np.float64)
    return users.astype(np.int64), items.astype(np.int64), ratings


def hand_ranking(recs, truth, k):
    """precision, recall, f1, ndcg, map, hit_rate at k by their definitions; users without truth left out."""
    rows = []
    for row, relevant in zip(recs, truth):
        if not relevant:
            continue
        top = [item for item in list(row)[:k] if item != -1]
        rel = [1.0 if item in relevant else 0.0 for item in top]
        hits = sum(rel)
        precision, recall = hits / k, hits / len(relevant)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        dcg = sum(r / math.log2(p + 2) for p, r in enumerate(rel))
        idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(relevant))))
        running, ap = 0.0, 0.0
        for p, r in enumerate(rel):
            running += r
            ap += r * running / (p + 1)
        rows.append([precision, recall, f1, dcg / idcg, ap / min(k, len(relevant)), float(hits > 0)])
    return dict(zip(("precision", "recall", "f1", "ndcg", "map", "hit_rate"), np.mean(rows, axis=0)))


def hand_scores(model, train, test, k, threshold=None):
    """Every metric of a Popularity fitted on ``train`` and scored on the ``test`` triples."""
    fitted = Popularity(**model.get_params()).fit(train)
    users, items, ratings = test
    predictions = fitted.predict(users, items)
    out = {
        "rmse": math.sqrt(np.mean((ratings - predictions) ** 2)),
        "mae": float(np.mean(np.abs(ratings - predictions))),
    }
    test_users = np.unique(users)
    recs, _ = fitted.recommend(test_users, n=k)
    truth = [
        {
            item
            for u, item, r in zip(users, items, ratings)
            if u == user and (threshold is None or r >= threshold)
        }
        for user in test_users
    ]
    for name, value in hand_ranking(recs, truth, k).items():
        out[f"{name}@{k}"] = value
    return out


ALL_METRICS = ("rmse", "mae", "precision@3", "recall@3", "f1@3", "ndcg@3", "map@3", "hit_rate@3")


# --- splitters ---------------------------------------------------------------------------


def test_kfold_every_rating_in_exactly_one_test_fold():
    users, items, ratings = small_ratings(n=53)
    tagged = (users, items, np.arange(53, dtype=np.float64))  # ratings identify their row
    folds = list(KFold(5, random_state=3).split(tagged))
    assert len(folds) == 5 == KFold(5).get_n_splits()
    tested = np.concatenate([test[2] for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(53))
    assert [test[2].size for _, test in folds] == [11, 11, 11, 10, 10]  # first folds take the rest
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train[2], test[2]])), np.arange(53))
        rows = test[2].astype(np.int64)  # each part keeps whole (user, item, rating) rows
        np.testing.assert_array_equal(test[0], users[rows])
        np.testing.assert_array_equal(test[1], items[rows])


def test_kfold_seed_and_shuffle():
    data = small_ratings(n=40)
    first = [test[2] for _, test in KFold(4, random_state=7).split(data)]
    again = [test[2] for _, test in KFold(4, random_state=7).split(data)]
    other = [test[2] for _, test in KFold(4, random_state=8).split(data)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    blocks = [test for _, test in KFold(4, shuffle=False).split(data)]
    for fold, test in enumerate(blocks):  # consecutive blocks in input order
        np.testing.assert_array_equal(test[0], data[0][10 * fold : 10 * fold + 10])


def test_kfold_keeps_the_form_of_sparse_interactions_and_frames():
    R = make_ratings(30, 20, 150, seed=1)
    folds = list(KFold(3, random_state=0).split(R))
    assert all(sp.isspmatrix_csr(tr) and sp.isspmatrix_csr(te) and te.shape == R.shape for tr, te in folds)
    assert sum(te.nnz for _, te in folds) == R.nnz
    np.testing.assert_array_equal(sum(te for _, te in folds).toarray(), R.toarray())
    for tr, te in folds:
        np.testing.assert_array_equal((tr + te).toarray(), R.toarray())
        assert tr.multiply(te).nnz == 0

    coo = R.tocoo()
    folds = list(KFold(3, random_state=0).split(coo))
    assert all(te.format == "coo" for _, te in folds)

    inter = Interactions(R, np.arange(30) * 10, np.arange(20) + 100)
    folds = list(KFold(3, random_state=0).split(inter))
    assert all(isinstance(te, Interactions) and te.shape == inter.shape for _, te in folds)
    np.testing.assert_array_equal(sum(te.matrix for _, te in folds).toarray(), inter.matrix.toarray())
    np.testing.assert_array_equal(folds[0][1].user_ids, inter.user_ids)

    users, items, ratings = small_ratings(n=30)
    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings}, index=np.arange(30) + 500)
    folds = list(KFold(3, random_state=0).split(frame))
    assert all(isinstance(te, pd.DataFrame) for _, te in folds)
    np.testing.assert_array_equal(np.sort(np.concatenate([te.index for _, te in folds])), frame.index)


def test_kfold_bad_arguments():
    with pytest.raises(ValueError, match="n_splits=1"):
        KFold(1)
    with pytest.raises(TypeError, match="n_splits"):
        KFold(2.5)
    with pytest.raises(ValueError, match="n_splits=7 is more than the 6 rating"):
        list(KFold(7).split(small_ratings(n=6)))
    with pytest.raises(ValueError, match="shuffle=False"):
        KFold(3, shuffle=False, random_state=0)
    with pytest.raises(ValueError, match="random_state"):
        KFold(3, random_state=-1)
    with pytest.raises(TypeError, match="random_state"):
        KFold(3, random_state="seed")
    with pytest.raises(TypeError, match="data must be"):
        list(KFold(3).split(np.ones((4, 4))))
    with pytest.raises(ValueError, match="same length"):
        list(KFold(2).split((np.arange(3), np.arange(3), np.arange(4.0))))


def test_split_wrappers_reuse_train_test_split():
    users, items, ratings = small_ratings(n=60)
    times = np.arange(60)[::-1].astype(np.int64)
    data = (users, items, ratings, times)

    ((train, test),) = LeaveLastKOut(2).split(data)
    expected = train_test_split(data, method="leave_last_k_out", k=2)
    for got, want in zip(train + test, expected[0] + expected[1]):
        np.testing.assert_array_equal(got, want)

    ((train, test),) = TemporalSplit(0.25).split(data)
    expected = train_test_split(data, 0.25, method="temporal")
    np.testing.assert_array_equal(test[3], expected[1][3])
    assert test[3].size == 15 and test[3].min() > train[3].max()  # latest ratings tested

    splits = list(LeaveKOut(1, n_splits=3, random_state=5).split(data))
    assert len(splits) == 3 == LeaveKOut(1, n_splits=3).get_n_splits()
    counts = np.bincount(users)
    for _, test in splits:  # one rating per user with more than one
        np.testing.assert_array_equal(np.bincount(test[0], minlength=counts.size), (counts > 1).astype(int))
    again = list(LeaveKOut(1, n_splits=3, random_state=5).split(data))
    for (_, a), (_, b) in zip(splits, again):
        np.testing.assert_array_equal(a[2], b[2])
    assert not all(np.array_equal(a[1], b[1]) for (_, a), (_, b) in zip(splits, splits[1:]))

    splits = list(ShuffleSplit(4, test_size=12, random_state=1).split(data))
    assert [test[0].size for _, test in splits] == [12] * 4
    assert [train[0].size for train, _ in splits] == [48] * 4


def test_split_wrapper_errors():
    with pytest.raises(ValueError, match="every user has k ratings or fewer"):
        list(LeaveKOut(5).split(small_ratings(n=20, n_users=10)))
    with pytest.raises(ValueError, match="needs timestamps"):
        list(TemporalSplit().split(small_ratings()[:3]))
    with pytest.raises(ValueError, match="test_size"):
        ShuffleSplit(test_size=1.5)
    with pytest.raises(ValueError, match="test_size"):
        TemporalSplit(0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        LeaveKOut(0)


def test_check_cv():
    splitter = check_cv(4, 9)
    assert isinstance(splitter, KFold) and splitter.n_splits == 4 and splitter.random_state == 9
    kfold = KFold(3)
    assert check_cv(kfold) is kfold
    with pytest.raises(ValueError, match="cv=1"):
        check_cv(1)
    with pytest.raises(ValueError, match="splitter"):
        check_cv("five")


# --- cross_validate ----------------------------------------------------------------------


def test_cross_validate_equals_hand_computation_per_fold():
    data = small_ratings(n=80)
    model = Popularity()
    result = cross_validate(model, data, cv=KFold(4, random_state=2), metrics=ALL_METRICS)
    assert set(result) == {f"test_{m}" for m in ALL_METRICS} | {"fit_time", "score_time"}
    for fold, (train, test) in enumerate(KFold(4, random_state=2).split(data)):
        expected = hand_scores(model, train, test, 3)
        for metric in ALL_METRICS:
            assert result[f"test_{metric}"][fold] == pytest.approx(expected[metric], rel=1e-12, abs=1e-12)
    assert result["fit_time"].shape == result["score_time"].shape == (4,)
    assert not hasattr(model, "items_")  # the model given is never fitted


def test_cross_validate_threshold_and_bare_names():
    data = small_ratings(n=80, seed=4)
    result = cross_validate(
        Popularity(), data, cv=KFold(3, random_state=0), metrics=["ndcg", "precision"], k=4, threshold=4.0
    )
    assert set(result) == {"test_ndcg@4", "test_precision@4", "fit_time", "score_time"}
    for fold, (train, test) in enumerate(KFold(3, random_state=0).split(data)):
        expected = hand_scores(Popularity(), train, test, 4, threshold=4.0)
        assert result["test_ndcg@4"][fold] == pytest.approx(expected["ndcg@4"], rel=1e-12)
        assert result["test_precision@4"][fold] == pytest.approx(expected["precision@4"], rel=1e-12)


def test_ranking_metric_without_relevant_items_is_nan():
    result = cross_validate(
        Popularity(),
        small_ratings(n=40),
        cv=KFold(2, random_state=0),
        metrics=["ndcg@3", "mae"],
        threshold=6.0,
    )  # no rating reaches 6
    assert np.isnan(result["test_ndcg@3"]).all() and np.isfinite(result["test_mae"]).all()


def test_search_ranks_error_metrics_lowest_first_and_nan_last():
    from fastrec.model_selection._scoring import parse_metrics
    from fastrec.model_selection._search import _ranks

    means = np.array([0.2, np.nan, 0.5, 0.5, 0.1])
    ndcg, rmse = parse_metrics(["ndcg@5", "rmse"], 10)
    np.testing.assert_array_equal(_ranks(means, ndcg), [3, 5, 1, 1, 4])
    np.testing.assert_array_equal(_ranks(means, rmse), [2, 5, 3, 3, 1])
    np.testing.assert_array_equal(means[1:2], [np.nan])  # the input is not modified


def test_cross_validate_train_scores_keep_seen_items():
    data = small_ratings(n=60, seed=2)
    result = cross_validate(
        Popularity(),
        data,
        cv=KFold(3, random_state=1),
        metrics=["rmse", "recall@5"],
        return_train_score=True,
        return_estimator=True,
    )
    for fold, (train, _) in enumerate(KFold(3, random_state=1).split(data)):
        fitted = Popularity().fit(train)
        users, items, ratings = train
        assert result["train_rmse"][fold] == pytest.approx(
            math.sqrt(np.mean((ratings - fitted.predict(users, items)) ** 2)), rel=1e-12
        )
        test_users = np.unique(users)
        recs, _ = fitted.recommend(test_users, n=5, exclude_seen=False)
        truth = [set(items[users == user].tolist()) for user in test_users]
        assert result["train_recall@5"][fold] == pytest.approx(hand_ranking(recs, truth, 5)["recall"])
        assert result["estimator"][fold].order_ == fitted.order_


def test_cross_validate_default_metrics_and_int_cv():
    data = small_ratings(n=50)
    result = cross_validate(Popularity(), data, cv=3, random_state=0)
    expected = cross_validate(
        Popularity(),
        data,
        cv=KFold(3, random_state=0),
        metrics=("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10"),
    )
    assert [key for key in result if key.startswith("test_")] == [
        key for key in expected if key.startswith("test_")
    ]
    for key in expected:
        if key.startswith("test_"):
            np.testing.assert_array_equal(result[key], expected[key])


@pytest.mark.parametrize("form", ["csr", "interactions", "frame", "timestamped"])
def test_cross_validate_accepts_every_data_form(form):
    users, items, ratings = small_ratings(n=60, seed=5)
    data = {
        "csr": sp.csr_matrix((ratings, (users, items)), shape=(12, 9)),
        "interactions": Interactions.from_arrays(users, items, ratings),
        "frame": pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings}),
        "timestamped": (users, items, ratings, np.arange(60)),
    }[form]
    result = cross_validate(Popularity(), data, cv=KFold(3, random_state=0), metrics=["mae", "ndcg@3"])

    def triples(part):
        read = rating_triples(part[:3] if isinstance(part, tuple) else part)
        return read.users, read.items, read.ratings.astype(np.float64)

    for fold, (train, test) in enumerate(KFold(3, random_state=0).split(data)):
        expected = hand_scores(Popularity(), triples(train), triples(test), 3)
        assert result["test_mae"][fold] == pytest.approx(expected["mae"], rel=1e-12)
        assert result["test_ndcg@3"][fold] == pytest.approx(expected["ndcg@3"], rel=1e-12)


def test_cross_validate_string_ids_and_named_frame_columns():
    users, items, ratings = small_ratings(n=70, seed=7)
    frame = pd.DataFrame(
        {"who": [f"u{u}" for u in users], "what": [f"item-{i}" for i in items], "stars": ratings}
    )
    cv = KFold(3, random_state=2)
    result = cross_validate(
        Popularity(), frame, cv=cv, metrics=["rmse", "ndcg@4", "map@4"], columns=("who", "what", "stars")
    )
    for fold, (train, test) in enumerate(cv.split(frame)):

        def triples(part):
            return part["who"].to_numpy(), part["what"].to_numpy(), part["stars"].to_numpy()

        expected = hand_scores(Popularity(), triples(train), triples(test), 4)
        for metric in ("rmse", "ndcg@4", "map@4"):
            assert result[f"test_{metric}"][fold] == pytest.approx(expected[metric], rel=1e-12)


def test_cross_validate_under_the_threading_backend():
    from joblib import parallel_config

    data = small_ratings(n=60, seed=1)
    cv = KFold(3, random_state=0)
    with parallel_config(backend="threading"):
        threaded = cross_validate(
            Popularity(), data, cv=cv, metrics=["mae", "ndcg@3"], n_jobs=2, return_estimator=True
        )
    sequential = cross_validate(Popularity(), data, cv=cv, metrics=["mae", "ndcg@3"])
    for key in ("test_mae", "test_ndcg@3"):
        np.testing.assert_array_equal(threaded[key], sequential[key])
    host = _runtime.host_threads()
    assert [m.fitted_threads_ for m in threaded["estimator"]] == [max(1, host // min(2, host))] * 3


def test_cross_validate_with_a_time_splitter():
    users, items, ratings = small_ratings(n=60)
    data = (users, items, ratings, np.arange(60))
    result = cross_validate(Popularity(), data, cv=LeaveLastKOut(1), metrics=["hit_rate@2"])
    train, test = train_test_split(data, method="leave_last_k_out", k=1)
    expected = hand_scores(Popularity(), train[:3], test[:3], 2)
    assert result["test_hit_rate@2"] == pytest.approx([expected["hit_rate@2"]])


def test_cross_validate_parallel_equals_sequential_and_splits_threads():
    data = small_ratings(n=80, seed=6)
    cv = KFold(4, random_state=11)
    one = cross_validate(Popularity(), data, cv=cv, metrics=ALL_METRICS, n_jobs=1, return_estimator=True)
    two = cross_validate(Popularity(), data, cv=cv, metrics=ALL_METRICS, n_jobs=2, return_estimator=True)
    for metric in ALL_METRICS:
        np.testing.assert_array_equal(one[f"test_{metric}"], two[f"test_{metric}"])
    host = _runtime.host_threads()
    workers = min(2, host)
    assert [m.fitted_threads_ for m in one["estimator"]] == [host] * 4
    assert [m.fitted_threads_ for m in two["estimator"]] == [max(1, host // workers)] * 4
    explicit = cross_validate(
        Popularity(n_threads=1), data, cv=cv, metrics=["mae"], n_jobs=2, return_estimator=True
    )
    assert [m.fitted_threads_ for m in explicit["estimator"]] == [1] * 4


def test_thread_plan_never_oversubscribes(monkeypatch):
    monkeypatch.setattr(_runtime, "host_threads", lambda: 8)
    unset, four, three = Popularity(), Popularity(n_threads=4), Popularity(n_threads=3)
    assert _fit.thread_plan([unset] * 10, 4, 10) == (4, 2)
    assert _fit.thread_plan([unset] * 10, 3, 10) == (3, 2)
    assert _fit.thread_plan([unset] * 2, 4, 2) == (2, 4)  # no idle workers
    assert _fit.thread_plan([unset] * 10, 16, 10) == (8, 1)
    assert _fit.thread_plan([four, unset] * 5, 4, 10) == (2, 4)  # explicit threads kept, fewer workers
    assert _fit.thread_plan([three] * 10, 4, 10) == (2, 4)
    assert _fit.thread_plan([Popularity(n_threads=32)] * 4, 4, 4) == (1, 8)
    _runtime.set_num_threads(3)  # a lower default caps the threads of models without n_threads
    try:
        assert _fit.thread_plan([unset] * 10, 2, 10) == (2, 3)
    finally:
        _runtime.set_num_threads(None)
    assert _fit.check_n_jobs(-1) == 8 and _fit.check_n_jobs(-2) == 7 and _fit.check_n_jobs(None) == 1
    for workers_asked in (1, 2, 3, 5, 8, 13):
        models = [Popularity(n_threads=t) for t in (None, 2, None, 1)]
        workers, threads = _fit.thread_plan(models, workers_asked, 12)
        largest = max(threads, 2)
        assert workers * largest <= 8


def test_cross_validate_does_not_modify_input():
    users, items, ratings = small_ratings(n=40)
    copies = (users.copy(), items.copy(), ratings.copy())
    R = sp.csr_matrix((ratings, (users, items)))
    R_copy = R.copy()
    cross_validate(Popularity(), (users, items, ratings), cv=KFold(3, random_state=0))
    cross_validate(Popularity(), R, cv=KFold(3, random_state=0))
    for a, b in zip((users, items, ratings), copies):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(R.toarray(), R_copy.toarray())
    np.testing.assert_array_equal(R.indptr, R_copy.indptr)


class _NoRecommend(Estimator):
    def __init__(self):
        pass

    def fit(self, ratings):
        return self


class _NoGetParams:
    def fit(self, ratings):
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        return np.zeros((len(users), 0), dtype=np.int64), np.zeros((len(users), 0))


def test_cross_validate_bad_input():
    data = small_ratings(n=30)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        cross_validate(Popularity(), data, metrics=["auc"])
    with pytest.raises(ValueError, match="metrics is empty"):
        cross_validate(Popularity(), data, metrics=[])
    with pytest.raises(ValueError, match="ndcg@10"):
        cross_validate(Popularity(), data, metrics=["ndcg@0"])
    with pytest.raises(ValueError, match="model=.*has no fit method"):
        cross_validate(object(), data, metrics=["ndcg@5"])
    with pytest.raises(ValueError, match="no recommend method.*ndcg@5"):
        cross_validate(_NoRecommend(), data, metrics=["ndcg@5"])
    with pytest.raises(ValueError, match="no predict method.*rmse"):
        cross_validate(_NoRecommend(), data, metrics=["rmse"])
    with pytest.raises(ValueError, match="get_params"):
        cross_validate(_NoGetParams(), data, metrics=["ndcg@5"])
    with pytest.raises(ValueError, match="n_jobs=0"):
        cross_validate(Popularity(), data, n_jobs=0)
    with pytest.raises(ValueError, match="cv=1"):
        cross_validate(Popularity(), data, cv=1)
    with pytest.raises(ValueError, match="n_splits=40 is more than the 30"):
        cross_validate(Popularity(), data, cv=40)
    with pytest.raises(TypeError, match="threshold"):
        cross_validate(Popularity(), data, threshold="high")
    with pytest.raises(TypeError, match="data must be"):
        cross_validate(Popularity(), "ratings.csv")


# --- parameter searches --------------------------------------------------------------------


def test_grid_search_picks_the_exact_best_rating_parameter():
    users, items, _ = small_ratings(n=60)
    data = (users, items, np.full(60, 3.0))  # item means are 3: only scale=1 predicts exactly
    search = GridSearchCV(
        Popularity(), {"scale": [0.5, 1.0, 1.5, 2.0]}, scoring="rmse", cv=KFold(3, random_state=0)
    ).fit(data)
    assert search.best_params_ == {"scale": 1.0}
    assert search.best_score_ == 0.0
    np.testing.assert_array_equal(search.cv_results_["rank_test_rmse"], [2, 1, 2, 4])
    np.testing.assert_allclose(search.cv_results_["mean_test_rmse"], [1.5, 0.0, 1.5, 3.0])
    assert search.best_estimator_.scale == 1.0 and search.best_estimator_.items_.size == np.unique(items).size
    np.testing.assert_allclose(search.predict(users[:3], items[:3]), [3.0, 3.0, 3.0])


def test_grid_search_results_equal_cross_validate_per_candidate():
    data = small_ratings(n=80, seed=8)
    grid = {"reverse": [False, True], "scale": [1.0, 0.8]}
    metrics = ["ndcg@3", "mae"]
    search = GridSearchCV(
        Popularity(),
        grid,
        scoring=metrics,
        refit="ndcg@3",
        cv=KFold(4, random_state=3),
        return_train_score=True,
    ).fit(data)
    results = search.cv_results_
    assert [dict(p) for p in results["params"]] == [
        {"reverse": False, "scale": 1.0},
        {"reverse": False, "scale": 0.8},
        {"reverse": True, "scale": 1.0},
        {"reverse": True, "scale": 0.8},
    ]
    assert list(results["param_reverse"]) == [False, False, True, True]
    means = {}
    for i, params in enumerate(results["params"]):
        cv = cross_validate(
            Popularity(**params), data, cv=KFold(4, random_state=3), metrics=metrics, return_train_score=True
        )
        for key in ("ndcg@3", "mae"):
            for fold in range(4):
                assert results[f"split{fold}_test_{key}"][i] == cv[f"test_{key}"][fold]
                assert results[f"split{fold}_train_{key}"][i] == cv[f"train_{key}"][fold]
            assert results[f"mean_test_{key}"][i] == pytest.approx(cv[f"test_{key}"].mean(), rel=1e-12)
            assert results[f"std_test_{key}"][i] == pytest.approx(cv[f"test_{key}"].std(), rel=1e-12)
        means[i] = cv["test_ndcg@3"].mean()
    best = max(means, key=lambda i: (means[i], -i))
    assert search.best_index_ == best
    assert search.best_params_ == results["params"][best]
    assert search.best_score_ == pytest.approx(means[best], rel=1e-12)
    # mae ranks lowest first; ndcg highest first
    assert results["rank_test_mae"][int(np.argmin(results["mean_test_mae"]))] == 1
    assert results["rank_test_ndcg@3"][int(np.argmax(results["mean_test_ndcg@3"]))] == 1
    assert set(results["rank_test_ndcg@3"]) <= {1, 2, 3, 4}
    assert results["mean_fit_time"].shape == (4,) and search.n_splits_ == 4 and search.multimetric_


def test_grid_search_parallel_equals_sequential():
    data = small_ratings(n=80, seed=9)
    grid = {"reverse": [False, True], "scale": [1.0, 0.9, 1.1]}
    runs = [
        GridSearchCV(
            Popularity(), grid, scoring=["rmse", "map@3"], refit="map@3", cv=3, random_state=4, n_jobs=n_jobs
        ).fit(data)
        for n_jobs in (1, 2)
    ]
    for key, value in runs[0].cv_results_.items():
        if "time" not in key:
            other = runs[1].cv_results_[key]
            np.testing.assert_array_equal(np.asarray(value, dtype=object), np.asarray(other, dtype=object))
    assert runs[0].best_params_ == runs[1].best_params_


def test_grid_search_refit_choices_and_errors():
    data = small_ratings(n=60)
    grid = {"scale": [1.0, 2.0]}
    search = GridSearchCV(Popularity(), grid, scoring="mae", refit=False, cv=KFold(3, random_state=0)).fit(
        data
    )
    assert search.best_params_ == {"scale": 1.0} and not hasattr(search, "best_estimator_")
    search.set_params(refit=True).fit(data)
    assert search.best_estimator_.scale == 1.0
    search.set_params(scoring=["mae", "rmse"], refit=False).fit(data)  # a new fit forgets the last one
    assert not hasattr(search, "best_estimator_") and not hasattr(search, "best_params_")
    with pytest.raises(fastrec.NotFittedError, match="refit"):
        search.recommend([0])
    search = GridSearchCV(Popularity(), grid, scoring=["mae", "ndcg@3"], refit=False, cv=3).fit(data)
    assert not hasattr(search, "best_params_") and search.refit_metric_ is None
    with pytest.raises(ValueError, match="refit=True is ambiguous"):
        GridSearchCV(Popularity(), grid, scoring=["mae", "ndcg@3"]).fit(data)
    with pytest.raises(ValueError, match="refit='rmse' is not among scoring"):
        GridSearchCV(Popularity(), grid, scoring=["mae"], refit="rmse").fit(data)
    with pytest.raises(ValueError, match="param_grid is empty"):
        GridSearchCV(Popularity(), {}).fit(data)
    with pytest.raises(ValueError, match="param_grid is empty"):
        GridSearchCV(Popularity(), []).fit(data)
    with pytest.raises(ValueError, match=r"param_grid\['scale'\] is an empty list"):
        GridSearchCV(Popularity(), {"scale": []}).fit(data)
    with pytest.raises(ValueError, match="'alpha', not a parameter of Popularity"):
        GridSearchCV(Popularity(), {"alpha": [1, 2]}).fit(data)
    with pytest.raises(ValueError, match="unknown metric 'precision@'|no valid cutoff"):
        GridSearchCV(Popularity(), grid, scoring="precision@").fit(data)
    with pytest.raises(ValueError, match="estimator=.*has no fit"):
        GridSearchCV(object(), grid, scoring="ndcg@5").fit(data)


def test_grid_search_default_scoring_and_sklearn_protocol():
    data = small_ratings(n=60)
    search = GridSearchCV(Popularity(), {"scale": [1.0, 1.2]}, cv=3, random_state=0).fit(data)
    assert search.scorer_names_ == ["rmse"]
    ranker = GridSearchCV(_NoRecommend(), {}, k=7)
    assert ranker._scoring_and_refit()[0][0].key == "ndcg@7"  # without predict: ndcg at k
    assert search.get_params()["param_grid"] == {"scale": [1.0, 1.2]}
    from sklearn.base import clone

    assert clone(search).get_params()["cv"] == 3


def test_randomized_search_samples_with_parameter_sampler():
    data = small_ratings(n=80, seed=3)
    distributions = {"scale": [0.7, 0.8, 0.9, 1.0, 1.1, 1.2], "reverse": [False, True]}
    search = RandomizedSearchCV(
        Popularity(), distributions, n_iter=5, scoring="mae", cv=KFold(3, random_state=0), random_state=13
    ).fit(data)
    assert search.cv_results_["params"] == list(ParameterSampler(distributions, 5, random_state=13))
    means = search.cv_results_["mean_test_mae"]
    assert search.best_index_ == int(np.argmin(means))
    again = RandomizedSearchCV(
        Popularity(),
        distributions,
        n_iter=5,
        scoring="mae",
        cv=KFold(3, random_state=0),
        random_state=13,
        n_jobs=2,
    ).fit(data)
    np.testing.assert_array_equal(again.cv_results_["mean_test_mae"], means)
    with pytest.raises(ValueError, match="n_iter must be >= 1"):
        RandomizedSearchCV(Popularity(), distributions, n_iter=0).fit(data)
    with pytest.raises(ValueError, match="param_distributions is empty"):
        RandomizedSearchCV(Popularity(), {}).fit(data)


# --- real recommenders (need get_params) ---
# ItemKNN and MatrixFactorization become scikit-learn estimators (get_params /
# set_params through fastrec.base.Estimator) on another branch; these tests need it.


def _real_data():
    return make_ratings(60, 40, 900, seed=2)


def test_real_itemknn_cross_validate_equals_evaluate_per_fold():
    R = _real_data()
    metrics = ["precision@5", "recall@5", "f1@5", "ndcg@5", "map@5", "hit_rate@5"]
    result = cross_validate(fastrec.ItemKNN(k=10), R, cv=KFold(3, random_state=0), metrics=metrics)
    for fold, (train, test) in enumerate(KFold(3, random_state=0).split(R)):
        expected = fastrec.evaluate(fastrec.ItemKNN(k=10), train, test, k=5)
        for metric in metrics:
            assert result[f"test_{metric}"][fold] == pytest.approx(expected[metric], rel=1e-12)


def test_real_mf_cross_validate_equals_evaluate_and_ignores_n_jobs():
    R = _real_data()
    model = fastrec.MatrixFactorization(n_factors=4, n_epochs=5, random_state=0, n_threads=1)
    metrics = ["rmse", "mae", "ndcg@10"]
    one = cross_validate(model, R, cv=KFold(3, random_state=1), metrics=metrics, n_jobs=1)
    two = cross_validate(model, R, cv=KFold(3, random_state=1), metrics=metrics, n_jobs=2)
    for metric in metrics:
        np.testing.assert_array_equal(one[f"test_{metric}"], two[f"test_{metric}"])
    for fold, (train, test) in enumerate(KFold(3, random_state=1).split(R)):
        expected = fastrec.evaluate(
            fastrec.MatrixFactorization(n_factors=4, n_epochs=5, random_state=0, n_threads=1),
            train,
            test,
            k=10,
        )
        for metric in metrics:
            assert one[f"test_{metric}"][fold] == pytest.approx(expected[metric], rel=1e-6)


def test_real_itemknn_grid_search_picks_best_by_evaluate():
    R = _real_data()
    grid = {"k": [1, 5, 30]}
    search = GridSearchCV(fastrec.ItemKNN(), grid, scoring="ndcg@10", cv=KFold(3, random_state=0)).fit(R)
    folds = list(KFold(3, random_state=0).split(R))
    means = [
        np.mean([fastrec.evaluate(fastrec.ItemKNN(k=k), tr, te, k=10)["ndcg@10"] for tr, te in folds])
        for k in grid["k"]
    ]
    np.testing.assert_allclose(search.cv_results_["mean_test_ndcg@10"], means, rtol=1e-12)
    assert search.best_params_ == {"k": grid["k"][int(np.argmax(means))]}
    assert search.best_estimator_.k == search.best_params_["k"]
    ids, _ = search.recommend([0, 1], n=3)
    assert ids.shape == (2, 3)


def test_real_mf_randomized_search_refits_the_best():
    R = _real_data()
    search = RandomizedSearchCV(
        fastrec.MatrixFactorization(n_epochs=5, random_state=0, n_threads=1),
        {"n_factors": [2, 4, 8], "reg": [0.01, 0.1]},
        n_iter=3,
        scoring=["rmse", "ndcg@10"],
        refit="rmse",
        cv=KFold(3, random_state=0),
        random_state=0,
        n_jobs=2,
    ).fit(R)
    assert search.best_index_ == int(np.argmin(search.cv_results_["mean_test_rmse"]))
    assert search.best_estimator_.get_params()["n_factors"] == search.best_params_["n_factors"]
    assert np.isfinite(search.predict([0, 1], [0, 1])).all()
