"""Recommenders: kernels against the reference, models against dense numpy formulations, API."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant

import fastrec
from fastrec import ContentKNN, Hybrid, ItemKNN, MatrixFactorization, UnknownIdError, UserKNN, _runtime
from fastrec.base import NotFittedError
from fastrec.datasets import make_ratings
from fastrec.recommenders import _numba, _reference

BACKENDS = list(_runtime.available_backends())


def kernels(backend):
    if backend == "cpp":
        return _runtime._cpp.sparse_score_topn, _runtime._cpp.dense_topn
    module = _numba if backend == "numba" else _reference
    return module.sparse_score_topn, module.dense_topn


def assert_tables_equivalent(idx, scores, ref_idx, ref_scores, tol):
    """Two padded top-n tables agree row by row up to ties at the row's lowest kept score."""
    assert idx.shape == ref_idx.shape
    np.testing.assert_array_equal(idx < 0, ref_idx < 0)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=tol)
    for r in range(idx.shape[0]):
        valid = ref_idx[r] >= 0
        if not valid.any():
            continue
        boundary = ref_scores[r][valid][-1]
        firm = valid & (ref_scores[r] > boundary + tol)
        assert set(idx[r][firm]) == set(ref_idx[r][firm]), f"row {r}"
        assert len(set(idx[r][valid])) == valid.sum()


def assert_rank_ordered(idx, scores):
    for r in range(idx.shape[0]):
        valid = idx[r] >= 0
        count = valid.sum()
        assert valid[:count].all() and np.all(np.isneginf(scores[r][count:]))
        for a in range(count - 1):
            assert scores[r, a] > scores[r, a + 1] or (
                scores[r, a] == scores[r, a + 1] and idx[r, a] < idx[r, a + 1]
            )


def random_csr(rows, cols, density, rng, dtype, signed=False, zeros=False, empty_rows=()):
    M = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    M.data = np.round(M.data * 4 + 1) / 2  # few distinct values: ties happen
    if signed:
        M.data *= rng.choice([-1.0, 1.0], size=M.nnz)
    if zeros and M.nnz:
        M.data[rng.random(M.nnz) < 0.1] = 0.0  # explicit zeros stay stored
    for r in empty_rows:
        M.data[M.indptr[r] : M.indptr[r + 1]] = 0.0
        M.indices[M.indptr[r] : M.indptr[r + 1]] = -1
    keep = M.indices >= 0
    M = sp.csr_matrix(
        (
            M.data[keep],
            M.indices[keep],
            np.concatenate(
                [[0], np.cumsum([keep[M.indptr[r] : M.indptr[r + 1]].sum() for r in range(rows)])]
            ),
        ),
        shape=(rows, cols),
    )
    return M.astype(dtype)


def kernel_problem(dtype, index_dtype, seed=0, n_items=40):
    rng = np.random.default_rng(seed)
    A = random_csr(30, 25, 0.2, rng, dtype, signed=True, zeros=True, empty_rows=(3,))
    W = random_csr(25, n_items, 0.15, rng, dtype, signed=True, zeros=True, empty_rows=(5,))
    seen = random_csr(30, n_items, 0.1, rng, dtype)
    rows = np.array([0, 1, 2, 3, -1, 5, 7, 7, 29, 11, 12, 13, 20, 21, 22], dtype=np.int64)
    allowed = (rng.random(n_items) < 0.8).astype(np.uint8)
    arrays = dict(
        a=(A.indptr.astype(np.int64), A.indices.astype(index_dtype), A.data),
        w=(W.indptr.astype(np.int64), W.indices.astype(index_dtype), W.data),
        seen=(seen.indptr.astype(np.int64), seen.indices.astype(index_dtype)),
    )
    return A, W, seen, rows, allowed, arrays


