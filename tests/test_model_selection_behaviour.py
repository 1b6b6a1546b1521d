"""fastrec.model_selection: behaviour pinned against independent computations.

Each test states a property of the splitters, the scoring or the searches and
checks it against numpy or a brute-force count on small data.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import fastrec
from fastrec.base import Estimator
from fastrec.datasets._triples import rating_triples
from fastrec.model_selection import (
    GridSearchCV,
    KFold,
    LeaveKOut,
    LeaveLastKOut,
    RandomizedSearchCV,
    ShuffleSplit,
    TemporalSplit,
    cross_validate,
)


class ItemMean(Estimator):
    """Predicts an item's training mean shrunk toward the global mean by ``shrink`` pseudo-ratings."""

    def __init__(self, shrink=0.0, n_threads=None):
        self.shrink = shrink
        self.n_threads = n_threads

    def fit(self, ratings, columns=None):
        t = rating_triples(ratings, columns)
        self.global_ = float(np.mean(t.ratings))
        self.sums_, self.counts_ = {}, {}
        for item, r in zip(t.items.tolist(), t.ratings.tolist()):
            self.sums_[item] = self.sums_.get(item, 0.0) + r
            self.counts_[item] = self.counts_.get(item, 0) + 1
        return self

    def predict(self, users, items):
        out = []
        for item in np.asarray(items).tolist():
            s, c = self.sums_.get(item, 0.0), self.counts_.get(item, 0)
            out.append(
                (s + self.shrink * self.global_) / (c + self.shrink) if c + self.shrink else self.global_
            )
        return np.array(out)


class MostRated(Estimator):
    """Recommends the items rated most often in training (ties to the smaller id); no predict."""

    def __init__(self, n_threads=None):
        self.n_threads = n_threads

    def fit(self, ratings, columns=None):
        t = rating_triples(ratings, columns)
        items, counts = np.unique(t.items, return_counts=True)
        self.order_ = [int(items[i]) for i in np.lexsort((items, -counts))]
        self.seen_ = {}
        for u, i in zip(t.users.tolist(), t.items.tolist()):
            self.seen_.setdefault(u, set()).add(i)
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        users = np.asarray(users)
        ids = np.full((users.size, n), -1, dtype=np.int64)
        scores = np.full((users.size, n), -np.inf)
        for row, u in enumerate(users.tolist()):
            seen = self.seen_.get(u, set()) if exclude_seen else set()
            chosen = [i for i in self.order_ if i not in seen][:n]
            ids[row, : len(chosen)] = chosen
            scores[row, : len(chosen)] = -np.arange(len(chosen), dtype=np.float64)
        return ids, scores


def item_mean_rmse(train, test, shrink):
    """RMSE of the shrunk item means of ``train`` on ``test``, by numpy."""
    _, items, ratings = train
    g = ratings.mean()
    pred = []
    for item in test[1]:
        mine = ratings[items == item]
        c = mine.size + shrink
        pred.append((mine.sum() + shrink * g) / c if c else g)
    return float(np.sqrt(np.mean((test[2] - np.array(pred)) ** 2)))


def triples(n_users=8, n_items=7, n=40, seed=0):
    """(users, items, ratings) of distinct pairs; rating r is row r, so each rating names its row."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    return users, items, np.arange(n, dtype=np.float64)


def latest_k_rows(users, times, k):
    """Rows of every user's k latest ratings (ties by input order), for users with more than k."""
    rows = []
    for user in np.unique(users):
        mine = np.flatnonzero(users == user)
        if mine.size > k:
            order = sorted(mine.tolist(), key=lambda r: (-times[r], r))
            rows += order[:k]
    return np.sort(np.array(rows, dtype=np.int64))


# --- splitters ---------------------------------------------------------------------------


def test_kfold_fold_sizes_follow_the_divmod_rule():
    n, n_splits = 23, 5
    data = (np.arange(n), np.arange(n) % 4, np.ones(n))
    sizes = [int(mask.sum()) for mask in KFold(n_splits, random_state=3).test_masks(data)]
    q, r = divmod(n, n_splits)
    assert sizes == [q + 1] * r + [q] * (n_splits - r)


