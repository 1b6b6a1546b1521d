"""Recommender behaviour pinned against independent numpy formulas on small dense data.

Each check recomputes what a recommender should return (brute-force cosine,
popularity counts, per-row min-max and z-scores) with plain numpy, never from
the model's own fitted attributes, so a change in the Python layer that alters
a score, a rank, a padding slot or an error shows up here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec import ContentKNN, Hybrid, ItemKNN, UserKNN
from fastrec.recommenders import Recommender
from fastrec.recommenders._base import min_max_rows, z_score_rows

# numba gives the cpp results (tests/test_recommenders.py checks it): run the fast two here
BACKENDS = [backend for backend in fastrec.available_backends() if backend != "numba"]


def _dense_ratings() -> np.ndarray:
    """8 users x 6 items, ratings 1-5 (0 = none); user 7 has no rating, item 5 is rated once."""
    R = np.array(
        [
            [5, 3, 0, 1, 0, 0],
            [4, 0, 0, 1, 2, 0],
            [1, 1, 0, 5, 0, 0],
            [0, 0, 5, 4, 0, 0],
            [0, 1, 5, 4, 3, 0],
            [2, 0, 0, 0, 4, 0],
            [0, 3, 1, 0, 0, 2],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=np.float64,
    )
    return R


def _cosine(A: np.ndarray, B: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """<a_i, b_j> / (|a_i| |b_j| + shrink) between the rows of A and of B (0 for a zero row)."""
    denominator = np.outer(np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)) + shrink
    return np.divide(A @ B.T, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _z_rows(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    for r in range(scores.shape[0]):
        values = scores[r][valid[r]]
        if values.size and values.std() > 0:
            out[r] = (scores[r] - values.mean()) / values.std()
    return out


def _min_max(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    for r in range(scores.shape[0]):
        values = scores[r][valid[r]]
        if values.size and values.max() > values.min():
            out[r] = (scores[r] - values.min()) / (values.max() - values.min())
    return out


# --- per-row normalisations -------------------------------------------------------------------


def _normalisation_rows():
    scores = np.array(
        [
            [3.0, -1.0, 2.0, 7.0, 0.5],  # general
            [4.0, 4.0, 4.0, 4.0, 4.0],  # constant
            [1.0, 9.0, -3.0, 2.0, 6.0],  # one valid entry only
            [5.0, 1.0, 2.0, 3.0, 4.0],  # no valid entry
            [0.0, 2.0, 2.0, 2.0, 8.0],  # valid entries equal, others not
        ]
    )
    valid = np.array(
        [
            [True, True, False, True, True],
            [True, True, True, True, True],
            [False, True, False, False, False],
            [False, False, False, False, False],
            [False, True, True, True, False],
        ]
    )
    return scores, valid


@pytest.mark.parametrize("normalise, formula", [(z_score_rows, _z_rows), (min_max_rows, _min_max)])
def test_row_normalisations_match_numpy_over_the_valid_entries(normalise, formula):
    scores, valid = _normalisation_rows()
    before = scores.copy()
    np.testing.assert_allclose(normalise(scores, valid), formula(scores, valid), rtol=1e-12, atol=1e-12)
    everything = np.ones_like(valid)
    np.testing.assert_allclose(normalise(scores, None), formula(scores, everything), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(scores, before)


# --- neighbour lookups ------------------------------------------------------------------------


def test_similar_items_and_users_refuse_n_below_one():
    R = sp.csr_matrix(_dense_ratings())
    with pytest.raises(ValueError, match="n must be >= 1"):
        ItemKNN(k=3).fit(R).similar_items(0, n=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        UserKNN(k=3).fit(R).similar_users(0, n=0)
    X = np.eye(6)
    with pytest.raises(ValueError, match="n must be >= 1"):
        ContentKNN(X).fit(R).similar_items(0, n=0)


# --- persistence ------------------------------------------------------------------------------


def test_loaded_content_model_refits_like_the_original():
    R = _dense_ratings()
    rows, cols = np.nonzero(R)
    items = np.array(["a", "b", "c", "d", "e", "f"])
    data = (rows, items[cols], R[rows, cols])
    X = np.array([[1, 0, 2], [0, 1, 0], [3, 0, 0], [1, 1, 1], [0, 0, 4]], dtype=np.float64)
    model = ContentKNN(X, item_ids=items[:5], dtype=np.float64).fit(data)  # item f has no features
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    refitted = ContentKNN.load(buffer).fit(data)
    users = np.arange(7)
    for a, b in zip(model.recommend(users, n=4), refitted.recommend(users, n=4)):
        np.testing.assert_array_equal(a, b)


# --- the backend and thread count asked for reach every kernel -------------------------------


class _LoggedKernels:
    """A backend's kernel module whose kernels log (backend, name, threads asked, threads run) per call."""

    def __init__(self, backend, module, calls):
        self._backend, self._module, self._calls = backend, module, calls

    def __getattr__(self, name):
        kernel = getattr(self._module, name)

        def call(**kwargs):
            running = kwargs.get("n_threads")
            if self._backend == "numba":  # numba's own thread count is what its kernels run with
                import numba

                running = numba.get_num_threads()
            self._calls.append((self._backend, name, kwargs.get("n_threads"), running))
            return kernel(**kwargs)

        return call