def run_sparse(backend, problem, n, exclude_seen, use_mask, n_threads=2):
    A, W, seen, rows, allowed, arrays = problem
    out_idx = np.empty((rows.size, n), dtype=np.int64)
    out_scores = np.empty((rows.size, n), dtype=A.dtype)
    mask = allowed if use_mask else np.zeros(0, dtype=np.uint8)
    with _runtime.kernel_threads(backend, n_threads):
        kernels(backend)[0](
            *arrays["a"],
            *arrays["w"],
            W.shape[1],
            *arrays["seen"],
            rows,
            mask,
            exclude_seen,
            n,
            out_idx,
            out_scores,
            n_threads,
        )
    return out_idx, out_scores


def dense_reference(A, W, seen, rows, allowed, n, exclude_seen, use_mask):
    """score = A W over the items reached through stored entries, masked, ranked by argsort."""
    scores = (A.toarray().astype(np.float64) @ W.toarray().astype(np.float64)).astype(A.dtype)
    reached = ((A != 0) + 0).toarray() @ ((W != 0) + 0).toarray()
    # stored zeros still link: use the stored pattern, not the values
    Ap = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape).toarray()
    Wp = sp.csr_matrix((np.ones(W.nnz), W.indices, W.indptr), shape=W.shape).toarray()
    reached = (Ap @ Wp) > 0
    out_idx = np.full((rows.size, n), -1)
    out_scores = np.full((rows.size, n), -np.inf, dtype=A.dtype)
    for r, u in enumerate(rows):
        if u < 0:
            continue
        ok = reached[u].copy()
        if exclude_seen:
            ok &= seen[u].toarray().ravel() == 0
        if use_mask:
            ok &= allowed.astype(bool)
        cols = np.flatnonzero(ok)
        order = cols[np.lexsort((cols, -scores[u, cols]))][:n]
        out_idx[r, : order.size] = order
        out_scores[r, : order.size] = scores[u, order]
    return out_idx, out_scores


# --- the kernels ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exclude_seen,use_mask", [(True, True), (False, False), (True, False)])
def test_reference_sparse_kernel_matches_dense_numpy(dtype, exclude_seen, use_mask):
    problem = kernel_problem(dtype, np.int32)
    A, W, seen, rows, allowed, _ = problem
    for n in (1, 4, 50):  # 50 is more than any row reaches: padding
        got = run_sparse("numpy", problem, n, exclude_seen, use_mask)
        want = dense_reference(A, W, seen, rows, allowed, n, exclude_seen, use_mask)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert_tables_equivalent(*got, *want, tol)
        assert_rank_ordered(*got)
    assert np.all(got[0][4] == -1) and np.all(got[0][3] == -1)  # row -1 and an empty row of A


@pytest.mark.parametrize("backend,level", compiled_variants())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_compiled_sparse_kernel_matches_reference(backend, level, dtype, index_dtype):
    problem = kernel_problem(dtype, index_dtype, seed=3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    with variant(level):
        for exclude_seen, use_mask in [(True, True), (False, False)]:
            for n in (1, 3, 60):
                got = run_sparse(backend, problem, n, exclude_seen, use_mask)
                want = run_sparse("numpy", problem, n, exclude_seen, use_mask)
                if dtype == np.float32:  # exact products in double, same sum order: identical
                    np.testing.assert_array_equal(got[0], want[0])
                    np.testing.assert_array_equal(got[1], want[1])
                assert_tables_equivalent(*got, *want, tol)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_sparse_kernel_does_not_depend_on_threads(backend):
    R = make_ratings(400, 300, 12_000, seed=1)
    S = fastrec.cosine_topk(R.T, k=30)
    rows = np.arange(400, dtype=np.int64)
    arrays = [R.indptr.astype(np.int64), R.indices.astype(np.int32), R.data]
    results = []
    for threads in (1, 2, 3):
        out_idx = np.empty((400, 20), dtype=np.int64)
        out_scores = np.empty((400, 20), dtype=np.float32)
        with _runtime.kernel_threads(backend, threads):
            kernels(backend)[0](
                *arrays,
                S.indptr.astype(np.int64),
                S.indices.astype(np.int32),
                S.data,
                300,
                *arrays[:2],
                rows,
                np.zeros(0, np.uint8),
                True,
                20,
                out_idx,
                out_scores,
                threads,
            )
        results.append((out_idx, out_scores))
    for idx, scores in results[1:]:
        np.testing.assert_array_equal(idx, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_topn_matches_argsort(backend, dtype):
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=(20, 15)), 1).astype(dtype)  # ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.1] = np.nan
    scores[5] = -np.inf  # nothing to select
    for n in (1, 5, 20):
        out_idx = np.empty((20, n), dtype=np.int64)
        out_scores = np.empty((20, n), dtype=dtype)
        with _runtime.kernel_threads(backend, 2):
            kernels(backend)[1](scores, n, out_idx, out_scores, 2)
        for r in range(20):
            cols = np.flatnonzero(scores[r] > -np.inf)
            order = cols[np.lexsort((cols, -scores[r, cols]))][:n]
            np.testing.assert_array_equal(out_idx[r, : order.size], order)
            np.testing.assert_array_equal(out_scores[r, : order.size], scores[r, order])
            assert np.all(out_idx[r, order.size :] == -1)
            assert np.all(np.isneginf(out_scores[r, order.size :]))


