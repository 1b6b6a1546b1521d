"""cosine_topk: the reference against brute force, every backend against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    assert_rank_ordered,
    assert_topk_rows_equivalent,
    compiled_variants,
    variant,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrec
from fastrec.datasets import make_ratings

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def brute_force(X, Y=None, k=50, shrink=0.0, exclude_self=True):
    """Dense cosine top-k, written independently of the library."""
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    same = Y is None
    Y = X if same else np.asarray(Y.toarray() if sp.issparse(Y) else Y, dtype=np.float64)
    dots = X @ Y.T
    denom = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)) + shrink
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(dots != 0, dots / denom, 0.0)
    rows, cols, vals = [], [], []
    for i in range(X.shape[0]):
        candidates = [
            (-scores[i, j], j) for j in range(Y.shape[0])
            if scores[i, j] != 0 and not (same and exclude_self and i == j)
        ]
        for neg, j in sorted(candidates)[:k]:
            rows.append(i)
            cols.append(j)
            vals.append(-neg)
    out = sp.csr_matrix((vals, (rows, cols)), shape=(X.shape[0], Y.shape[0]))
    # rebuild in rank order (the constructor sorts by column)
    order_indices, order_data, indptr = [], [], [0]
    for i in range(X.shape[0]):
        pairs = sorted(
            (-out.data[p], out.indices[p]) for p in range(out.indptr[i], out.indptr[i + 1])
        )
        order_indices += [j for _, j in pairs]
        order_data += [-s for s, _ in pairs]
        indptr.append(len(order_indices))
    return sp.csr_matrix((order_data, order_indices, indptr), shape=out.shape)


# --- the reference against hand-computed values and brute force ---


def test_reference_hand_computed():
    X = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=np.float64)
    S = fastrec.cosine_topk(X, k=5, backend="numpy")
    # cos(0,2) = 2 / (sqrt2 sqrt3), cos(1,2) = 1 / sqrt3, cos(0,1) = 0 (not stored)
    c02, c12 = 2 / np.sqrt(6), 1 / np.sqrt(3)
    assert S[0].indices.tolist() == [2] and np.allclose(S[0].data, [c02], atol=1e-15)
    assert S[1].indices.tolist() == [2] and np.allclose(S[1].data, [c12], atol=1e-15)
    assert S[2].indices.tolist() == [0, 1] and np.allclose(S[2].data, [c02, c12], atol=1e-15)
    shrunk = fastrec.cosine_topk(X, k=1, shrink=1.0, backend="numpy")
    assert np.allclose(shrunk[0].data, [2 / (np.sqrt(6) + 1)], atol=1e-15)
    with_self = fastrec.cosine_topk(X, k=1, exclude_self=False, backend="numpy")
    assert with_self[1].indices.tolist() == [1] and np.allclose(with_self[1].data, [1.0])


def test_reference_ties_go_to_smaller_index():
    X = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
    S = fastrec.cosine_topk(X, k=2, backend="numpy")
    assert S[2].indices.tolist() == [0, 1]
    assert S[0].indices.tolist() == [1, 2]
    assert S[3].nnz == 0  # orthogonal to every other row


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shrink", [0.0, 2.5])
@pytest.mark.parametrize("with_y", [False, True])
def test_reference_matches_brute_force(dtype, shrink, with_y):
    rng = np.random.default_rng(1)
    X = sp.random(40, 25, density=0.2, random_state=rng, dtype=dtype, format="csr")
    X.data -= 0.3  # negative values too
    Y = sp.random(30, 25, density=0.25, random_state=rng, dtype=dtype, format="csr") if with_y else None
    for k in (1, 7, 100):
        got = fastrec.cosine_topk(X, Y, k=k, shrink=shrink, backend="numpy")
        want = brute_force(X, Y, k=k, shrink=shrink)
        assert got.dtype == dtype
        assert_topk_rows_equivalent(got, want, TOL[dtype])
        assert_rank_ordered(got)


# --- compiled backends against the reference ---


@st.composite
def sparse_problems(draw):
    """Random sparse X (and maybe Y) with empty rows/columns, duplicates and explicit zeros."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(0, 40))
    d = draw(st.integers(1, 30))
    m = draw(st.integers(1, 35))
    with_y = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.02, 0.1, 0.4, 0.9]))

    def make(rows):
        nnz = int(rows * d * density)
        r = rng.integers(0, max(rows, 1), nnz)
        c = rng.integers(0, d, nnz)  # repeated (r, c) pairs are duplicates, summed
        if draw(st.booleans()):  # few distinct values: many exact ties
            values = rng.choice([0.0, 1.0, 2.0, -1.0, 0.5, 3.0], nnz)
        else:
            values = rng.normal(size=nnz)
        return sp.coo_matrix((values.astype(dtype), (r, c)), shape=(rows, d))

    X = make(n)
    Y = make(m) if with_y else None
    k = draw(st.integers(1, max(n, m) + 3))
    shrink = draw(st.sampled_from([0.0, 0.0, 1.5]))
    exclude_self = draw(st.booleans())
    return X, Y, k, shrink, exclude_self, dtype


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=sparse_problems())
def test_compiled_backends_match_reference(problem):
    X, Y, k, shrink, exclude_self, dtype = problem
    X_before = X.copy()
    want = fastrec.cosine_topk(X, Y, k=k, shrink=shrink, exclude_self=exclude_self, backend="numpy")
    for backend, level in compiled_variants():
        with variant(level):
            got = fastrec.cosine_topk(
                X, Y, k=k, shrink=shrink, exclude_self=exclude_self, backend=backend
            )
        assert got.dtype == dtype and got.shape == want.shape
        assert_topk_rows_equivalent(got, want, TOL[dtype])
        assert_rank_ordered(got)
        assert (X != X_before).nnz == 0  # the caller's matrix is untouched