def test_shuffle_split_defaults_seed_and_sizes():
    data = triples(n=50)
    splitter = ShuffleSplit(random_state=4)
    assert splitter.get_n_splits() == 5
    splits = list(splitter.split(data))
    assert len(splits) == 5
    for train, test in splits:  # default test_size 0.2 of 50 ratings; the parts partition the rows
        assert test[2].size == 10
        np.testing.assert_array_equal(np.sort(np.concatenate([train[2], test[2]])), np.arange(50))
    again = list(ShuffleSplit(random_state=4).split(data))
    for (_, a), (_, b) in zip(splits, again):  # the seed fixes every split
        np.testing.assert_array_equal(a[2], b[2])
    assert len({tuple(np.sort(test[2])) for _, test in splits}) == 5  # independent draws
    single = list(ShuffleSplit(1, test_size=1, random_state=0).split(data))
    assert len(single) == 1 and single[0][1][2].size == 1 and single[0][0][2].size == 49


def test_shuffle_split_rejects_bad_seed_and_sizes():
    with pytest.raises(ValueError, match="random_state"):
        ShuffleSplit(random_state=-1)
    with pytest.raises(
        TypeError, match=re.escape("test_size must be a fraction in (0, 1) or a number of ratings")
    ):
        ShuffleSplit(test_size="0.2")
    for bad in (0.0, 1.0):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"test_size={bad} must be a fraction strictly between 0 and 1 "
                "(or an integer number of ratings)."
            ),
        ):
            ShuffleSplit(test_size=bad)
    with pytest.raises(ValueError, match=re.escape("test_size=0 must be at least 1 rating")):
        ShuffleSplit(test_size=0)


def test_splitter_argument_errors_name_the_fix():
    with pytest.raises(ValueError, match=re.escape("n_splits=0 is too small: use at least 1 split.")):
        ShuffleSplit(0)
    with pytest.raises(TypeError, match="^shuffle must be True or False"):
        KFold(3, shuffle="yes")


def test_leave_k_out_defaults_and_repeats():
    users, items, ratings = triples(n=40)
    splitter = LeaveKOut()
    assert (splitter.k, splitter.get_n_splits()) == (1, 1)
    ((train, test),) = list(LeaveKOut(random_state=2).split((users, items, ratings)))
    counts = np.bincount(users)
    np.testing.assert_array_equal(np.bincount(test[0], minlength=counts.size), (counts > 1).astype(int))
    assert train[0].size + test[0].size == 40


def test_leave_k_out_empty_test_names_the_splitter():
    users = np.arange(10)  # one rating per user: nothing to hold out
    with pytest.raises(ValueError, match=re.escape("LeaveKOut(k=1) left no rating in the test set")):
        list(LeaveKOut().split((users, users, np.ones(10))))


def test_leave_last_k_out_takes_explicit_timestamps():
    users, items, ratings = triples(n=40, seed=3)
    times = np.random.default_rng(5).permutation(40).astype(np.int64)
    ((train, test),) = list(LeaveLastKOut().split((users, items, ratings), timestamps=times))
    np.testing.assert_array_equal(np.sort(test[2]).astype(np.int64), latest_k_rows(users, times, 1))
    ((train, test),) = list(LeaveLastKOut(2).split((users, items, ratings), timestamps=times))
    np.testing.assert_array_equal(np.sort(test[2]).astype(np.int64), latest_k_rows(users, times, 2))
    assert LeaveLastKOut().k == 1


def test_leave_last_k_out_errors():
    with pytest.raises(ValueError, match="k must be >= 1"):
        LeaveLastKOut(0)
    with pytest.raises(TypeError, match="k must be an integer"):
        LeaveLastKOut(1.5)
    users = np.arange(6)
    with pytest.raises(ValueError, match=re.escape("LeaveLastKOut(k=1) left no rating in the test set")):
        list(LeaveLastKOut().split((users, users, np.ones(6), np.arange(6))))


