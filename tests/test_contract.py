"""The Recommender contract: one behavioural suite that every recommender runs on every backend.

Adding a recommender to the suite is one line in ``MODELS``.  Every property is
checked for every user and item of a small random dataset, with integer and
with string ids; the independent-formula checks at the end compare ItemKNN and
MatrixFactorization with their dense numpy formulas on denser data.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from fastrec import ALS, BPR, WARP, ContentKNN, Hybrid, ItemKNN, MatrixFactorization, UnknownIdError, UserKNN
from fastrec.base import NotFittedError
from fastrec.recommenders import FactorRecommender, Recommender

N_USERS, N_ITEMS = 26, 21
COLD_USER = N_USERS - 1  # known (a row of the matrix) but without any interaction
# float32 results against float64 formulas: a few float32 eps of the largest magnitude
F32_TOL = 8 * float(np.finfo(np.float32).eps)


def _scale(values: np.ndarray) -> float:
    return max(1.0, float(np.abs(values[np.isfinite(values)]).max(initial=0.0)))


def _ratings() -> np.ndarray:
    """Dense users x items integer ratings 1-5 (0 = none): every item and all but one user rated."""
    rng = np.random.default_rng(11)
    R = np.where(rng.random((N_USERS, N_ITEMS)) < 0.22, rng.integers(1, 6, (N_USERS, N_ITEMS)), 0)
    R[np.arange(N_USERS - 1), rng.integers(0, N_ITEMS, N_USERS - 1)] = rng.integers(1, 6, N_USERS - 1)
    R[rng.integers(0, N_USERS - 1, N_ITEMS), np.arange(N_ITEMS)] = rng.integers(1, 6, N_ITEMS)
    R[COLD_USER] = 0
    return R.astype(np.float64)


RATINGS = _ratings()
FEATURES = sp.csr_matrix(
    np.where(
        np.random.default_rng(12).random((N_ITEMS, 6)) < 0.4,
        np.random.default_rng(13).integers(1, 4, (N_ITEMS, 6)),
        0,
    ).astype(np.float64)
)


def _mf(backend, **kw):
    return MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, n_threads=1, backend=backend, **kw)


# One line per recommender: name -> factory(backend, raw item ids in feature-row order).
MODELS = {
    "itemknn": lambda backend, items: ItemKNN(k=6, shrink=1.0, backend=backend),
    "userknn": lambda backend, items: UserKNN(k=5, shrink=0.5, backend=backend),
    "content": lambda backend, items: ContentKNN(FEATURES, item_ids=items, backend=backend),
    "mf": lambda backend, items: _mf(backend),
    "warp": lambda backend, items: WARP(4, 5, random_state=0, n_threads=1, backend=backend),
    "bpr": lambda backend, items: BPR(4, 5, random_state=0, n_threads=1, backend=backend),
    "als": lambda backend, items: ALS(4, 3, reg=0.1, random_state=0, n_threads=1, backend=backend),
    "hybrid": lambda backend, items: Hybrid(
        [(ItemKNN(k=6, backend=backend), 0.6), (_mf(backend), 0.4)], backend=backend
    ),
}


class Case:
    """A fitted model with its data: raw ids and the dense ratings in the model's inner order."""

    def __init__(self, name: str, backend: str, kind: str):
        self.name, self.backend, self.kind = name, backend, kind
        if kind == "int":
            self.user_ids, self.item_ids = np.arange(N_USERS), np.arange(N_ITEMS)
            data = sp.csr_matrix(RATINGS)  # row and column numbers are the ids
            self.unknown_user, self.unknown_item = 10_000, 20_000
        else:  # zero-padded so that the sorted ids keep the numeric order
            self.user_ids = np.array([f"u{u:02d}" for u in range(N_USERS)])
            self.item_ids = np.array([f"i{i:02d}" for i in range(N_ITEMS)])
            rows, cols = np.nonzero(RATINGS)
            data = (self.user_ids[rows], self.item_ids[cols], RATINGS[rows, cols])
            self.unknown_user, self.unknown_item = "nobody", "nothing"
        self.model = MODELS[name](backend, self.item_ids).fit(data)
        assert np.array_equal(self.model.item_ids_, self.item_ids)
        known = np.isin(self.user_ids, self.model.user_ids_)
        self.users = self.user_ids[known]  # string ids: the cold user is not in the triples
        self.R = RATINGS[known]  # rows of self.users, in the model's inner order
        assert np.array_equal(self.model.user_ids_, self.users)

    def seen(self, row: int) -> set:
        return set(self.item_ids[self.R[row] != 0].tolist())

    def inner(self, ids: np.ndarray) -> np.ndarray:
        """Inner item index of raw item ids (-1 / None slots -> -1)."""
        lookup = {item: index for index, item in enumerate(self.item_ids.tolist())}
        return np.array([lookup.get(item, -1) for item in np.asarray(ids).tolist()], dtype=np.int64)