def _popular_ratings():
    """Ratings with popular items, so groups of rows share features (vector path)."""
    return make_ratings(300, 120, 9000, seed=3)


@pytest.mark.parametrize("backend,level", compiled_variants())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_backends_on_popular_items(backend, level, dtype):
    R = _popular_ratings().astype(dtype)
    for exclude_self in (True, False):
        want = fastrec.cosine_topk(R.T, k=15, exclude_self=exclude_self, backend="numpy")
        with variant(level):
            got = fastrec.cosine_topk(R.T, k=15, exclude_self=exclude_self, backend=backend)
        assert_topk_rows_equivalent(got, want, TOL[dtype])
        assert_rank_ordered(got)
        if exclude_self:
            assert not np.any(got.indices == np.repeat(np.arange(120), np.diff(got.indptr)))


@pytest.mark.parametrize("backend,level", compiled_variants())
def test_thread_count_does_not_change_results(backend, level):
    R = _popular_ratings()
    with variant(level):
        one = fastrec.cosine_topk(R.T, k=20, n_threads=1, backend=backend)
        two = fastrec.cosine_topk(R.T, k=20, n_threads=2, backend=backend)
        user_user_one = fastrec.cosine_topk(R, R[:50], k=5, shrink=3.0, n_threads=1, backend=backend)
        user_user_two = fastrec.cosine_topk(R, R[:50], k=5, shrink=3.0, n_threads=2, backend=backend)
    for a, b in ((one, two), (user_user_one, user_user_two)):
        assert np.array_equal(a.indptr, b.indptr)
        assert np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_row_blocks_stack_to_the_full_result(backend):
    if backend not in fastrec.available_backends():
        pytest.skip(f"{backend} backend not available in this build")
    R = _popular_ratings()
    full = fastrec.cosine_topk(R.T, k=10, backend=backend)
    blocks = [fastrec.cosine_topk(R.T, k=10, rows=slice(a, a + 37), backend=backend)
              for a in range(0, 120, 37)]
    stacked = sp.vstack(blocks, format="csr")
    assert [b.shape[0] for b in blocks] == [37, 37, 37, 9]
    assert np.array_equal(stacked.indptr, full.indptr)
    assert np.array_equal(stacked.indices, full.indices)
    assert np.array_equal(stacked.data, full.data)
    assert fastrec.cosine_topk(R.T, k=10, rows=(5, 9), backend=backend).shape == (4, 120)


# --- input forms, edge cases, output contract ---


def test_input_formats_give_the_same_result():
    rng = np.random.default_rng(4)
    dense = (rng.random((30, 12)) < 0.3) * rng.integers(1, 6, (30, 12))
    want = fastrec.cosine_topk(dense.astype(np.float32), k=4)
    for form in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.lil_matrix, sp.csr_array):
        got = fastrec.cosine_topk(form(dense.astype(np.float32)), k=4)
        assert np.array_equal(got.indices, want.indices) and np.allclose(got.data, want.data)
    as_int = fastrec.cosine_topk(dense, k=4)  # integers compute in float32
    assert as_int.dtype == np.float32 and np.array_equal(as_int.indices, want.indices)