def test_temporal_split_takes_explicit_timestamps():
    users, items, ratings = triples(n=40, seed=4)
    times = np.random.default_rng(6).permutation(40).astype(np.int64)
    ((train, test),) = list(TemporalSplit(0.25).split((users, items, ratings), timestamps=times))
    latest = np.sort(np.argsort(-times, kind="stable")[:10])
    np.testing.assert_array_equal(np.sort(test[2]).astype(np.int64), latest)


# --- cross_validate ----------------------------------------------------------------------


def rated(n=60, seed=1):
    users, items, _ = triples(n_users=10, n_items=6, n=n, seed=seed)
    ratings = np.random.default_rng(seed).integers(1, 6, size=n).astype(np.float64)
    return users, items, ratings


def test_default_metrics_of_a_model_without_recommend_are_rmse_and_mae():
    data = rated()
    cv = KFold(3, random_state=2)
    scores = cross_validate(ItemMean(shrink=1.0), data, cv=cv)
    assert sorted(k for k in scores if k.startswith("test_")) == ["test_mae", "test_rmse"]
    for f, mask in enumerate(cv.test_masks(data)):
        train = tuple(a[~mask] for a in data)
        test = tuple(a[mask] for a in data)
        assert scores["test_rmse"][f] == pytest.approx(item_mean_rmse(train, test, 1.0), rel=1e-12)


def test_default_metrics_of_a_model_without_predict_are_ranking_at_k():
    scores = cross_validate(MostRated(), rated(), cv=KFold(3, random_state=2), k=4)
    assert sorted(k for k in scores if k.startswith("test_")) == [
        "test_map@4",
        "test_ndcg@4",
        "test_precision@4",
        "test_recall@4",
    ]


# --- searches ----------------------------------------------------------------------------


def test_randomized_search_defaults():
    data = rated(n=60)
    values = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    search = RandomizedSearchCV(ItemMean(), {"shrink": values}, random_state=0).fit(data)
    assert len(search.cv_results_["params"]) == 10  # n_iter=10 of 12 settings, without replacement
    assert search.n_splits_ == 5  # cv=5
    assert search.scorer_names_ == ["rmse"]
    folds = list(KFold(5, random_state=0).split(data))
    for i, params in enumerate(search.cv_results_["params"]):
        want = np.mean([item_mean_rmse(tr, te, params["shrink"]) for tr, te in folds])
        assert search.cv_results_["mean_test_rmse"][i] == pytest.approx(want, rel=1e-12)
    best = search.cv_results_["params"][int(np.argmin(search.cv_results_["mean_test_rmse"]))]
    assert search.best_estimator_.shrink == best["shrink"]  # refit=True by default
    np.testing.assert_allclose(  # predict passes keyword arguments through to the refitted model
        search.predict(users=data[0][:4], items=data[1][:4]),
        ItemMean(**best).fit(data).predict(data[0][:4], data[1][:4]),
    )
    ranker = RandomizedSearchCV(MostRated(), {"n_threads": [1]}, n_iter=1, cv=KFold(2, random_state=0))
    ranker.fit(data)
    assert ranker.scorer_names_ == ["ndcg@10"]  # k=10


def test_search_predict_before_fit_names_the_fix():
    search = GridSearchCV(ItemMean(), {"shrink": [0.0]})
    with pytest.raises(fastrec.NotFittedError, match=re.escape("call fit(data) with refit first")):
        search.predict([0], [0])
    with pytest.raises(fastrec.NotFittedError, match=re.escape("call fit(data) with refit first")):
        search.recommend([0])


def test_grid_search_refuses_a_distribution():
    from scipy.stats import uniform

    with pytest.raises(
        TypeError,
        match=re.escape(
            "param_grid['shrink'] is a distribution: list its values, or use RandomizedSearchCV."
        ),
    ):
        GridSearchCV(ItemMean(), {"shrink": uniform(0, 1)}, cv=2).fit(rated())