@pytest.mark.parametrize("backend", fastrec.available_backends())
def test_every_kernel_runs_on_the_backend_and_threads_asked_for(monkeypatch, backend):
    from fastrec import _runtime

    calls: list[tuple[str, str, int, int]] = []
    real = _runtime.kernel_module
    monkeypatch.setattr(
        _runtime, "kernel_module", lambda b, family: _LoggedKernels(b, real(b, family), calls)
    )
    R = sp.csr_matrix(_dense_ratings())
    X = np.array([[1, 0, 2], [0, 1, 0], [3, 0, 0], [1, 1, 1], [0, 0, 4], [2, 2, 0]], dtype=np.float64)
    given = sp.csr_matrix(np.array([[0, 2, 0, 0, 1, 0]], dtype=np.float64))
    options = {"n_threads": 1, "backend": backend}
    item, user = ItemKNN(k=3, **options).fit(R), UserKNN(k=3, **options).fit(R)
    content = ContentKNN(X, **options).fit(R)
    blend = Hybrid([(item, 0.5), (content, 0.5)], **options)
    for model in (item, user, content, blend):
        model.recommend(np.arange(8), n=3)
        model.recommend(0, n=3, user_items=given)
    item.similar_items(0)
    user.similar_users(0)
    content.similar_items(0)
    assert {"cosine_topk", "sparse_score_topn", "dense_topn"} <= {name for _, name, _, _ in calls}
    assert {used for used, _, _, _ in calls} == {backend}
    assert {asked for _, _, asked, _ in calls} == {1}
    assert {running for _, _, _, running in calls} == {1}


# --- scores and rankings of every model against brute force ----------------------------------

FEATURES = np.array(
    [[1, 0, 2, 0], [0, 1, 0, 1], [3, 0, 0, 1], [1, 1, 1, 0], [0, 0, 4, 2], [2, 2, 0, 0]], dtype=np.float64
)


