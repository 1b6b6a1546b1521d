"""BM25, TF-IDF and confidence weighting: hand-computed cases, the definition
implicit uses (written out here), every backend against the reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import ALL_BACKENDS, COMPILED_BACKENDS

import fastrec
from fastrec.implicit.weighting import _reference


def _bm25_formula(X, K1, B):
    """implicit's bm25_weight, rows are documents: written from its definition, in float64."""
    coo = sp.coo_matrix(X)
    n_docs = float(coo.shape[0])
    idf = np.log(n_docs) - np.log1p(np.bincount(coo.col, minlength=coo.shape[1]))
    row_sums = np.bincount(coo.row, weights=coo.data.astype(np.float64), minlength=coo.shape[0])
    length_norm = (1.0 - B) + B * row_sums / row_sums.mean()
    x = coo.data.astype(np.float64)
    data = x * (K1 + 1.0) / (K1 * length_norm[coo.row] + x) * idf[coo.col]
    return sp.csr_matrix((data, (coo.row, coo.col)), shape=coo.shape).toarray()


def _tfidf_formula(X):
    """implicit's tfidf_weight, rows are documents."""
    coo = sp.coo_matrix(X)
    idf = np.log(float(coo.shape[0])) - np.log1p(np.bincount(coo.col, minlength=coo.shape[1]))
    data = np.sqrt(coo.data.astype(np.float64)) * idf[coo.col]
    return sp.csr_matrix((data, (coo.row, coo.col)), shape=coo.shape).toarray()


def _counts(n_rows=40, n_cols=25, density=0.2, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = rng.integers(1, 20, X.nnz).astype(np.float64)
    X = X.astype(dtype)
    X.data[X.indptr[3] : X.indptr[4]] = 0  # an empty row
    X.eliminate_zeros()
    return X


def test_bm25_hand_computed():
    X = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 4.0, 1.0]]))
    W = fastrec.bm25_weight(X, K1=1.0, B=0.5, backend="numpy").toarray()
    # two documents (rows) of lengths 3 and 5, average 4; df = [1, 1, 2]
    idf = np.log(2.0) - np.log1p(np.array([1.0, 1.0, 2.0]))
    norm = 0.5 + 0.5 * np.array([3.0, 5.0]) / 4.0
    expected = np.zeros((2, 3))
    expected[0, 0] = 2 * 2 / (norm[0] + 2) * idf[0]
    expected[0, 2] = 1 * 2 / (norm[0] + 1) * idf[2]
    expected[1, 1] = 4 * 2 / (norm[1] + 4) * idf[1]
    expected[1, 2] = 1 * 2 / (norm[1] + 1) * idf[2]
    np.testing.assert_allclose(W, expected, rtol=1e-12)


