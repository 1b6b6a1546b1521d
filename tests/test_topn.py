"""topn: the reference against brute force, every backend and SIMD level against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    ALL_BACKENDS,
    COMPILED_BACKENDS,
    assert_rank_ordered,
    assert_topk_rows_equivalent,
    compiled_variants,
    variant,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrec
from fastrec import _runtime

VARIANTS = [*compiled_variants(), ("numpy", None)]
VARIANT_IDS = [f"{b}-{lvl}" if lvl else b for b, lvl in VARIANTS]


def brute_force(U, V, n, exclude=None, candidates=None):
    """Top-n by a full float64 score matrix and a sort, written independently of the library."""
    S = np.asarray(U, dtype=np.float64) @ np.asarray(V, dtype=np.float64).T
    allowed = np.ones(S.shape, dtype=bool)
    if candidates is not None:
        allowed[:] = False
        if sp.issparse(candidates):
            coo = sp.coo_matrix(candidates)
            allowed[coo.row, coo.col] = True  # stored entries, explicit zeros included
        else:
            allowed[:, np.asarray(candidates, dtype=np.int64)] = True
    if exclude is not None:
        coo = sp.coo_matrix(exclude)
        allowed[coo.row, coo.col] = False
    # n is capped at the items there are (shared candidates: at their number)
    shared = candidates is not None and not sp.issparse(candidates)
    n = max(1, min(n, np.unique(candidates).size if shared else S.shape[1]))
    indices = np.full((S.shape[0], n), -1, dtype=np.int64)
    scores = np.full((S.shape[0], n), -np.inf)
    for q in range(S.shape[0]):
        items = np.flatnonzero(allowed[q])
        best = sorted(items.tolist(), key=lambda j: (-S[q, j], j))[:n]
        indices[q, : len(best)] = best
        scores[q, : len(best)] = S[q, best]
    return indices, scores


def as_ranked_csr(indices, scores, n_items):
    """A top-n table as rank-ordered CSR (for the tie-aware comparison), checking its padding."""
    valid = indices >= 0
    counts = valid.sum(axis=1)
    assert np.array_equal(valid, np.arange(indices.shape[1]) < counts[:, None]), "padding not at the end"
    assert np.all(np.isneginf(scores[~valid])), "padded slots must score -inf"
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix(
        (scores[valid].astype(np.float64), indices[valid], indptr), shape=(indices.shape[0], n_items)
    )


def assert_matches_brute_force(got, U, V, n, exclude=None, candidates=None, dtype=np.float32):
    indices, scores = got
    want_idx, want_scores = brute_force(U, V, n, exclude, candidates)
    assert indices.shape == want_idx.shape and scores.shape == want_idx.shape
    assert scores.dtype == dtype and indices.dtype == np.int32
    scale = max(1.0, float(np.abs(want_scores[np.isfinite(want_scores)]).max(initial=0.0)))
    tol = (2e-5 if dtype == np.float32 else 1e-12) * scale
    m = np.asarray(V).shape[0]
    got_csr = as_ranked_csr(indices, scores, m)
    assert_topk_rows_equivalent(got_csr, as_ranked_csr(want_idx, want_scores, m), tol)
    assert_rank_ordered(got_csr, zeros_allowed=True)
    if exclude is not None:
        excluded = sp.csr_matrix(exclude, dtype=np.float64)
        for q in range(indices.shape[0]):
            row = set(excluded.indices[excluded.indptr[q] : excluded.indptr[q + 1]].tolist())
            assert not row & set(indices[q].tolist()), f"query {q} got an excluded item"


def run(backend, level, *args, **kwargs):
    with variant(level):
        return fastrec.topn(*args, backend=backend, **kwargs)


def problem(n_queries=40, n_items=90, f=17, dtype=np.float32, seed=0, density=0.1, integer=False):
    rng = np.random.default_rng(seed)
    if integer:  # small integers: exact scores in every dtype, and many exact ties
        U = rng.integers(-2, 3, size=(n_queries, f)).astype(dtype)
        V = rng.integers(-2, 3, size=(n_items, f)).astype(dtype)
    else:
        U = rng.normal(size=(n_queries, f)).astype(dtype)
        V = rng.normal(size=(n_items, f)).astype(dtype)
    exclude = sp.random(n_queries, n_items, density=density, format="csr", random_state=seed + 1)
    return U, V, exclude


# --- the reference against hand-computed values ---


def test_reference_hand_computed_ties_exclusion_and_padding():
    U = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    V = np.array([[2.0, 0.0], [1.0, 1.0], [2.0, -1.0], [0.0, 0.0]])
    # scores: q0 [2, 1, 2, 0], q1 [0, 1, -1, 0], q2 [2, 2, 1, 0]
    exclude = sp.csr_matrix(([1, 1], ([1, 2], [1, 0])), shape=(3, 4))
    idx, sc = fastrec.topn(U, V, n=5, exclude=exclude, backend="numpy")  # n capped at 4 items
    assert idx.tolist() == [[0, 2, 1, 3], [0, 3, 2, -1], [1, 2, 3, -1]]
    assert sc.tolist() == [[2, 2, 1, 0], [0, 0, -1, -np.inf], [2, 1, 0, -np.inf]]
    assert sc.dtype == np.float64 and idx.dtype == np.int32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_matches_brute_force(dtype):
    U, V, exclude = problem(30, 70, 9, dtype)
    for n in (1, 7, 80):
        got = fastrec.topn(U, V, n=n, exclude=exclude, backend="numpy")
        assert_matches_brute_force(got, U, V, n, exclude, dtype=dtype)


# --- every backend and SIMD level against brute force ---


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("f", [1, 3, 17, 64, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_variant_matches_brute_force(backend, level, f, dtype):
    U, V, exclude = problem(45, 130, f, dtype, seed=f)
    exclude = exclude.tolil()
    exclude[3, :] = 0  # an empty row ...
    exclude[4, :] = 1  # ... and a query whose every item is excluded
    exclude = exclude.tocsr()
    for n in (1, 10, 70):  # 70 > 64: the heap path
        got = run(backend, level, U, V, n, exclude=exclude)
        assert_matches_brute_force(got, U, V, n, exclude, dtype=dtype)
        assert np.all(got[0][4] == -1) and np.all(np.isneginf(got[1][4]))
    got = run(backend, level, U, V, 7)  # nothing excluded
    assert_matches_brute_force(got, U, V, 7, dtype=dtype)


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_go_to_the_smaller_index_exactly(backend, level, dtype):
    U, V, exclude = problem(60, 150, 5, dtype, seed=3, integer=True)
    for n in (3, 20, 100):
        idx, sc = run(backend, level, U, V, n, exclude=exclude)
        want_idx, want_sc = brute_force(U, V, n, exclude)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(sc, want_sc.astype(dtype))


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
def test_n_larger_than_the_items_is_capped_and_pads_excluded_slots(backend, level):
    U, V, exclude = problem(6, 5, 4, density=0.3)
    for n in (12, 2**31, 10**12):
        idx, sc = run(backend, level, U, V, n, exclude=exclude)
        assert idx.shape == (6, 5)
        assert_matches_brute_force((idx, sc), U, V, n, exclude)
        left = 5 - np.diff(exclude.indptr)
        for q in range(6):
            assert np.all(idx[q, left[q] :] == -1) and np.all(np.isneginf(sc[q, left[q] :]))


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shared_candidates(backend, level, dtype):
    U, V, exclude = problem(35, 120, 17, dtype, seed=5, density=0.2)
    candidates = np.array([7, 3, 99, 3, 50, 51, 52, 0, 119, 64, 65, 66, 67])  # unsorted, a duplicate
    for n in (1, 5, 15):
        got = run(backend, level, U, V, n, exclude=exclude, candidates=candidates)
        assert_matches_brute_force(got, U, V, n, exclude, candidates, dtype=dtype)
        assert set(got[0][got[0] >= 0].tolist()) <= set(candidates.tolist())
    none = run(backend, level, U, V, 4, candidates=np.array([], dtype=np.int64))
    assert np.all(none[0] == -1) and np.all(np.isneginf(none[1]))


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_query_candidates(backend, level, dtype):
    U, V, exclude = problem(35, 120, 20, dtype, seed=6, density=0.2)
    rng = np.random.default_rng(0)
    candidates = sp.random(35, 120, density=0.15, format="lil", random_state=rng)
    candidates[2, :] = 0  # no candidates at all
    candidates[5, :] = 1  # every item
    candidates = candidates.tocsr()
    candidates.data[::3] = 0  # explicit zeros still list their items
    for n in (1, 8, 70):
        got = run(backend, level, U, V, n, exclude=exclude, candidates=candidates)
        assert_matches_brute_force(got, U, V, n, exclude, candidates, dtype=dtype)
        for q in range(35):
            assert set(got[0][q][got[0][q] >= 0].tolist()) <= set(candidates[q].indices.tolist())
        assert np.all(got[0][2] == -1)


@pytest.mark.parametrize("backend, level", VARIANTS, ids=VARIANT_IDS)
def test_integer_ties_with_candidates_are_exact(backend, level):
    U, V, exclude = problem(30, 80, 4, np.float32, seed=8, integer=True)
    candidates = sp.random(30, 80, density=0.5, format="csr", random_state=9)
    for cand in (candidates, np.arange(10, 70)):
        idx, sc = run(backend, level, U, V, 9, exclude=exclude, candidates=cand)
        want_idx, want_sc = brute_force(U, V, 9, exclude, cand)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(sc, want_sc.astype(np.float32))


@st.composite
def random_problems(draw):
    """Random shapes (empty included), dtypes, ties, exclusions with duplicates and explicit zeros."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n_queries = draw(st.integers(0, 25))
    n_items = draw(st.integers(0, 60))
    f = draw(st.sampled_from([1, 2, 3, 16, 17, 33]))
    n = draw(st.integers(1, 75))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        U = rng.integers(-2, 3, size=(n_queries, f)).astype(dtype)
        V = rng.integers(-2, 3, size=(n_items, f)).astype(dtype)
    else:
        U = rng.normal(size=(n_queries, f)).astype(dtype)
        V = rng.normal(size=(n_items, f)).astype(dtype)
    exclude = None
    if draw(st.booleans()) and n_queries and n_items:
        nnz = int(n_queries * n_items * draw(st.sampled_from([0.0, 0.1, 0.5, 2.0])))
        rows, cols = rng.integers(0, n_queries, nnz), rng.integers(0, n_items, nnz)
        values = rng.choice([0.0, 1.0, 3.0], nnz)  # explicit zeros and repeated pairs
        exclude = sp.coo_matrix((values, (rows, cols)), shape=(n_queries, n_items))
    candidates = None
    kind = draw(st.sampled_from(["none", "shared", "per-query"]))
    if kind == "shared" and n_items:
        candidates = rng.integers(0, n_items, draw(st.integers(0, 2 * n_items)))
    elif kind == "per-query":
        candidates = sp.random(
            n_queries, n_items, density=draw(st.sampled_from([0.0, 0.3, 1.0])), format="csr", random_state=rng
        )
    return U, V, n, exclude, candidates, dtype


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_problems())
def test_random_problems_every_variant(case):
    U, V, n, exclude, candidates, dtype = case
    for backend, level in VARIANTS:
        got = run(backend, level, U, V, n, exclude=exclude, candidates=candidates)
        assert_matches_brute_force(got, U, V, n, exclude, candidates, dtype=dtype)