@pytest.mark.skipif(_runtime._cpp is None, reason="checks the compiled core's binding")
def test_binding_rejects_out_of_range_indices():
    problem = kernel_problem(np.float32, np.int32)
    bad_rows = (problem[0], problem[1], problem[2], np.array([0, 99], dtype=np.int64), problem[4], problem[5])
    with pytest.raises(ValueError, match="rows: index out of range"):
        run_sparse("cpp", bad_rows, 3, True, True)


# --- the models against dense formulations ---------------------------------------------------


def ratings(seed=0, n_users=60, n_items=45, n=700):
    R = make_ratings(n_users, n_items, n, seed=seed, dtype=np.float64)
    return R


def dense_topn(scores, reached, seen, n):
    """argsort ranking of a dense score matrix: reached, unseen candidates only."""
    out_idx = np.full((scores.shape[0], n), -1)
    out_scores = np.full((scores.shape[0], n), -np.inf)
    for u in range(scores.shape[0]):
        cols = np.flatnonzero(reached[u] & ~seen[u])
        order = cols[np.lexsort((cols, -scores[u, cols]))][:n]
        out_idx[u, : order.size] = order
        out_scores[u, : order.size] = scores[u, order]
    return out_idx, out_scores


@pytest.mark.parametrize("backend", BACKENDS)
def test_item_knn_matches_dense_formulation(backend):
    R = ratings()
    model = ItemKNN(k=10, shrink=1.0, dtype=np.float64, backend=backend).fit(R)
    S = model.similarities_
    assert S.shape == (45, 45) and np.all(np.diff(S.indptr) <= 10)
    dense_R, dense_S = R.toarray(), S.toarray()
    pattern_S = sp.csr_matrix((np.ones(S.nnz), S.indices, S.indptr), shape=S.shape).toarray()
    scores = dense_R @ dense_S  # score(u, j) = sum_i r_ui s(i, j)
    reached = ((dense_R != 0) @ pattern_S) > 0
    want = dense_topn(scores, reached, dense_R != 0, 8)
    got = model.recommend(np.arange(60), n=8)
    assert_tables_equivalent(got[0], got[1], *want, 1e-12)
    # without exclusion the user's own items come back too
    unmasked = dense_topn(scores, reached, np.zeros_like(reached), 8)
    got = model.recommend(np.arange(60), n=8, exclude_seen=False)
    assert_tables_equivalent(got[0], got[1], *unmasked, 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_user_knn_matches_dense_formulation(backend):
    R = ratings(seed=1)
    model = UserKNN(k=7, dtype=np.float64, backend=backend).fit(R)
    S = model.similarities_
    assert S.shape == (60, 60)
    dense_R = R.toarray()
    pattern_S = sp.csr_matrix((np.ones(S.nnz), S.indices, S.indptr), shape=S.shape).toarray()
    scores = S.toarray() @ dense_R  # score(u, j) = sum_v s(u, v) r_vj
    reached = (pattern_S @ (dense_R != 0)) > 0
    want = dense_topn(scores, reached, dense_R != 0, 6)
    got = model.recommend(np.arange(60), n=6)
    assert_tables_equivalent(got[0], got[1], *want, 1e-12)


def features_for(n_items, n_features=12, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_items, n_features)) < 0.25) * rng.integers(1, 4, (n_items, n_features))
    X[3] = 0  # an item without features: never scored
    return X.astype(np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_content_knn_matches_dense_formulation_and_serves_unrated_items(backend):
    R = ratings(seed=2)
    X = features_for(50)  # 5 more items than the ratings have: nobody rated them
    model = ContentKNN(sp.csr_matrix(X), dtype=np.float64, backend=backend).fit(R)
    assert model.n_items_ == 50
    dense_R = np.zeros((60, 50))
    dense_R[:, :45] = R.toarray()
    profiles = dense_R @ X  # rating-weighted sums of the rated items' feature rows
    p_norm = np.linalg.norm(profiles, axis=1, keepdims=True)
    x_norm = np.linalg.norm(X, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.nan_to_num((profiles / p_norm) @ (X / x_norm).T)
    reached = ((profiles != 0).astype(float) @ (X != 0).T.astype(float)) > 0
    want = dense_topn(scores, reached, dense_R != 0, 10)
    got = model.recommend(np.arange(60), n=10)
    assert_tables_equivalent(got[0], got[1], *want, 1e-12)
    assert set(got[0][got[0] >= 45]) & {45, 46, 47, 48, 49}  # unrated items are recommended
    assert 3 not in got[0]


def test_content_knn_item_ids_map_rows_and_dense_features():
    R = ratings(seed=2)
    X = features_for(45)
    order = np.random.default_rng(0).permutation(45)
    shuffled = ContentKNN(X[order], item_ids=order, dtype=np.float64).fit(R)  # rows in another order
    plain = ContentKNN(sp.csr_matrix(X), dtype=np.float64).fit(R)
    a, b = shuffled.recommend(np.arange(60), n=5), plain.recommend(np.arange(60), n=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-12)


def test_hybrid_matches_dense_blend_of_min_max_scores():
    R = ratings(seed=4)
    X = features_for(45, seed=1)
    cf = ItemKNN(k=10, dtype=np.float64).fit(R)
    content = ContentKNN(X, dtype=np.float64).fit(R)
    mf = MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, dtype=np.float64).fit(R)
    blend = Hybrid([(cf, 0.5), (content, 0.3), (mf, 0.2)])
    seen = R.toarray() != 0
    total = np.zeros((60, 45))
    for model, weight in [(cf, 0.5), (content, 0.3), (mf, 0.2)]:
        scores = model.score_items(np.arange(60))
        low = np.where(seen, np.inf, scores).min(axis=1, keepdims=True)
        high = np.where(seen, -np.inf, scores).max(axis=1, keepdims=True)
        total += weight * (scores - low) / (high - low)
    want = dense_topn(total, np.ones_like(seen), seen, 7)
    got = blend.recommend(np.arange(60), n=7)
    assert_tables_equivalent(got[0], got[1], *want, 1e-9)
    # the score blocks themselves are the dense formulations of each model
    dense_S = cf.similarities_.toarray()
    np.testing.assert_allclose(cf.score_items(np.arange(60)), R.toarray() @ dense_S, atol=1e-12)
    row = 5
    full = mf.global_mean_ + mf.user_bias_[row] + mf.item_bias_ + mf.item_factors_ @ mf.user_factors_[row]
    got = mf.score_items([row, 999], unknown="skip")
    np.testing.assert_allclose(got[0], full, rtol=1e-12)
    assert np.isnan(got[1]).all()  # an unknown user skipped: no scores
    items = [3, 1, 999]
    np.testing.assert_allclose(mf.score_items(row, items, unknown="skip"), [*full[[3, 1]], np.nan])


def test_hybrid_zscore_and_fit_and_union_of_ids():
    users = np.array(["a", "a", "b", "b", "c", "c", "c"])
    items = np.array(["x", "y", "x", "z", "y", "z", "w"])
    values = np.array([5, 3, 4, 2, 1, 5, 4], dtype=float)
    features = np.eye(5)
    content = ContentKNN(features, item_ids=["w", "x", "y", "z", "new"])
    blend = Hybrid([(UserKNN(k=2), 1.0), (content, 1.0)], normalization="zscore").fit((users, items, values))
    assert set(blend.item_ids_) == {"w", "x", "y", "z", "new"}
    ids, scores = blend.recommend("a", n=5)
    assert "x" not in ids and "y" not in ids and np.all(np.diff(scores[np.isfinite(scores)]) <= 0)
    with pytest.raises(ValueError, match="normalization"):
        Hybrid([(UserKNN(k=2), 1.0)], normalization="rank").fit((users, items, values)).recommend("a")


# --- recommend conventions ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_cold_users_get_popularity_and_unknown_ids_raise_or_skip(cls):
    R = ratings(seed=5).tolil()
    R[7, :] = 0
    R = sp.csr_matrix(R)
    R.eliminate_zeros()  # user 7 has no history
    model = cls(k=5).fit(R)
    counts = np.bincount(R.indices, minlength=45)
    popular = np.lexsort((np.arange(45), -counts))[:6]
    ids, scores = model.recommend(7, n=6)
    np.testing.assert_array_equal(ids, popular)
    np.testing.assert_array_equal(scores, counts[popular])
    with pytest.raises(UnknownIdError, match="users contains the user id 999"):
        model.recommend([0, 999], n=3)
    with pytest.raises(KeyError):
        model.recommend(999)
    with pytest.raises(ValueError, match="unknown='skip'"):
        model.recommend(999)
    ids, scores = model.recommend([0, 999], n=6, unknown="skip")
    np.testing.assert_array_equal(ids[1], np.full(6, -1))  # skipped: an empty row
    assert np.all(scores[1] == -np.inf)
    with pytest.raises(UnknownIdError, match="items contains the item id 12345"):
        model.recommend(0, items=[1, 2, 12345])
    only, _ = model.recommend(0, n=4, items=[1, 2, 12345], unknown="skip", exclude_seen=False)
    assert set(only[only >= 0]) <= {1, 2} and np.all(only[2:] == -1)


def test_hybrid_cold_users_unknown_ids_and_duplicate_ratings():
    R = ratings(seed=11).tolil()
    R[4, :] = 0
    R = sp.csr_matrix(R)
    R.eliminate_zeros()  # user 4 has no history in any model
    blend = Hybrid([(ItemKNN(k=5), 0.5), (UserKNN(k=5), 0.5)]).fit(R)
    counts = np.bincount(R.indices, minlength=45)
    ids, scores = blend.recommend(4, n=5)
    np.testing.assert_array_equal(ids, np.lexsort((np.arange(45), -counts))[:5])
    np.testing.assert_array_equal(scores, 2 * counts[ids])  # summed over the two models
    with pytest.raises(UnknownIdError, match="user id 777"):
        blend.recommend(777)
    ids, _ = blend.recommend([0, 777], n=5, unknown="skip")
    np.testing.assert_array_equal(ids[1], np.full(5, -1))
    # a duplicate (user, item) pair is summed, as in a scipy matrix built from it
    coo = R.tocoo()
    users, items, values = (
        np.append(coo.row, coo.row[:3]),
        np.append(coo.col, coo.col[:3]),
        np.append(coo.data, coo.data[:3]),
    )
    doubled = sp.csr_matrix((values, (users, items)), shape=R.shape)
    present = np.unique(users)  # user 4 is not in the triples at all
    a = ItemKNN(k=5).fit((users, items, values)).recommend(present, n=4)
    b = ItemKNN(k=5).fit(doubled).recommend(present, n=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_recommend_shapes_string_ids_and_padding():
    users = np.array(["u1", "u1", "u2", "u2", "u3"])
    items = np.array(["i1", "i2", "i2", "i3", "i1"])
    model = ItemKNN(k=3).fit((users, items, np.ones(5)))
    ids, scores = model.recommend("u3", n=4)  # n is capped at the 3 items there are
    assert ids.shape == (3,) and scores.shape == (3,)
    assert ids[0] == "i2" and ids[-1] is None and np.isneginf(scores[-1])
    ids, _ = model.recommend("u3", n=2**31)
    assert ids.shape == (3,)
    ids, scores = model.recommend(["u1", "u3"], n=2)
    assert ids.shape == (2, 2) and scores.dtype == np.float32


def test_all_input_forms_agree_and_input_is_not_modified():
    pd = pytest.importorskip("pandas")
    R = ratings(seed=6)
    coo = R.tocoo()
    before = coo.data.copy()
    frame = pd.DataFrame({"user_id": coo.row, "item_id": coo.col, "rating": coo.data})
    results = [
        ItemKNN(k=8).fit(form).recommend(np.arange(60), n=5)
        for form in (R, (coo.row, coo.col, coo.data), frame)
    ]
    for ids, scores in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])
    np.testing.assert_array_equal(coo.data, before)