def test_non_canonical_input_is_not_modified():
    rows = np.array([2, 0, 2, 1, 0, 2], dtype=np.int32)
    cols = np.array([1, 0, 1, 2, 2, 0], dtype=np.int32)
    vals = np.array([1.0, 2.0, 3.0, 0.0, 1.0, 4.0], dtype=np.float32)
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(3, 3))
    csr = sp.csr_matrix((vals.copy(), cols.copy(), np.array([0, 2, 3, 6])), shape=(3, 3))
    # deliberately unsorted, duplicated and with an explicit zero
    csr.indices[:] = [2, 0, 2, 1, 0, 1]
    csr.data[:] = [1.0, 2.0, 0.0, 3.0, 4.0, 1.0]
    snapshot = (csr.indices.copy(), csr.data.copy(), csr.indptr.copy())
    result = fastrec.cosine_topk(csr, k=3)
    assert np.array_equal(csr.indices, snapshot[0])
    assert np.array_equal(csr.data, snapshot[1])
    assert np.array_equal(csr.indptr, snapshot[2])
    assert_topk_rows_equivalent(result, brute_force(csr, k=3), 1e-5)
    fastrec.cosine_topk(coo, k=3)
    assert np.array_equal(coo.data, vals)


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_edge_cases_are_valid_results(backend):
    if backend not in fastrec.available_backends():
        pytest.skip(f"{backend} backend not available in this build")
    empty = fastrec.cosine_topk(sp.csr_matrix((0, 5)), k=3, backend=backend)
    assert empty.shape == (0, 0) and empty.nnz == 0
    no_features = fastrec.cosine_topk(sp.csr_matrix((4, 0)), k=3, backend=backend)
    assert no_features.shape == (4, 4) and no_features.nnz == 0
    zeros = fastrec.cosine_topk(np.zeros((3, 4)), k=2, backend=backend)
    assert zeros.shape == (3, 3) and zeros.nnz == 0
    X = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    big_k = fastrec.cosine_topk(X, k=100, backend=backend)
    assert np.diff(big_k.indptr).tolist() == [1, 0, 1]  # zero-norm row 1 has no neighbours
    one = fastrec.cosine_topk(np.array([[3.0, 4.0]]), k=5, backend=backend)
    assert one.nnz == 0
    one_self = fastrec.cosine_topk(np.array([[3.0, 4.0]]), k=5, exclude_self=False, backend=backend)
    assert one_self.indices.tolist() == [0] and np.allclose(one_self.data, [1.0])
    Y_empty = fastrec.cosine_topk(X, np.zeros((0, 2)), k=3, backend=backend)
    assert Y_empty.shape == (3, 0)


def test_output_contract():
    R = _popular_ratings()
    S = fastrec.cosine_topk(R.T, k=7)
    assert isinstance(S, sp.csr_matrix)
    assert S.shape == (120, 120) and S.dtype == np.float32
    assert S.has_sorted_indices is False or S.has_sorted_indices == 0
    assert np.all(np.diff(S.indptr) <= 7)
    assert_rank_ordered(S)
    S64 = fastrec.cosine_topk(R.T.astype(np.float64), R.T.astype(np.float32), k=7)
    assert S64.dtype == np.float64  # mixed input computes in the wider type


# --- bad input ---


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"k": 2.5}, TypeError, "k must be an integer"),
        ({"k": True}, TypeError, "k must be an integer"),
        ({"shrink": -1.0}, ValueError, "shrink must be >= 0"),
        ({"shrink": float("nan")}, ValueError, "shrink must be finite"),
        ({"shrink": "big"}, TypeError, "shrink must be a real number"),
        ({"exclude_self": 1}, TypeError, "exclude_self must be True or False"),
        ({"backend": "fortran"}, ValueError, "backend='fortran' is not one of"),
        ({"n_threads": 0}, ValueError, "n_threads must be >= 1"),
        ({"rows": slice(0, 4, 2)}, ValueError, "rows must be a contiguous block"),
        ({"rows": [1, 2]}, TypeError, "rows must be a slice"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    X = sp.random(5, 4, density=0.5, format="csr", random_state=0)
    with pytest.raises(error, match=match):
        fastrec.cosine_topk(X, **kwargs)


def test_bad_matrices():
    good = np.ones((3, 4))
    with pytest.raises(ValueError, match="X contains NaN"):
        fastrec.cosine_topk(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="Y contains infinite"):
        fastrec.cosine_topk(good, np.full((2, 4), np.inf))
    with pytest.raises(ValueError, match="X contains NaN"):
        fastrec.cosine_topk(sp.csr_matrix(np.array([[np.nan, 1.0]])))
    with pytest.raises(ValueError, match="same number of columns"):
        fastrec.cosine_topk(good, np.ones((2, 5)))
    with pytest.raises(ValueError, match="must be 2-D"):
        fastrec.cosine_topk(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="must be 2-D"):
        fastrec.cosine_topk(np.ones(4))
    with pytest.raises(TypeError, match="not numeric"):
        fastrec.cosine_topk(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="not numeric"):
        fastrec.cosine_topk(np.ones((2, 2), dtype=complex))
    with pytest.raises(TypeError, match="could not be read as a numeric array"):
        fastrec.cosine_topk(np.array([[1, None]], dtype=object))
    with pytest.raises(TypeError, match="must be a 2-D array or a scipy sparse matrix"):
        fastrec.cosine_topk("matrix")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_parallel_transpose_matches_scipy(n_threads, index_dtype):
    from fastrec._validation import transpose_csr

    R = make_ratings(700, 300, 70_000, seed=5)  # above the size where the compiled path is used
    R.indices = R.indices.astype(index_dtype)
    got = transpose_csr(R, n_threads)
    want = R.T.tocsr()
    assert got.shape == want.shape and got.has_canonical_format
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)
