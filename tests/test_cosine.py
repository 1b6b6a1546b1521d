"""cosine_topk: the reference against brute force, every backend against the reference."""

from __future__ import annotations

import itertools

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
            (-scores[i, j], j)
            for j in range(Y.shape[0])
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
        pairs = sorted((-out.data[p], out.indices[p]) for p in range(out.indptr[i], out.indptr[i + 1]))
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
            got = fastrec.cosine_topk(X, Y, k=k, shrink=shrink, exclude_self=exclude_self, backend=backend)
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
    blocks = [
        fastrec.cosine_topk(R.T, k=10, rows=slice(a, a + 37), backend=backend) for a in range(0, 120, 37)
    ]
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
    from fastrec._sparse import transpose_csr

    R = make_ratings(700, 300, 70_000, seed=5)  # above the size where the compiled path is used
    R.indices = R.indices.astype(index_dtype)
    got = transpose_csr(R, n_threads)
    want = R.T.tocsr()
    assert got.shape == want.shape and got.has_canonical_format
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)


# --- any finite magnitude, scores in [-1, 1], no zero scores, rows= blocks ---


def _scaled_oracle(A, p, B=None, q=None, k=50, shrink=0.0, exclude_self=True, dtype=np.float64):
    """Top-k of X = diag(2**p) A against Y = diag(2**q) B, computed from A and B alone.

    Cosine ignores the row scales; the shrink term of pair (i, j) becomes
    shrink * 2**-(p_i + q_j).  Scores are rounded to ``dtype`` and zeros dropped.
    """
    same = B is None
    A = np.asarray(A, dtype=np.float64)
    B, q = (A, p) if same else (np.asarray(B, dtype=np.float64), q)
    dots = A @ B.T
    with np.errstate(over="ignore"):  # an infinite term makes the score 0
        term = np.ldexp(shrink, -(p[:, None].astype(np.int64) + q[None, :]))
    denom = np.outer(np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)) + term
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(dots != 0, dots / denom, 0.0).astype(dtype)
    indices, data, indptr = [], [], [0]
    for i in range(A.shape[0]):
        pairs = sorted(
            (-float(scores[i, j]), j)
            for j in range(B.shape[0])
            if scores[i, j] != 0 and not (same and exclude_self and i == j)
        )[:k]
        indices += [j for _, j in pairs]
        data += [-s for s, _ in pairs]
        indptr.append(len(indices))
    return sp.csr_matrix((np.array(data, dtype=dtype), indices, indptr), shape=(A.shape[0], B.shape[0]))


def _integer_rows(rng, n, d, density):
    """Small signed integers: exact under any power-of-two row scale, subnormal ones included."""
    values = rng.integers(1, 10, (n, d)) * rng.choice([-1, 1], (n, d))
    return values * (rng.random((n, d)) < density)


# Row exponents from the smallest subnormal to the largest finite magnitude (values <= 9).
EXTREME_EXPONENTS = {
    np.float32: [-146, -140, -100, -64, -40, 0, 3, 40, 64, 100, 124],
    np.float64: [-1071, -1060, -700, -300, -200, 0, 3, 200, 300, 700, 1020],
}


# Scores below this are "as good as zero": the kernels' dtype arithmetic may
# flush them (a product below the smallest normal number keeps few bits).
NEGLIGIBLE = {np.float32: 2.0**-100, np.float64: 2.0**-1000}


def assert_same_scores(got, want, dtype):
    """Every score of ``want`` above NEGLIGIBLE is in ``got`` to relative TOL; nothing else
    is in ``got`` but negligible scores.  For results that keep every candidate."""
    for row in range(want.shape[0]):
        g = dict(zip(got[row].indices.tolist(), got[row].data.tolist()))
        w = dict(zip(want[row].indices.tolist(), want[row].data.tolist()))
        for col, score in w.items():
            if abs(score) >= NEGLIGIBLE[dtype]:
                assert col in g, f"row {row}: column {col} ({score}) missing"
                assert abs(g[col] - score) <= TOL[dtype] * abs(score), (row, col, g[col], score)
        for col, score in g.items():
            assert col in w and abs(w[col]) >= NEGLIGIBLE[dtype] or abs(score) < NEGLIGIBLE[dtype], (
                f"row {row}: column {col} ({score}) unexpected"
            )