def test_similar_items_and_users_read_the_neighbours():
    R = ratings(seed=7)
    items = ItemKNN(k=4).fit(R)
    S = items.similarities_
    ids, scores = items.similar_items([2, 9], n=6)
    for row, item in enumerate([2, 9]):
        count = S.indptr[item + 1] - S.indptr[item]
        np.testing.assert_array_equal(ids[row, :count], S.indices[S.indptr[item] : S.indptr[item + 1]])
        assert np.all(ids[row, count:] == -1) and np.all(np.isneginf(scores[row, count:]))
    one, _ = items.similar_items(2, n=3)
    np.testing.assert_array_equal(one, ids[0, :3])
    users = UserKNN(k=3).fit(R)
    ids, _ = users.similar_users(0, n=3)
    np.testing.assert_array_equal(ids, users.similarities_[0].indices[:3])
    with pytest.raises(UnknownIdError, match="item id 4567"):
        items.similar_items(4567)


# --- persistence ------------------------------------------------------------------------------


def make_models(R):
    X = features_for(R.shape[1])
    return [
        ItemKNN(k=6, shrink=2.0).fit(R),
        UserKNN(k=5).fit(R),
        ContentKNN(X).fit(R),
        Hybrid(
            [
                (ItemKNN(k=6), 0.6),
                (ContentKNN(X), 0.2),
                (MatrixFactorization(n_factors=3, n_epochs=2, random_state=0), 0.2),
            ]
        ).fit(R),
    ]