def test_cross_validate_names_bad_flags_and_uncloneable_models():
    data = rated()
    with pytest.raises(TypeError, match="^return_train_score must be True or False"):
        cross_validate(ItemMean(), data, cv=2, return_train_score="yes")
    with pytest.raises(TypeError, match="^return_estimator must be True or False"):
        cross_validate(ItemMean(), data, cv=2, return_estimator=1)

    class Bare:  # fit and predict, but no get_params: scikit-learn's clone refuses it
        def fit(self, ratings):
            return self

        def predict(self, users, items):
            return np.zeros(len(items))

    with pytest.raises(ValueError, match="^model Bare cannot be cloned"):
        cross_validate(Bare(), data, cv=2)


def test_splitting_a_tuple_of_the_wrong_length_names_the_forms():
    with pytest.raises(ValueError, match=re.escape("data as a tuple must hold 3 or 4 arrays")):
        list(KFold(2).split((np.arange(4), np.arange(4))))


def test_recommend_of_the_wrong_shape_is_named():
    class Flat(MostRated):
        def recommend(self, users, n=10, *, exclude_seen=True):
            ids, scores = super().recommend(users, n, exclude_seen=exclude_seen)
            return ids.ravel(), scores.ravel()

    with pytest.raises(ValueError, match=re.escape("Flat.recommend(users, n=3) returned ids of shape")):
        cross_validate(Flat(), rated(), cv=KFold(2, random_state=0), metrics="ndcg@3")


# --- searches: errors, columns, masked parameters ----------------------------------------


def test_search_errors_name_the_argument():
    data = rated()
    with pytest.raises(ValueError, match=re.escape("refit: unknown metric 'bogus'")):
        GridSearchCV(ItemMean(), {"shrink": [0.0]}, scoring="rmse", refit="bogus").fit(data)
    with pytest.raises(ValueError, match=re.escape("refit='mae' is not among scoring (rmse, ndcg@3)")):
        GridSearchCV(ItemMean(), {"shrink": [0.0]}, scoring=["rmse", "ndcg@3"], refit="mae").fit(data)
    with pytest.raises(ValueError, match=re.escape("param_grid names 'alpha', not a parameter of ItemMean")):
        GridSearchCV(ItemMean(), {"alpha": [1]}).fit(data)
    with pytest.raises(ValueError, match=re.escape("param_distributions names 'alpha', not a parameter")):
        RandomizedSearchCV(ItemMean(), {"alpha": [1]}, n_iter=1).fit(data)


def test_search_on_a_frame_with_named_columns():
    users, items, ratings = rated(n=60)
    frame = pd.DataFrame({"who": users, "what": items, "stars": ratings, "other": -ratings})
    cv = KFold(3, random_state=1)
    search = GridSearchCV(ItemMean(), {"shrink": [0.0, 2.0]}, cv=cv, columns=("who", "what", "stars")).fit(
        frame
    )
    data = (users, items, ratings)
    means = []
    for i, shrink in enumerate((0.0, 2.0)):
        want = [
            item_mean_rmse(tuple(a[~m] for a in data), tuple(a[m] for a in data), shrink)
            for m in cv.test_masks(data)
        ]
        means.append(np.mean(want))
        assert search.cv_results_["mean_test_rmse"][i] == pytest.approx(means[-1], rel=1e-12)
    best = (0.0, 2.0)[int(np.argmin(means))]
    assert search.best_params_ == {"shrink": best}
    np.testing.assert_allclose(
        search.predict(users[:5], items[:5]), ItemMean(best).fit(data).predict(users[:5], items[:5])
    )


def test_search_masks_parameters_a_grid_does_not_set():
    grids = [{"shrink": [0.0, 1.0]}, {"n_threads": [1]}]
    search = GridSearchCV(ItemMean(), grids, cv=KFold(2, random_state=0)).fit(rated())
    np.testing.assert_array_equal(
        np.ma.getmaskarray(search.cv_results_["param_shrink"]), [False, False, True]
    )
    np.testing.assert_array_equal(
        np.ma.getmaskarray(search.cv_results_["param_n_threads"]), [True, True, False]
    )
    assert list(search.cv_results_["param_shrink"][:2]) == [0.0, 1.0]