def test_tfidf_and_confidence_hand_computed():
    X = sp.csr_matrix(np.array([[4.0, 0.0], [9.0, 1.0], [0.0, 0.0]]))
    W = fastrec.tfidf_weight(X, backend="numpy").toarray()
    idf0, idf1 = np.log(3.0) - np.log1p(2.0), np.log(3.0) - np.log1p(1.0)
    np.testing.assert_allclose(W, [[2 * idf0, 0], [3 * idf0, idf1], [0, 0]], rtol=1e-12)
    C = fastrec.confidence(X, alpha=2.0, backend="numpy").toarray()
    np.testing.assert_allclose(C, [[9.0, 0], [19.0, 3.0], [0, 0]])
    L = fastrec.confidence(X, alpha=2.0, kind="log", backend="numpy").toarray()
    np.testing.assert_allclose(
        L, [[1 + 2 * np.log(5.0), 0], [1 + 2 * np.log(10.0), 1 + 2 * np.log(2.0)], [0, 0]]
    )


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_implicit_definition(backend, dtype):
    X = _counts(dtype=dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for K1, B in [(1.2, 0.75), (100.0, 0.8), (0.0, 0.0), (3.0, 1.0)]:
        W = fastrec.bm25_weight(X, K1, B, backend=backend)
        assert W.dtype == dtype
        np.testing.assert_allclose(W.toarray(), _bm25_formula(X, K1, B), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(
        fastrec.tfidf_weight(X, backend=backend).toarray(), _tfidf_formula(X), rtol=rtol, atol=1e-6
    )


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_axis_zero_is_the_transpose(backend):
    """axis=0: columns are documents (items of a users x items matrix, as implicit's
    BM25Recommender weighs user_items.T)."""
    X = _counts(seed=1, dtype=np.float64)
    for weigh in (lambda A, **kw: fastrec.bm25_weight(A, 1.5, 0.6, **kw), fastrec.tfidf_weight):
        by_columns = weigh(X, axis=0, backend=backend)
        transposed = weigh(X.T.tocsr(), axis=1, backend=backend).T
        np.testing.assert_allclose(by_columns.toarray(), transposed.toarray(), rtol=1e-12)
        np.testing.assert_array_equal(by_columns.indices, X.indices)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
def test_backends_match_reference(backend, dtype, axis):
    X = _counts(60, 30, seed=2, dtype=dtype)
    X.data[::7] = 0  # explicit zeros stay stored and weigh 0
    rtol = 2e-7 if dtype == np.float32 else 1e-13
    for name, params in (("bm25_weight", {"K1": 1.2, "B": 0.75}), ("tfidf_weight", {})):
        ref = getattr(fastrec, name)(X, **params, axis=axis, backend="numpy")
        for n_threads in (1, 3):
            got = getattr(fastrec, name)(X, **params, axis=axis, backend=backend, n_threads=n_threads)
            assert got.nnz == X.nnz and got.dtype == dtype
            np.testing.assert_array_equal(got.indptr, X.indptr)
            np.testing.assert_array_equal(got.indices, X.indices)
            np.testing.assert_allclose(got.data, ref.data, rtol=rtol)
            assert np.all(got.data[::7] == 0)
    for kind in ("linear", "log"):
        ref = fastrec.confidence(X, 3.0, kind, backend="numpy")
        got = fastrec.confidence(X, 3.0, kind, backend=backend, n_threads=2)
        np.testing.assert_allclose(got.data, ref.data, rtol=rtol)
        assert np.all(got.data[::7] == 1)  # a stored zero has confidence 1


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_thread_count_independent_and_input_unchanged(backend):
    X = _counts(200, 50, density=0.3, seed=3)
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    results = [fastrec.bm25_weight(X, axis=0, backend=backend, n_threads=t).data for t in (1, 2, 4)]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    for original, now in zip(before, (X.data, X.indices, X.indptr)):
        np.testing.assert_array_equal(original, now)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_edge_shapes_and_dtypes(backend):
    empty = sp.csr_matrix((5, 4), dtype=np.float64)
    for weigh in (fastrec.bm25_weight, fastrec.tfidf_weight, fastrec.confidence):
        out = weigh(empty, backend=backend)
        assert out.shape == (5, 4) and out.nnz == 0 and out.dtype == np.float64
    ints = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0]], dtype=np.int64))
    W = fastrec.bm25_weight(ints, backend=backend)
    assert W.dtype == np.float32
    np.testing.assert_allclose(W.toarray(), _bm25_formula(ints.astype(np.float64), 1.2, 0.75), rtol=1e-6)
    zeros = sp.csr_matrix((np.zeros(3), np.array([0, 1, 2]), np.array([0, 2, 3])), shape=(2, 3))
    for K1 in (0.0, 1.2):  # all stored values 0: no 0 / 0, every weight 0
        out = fastrec.bm25_weight(zeros, K1=K1, B=1.0, backend=backend)
        assert out.nnz == 3 and np.all(out.data == 0)
    dup = sp.csr_matrix((np.array([1.0, 2.0, 4.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 2))
    np.testing.assert_allclose(
        fastrec.tfidf_weight(dup, backend=backend).toarray(), _tfidf_formula(dup.toarray()), rtol=1e-12
    )


def test_reference_kernel_is_what_the_api_calls():
    X = _counts(seed=4, dtype=np.float64)
    out = np.empty_like(X.data)
    _reference.bm25_weight(
        indptr=X.indptr.astype(np.int64),
        indices=X.indices,
        data=X.data,
        n_cols=X.shape[1],
        k1=1.2,
        b=0.75,
        by_rows=True,
        out_data=out,
        n_threads=1,
    )
    np.testing.assert_array_equal(out, fastrec.bm25_weight(X, backend="numpy").data)


def test_bad_input():
    X = _counts()
    with pytest.raises(ValueError, match="K1 must be >= 0"):
        fastrec.bm25_weight(X, K1=-1.0)
    with pytest.raises(ValueError, match=r"B must lie in \[0, 1\]"):
        fastrec.bm25_weight(X, B=1.5)
    with pytest.raises(ValueError, match="B must be >= 0"):
        fastrec.bm25_weight(X, B=-0.1)
    with pytest.raises(TypeError, match="CSR matrix.*'csc'"):
        fastrec.bm25_weight(X.tocsc())
    with pytest.raises(TypeError, match="CSR matrix.*ndarray"):
        fastrec.tfidf_weight(X.toarray())
    with pytest.raises(ValueError, match="axis must be 1"):
        fastrec.tfidf_weight(X, axis=2)
    bad = X.copy()
    bad.data[0] = np.nan
    for weigh in (fastrec.bm25_weight, fastrec.tfidf_weight, fastrec.confidence):
        with pytest.raises(ValueError, match="X contains NaN"):
            weigh(bad)
    bad.data[0] = -1.0
    with pytest.raises(ValueError, match="negative values"):
        fastrec.confidence(bad)
    with pytest.raises(ValueError, match="kind must be 'linear'"):
        fastrec.confidence(X, kind="exp")
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        fastrec.confidence(X, alpha=-2.0)


@pytest.mark.parametrize("kernel", ["bm25_weight", "tfidf_weight", "confidence_weight"])
def test_kernels_share_parameter_names(kernel):
    """Every backend takes the same keywords, in the same order."""
    import importlib
    import inspect
    import re

    from fastrec import _runtime

    expected = list(inspect.signature(getattr(_reference, kernel)).parameters)
    numba_module = importlib.import_module("fastrec.implicit.weighting._numba")
    assert list(inspect.signature(getattr(numba_module, kernel)).parameters) == expected
    if _runtime._cpp is not None:
        lists = []
        for line in getattr(_runtime._cpp, kernel).__doc__.splitlines():
            match = re.match(rf"(?:\d+\. )?{kernel}\((.*)\) -> ", line)
            if match and not match.group(1).startswith("*args"):
                lists.append(re.findall(r"(?:^|, )(\w+): ", match.group(1)))
        assert lists
        for names in lists:
            assert names == expected