def test_save_load_round_trip(tmp_path):
    R = ratings(seed=8)
    for model in make_models(R):
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = type(model).load(path)
        for a, b in zip(model.recommend(np.arange(60), n=5), loaded.recommend(np.arange(60), n=5)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.item_ids_, model.item_ids_)
    buffer = io.BytesIO()
    model = ItemKNN(k=3).fit((np.array(["a", "b"]), np.array(["x", "y"]), np.ones(2)))
    model.save(buffer)
    buffer.seek(0)
    loaded = ItemKNN.load(buffer, backend="numpy")
    assert loaded.backend == "numpy" and loaded.k == 3
    np.testing.assert_array_equal(loaded.similar_items("x", 2)[0], model.similar_items("x", 2)[0])


def test_load_rejects_other_files(tmp_path):
    R = ratings(seed=9)
    model = ItemKNN(k=3).fit(R)
    model.save(tmp_path / "item.npz")
    with pytest.raises(ValueError, match="not a saved fastrec UserKNN"):
        UserKNN.load(tmp_path / "item.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a fastrec model file"):
        ItemKNN.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved fastrec ItemKNN"):
        ItemKNN.load(tmp_path / "plain.npz")
    with np.load(tmp_path / "item.npz") as archive:
        fields = dict(archive)
    fields["format_version"] = np.array(99)
    np.savez(tmp_path / "newer.npz", **fields)
    with pytest.raises(ValueError, match="newer than this fastrec reads"):
        ItemKNN.load(tmp_path / "newer.npz")