# --- scoring: cutoffs, thresholds on training scores, timing, messages --------------------


def most_rated_precision_recall(train, test, k, threshold, exclude_seen):
    """precision@k and recall@k of MostRated fitted on ``train``, scored on ``test``, by brute force."""
    items, counts = np.unique(train[1], return_counts=True)
    order = [int(items[i]) for i in np.lexsort((items, -counts))]
    rows = []
    for user in np.unique(test[0]):
        relevant = {int(i) for u, i, r in zip(*test) if u == user and (threshold is None or r >= threshold)}
        if not relevant:
            continue
        seen = {int(i) for u, i in zip(train[0], train[1]) if u == user} if exclude_seen else set()
        top = [i for i in order if i not in seen][:k]
        hits = len(relevant & set(top))
        rows.append((hits / k, hits / len(relevant)))
    return np.mean(rows, axis=0)


def test_train_scores_apply_the_threshold_and_cutoff_one_is_valid():
    data = rated(n=60, seed=5)
    cv = KFold(3, random_state=4)
    scores = cross_validate(
        MostRated(),
        data,
        cv=cv,
        metrics=["precision@1", "recall"],
        k=1,
        threshold=4.0,
        return_train_score=True,
    )
    assert sorted(scores) == sorted(
        ["test_precision@1", "test_recall@1", "train_precision@1", "train_recall@1", "fit_time", "score_time"]
    )
    for f, mask in enumerate(cv.test_masks(data)):
        train, test = tuple(a[~mask] for a in data), tuple(a[mask] for a in data)
        want_test = most_rated_precision_recall(train, test, 1, 4.0, exclude_seen=True)
        want_train = most_rated_precision_recall(train, train, 1, 4.0, exclude_seen=False)
        np.testing.assert_allclose([scores["test_precision@1"][f], scores["test_recall@1"][f]], want_test)
        np.testing.assert_allclose([scores["train_precision@1"][f], scores["train_recall@1"][f]], want_train)


def test_fit_and_score_times_are_durations_within_the_call():
    import time

    start = time.perf_counter()
    scores = cross_validate(ItemMean(), rated(), cv=KFold(3, random_state=0))
    elapsed = time.perf_counter() - start
    for key in ("fit_time", "score_time"):
        assert scores[key].shape == (3,) and np.all(scores[key] >= 0) and scores[key].sum() <= elapsed


class FixedSplits:
    """A splitter yielding given (train, test) pairs."""

    def __init__(self, pairs):
        self.pairs = pairs

    def split(self, data):
        yield from self.pairs

    def get_n_splits(self, data=None):
        return len(self.pairs)


def test_bad_fold_ratings_name_the_set_and_bad_arguments_their_type():
    users, items, ratings = rated(n=30)
    good = (users, items, ratings)
    bad = (users[:5], items[:4], ratings[:5])  # arrays of unequal length
    with pytest.raises(ValueError, match="^test ratings: "):
        cross_validate(ItemMean(), good, cv=FixedSplits([(good, bad)]))
    with pytest.raises(TypeError, match="of type float"):
        cross_validate(ItemMean(), good, cv=2, n_jobs=1.5)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "(fit(ratings), recommend(users, n, exclude_seen=...), optionally predict(users, items))."
        ),
    ):
        cross_validate(object(), good, cv=2, metrics="ndcg@3")


@pytest.mark.parametrize("search", [GridSearchCV, RandomizedSearchCV])
def test_searches_store_their_parameters_as_given(search):
    given = {
        "scoring": "mae",
        "refit": False,
        "cv": 3,
        "n_jobs": 2,
        "k": 4,
        "threshold": 3.0,
        "random_state": 7,
        "return_train_score": True,
        "columns": ("who", "what", "stars"),
    }
    if search is RandomizedSearchCV:
        given["n_iter"] = 3
    params = search(ItemMean(), {"shrink": [0.0, 1.0]}, **given).get_params(deep=False)
    assert {key: params[key] for key in given} == given
