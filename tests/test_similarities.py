"""similarity_topk beside cosine (Pearson, adjusted cosine, Jaccard, BM25, TF-IDF):
each against a dense brute-force formula written here, on every backend; the
top-k conventions; ItemKNN / UserKNN with similarity=."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    ALL_BACKENDS,
    assert_rank_ordered,
    assert_topk_rows_equivalent,
    compiled_variants,
    variant,
)

import fastrec

TOL = {np.float32: 2e-5, np.float64: 1e-12}
MEASURES = ["pearson", "adjusted_cosine", "jaccard", "bm25", "tfidf"]


def _dense(A):
    return np.asarray(A.toarray() if sp.issparse(A) else A, dtype=np.float64)


def _cosine(A, B):
    dots = A @ B.T
    norms = np.outer(np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dots != 0, dots / norms, 0.0)


def _bm25_rows(A, corpus, K1, B):
    """BM25 weights of the rows of dense A with the term statistics of dense corpus."""
    present = corpus != 0
    n_docs = corpus.shape[0]
    idf = np.log(n_docs) - np.log1p(present.sum(axis=0))
    average = corpus.sum() / n_docs
    norm = (1 - B) + B * A.sum(axis=1) / average
    with np.errstate(divide="ignore", invalid="ignore"):
        W = A * (K1 + 1) / (K1 * norm[:, None] + A) * idf[None, :]
    return np.where(A != 0, W, 0.0)


def brute_scores(X, Y=None, similarity="cosine", K1=1.2, B=0.75):
    """Dense (n x m) similarity, written from the definitions independently of the library."""
    A = _dense(X)
    C = A if Y is None else _dense(Y)
    corpus = C
    if similarity == "cosine":
        return _cosine(A, C)
    if similarity == "pearson":

        def centred(M):
            mask = M != 0
            means = np.array([M[i, mask[i]].mean() if mask[i].any() else 0.0 for i in range(M.shape[0])])
            return np.where(mask, M - means[:, None], 0.0)

        return _cosine(centred(A), centred(C))
    if similarity == "adjusted_cosine":
        mask = corpus != 0
        means = np.array(
            [corpus[mask[:, f], f].mean() if mask[:, f].any() else 0.0 for f in range(corpus.shape[1])]
        )
        return _cosine(np.where(A != 0, A - means, 0.0), np.where(C != 0, C - means, 0.0))
    if similarity == "jaccard":
        a, c = (A != 0).astype(float), (C != 0).astype(float)
        inter = a @ c.T
        union = a.sum(axis=1)[:, None] + c.sum(axis=1)[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)
    if similarity == "bm25":
        return _bm25_rows(A, corpus, K1, B) @ _bm25_rows(C, corpus, K1, B).T
    if similarity == "tfidf":
        idf = np.log(corpus.shape[0]) - np.log1p((corpus != 0).sum(axis=0))
        return _cosine(np.sqrt(A) * idf, np.sqrt(C) * idf)
    raise AssertionError(similarity)


def brute_topk(scores, k, exclude_self):
    """Rank-ordered CSR of the k best non-zero scores per row (ties to the smaller column)."""
    n, m = scores.shape
    indices, data, indptr = [], [], [0]
    for i in range(n):
        candidates = sorted(
            (-scores[i, j], j) for j in range(m) if scores[i, j] != 0 and not (exclude_self and i == j)
        )[:k]
        indices += [j for _, j in candidates]
        data += [-s for s, _ in candidates]
        indptr.append(len(indices))
    return sp.csr_matrix((data, indices, indptr), shape=(n, m))


def ratings(n_users=70, n_items=40, seed=0, dtype=np.float64):
    """users x items ratings 1..5 with an empty user and an empty item."""
    rng = np.random.default_rng(seed)
    R = sp.random(n_users, n_items, density=0.15, format="csr", random_state=rng)
    R.data = rng.integers(1, 6, R.nnz).astype(np.float64)
    dense = R.toarray()
    dense[5, :] = 0
    dense[:, 7] = 0
    dense[9, :] = 0
    dense[9, [1, 2, 3]] = 4.0  # all ratings equal: no Pearson neighbours
    return sp.csr_matrix(dense.astype(dtype))


def _tolerance(expected, dtype):
    scale = max(1.0, float(np.abs(expected.data).max())) if expected.nnz else 1.0
    return TOL[dtype] * scale


@pytest.mark.parametrize("similarity", MEASURES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_item_item_matches_brute_force(similarity, dtype, backend):
    R = ratings(dtype=dtype)
    expected = brute_topk(brute_scores(R.T, similarity=similarity), 6, exclude_self=True)
    got = fastrec.similarity_topk(R.T, k=6, similarity=similarity, backend=backend)
    assert got.dtype == dtype and got.shape == (40, 40)
    assert_rank_ordered(got)
    assert_topk_rows_equivalent(got, expected, _tolerance(expected, dtype))
    assert got[7].nnz == 0  # an item nobody rated has no neighbours


@pytest.mark.parametrize("similarity", MEASURES)
@pytest.mark.parametrize(("backend", "level"), [*compiled_variants(), ("numpy", None)])
def test_user_user_and_candidates_match_brute_force(similarity, backend, level):
    R = ratings(seed=1)
    X, Y = R[:20], R[15:]
    with variant(level):
        same = fastrec.similarity_topk(R, k=4, similarity=similarity, backend=backend)
        other = fastrec.similarity_topk(X, Y, k=5, similarity=similarity, backend=backend)
    expected = brute_topk(brute_scores(R, similarity=similarity), 4, exclude_self=True)
    assert_topk_rows_equivalent(same, expected, _tolerance(expected, np.float64))
    if similarity == "pearson":
        assert same[9].nnz == 0 and same[5].nnz == 0
    expected = brute_topk(brute_scores(X, Y, similarity=similarity), 5, exclude_self=False)
    assert_topk_rows_equivalent(other, expected, _tolerance(expected, np.float64))


def test_hand_computed():
    X = sp.csr_matrix(np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 3.0, 5.0]]))
    J = fastrec.similarity_topk(X, k=2, similarity="jaccard", backend="numpy").toarray()
    np.testing.assert_allclose(J, [[0, 1 / 3, 0], [1 / 3, 0, 1 / 3], [0, 1 / 3, 0]])
    P = fastrec.similarity_topk(X, k=2, similarity="pearson", backend="numpy").toarray()
    # rows 0 and 1 centre to zero; row 2 centres to (-1, 1) and has no partner
    assert P.sum() == 0
    A = fastrec.similarity_topk(X.T, k=3, similarity="adjusted_cosine", backend="numpy").toarray()
    # feature means 1, 1, 4: features 2 and 3 of X centred are (-1), (1) in row 2 -> items 2, 3 opposite
    assert A[2, 3] == pytest.approx(-1.0) and A[0, 1] == 0


@pytest.mark.parametrize("similarity", ["cosine", *MEASURES])
@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "numpy"])
def test_threads_rows_and_determinism(similarity, backend):
    R = ratings(300, 120, seed=2, dtype=np.float32)
    full = [
        fastrec.similarity_topk(R.T, k=7, similarity=similarity, n_threads=t, backend=backend) for t in (1, 3)
    ]
    blocks = sp.vstack(
        [
            fastrec.similarity_topk(
                R.T, k=7, similarity=similarity, rows=(s, min(s + 45, 120)), backend=backend
            )
            for s in range(0, 120, 45)
        ]
    ).tocsr()
    again = fastrec.similarity_topk(R.T, k=7, similarity=similarity, n_threads=3, backend=backend)
    for other in (full[1], blocks, again):
        np.testing.assert_array_equal(other.indptr, full[0].indptr)
        np.testing.assert_array_equal(other.indices, full[0].indices)
        np.testing.assert_array_equal(other.data, full[0].data)


def test_cosine_is_cosine_topk_and_input_unchanged():
    R = ratings(seed=3)
    before = R.copy()
    a = fastrec.similarity_topk(R.T, k=5)
    b = fastrec.cosine_topk(R.T, k=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    for similarity in MEASURES:
        fastrec.similarity_topk(R.T, k=5, similarity=similarity)
    assert (R != before).nnz == 0


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bm25_matches_implicit_definition_and_parameters(backend):
    """BM25: dot products of bm25_weight rows (implicit's BM25Recommender on R is this on R.T)."""
    R = ratings(seed=4)
    W = fastrec.bm25_weight(R, K1=2.0, B=0.3, axis=0, backend="numpy").T.toarray()  # items x users
    expected = brute_topk(W @ W.T, 5, exclude_self=True)
    got = fastrec.similarity_topk(R.T, k=5, similarity="bm25", K1=2.0, B=0.3, backend=backend)
    assert_topk_rows_equivalent(got, expected, _tolerance(expected, np.float64))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_empty_and_shrink(backend):
    empty = sp.csr_matrix((4, 6))
    for similarity in MEASURES:
        out = fastrec.similarity_topk(empty, k=3, similarity=similarity, backend=backend)
        assert out.shape == (4, 4) and out.nnz == 0
    X = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    got = fastrec.similarity_topk(X, k=2, similarity="jaccard", shrink=1.0, backend=backend).toarray()
    np.testing.assert_allclose(got, (1 / (3 + 1)) * (1 - np.eye(3)), rtol=1e-6)


def test_bad_input():
    R = ratings()
    with pytest.raises(ValueError, match="similarity must be one of 'cosine'"):
        fastrec.similarity_topk(R, similarity="euclid")
    with pytest.raises(ValueError, match="shrink must be 0 with similarity='bm25'"):
        fastrec.similarity_topk(R, similarity="bm25", shrink=2.0)
    with pytest.raises(ValueError, match=r"B must lie in \[0, 1\]"):
        fastrec.similarity_topk(R, similarity="bm25", B=2.0)
    with pytest.raises(ValueError, match="K1 must be >= 0"):
        fastrec.similarity_topk(R, similarity="bm25", K1=-1.0)
    negative = R.copy()
    negative.data[0] = -1.0
    for similarity in ("bm25", "tfidf"):
        with pytest.raises(ValueError, match="needs values >= 0"):
            fastrec.similarity_topk(negative, similarity=similarity)
    with pytest.raises(ValueError, match="similarity must be one of"):
        fastrec.ItemKNN(similarity="dice").fit(R)
    with pytest.raises(ValueError, match="shrink must be 0"):
        fastrec.UserKNN(shrink=1.0, similarity="bm25").fit(R)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_item_knn_jaccard_recommends_brute_force(backend, tmp_path):
    R = ratings(seed=5)
    k, n = 6, 4
    model = fastrec.ItemKNN(k=k, similarity="jaccard", dtype=np.float64, backend=backend).fit(R)
    assert model.get_params()["similarity"] == "jaccard"
    S = brute_topk(brute_scores(R.T, similarity="jaccard"), k, exclude_self=True)
    np.testing.assert_allclose(model.similarities_.toarray(), S.toarray(), atol=1e-12)
    scores = (R @ S).toarray()
    scores[R.toarray() != 0] = -np.inf  # seen items are excluded
    reached = (R.astype(bool) @ S.astype(bool)).toarray()
    scores[~reached] = -np.inf  # only items reached through a neighbour are candidates
    users = np.flatnonzero(np.diff(R.indptr))  # a user with no history gets popular items instead
    items, got = model.recommend(users, n=n)
    for row, u in enumerate(users):
        best = np.sort(scores[u])[::-1][:n]
        np.testing.assert_allclose(got[row], best, atol=1e-12)
        for item, score in zip(items[row], got[row]):
            if item >= 0:
                assert scores[u, item] == pytest.approx(score, abs=1e-12)
            else:
                assert score == -np.inf
    # empty slots of similar_items are padded with -1 / -inf
    ids, sims = model.similar_items(0, n=k + 5)
    assert ids[-1] == -1 and sims[-1] == -np.inf
    path = tmp_path / "jaccard.npz"
    model.save(path)
    loaded = fastrec.ItemKNN.load(path)
    assert loaded.similarity == "jaccard"
    np.testing.assert_array_equal(loaded.recommend(users, n=n)[0], items)


@pytest.mark.parametrize("similarity", MEASURES)
def test_user_knn_similarity_with_given_interactions(similarity):
    R = ratings(seed=6)
    model = fastrec.UserKNN(k=5, similarity=similarity, dtype=np.float64).fit(R)
    S = brute_topk(brute_scores(R, similarity=similarity), 5, exclude_self=True)
    assert_topk_rows_equivalent(model.similarities_, S, _tolerance(S, np.float64))
    # given interactions find neighbours among the training users with the training
    # statistics, never the user itself
    given = R[:6]
    scores = brute_scores(given, R, similarity=similarity)
    scores[np.arange(6), np.arange(6)] = 0
    expected = brute_topk(scores, 5, exclude_self=False)
    found = model._neighbour_rows(given, np.arange(6))
    assert_topk_rows_equivalent(found, expected, _tolerance(expected, np.float64))
    items, got = model.recommend(np.arange(6), n=3, user_items=given)
    assert items.shape == (6, 3)


def test_knn_file_without_similarity_loads_as_cosine(tmp_path):
    """Files saved before similarity= existed hold no such parameter: they are cosine models."""
    import ast

    R = ratings(seed=7)
    model = fastrec.ItemKNN(k=4).fit(R)
    model.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as archive:
        fields = dict(archive)
    params = ast.literal_eval(str(fields["params"]))
    del params["similarity"]
    fields["params"] = np.array(repr(params))
    np.savez(tmp_path / "old.npz", **fields)
    loaded = fastrec.ItemKNN.load(tmp_path / "old.npz")
    assert loaded.similarity == "cosine"
    np.testing.assert_array_equal(loaded.similarities_.toarray(), model.similarities_.toarray())