# --- bad input --------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    R = ratings(seed=10)
    model = ItemKNN(k=3).fit(R)
    with pytest.raises(ValueError, match="n must be >= 1"):
        model.recommend(0, n=0)
    with pytest.raises(TypeError, match="exclude_seen must be True or False"):
        model.recommend(0, exclude_seen="yes")
    with pytest.raises(ValueError, match="unknown='ignore' is not one of"):
        model.recommend(0, unknown="ignore")
    with pytest.raises(ValueError, match="k must be >= 1"):
        ItemKNN(k=0).fit(R)
    with pytest.raises(ValueError, match="shrink must be >= 0"):
        UserKNN(shrink=-1.0).fit(R)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ItemKNN().recommend(0)
    with pytest.raises(TypeError, match="needs item features"):
        ContentKNN().fit(R)
    with pytest.raises(ValueError, match="item_ids has 3 ids but features has 45 rows"):
        ContentKNN(features_for(45), item_ids=[1, 2, 3]).fit(R)
    with pytest.raises(ValueError, match="more than once"):
        ContentKNN(np.eye(3), item_ids=[1, 2, 1]).fit(R)
    with pytest.raises(TypeError, match="non-empty list of"):
        Hybrid([]).fit(R)
    with pytest.raises(TypeError, match="not a fastrec recommender"):
        Hybrid([("model", 1.0)]).fit(R)
    with pytest.raises(NotFittedError, match=r"models\[0\] \(ItemKNN\) is not fitted"):
        Hybrid([(ItemKNN(), 1.0)]).recommend(0)
    with pytest.raises(TypeError, match="Pass ratings as"):
        ItemKNN().fit("ratings.csv")