@pytest.mark.parametrize("backend,level", [*compiled_variants(), ("numpy", None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shrink", [0.0, 1.5, 1e30])
@pytest.mark.parametrize("with_y", [False, True])
def test_any_finite_magnitude_is_scored_correctly(backend, level, dtype, shrink, with_y):
    rng = np.random.default_rng(11)
    A = _integer_rows(rng, 45, 12, 0.5)
    p = rng.choice(EXTREME_EXPONENTS[dtype], A.shape[0]).astype(np.int32)
    X = sp.csr_matrix(np.ldexp(A, p[:, None]).astype(dtype))
    assert np.array_equal(np.ldexp(X.toarray().astype(np.float64), -p[:, None]), A)  # exact
    B = q = Y = None
    if with_y:
        B = _integer_rows(rng, 30, 12, 0.5)
        q = rng.choice(EXTREME_EXPONENTS[dtype], B.shape[0]).astype(np.int32)
        Y = sp.csr_matrix(np.ldexp(B, q[:, None]).astype(dtype))
    X_before, Y_before = X.copy(), None if Y is None else Y.copy()
    for exclude_self in (True, False):
        kwargs = dict(shrink=shrink, exclude_self=exclude_self, backend=backend)
        with variant(level):
            every = fastrec.cosine_topk(X, Y, k=50, **kwargs)
            top = fastrec.cosine_topk(X, Y, k=8, **kwargs)
        assert every.dtype == dtype and np.all(np.isfinite(every.data))
        want = _scaled_oracle(A, p, B, q, k=50, shrink=shrink, exclude_self=exclude_self, dtype=dtype)
        assert_same_scores(every, want, dtype)
        assert_rank_ordered(every)
        if shrink == 0:  # cosines of small integer rows: none is negligible
            want = _scaled_oracle(A, p, B, q, k=8, exclude_self=exclude_self, dtype=dtype)
            assert_topk_rows_equivalent(top, want, TOL[dtype])
    assert np.array_equal(X.data, X_before.data)  # rescaled copies, never the caller's arrays
    assert Y is None or np.array_equal(Y.data, Y_before.data)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "dtype,scales", [(np.float32, [1e30, 1e-30, 3e37, 1e-36]), (np.float64, [1e200, 1e-200, 1e300, 1e-300])]
)
def test_uniformly_huge_or_tiny_values_keep_their_cosines(backend, dtype, scales):
    rng = np.random.default_rng(12)
    X = sp.random(60, 20, density=0.3, random_state=rng, format="csr", dtype=np.float64)
    X.data -= 0.4
    want = fastrec.cosine_topk(X.astype(dtype), k=6, backend="numpy")
    mixed = sp.diags(rng.choice(scales, 60)) @ X  # every row at its own extreme scale
    for scaled in [X * s for s in scales] + [mixed]:
        scaled = scaled.astype(dtype)
        data_before = scaled.data.copy()
        got = fastrec.cosine_topk(scaled, k=6, backend=backend)
        assert np.all(np.isfinite(got.data))
        assert_topk_rows_equivalent(got, want, TOL[dtype])
        assert np.array_equal(scaled.data, data_before)


@pytest.mark.parametrize("backend,level", [*compiled_variants(), ("numpy", None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scores_are_clamped_to_the_unit_interval(backend, level, dtype):
    R = _popular_ratings().astype(dtype)
    R.data *= np.random.default_rng(13).random(R.nnz).astype(dtype) + 0.5
    items = R.T.tocsr()
    n = items.shape[0]
    for Y in (None, -items):  # self-similarity 1, and -1 against the negated rows
        with variant(level):
            got = fastrec.cosine_topk(items, Y, k=n, exclude_self=False, backend=backend)
        assert got.data.max() <= 1 and got.data.min() >= -1
        extreme = got.data[got.indptr[:-1]] if Y is None else got.data[got.indptr[1:] - 1]
        assert np.all(np.abs(np.abs(extreme) - 1) <= TOL[dtype])  # the row itself


@pytest.mark.parametrize("backend,level", [*compiled_variants(), ("numpy", None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shrink", [0.0, 1.0])
def test_zero_scores_are_never_candidates(backend, level, dtype, shrink):
    # Row 0's score with row 1 is half the dtype's smallest subnormal (rounds to 0);
    # with row 2 the product cancels exactly; with row 3 it is negative.  With k=1
    # the negative score must win the slot.
    emin = int(np.log2(float(np.finfo(dtype).smallest_subnormal)))  # -149 or -1074
    h = -emin // 2
    d = 66
    X = np.zeros((4, d))
    X[0, :3] = [1.0, 2.0**-h, 1.0]
    X[1, 1] = 2.0 ** (emin + 2 + h)
    X[1, 3:] = 1.0  # 63 ones: |row 1| = sqrt(63) once scaled
    X[2, [0, 2]] = [1.0, -1.0]
    X[3, 0] = -1.0
    X = sp.csr_matrix(X.astype(dtype))
    with variant(level):
        top1 = fastrec.cosine_topk(X, k=1, shrink=shrink, backend=backend)
        everything = fastrec.cosine_topk(X, k=4, shrink=shrink, backend=backend)
    assert top1[0].indices.tolist() == [3] and top1[0].data[0] < 0
    assert 1 not in everything[0].indices and 2 not in everything[0].indices
    assert np.all(everything.data != 0)
    Y = X[[1, 2, 3]]
    with variant(level):
        given = fastrec.cosine_topk(X[:1], Y, k=1, shrink=shrink, backend=backend)
    assert given.indices.tolist() == [2] and given.data[0] < 0


BLOCK_SHAPES = {0: (1000, 400, 20000), 1: (700, 300, 18000), 2: (1000, 400, 20000)}


def _block_problem(seed, dtype):
    """Item rows with popular users (groups take the tile path) and a long tail (the
    scalar path), with values that round (so a fused multiply-add would show)."""
    R = make_ratings(*BLOCK_SHAPES[seed], seed=seed)
    rng = np.random.default_rng(seed)
    R.data = R.data * rng.random(R.nnz) - 0.3 * rng.random(R.nnz)
    X = R.T.tocsr()
    if seed == 2:  # rows at extreme magnitudes: the rescaled path
        exponents = rng.choice(EXTREME_EXPONENTS[dtype][1:-1], X.shape[0])
        X = sp.diags(np.ldexp(1.0, exponents)) @ X
    return X.astype(dtype).tocsr()


@pytest.mark.parametrize("backend,level", compiled_variants())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_are_bit_identical_to_the_whole(backend, level, dtype):
    for seed, step in ((0, 97), (1, 75), (2, 128)):
        X = _block_problem(seed, dtype)
        cases = itertools.product((False, True), (0.0, 1.5), (True, False))
        for number, (with_y, shrink, exclude_self) in enumerate(cases):
            # the whole on 1 thread and the blocks on 2, or the other way round
            whole_threads = 1 + (number + seed) % 2
            Y = X[::3] if with_y else None
            kwargs = dict(k=20, shrink=shrink, exclude_self=exclude_self, backend=backend)
            with variant(level):
                whole = fastrec.cosine_topk(X, Y, n_threads=whole_threads, **kwargs)
                blocks = [
                    fastrec.cosine_topk(
                        X, Y, rows=(a, min(a + step, X.shape[0])), n_threads=3 - whole_threads, **kwargs
                    )
                    for a in range(0, X.shape[0], step)
                ]
            stacked = sp.vstack(blocks, format="csr")
            case = (seed, with_y, shrink, exclude_self, whole_threads)
            assert np.array_equal(stacked.indptr, whole.indptr), case
            assert np.array_equal(stacked.indices, whole.indices), case
            assert np.array_equal(stacked.data, whole.data), case


@pytest.mark.parametrize("backend,level", [*compiled_variants(), ("numpy", None)])
@pytest.mark.parametrize("shrink", [1e-60, 1.0])
def test_empty_rows_in_a_vector_group_score_nothing(backend, level, shrink):
    # Rows 16 and 17 share every feature, so their group (with the empty row 18)
    # takes the tile path; float32 rounds shrink=1e-60 to 0, leaving 0 / 0 for
    # the empty row unless the kernel guards it.
    rng = np.random.default_rng(14)
    dense = rng.random((19, 24)) + 0.5
    dense[18] = 0
    X = sp.csr_matrix(dense.astype(np.float32))
    want = fastrec.cosine_topk(X, k=5, shrink=shrink, exclude_self=False, backend="numpy")
    for Y in (None, X):
        with variant(level):
            got = fastrec.cosine_topk(X, Y, k=5, shrink=shrink, exclude_self=False, backend=backend)
        assert np.all(np.isfinite(got.data)) and got[18].nnz == 0
        assert_topk_rows_equivalent(got, want, TOL[np.float32])
        assert_rank_ordered(got)


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


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_cosine_topk_passes_every_kernel_argument_by_keyword(monkeypatch, backend):
    from fastrec import _runtime

    X = make_ratings(40, 30, 300, seed=3).tocsr()
    Y = make_ratings(25, 30, 200, seed=4).tocsr()
    cases = [((X,), dict(k=4)), ((X,), dict(k=3, shrink=2.0, exclude_self=False)), ((X, Y), dict(k=5))]
    expected = [fastrec.cosine_topk(*args, backend=backend, **kw) for args, kw in cases]
    references = [fastrec.cosine_topk(*args, backend="numpy", **kw) for args, kw in cases]
    calls: list[str] = []
    real = _runtime.kernel_module
    monkeypatch.setattr(
        _runtime, "kernel_module", lambda b, family: _KeywordOnlyKernels(real(b, family), calls)
    )
    for (args, kw), want, reference in zip(cases, expected, references):
        got = fastrec.cosine_topk(*args, backend=backend, **kw)
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.data, want.data)
        assert_topk_rows_equivalent(got, reference, 1e-5)
    assert calls == ["cosine_topk"] * len(cases)