# --- threads, dtypes, inputs ---


@pytest.mark.parametrize("backend, level", compiled_variants())
@pytest.mark.parametrize("per_query", [False, True])
def test_result_is_bit_identical_for_any_thread_count(backend, level, per_query):
    U, V, exclude = problem(700, 400, 33, seed=11, density=0.05)
    candidates = sp.random(700, 400, density=0.3, format="csr", random_state=12) if per_query else None
    first = run(backend, level, U, V, 10, exclude=exclude, candidates=candidates, n_threads=1)
    for threads in (2, 3):
        again = run(backend, level, U, V, 10, exclude=exclude, candidates=candidates, n_threads=threads)
        np.testing.assert_array_equal(again[0], first[0])
        np.testing.assert_array_equal(again[1], first[1])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_inputs_are_not_modified(backend):
    U, V, _ = problem(20, 50, 6)
    # non-canonical patterns: unsorted indices and duplicates, which topn must sort on a copy
    exclude = sp.csr_matrix(
        (np.ones(4), np.array([9, 2, 9, 0]), np.array([0, 3, 3] + [4] * 18)), shape=(20, 50)
    )
    candidates = sp.csr_matrix(
        (np.zeros(3), np.array([40, 1, 40]), np.array([0, 3] + [3] * 19)), shape=(20, 50)
    )
    before = [
        U.copy(),
        V.copy(),
        exclude.indices.copy(),
        exclude.indptr.copy(),
        exclude.data.copy(),
        candidates.indices.copy(),
        candidates.data.copy(),
    ]
    got = fastrec.topn(U, V, 5, exclude=exclude, candidates=candidates, backend=backend)
    after = [U, V, exclude.indices, exclude.indptr, exclude.data, candidates.indices, candidates.data]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert got[0][0].tolist() == [1, 40, -1, -1, -1] or got[0][0].tolist() == [40, 1, -1, -1, -1]
    assert got[0][1].tolist() == [-1] * 5


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_dtype_rule_and_array_likes(backend):
    U, V, exclude = problem(10, 30, 4, np.float32)
    idx64, sc64 = fastrec.topn(U, V.astype(np.float64), 3, backend=backend)
    assert sc64.dtype == np.float64
    assert_matches_brute_force((idx64, sc64), U, V, 3, dtype=np.float64)
    ints = np.arange(12).reshape(3, 4) % 5
    idx, sc = fastrec.topn(ints.tolist(), ints, 2, backend=backend)  # integers compute in float32
    assert sc.dtype == np.float32
    # exclusions as a dense 0/1 array, a COO matrix and a sparse array give the same result
    results = [
        fastrec.topn(U, V, 4, exclude=e, backend=backend)
        for e in (exclude, exclude.toarray() != 0, exclude.tocoo(), sp.csr_array(exclude))
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_kernels_take_int64_indices(backend):
    U, V, exclude = problem(30, 60, 5, seed=13, density=0.2)
    exclude = sp.csr_matrix(exclude)
    candidates = sp.random(30, 60, density=0.5, format="csr", random_state=14)
    if backend == "cpp":
        kernel = _runtime._cpp.topn
    else:
        from fastrec.scoring import _numba

        kernel = _numba.topn
    for cand_indptr, cand_indices in (
        (np.zeros(0, np.int64), None),
        (candidates.indptr.astype(np.int64), candidates.indices),
    ):
        results = []
        for index_dtype in (np.int32, np.int64):
            out_idx = np.empty((30, 6), dtype=index_dtype)
            out_sc = np.empty((30, 6), dtype=np.float32)
            cand_i = np.zeros(0, index_dtype) if cand_indices is None else cand_indices.astype(index_dtype)
            with _runtime.kernel_threads(backend, 2):
                kernel(
                    U,
                    V,
                    exclude.indptr.astype(np.int64),
                    exclude.indices.astype(index_dtype),
                    cand_indptr,
                    cand_i,
                    out_idx,
                    out_sc,
                    2,
                )
            results.append((out_idx, out_sc))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])