@pytest.mark.parametrize("model", [ItemKNN, UserKNN])
def test_ratings_whose_scores_could_overflow_are_refused(model):
    R = ratings(seed=9)
    huge = R.astype(np.float32) * np.float32(1e37)
    with pytest.raises(ValueError, match="scores could overflow float32"):
        model(k=10).fit(huge)
    # float64 holds them: the ranking is that of the unscaled ratings
    wide = model(k=10, dtype=np.float64).fit(R.astype(np.float64) * 1e37)
    plain = model(k=10, dtype=np.float64).fit(R.astype(np.float64))
    got, want = wide.recommend(np.arange(20), n=5), plain.recommend(np.arange(20), n=5)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1] * 1e37, rtol=1e-9)


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
def test_recommenders_pass_every_kernel_argument_by_keyword(monkeypatch, backend):
    R = ratings(seed=6)
    X = features_for(45, seed=2)

    def run():
        item = ItemKNN(k=8, backend=backend).fit(R)
        content = ContentKNN(X, backend=backend).fit(R)
        blend = Hybrid([(item, 0.7), (UserKNN(k=5, backend=backend).fit(R), 0.3)])
        users = np.arange(60)
        return [model.recommend(users, n=6) for model in (item, content, blend)]

    expected = run()
    calls: list[str] = []
    real = _runtime.kernel_module
    monkeypatch.setattr(
        _runtime, "kernel_module", lambda b, family: _KeywordOnlyKernels(real(b, family), calls)
    )
    for (items, scores), (want_items, want_scores) in zip(run(), expected):
        np.testing.assert_array_equal(items, want_items)
        np.testing.assert_array_equal(scores, want_scores)
    assert {"cosine_topk", "sparse_score_topn", "dense_topn"} <= set(calls)