def _item_knn_scores(R: np.ndarray, history: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """history @ S with S the item-item cosine of R's columns (every neighbour kept, none itself)."""
    S = _cosine(R.T, R.T, shrink)
    np.fill_diagonal(S, 0.0)
    return history @ S


def _user_knn_scores(R: np.ndarray, history: np.ndarray, k: int, own: np.ndarray) -> np.ndarray:
    """sum over the k most cosine-similar training users v (never the user ``own``) of s(u, v) r_v."""
    S = _cosine(history, R)
    for row, user in enumerate(own):
        if user >= 0:
            S[row, user] = 0.0
        order = np.lexsort((np.arange(R.shape[0]), -S[row]))
        S[row, order[k:]] = 0.0
    return S @ R


def _content_scores(history: np.ndarray) -> np.ndarray:
    return _cosine(history @ FEATURES, FEATURES)


def _assert_top(ids, scores, expected, candidate, n):
    """Each row holds the best ``n`` candidates by ``expected`` (ties at the cut either way), padded."""
    tol = 1e-9
    for row in range(expected.shape[0]):
        count = min(n, int(candidate[row].sum()))
        got = ids[row][:count].astype(np.int64)
        assert np.all(ids[row][count:] == -1) and np.all(np.isneginf(scores[row][count:]))
        assert candidate[row][got].all() and np.unique(got).size == count
        np.testing.assert_allclose(scores[row][:count], expected[row, got], rtol=0, atol=tol)
        assert np.all(np.diff(scores[row][:count]) <= tol)
        if count:
            must = np.flatnonzero(candidate[row] & (expected[row] > expected[row, got[-1]] + tol))
            assert set(must.tolist()) <= set(got.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_item_user_and_content_scores_equal_brute_force(backend):
    R = _dense_ratings()
    users = np.arange(7)
    item = ItemKNN(k=5, shrink=0.5, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    user = UserKNN(k=3, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    content = ContentKNN(FEATURES, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    expected = {
        item: _item_knn_scores(R, R, shrink=0.5),
        user: _user_knn_scores(R, R, 3, np.arange(8)),
        content: _content_scores(R),
    }
    for model, scores in expected.items():
        np.testing.assert_allclose(model.score_items(users), scores[:7], rtol=0, atol=1e-12)
        cols = np.array([4, 0, 2])
        np.testing.assert_allclose(model.score_items(users, cols), scores[:7][:, cols], rtol=0, atol=1e-12)
        reached = scores != 0
        ids, top = model.recommend(users, n=6)
        _assert_top(ids, top, scores[:7], (reached & (R == 0))[:7], 6)
        ids, top = model.recommend(users, n=6, exclude_seen=False)
        _assert_top(ids, top, scores[:7], reached[:7], 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_interactions_score_like_brute_force_on_those_rows(backend):
    R = _dense_ratings()
    given = np.array([[0, 0, 3, 0, 0, 1], [2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float64)
    users = np.array([3, 99, 0])  # a training user, a new one, one whose given row is empty
    item = ItemKNN(k=5, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    user = UserKNN(k=2, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    content = ContentKNN(FEATURES, dtype=np.float64, backend=backend).fit(sp.csr_matrix(R))
    expected = {
        item: _item_knn_scores(R, given),
        user: _user_knn_scores(R, given, 2, np.array([3, -1, 0])),
        content: _content_scores(given),
    }
    popular = np.lexsort((np.arange(6), -np.count_nonzero(R, axis=0)))
    for model, scores in expected.items():
        got = model.score_items(users, user_items=sp.csr_matrix(given), unknown="skip")
        np.testing.assert_allclose(got, scores, rtol=0, atol=1e-12)
        ids, top = model.recommend(users[:2], n=4, user_items=sp.csr_matrix(given[:2]), unknown="skip")
        _assert_top(ids, top, scores[:2], ((scores != 0) & (given == 0))[:2], 4)
        ids, top = model.recommend(users, n=4, user_items=sp.csr_matrix(given), unknown="skip")
        np.testing.assert_array_equal(ids[2], popular[:4])  # an empty given row: popularity


@pytest.mark.parametrize("normalization", ["minmax", "zscore", "none"])
def test_hybrid_scores_are_the_weighted_blend_of_normalised_brute_force_scores(normalization):
    R = _dense_ratings()
    rows, cols = np.nonzero(R)
    item = ItemKNN(k=5, dtype=np.float64).fit(sp.csr_matrix(R))
    # the content model never saw user 6: it adds nothing for that user
    fewer = rows != 6
    content = ContentKNN(FEATURES, dtype=np.float64).fit((rows[fewer], cols[fewer], R[rows, cols][fewer]))
    blend = Hybrid([(item, 0.7), (content, -0.4)], normalization=normalization)
    users = np.arange(7)
    valid = R[:7] == 0
    norm = {"minmax": _min_max, "zscore": _z_rows, "none": lambda s, v: s}[normalization]
    content_part = norm(_content_scores(R[:7]), valid)
    content_part[6] = 0.0
    expected = 0.7 * norm(_item_knn_scores(R, R[:7]), valid) - 0.4 * content_part
    np.testing.assert_allclose(blend.score_items(users), expected, rtol=0, atol=1e-12)
    ids, top = blend.recommend(users, n=6)
    _assert_top(ids, top, expected, valid, 6)
    ids, top = blend.recommend(users, n=6, exclude_seen=False)
    _assert_top(ids, top, expected, np.ones_like(valid), 6)


# --- training data the scores of which could overflow -----------------------------------------


@pytest.mark.parametrize("model", [ItemKNN, UserKNN])
def test_overflow_bound_uses_the_largest_magnitude_and_the_longest_row_or_column(model):
    big = float(np.finfo(np.float32).max) / 4  # four such ratings can sum past float32's range
    one_user_many_items = sp.csr_matrix(np.full((1, 5), big))
    one_item_many_users = sp.csr_matrix(np.full((5, 1), big))
    for R in (one_user_many_items, one_item_many_users, -one_user_many_items, -one_item_many_users):
        with pytest.raises(ValueError, match="scores could overflow float32"):
            model(k=2).fit(R)
    three = sp.csr_matrix(np.full((3, 3), -big))  # at most 3 ratings per row or column: it fits
    assert model(k=2).fit(three).n_items_ == 3


def test_ratings_beyond_the_dtype_range_are_refused_with_the_remedy():
    big = float(np.finfo(np.float32).max)
    users, items = np.array([0, 0, 1]), np.array([0, 0, 1])  # the repeated pair sums past the range
    with pytest.raises(ValueError, match="beyond float32's range.*dtype=np.float64"):
        ItemKNN().fit((users, items, np.array([big, big, 1.0])))
    with pytest.raises(ValueError, match="beyond float32's range"):
        ItemKNN().fit((users, items, np.array([-big, -big, 1.0])))
    fitted = ItemKNN(dtype=np.float64).fit((users, items, np.array([big, big, 1.0])))
    assert fitted.interactions_[0, 0] == 2 * big


# --- unknown ids, bad arguments ---------------------------------------------------------------


def test_unknown_id_errors_name_the_first_id_and_count_the_others():
    R = sp.csr_matrix(_dense_ratings())
    model = ItemKNN(k=3).fit(R)
    with pytest.raises(
        ValueError, match=r"users contains the user id 999 \(and 2 more\), which .*get empty rows"
    ):
        model.recommend([1, 999, 2, 1000, 1001])
    with pytest.raises(ValueError, match=r"contains the user id 999, which"):
        model.recommend([1, 999])
    with pytest.raises(ValueError, match=r"items contains the item id 77, which .* leave such items out"):
        model.score_items(0, [1, 77])
    with pytest.raises(
        ValueError,
        match=r"unknown=1 is not one of 'raise' \(.*\) or 'skip' \(.*unknown items are left out\)\.$",
    ):
        model.recommend(0, unknown=1)
    with pytest.raises(TypeError, match="users must be a raw id or an array-like of raw ids, got None"):
        model.recommend(None)
    rows, cols = np.nonzero(_dense_ratings())
    named = ItemKNN(k=3).fit((np.array(["a", "b", "c", "d", "e", "f", "g"])[rows], cols, np.ones(rows.size)))
    with pytest.raises(ValueError, match=r"contains the user id 'zz', which"):
        named.recommend(np.array(["a", "zz"], dtype=object))  # ids as Python objects, not numpy scalars
    scores = model.score_items([0, 999], [1, 77], unknown="skip")
    assert np.isnan(scores[1]).all() and np.isnan(scores[:, 1]).all() and np.isfinite(scores[0, 0])


# --- a recommender that implements only _fit_model and _score ---------------------------------


class _NearestIndex(Recommender):
    """score(u, j) = -(j - inner index of u)^2 - len(raw id of u): the default top-n path ranks it."""

    def _fit_model(self, R, params, backend, n_threads, context):
        pass

    def _score(self, rows, candidates, given, inner, raw):
        lengths = np.array([len(str(user)) for user in raw], dtype=np.float64)
        return -((candidates[None, :] - inner[:, None]) ** 2).astype(np.float64) - lengths[:, None]


def test_a_subclass_with_only_a_score_gets_the_default_top_n_path():
    R = _dense_ratings()
    rows, cols = np.nonzero(R)
    names = np.array(["u0", "u01", "u2", "u3", "u004", "u5", "u6"])
    model = _NearestIndex().fit((names[rows], cols, R[rows, cols]))
    users = np.array(["u5", "u01", "u6", "nobody"])
    inner = np.searchsorted(np.sort(names), users[:3])  # ids are indexed in sorted order: [5, 2, 6]
    seen = R[[5, 1, 6]] != 0
    lengths = np.array([2.0, 3.0, 2.0])
    expected = -((np.arange(6)[None, :] - inner[:, None]) ** 2) - lengths[:, None]
    scores = model.score_items(users, unknown="skip")
    np.testing.assert_array_equal(scores[:3], expected)
    assert np.isnan(scores[3]).all()
    ids, top = model.recommend(users, n=6, unknown="skip")
    _assert_top(ids[:3], top[:3], expected, ~seen, 6)
    assert np.all(ids[3] == -1) and np.all(np.isneginf(top[3]))
    given = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2]], dtype=float))
    ids, top = model.recommend(["u2", "nobody", "u3"], n=3, user_items=given)
    # the unknown user's row is empty: served by popularity, the others rank by their model index
    nearest = -((np.arange(6)[None, :] - np.array([[3.0], [4.0]])) ** 2) - 2  # u2 and u3: 3 and 4
    _assert_top(ids[[0]], top[[0]], nearest[[0]], np.array([[0, 1, 1, 1, 1, 1]], bool), 3)
    np.testing.assert_array_equal(ids[1], np.lexsort((np.arange(6), -np.count_nonzero(R, axis=0)))[:3])
    _assert_top(ids[[2]], top[[2]], nearest[[1]], np.array([[1, 1, 1, 1, 1, 0]], bool), 3)


def test_hybrid_argument_errors_name_the_position_and_the_type():
    R = sp.csr_matrix(_dense_ratings())
    item = ItemKNN(k=3).fit(R)
    cases = [
        (
            [],
            TypeError,
            r"non-empty list of \(model, weight\) pairs, "
            r"e\.g\. \[\(item_knn, 0\.7\), \(content_knn, 0\.3\)\]",
        ),
        ((item, 1.0), TypeError, r"models\[0\] must be a \(model, weight\) pair, got ItemKNN\."),
        (
            [(item, 1.0), [item, 1.0, 2.0]],
            TypeError,
            r"models\[1\] must be a \(model, weight\) pair, got list\.",
        ),
        ([(item, 1.0), ("item", 1.0)], TypeError, r"models\[1\] is a str, not a fastrec recommender"),
        ([(item, 1.0), (item, float("nan"))], ValueError, r"weight of models\[1\]"),
    ]
    for models, error, message in cases:
        with pytest.raises(error, match=message):
            Hybrid(models).recommend(0)
    with pytest.raises(ValueError, match=r"normalization='rank' is not one of 'minmax', 'zscore', 'none'\."):
        Hybrid([(item, 1.0)], normalization="rank").score_items(0)


def test_bad_user_items_are_refused_naming_the_argument():
    R = sp.csr_matrix(_dense_ratings())
    model = ItemKNN(k=3).fit(R)
    out_of_range = sp.csr_matrix((np.ones(1), np.array([7]), np.array([0, 1])), shape=(1, 6))
    cases = [
        (
            np.zeros((1, 6)),
            TypeError,
            r"user_items must be a scipy sparse matrix of shape \(1, 6\), got ndarray\.",
        ),
        (sp.csr_matrix((2, 6)), ValueError, r"user_items has shape \(2, 6\); .*: \(1, 6\)\."),
        (out_of_range, ValueError, r"user_items is a malformed sparse matrix: .*column index 7"),
        (sp.csr_matrix(np.array([[np.nan, 0, 0, 0, 0, 0]])), ValueError, "user_items contains NaN"),
        (
            sp.csr_matrix(np.array([[1j, 0, 0, 0, 0, 0]])),
            TypeError,
            r"user_items has dtype complex128, .*user_items\.astype",
        ),
    ]
    for user_items, error, message in cases:
        with pytest.raises(error, match=message):
            model.recommend(0, user_items=user_items)


def test_user_items_with_repeated_entries_are_summed_and_left_unchanged():
    R = _dense_ratings()
    model = ItemKNN(k=5, dtype=np.float64).fit(sp.csr_matrix(R))
    # one row storing item 2 twice and item 0 after it: not in canonical form, in the model's dtype
    data, indices, indptr = np.array([1.0, 3.0, 2.0]), np.array([2, 0, 2]), np.array([0, 3])
    user_items = sp.csr_matrix((data, indices, indptr), shape=(1, 6))
    summed = np.array([[3.0, 0, 3.0, 0, 0, 0]])
    scores = model.score_items(0, user_items=user_items)
    np.testing.assert_allclose(scores, _item_knn_scores(R, summed)[0], rtol=0, atol=1e-12)
    ids, _ = model.recommend(0, n=6, user_items=user_items)
    assert 0 not in ids and 2 not in ids
    np.testing.assert_array_equal(user_items.data, data)
    np.testing.assert_array_equal(user_items.indices, indices)
    np.testing.assert_array_equal(user_items.indptr, indptr)


def test_bad_id_arrays_are_refused_naming_the_argument():
    R = sp.csr_matrix(_dense_ratings())
    model = ItemKNN(k=3).fit(R)
    with pytest.raises(ValueError, match="^items contains None"):
        model.recommend(0, items=[1, None])
    with pytest.raises(ValueError, match="^filter_items must be 1-D"):
        model.recommend(0, filter_items=np.array([[1, 2]]))
    with pytest.raises(ValueError, match="^items must be 1-D"):
        model.score_items(0, np.array([[1, 2]]))
    with pytest.raises(ValueError, match="^users contains the negative id -1"):
        model.recommend([0, -1])
    with pytest.raises(ValueError, match="^items contains the negative id -2"):
        model.similar_items([1, -2])