def test_no_queries_and_no_items():
    U, V, _ = problem(0, 10, 3)
    idx, sc = fastrec.topn(U, V, 4)
    assert idx.shape == (0, 4) and sc.shape == (0, 4)
    U, V, _ = problem(3, 0, 3)
    for backend in ALL_BACKENDS:
        idx, sc = fastrec.topn(U, V, 4, backend=backend)
        assert np.all(idx == -1) and np.all(np.isneginf(sc))


def test_public_export():
    from fastrec.scoring import topn

    assert fastrec.topn is topn and "topn" in fastrec.__all__


# --- bad input ---


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(U=sp.random(4, 3, density=0.5, format="csr")), TypeError, "U must be a dense array"),
        (dict(U=np.ones(3)), ValueError, "U must be 2-D"),
        (dict(U="abc"), TypeError, "U must be a 2-D array"),
        (dict(U=np.array([[object()]])), TypeError, "U could not be read as a numeric array"),
        (dict(U=np.ones((4, 2))), ValueError, "U has 2 columns and V has 3"),
        (dict(U=np.ones((4, 0)), V=np.ones((5, 0))), ValueError, "at least one factor column"),
        (dict(U=np.full((4, 3), np.nan)), ValueError, "U contains NaN"),
        (dict(V=np.full((5, 3), np.inf)), ValueError, "V contains infinite"),
        (dict(n=0), ValueError, "n must be >= 1"),
        (dict(n=2.5), TypeError, "n must be an integer"),
        (dict(exclude=sp.random(4, 6, density=0.5)), ValueError, r"exclude has shape \(4, 6\), but it"),
        (dict(candidates=np.array([0, 5])), ValueError, "candidates contains the item index 5, outside"),
        (dict(candidates=[-1, 2]), ValueError, "candidates contains the item index -1"),
        (dict(candidates=np.array([True, False, True, True, False])), TypeError, "boolean array"),
        (dict(candidates=np.array([0.0, 2.0])), TypeError, "integer item indices"),
        (dict(candidates=np.zeros((4, 2), dtype=int)), TypeError, r"candidates has shape \(4, 2\)"),
        (dict(candidates=[[0, 1], [2]]), TypeError, "candidates has ragged rows"),
        (dict(candidates=sp.random(4, 4, density=0.5)), ValueError, r"candidates has shape \(4, 4\)"),
        (dict(backend="gpu"), ValueError, "backend='gpu' is not one of"),
        (dict(n_threads=0), ValueError, "n_threads must be >= 1"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, error, match):
    args = dict(U=np.ones((4, 3)), V=np.ones((5, 3)), n=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fastrec.topn(args.pop("U"), args.pop("V"), **args)


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e20), (np.float64, 1e160)])
def test_products_that_could_overflow_the_dtype_are_refused(dtype, big):
    # an overflowed score would be +inf, -inf or NaN: ranked wrongly or dropped
    U, V, _ = problem(5, 9, 4, dtype)
    with pytest.raises(ValueError, match=f"dot products can overflow {np.dtype(dtype).name}"):
        fastrec.topn(U * dtype(big), V * dtype(big), n=3)
    with pytest.raises(ValueError, match="dot products can overflow"):
        fastrec.topn(
            np.array([[1e30], [-1e30]], dtype=np.float32),
            np.array([[1e30], [1.0], [-1e30]], dtype=np.float32),
            n=3,
        )
    scale = dtype(big) ** 0.5 / 4  # just inside the limit: ranked as the unscaled problem
    idx, _ = fastrec.topn(U * scale, V * scale, n=3, backend="numpy")
    np.testing.assert_array_equal(idx, fastrec.topn(U, V, n=3, backend="numpy")[0])


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
def test_topn_passes_every_kernel_argument_by_keyword(monkeypatch, backend):
    rng = np.random.default_rng(5)
    U = rng.standard_normal((7, 6)).astype(np.float32)
    V = rng.standard_normal((30, 6)).astype(np.float32)
    seen = sp.random(7, 30, density=0.2, format="csr", random_state=1)
    per_query = sp.random(7, 30, density=0.5, format="csr", random_state=2)
    cases = [
        dict(exclude=seen),
        dict(exclude=seen, candidates=per_query),
        dict(exclude=seen, candidates=np.arange(3, 25)),
    ]
    expected = [fastrec.topn(U, V, 4, backend=backend, **case) for case in cases]
    calls: list[str] = []
    real = _runtime.kernel_module
    monkeypatch.setattr(
        _runtime, "kernel_module", lambda b, family: _KeywordOnlyKernels(real(b, family), calls)
    )
    for case, (want_items, want_scores) in zip(cases, expected):
        items, scores = fastrec.topn(U, V, 4, backend=backend, **case)
        np.testing.assert_array_equal(items, want_items)
        np.testing.assert_array_equal(scores, want_scores)
        ref_items, _ = brute_force(U, V, 4, **case)
        for got, ref in zip(items, ref_items):  # random scores: no ties
            assert set(got[got >= 0].tolist()) == set(ref[ref >= 0].tolist())
    assert calls == ["topn"] * len(cases)