@pytest.fixture(
    scope="module",
    params=[(name, kind) for name in MODELS for kind in ("int", "str")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def case(request, every_backend) -> Case:
    name, kind = request.param
    return Case(name, every_backend, kind)


def _components(model):
    yield model
    if isinstance(model, Hybrid):
        for part, _ in model.models:
            yield from _components(part)


def _empty(ids: np.ndarray) -> np.ndarray:
    return np.array(
        [
            item is None or (isinstance(item, (int, np.integer)) and item == -1)
            for item in np.asarray(ids).ravel().tolist()
        ],
        dtype=bool,
    ).reshape(np.shape(ids))


def _same_params(a, b) -> None:
    """Equal constructor parameters, comparing sub-models by their own parameters."""
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for key in pa:
        x, y = pa[key], pb[key]
        if isinstance(x, list):
            assert len(x) == len(y)
            for (m1, w1), (m2, w2) in zip(x, y):
                assert w1 == w2 and m1 is not m2
                _same_params(m1, m2)
        elif sp.issparse(x):
            assert (x != y).nnz == 0
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, key


def _assert_same(a, b) -> None:
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# --- raw ids, seen items, allow- and block-lists ------------------------------------------------


def test_raw_ids_in_and_out(case):
    model = case.model
    ids, scores = model.recommend(case.users, n=N_ITEMS)
    assert ids.shape == scores.shape == (case.users.size, N_ITEMS)
    valid = ~_empty(ids)
    assert set(ids[valid].tolist()) <= set(case.item_ids.tolist())
    assert np.all(np.isfinite(scores[valid])) and np.all(scores[~valid] == -np.inf)
    if case.kind == "str":
        assert all(item is None for item in ids[~valid].tolist())
    for row, user in enumerate(case.users):  # one id gives the batch's row
        one_ids, one_scores = model.recommend(user, n=N_ITEMS)
        np.testing.assert_array_equal(one_ids, ids[row])
        np.testing.assert_array_equal(one_scores, scores[row])


def test_recommend_ranks_score_items(case):
    model = case.model
    ids, scores = model.recommend(case.users, n=N_ITEMS)
    dense = model.score_items(case.users)
    assert dense.shape == (case.users.size, N_ITEMS) and dense.dtype == np.float64
    for row in range(case.users.size):
        if not case.R[row].any():
            continue  # cold: popularity, not the model's scores
        valid = ~_empty(ids[row])
        expected = dense[row, case.inner(ids[row][valid])]
        # float32 scores of the float64 ones: rounding of the largest term, a few eps of it
        np.testing.assert_allclose(scores[row][valid], expected, rtol=0, atol=F32_TOL * _scale(dense[row]))


def test_no_seen_item_when_excluded(case):
    ids, _ = case.model.recommend(case.users, n=N_ITEMS)
    for row in range(case.users.size):
        assert not set(ids[row][~_empty(ids[row])].tolist()) & case.seen(row)
    every, _ = case.model.recommend(case.users, n=N_ITEMS, exclude_seen=False)
    assert any(set(every[row].tolist()) & case.seen(row) for row in range(case.users.size))


def test_allow_and_block_lists_are_respected_and_combined(case):
    rng = np.random.default_rng(3)
    allow = case.item_ids[np.sort(rng.choice(N_ITEMS, 12, replace=False))]
    block = case.item_ids[np.sort(rng.choice(N_ITEMS, 7, replace=False))]
    candidates = set(allow.tolist()) - set(block.tolist())
    full, full_scores = case.model.recommend(case.users, n=N_ITEMS)
    for items, filter_items, allowed in (
        (allow, None, set(allow.tolist())),
        (None, block, set(case.item_ids.tolist()) - set(block.tolist())),
        (allow, block, candidates),
    ):
        ids, scores = case.model.recommend(case.users, n=N_ITEMS, items=items, filter_items=filter_items)
        assert ids.shape[1] == len(allowed)  # no more slots than candidates
        for row in range(case.users.size):
            got = ids[row][~_empty(ids[row])].tolist()
            assert set(got) <= allowed - case.seen(row)
            if isinstance(case.model, Hybrid):
                continue  # its normalisation runs over the candidates: rankings may change
            # the candidates keep their order and scores in the unrestricted ranking
            keep = [position for position, item in enumerate(full[row].tolist()) if item in allowed]
            assert got == [full[row][p] for p in keep][: len(got)]
            np.testing.assert_array_equal(scores[row][: len(got)], full_scores[row][keep][: len(got)])
    # an unknown id on the block-list cannot be recommended anyway: it is ignored
    _assert_same(
        case.model.recommend(case.users, n=5, filter_items=[*block, case.unknown_item]),
        case.model.recommend(case.users, n=5, filter_items=block),
    )
    # nothing left to recommend: one empty slot per user
    ids, scores = case.model.recommend(case.users, n=5, items=block[:2], filter_items=block)
    assert ids.shape == (case.users.size, 1) and _empty(ids).all() and np.all(scores == -np.inf)


def test_unknown_ids_raise_or_are_skipped(case):
    model, user = case.model, case.users[0]
    with pytest.raises(UnknownIdError, match=repr(case.unknown_user)):
        model.recommend([user, case.unknown_user])
    with pytest.raises(UnknownIdError, match=repr(case.unknown_item)):
        model.recommend(user, items=[case.item_ids[0], case.unknown_item])
    with pytest.raises(TypeError, match="users must be a raw id"):
        model.recommend(None)
    users = np.array([*case.users.tolist(), case.unknown_user])
    ids, scores = model.recommend(users, n=5, unknown="skip")
    _assert_same((ids[:-1], scores[:-1]), model.recommend(case.users, n=5))
    assert _empty(ids[-1]).all() and np.all(scores[-1] == -np.inf)
    some = list(case.item_ids[:8])
    _assert_same(
        model.recommend(case.users, n=5, items=[*some, case.unknown_item], unknown="skip"),
        model.recommend(case.users, n=5, items=some),
    )
    dense = model.score_items(
        [user, case.unknown_user], [case.item_ids[0], case.unknown_item], unknown="skip"
    )
    assert np.isnan(dense[1]).all() and np.isnan(dense[:, 1]).all() and np.isfinite(dense[0, 0])


def test_n_larger_than_the_candidates(case):
    ids, scores = case.model.recommend(case.users, n=10 * N_ITEMS)
    assert ids.shape == (case.users.size, N_ITEMS)
    for row in range(case.users.size):
        empty = _empty(ids[row])
        filled = int((~empty).sum())
        assert not empty[:filled].any()  # padding only at the end
        assert filled <= N_ITEMS - len(case.seen(row))
        if isinstance(case.model, (FactorRecommender, Hybrid)) or not case.R[row].any():
            assert filled == N_ITEMS - len(case.seen(row))  # every unseen item has a score


def test_ties_go_to_the_smaller_item_index_and_cold_users_get_popularity(case):
    ids, scores = case.model.recommend(case.users, n=N_ITEMS)
    for row in range(case.users.size):
        valid = ~_empty(ids[row])
        inner, values = case.inner(ids[row][valid]), scores[row][valid]
        for a in range(values.size - 1):
            assert values[a] > values[a + 1] or (values[a] == values[a + 1] and inner[a] < inner[a + 1])
    popularity = np.count_nonzero(case.R, axis=0) * (2 if isinstance(case.model, Hybrid) else 1)
    np.testing.assert_array_equal(case.model.item_popularity_, popularity)
    if case.kind == "int":  # the cold user is known: popularity, ties to the smaller index
        order = np.lexsort((np.arange(N_ITEMS), -popularity))
        cold_ids, cold_scores = case.model.recommend(COLD_USER, n=N_ITEMS)
        np.testing.assert_array_equal(cold_ids, case.item_ids[order])
        np.testing.assert_array_equal(cold_scores, popularity[order])
        assert len(set(popularity.tolist())) < N_ITEMS  # there were ties to break


# --- persistence, clone, threads -------------------------------------------------------------


def test_save_load_and_pickle_give_identical_recommendations(case):
    model = case.model
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = type(model).load(buffer)
    for part in _components(loaded):  # backends may differ in the last bit: compare like with like
        part.set_params(backend=case.backend)
    for copy_ in (loaded, pickle.loads(pickle.dumps(model))):
        for exclude_seen in (True, False):
            _assert_same(
                copy_.recommend(case.users, n=N_ITEMS, exclude_seen=exclude_seen),
                model.recommend(case.users, n=N_ITEMS, exclude_seen=exclude_seen),
            )
        if hasattr(model, "similar_items"):
            _assert_same(copy_.similar_items(case.item_ids, n=5), model.similar_items(case.item_ids, n=5))


def test_clone_is_unfitted_with_equal_params(case):
    model = case.model
    fresh = clone(model)
    assert type(fresh) is type(model) and isinstance(fresh, Recommender)
    _same_params(fresh, model)
    assert repr(fresh) == repr(model)
    check_is_fitted(model)  # scikit-learn's own check agrees
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    with pytest.raises(NotFittedError):
        fresh.recommend(case.users[0])
    with pytest.raises(NotFittedError):
        fresh.score_items(case.users[0])


def test_results_do_not_depend_on_the_thread_count(case):
    results = []
    for n_threads in (1, 2):
        model = copy.deepcopy(case.model)
        for part in _components(model):
            part.set_params(n_threads=n_threads)
        results.append((model.recommend(case.users, n=N_ITEMS), model.score_items(case.users)))
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


# --- user_items ------------------------------------------------------------------------------


def _folded_in(model, user, row):
    """A copy of ``model`` whose factor models folded ``user`` in from the ratings ``row``."""
    model = copy.deepcopy(model)
    items = np.flatnonzero(row)
    for part in _components(model):
        if isinstance(part, FactorRecommender):
            part.fold_in(user, part.item_ids_[items], row[items])
    return model


def test_user_items_of_a_training_user_equal_its_recommendations(case):
    model, warm = case.model, np.flatnonzero(case.R.any(axis=1))
    users, given = case.users[warm], sp.csr_matrix(case.R[warm])
    ids, scores = model.recommend(users, n=N_ITEMS, user_items=given)
    factors = any(isinstance(part, FactorRecommender) for part in _components(model))
    for position, row in enumerate(warm):
        # a factor model folds the user in from the rows given (the solve of fold_in)
        reference = _folded_in(model, users[position], case.R[row]) if factors else model
        want_ids, want_scores = reference.recommend(users[position], n=N_ITEMS)
        np.testing.assert_array_equal(ids[position], want_ids)
        np.testing.assert_array_equal(scores[position], want_scores)  # the same solve and kernel
    # the model did not change, and an empty row is a cold user: popularity
    _assert_same(model.recommend(case.users, n=4), copy.deepcopy(model).recommend(case.users, n=4))
    new_ids, _ = model.recommend(case.unknown_user, n=N_ITEMS, user_items=sp.csr_matrix((1, N_ITEMS)))
    order = np.lexsort((np.arange(N_ITEMS), -model.item_popularity_))
    np.testing.assert_array_equal(new_ids, case.item_ids[order])
    with pytest.raises(ValueError, match=r"user_items has shape \(1, 3\)"):
        model.recommend(case.users[0], user_items=sp.csr_matrix((1, 3)))
    with pytest.raises(TypeError, match="scipy sparse matrix"):
        model.recommend(case.users[0], user_items=case.R[:1])


@pytest.mark.parametrize("name", list(MODELS))
def test_user_items_by_raw_item_id_columns(name):
    rows, cols = np.nonzero(RATINGS)
    item_ids = 10 * np.arange(N_ITEMS) + 7  # integer ids that are not column numbers
    model = MODELS[name]("auto", item_ids).fit((rows, item_ids[cols], RATINGS[rows, cols]))
    users = model.user_ids_
    inner_form = sp.csr_matrix(RATINGS[users])
    coo = inner_form.tocoo()  # plus an item the model does not know, in row 0: left out
    raw_form = sp.csr_matrix(
        (np.append(coo.data, 4.0), (np.append(coo.row, 0), np.append(item_ids[coo.col], item_ids.max() + 1))),
        shape=(users.size, item_ids.max() + 3),
    )
    _assert_same(
        model.recommend(users, n=8, user_items=raw_form), model.recommend(users, n=8, user_items=inner_form)
    )
    with pytest.raises(ValueError, match=r"\(25, 21\) or \(25, > 207\)"):
        model.recommend(users, user_items=sp.csr_matrix((users.size, 30)))


# --- similar items and users ----------------------------------------------------------------


def _brute_cosine(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return (X @ X.T) / np.outer(safe, safe)


def _check_neighbours(ids, scores, inner_of, expected: np.ndarray, n: int, listed: np.ndarray) -> None:
    """Each row: not the object itself, scores equal ``expected``, best first; ties allowed."""
    tol = F32_TOL  # cosines are at most 1
    for row in range(expected.shape[0]):
        valid = ~_empty(ids[row])
        got = inner_of(ids[row][valid])
        assert row not in got.tolist()
        np.testing.assert_allclose(scores[row][valid], expected[row, got], rtol=tol, atol=tol)
        others = np.flatnonzero(listed[row] & (np.arange(expected.shape[0]) != row))
        assert got.size == min(n, others.size)
        boundary = scores[row][valid][-1] if got.size else np.inf
        must = set(others[expected[row, others] > boundary + tol].tolist())
        assert must <= set(got.tolist())


def test_similar_items_exclude_the_item_and_match_brute_force(case):
    model = case.model
    if not hasattr(model, "similar_items"):
        # a blend has no item similarity of its own, UserKNN only neighbours of users
        assert isinstance(model, (Hybrid, UserKNN))
        return
    n = 6
    ids, scores = model.similar_items(case.item_ids, n=n)
    if isinstance(model, FactorRecommender):
        expected = _brute_cosine(model.item_factors_.astype(np.float64))
        listed = np.ones_like(expected, dtype=bool)
    elif isinstance(model, ContentKNN):
        expected = _brute_cosine(FEATURES.toarray())
        listed = expected != 0
    else:  # a neighbourhood model lists the neighbours kept at fit
        S = model.similarities_
        for row in range(N_ITEMS if isinstance(model, ItemKNN) else 0):
            stored = S.indices[S.indptr[row] : S.indptr[row + 1]][:n]
            np.testing.assert_array_equal(case.inner(ids[row][~_empty(ids[row])]), stored)
            np.testing.assert_array_equal(scores[row][: stored.size], S.data[S.indptr[row] :][: stored.size])
        expected = _brute_cosine_with_shrink(case.R.T, model.shrink)
        listed = expected != 0
    _check_neighbours(ids, scores, case.inner, expected, n, listed)
    one_ids, one_scores = model.similar_items(case.item_ids[3], n=n)
    _assert_same((one_ids, one_scores), (ids[3], scores[3]))
    with pytest.raises(UnknownIdError, match=repr(case.unknown_item)):
        model.similar_items([case.unknown_item])


def _brute_cosine_with_shrink(X: np.ndarray, shrink: float) -> np.ndarray:
    """<x_i, x_j> / (|x_i| |x_j| + shrink) between the rows of X (0 where a row is all zeros)."""
    norms = np.linalg.norm(X, axis=1)
    denominator = np.outer(norms, norms) + shrink
    return np.divide(X @ X.T, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def test_similar_users_exclude_the_user_and_match_brute_force(case):
    model = case.model
    if not hasattr(model, "similar_users"):
        return
    n = 5
    ids, scores = model.similar_users(case.users, n=n)
    user_index = {user: index for index, user in enumerate(case.users.tolist())}

    def inner_of(raw):
        return np.array([user_index[user] for user in np.asarray(raw).tolist()], dtype=np.int64)

    if isinstance(model, FactorRecommender):
        expected = _brute_cosine(model.user_factors_.astype(np.float64))
        listed = np.ones_like(expected, dtype=bool)
    else:
        expected = _brute_cosine_with_shrink(case.R, model.shrink)
        listed = expected != 0
    _check_neighbours(ids, scores, inner_of, expected, n, listed)


# --- independent formulas on dense data -------------------------------------------------------


def _dense_ratings() -> np.ndarray:
    rng = np.random.default_rng(21)
    R = np.where(rng.random((30, 24)) < 0.5, rng.random((30, 24)) * 4 + 1, 0.0)
    R[:, 0] = 3.0  # every user has rated something
    return R


def _assert_ranking(ids, scores, expected: np.ndarray, candidate: np.ndarray, n: int) -> None:
    """Each row: the best ``n`` candidates by ``expected`` (ties within the float32 tolerance)."""
    tol = F32_TOL * _scale(expected)
    for row in range(expected.shape[0]):
        valid = ids[row] >= 0
        got = ids[row][valid]
        assert set(got.tolist()) <= set(np.flatnonzero(candidate[row]).tolist())
        assert got.size == min(n, int(candidate[row].sum()))
        np.testing.assert_allclose(scores[row][valid], expected[row, got], rtol=0, atol=tol)
        if got.size:
            boundary = expected[row, got[-1]]
            must = np.flatnonzero(candidate[row] & (expected[row] > boundary + tol))
            assert set(must.tolist()) <= set(got.tolist())


def test_itemknn_scores_equal_the_dense_cosine_formula(every_backend):
    R = _dense_ratings()
    shrink = 2.0
    model = ItemKNN(k=R.shape[1], shrink=shrink, backend=every_backend).fit(sp.csr_matrix(R))
    norms = np.linalg.norm(R, axis=0)
    S = (R.T @ R) / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(S, 0.0)
    expected = R @ S
    candidate = ((R != 0) @ (S != 0) > 0) & (R == 0)
    ids, scores = model.recommend(np.arange(R.shape[0]), n=R.shape[1])
    _assert_ranking(ids, scores, expected, candidate, R.shape[1])
    np.testing.assert_allclose(model.score_items(np.arange(R.shape[0])), expected, rtol=1e-5, atol=1e-5)


def test_mf_recommend_is_the_argsort_of_its_factor_formula(every_backend):
    R = _dense_ratings()
    model = MatrixFactorization(
        n_factors=5, n_epochs=4, random_state=1, n_threads=1, backend=every_backend
    ).fit(sp.csr_matrix(R))
    P, Q = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    expected = (
        P @ Q.T
        + model.global_mean_
        + model.user_bias_.astype(np.float64)[:, None]
        + model.item_bias_.astype(np.float64)[None, :]
    )
    ids, scores = model.recommend(np.arange(R.shape[0]), n=R.shape[1])
    _assert_ranking(ids, scores, expected, R == 0, R.shape[1])
    ids, scores = model.recommend(np.arange(R.shape[0]), n=R.shape[1], exclude_seen=False)
    _assert_ranking(ids, scores, expected, np.ones_like(R, dtype=bool), R.shape[1])
