"""Malformed sparse matrices are refused, by name, before any kernel or scipy routine reads them.

scipy checks the arrays of a sparse matrix when it builds one, not when they are
assigned afterwards, and its own routines (``tocsr``, ``.T``, ``sum_duplicates``)
read them unchecked.  Every sparse argument of every entry point and backend must
end in a ValueError that names the argument, with the caller's arrays untouched.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec import _validation as V
from fastrec.datasets import Interactions, train_test_split

BACKENDS = list(fastrec.available_backends()) + ["numpy"]


def good(n_rows=12, n_cols=9, fmt="csr", seed=0):
    A = sp.random(n_rows, n_cols, density=0.4, format="csr", random_state=seed, dtype=np.float32)
    A.data += 1.0  # no value is zero, so every row and column keeps its entries
    return A.asformat(fmt)


def break_it(A, how):
    """A copy of A with one fault written into its arrays after construction."""
    B = A.copy()
    if B.format == "coo":
        index = B.col if how != "row" else B.row
        index[2] = {"negative": -1, "past_end": B.shape[1] + 5, "row": B.shape[0]}.get(how, -1)
        return B
    if how == "negative":
        B.indices[2] = -1
    elif how == "past_end":
        B.indices[2] = (B.shape[1] if B.format == "csr" else B.shape[0]) + 5
    elif how == "decreasing":
        B.indptr[3] = B.indptr[5] + 1
    elif how == "overrun":
        B.indptr[-1] = B.indices.size + 7
    elif how == "short_indptr":
        B.indptr = B.indptr[:-2]
    elif how == "nonzero_start":
        B.indptr = B.indptr + 1
    elif how == "float_indices":
        B.indices = B.indices.astype(np.float64)
    return B


FAULTS = ["negative", "past_end", "decreasing", "overrun", "short_indptr", "nonzero_start", "float_indices"]


def snapshot(A):
    if A.format == "coo":
        return [A.row.copy(), A.col.copy(), A.data.copy()]
    return [A.indptr.copy(), A.indices.copy(), A.data.copy()]


def assert_refused(call, matrix, name):
    before = snapshot(matrix)
    with pytest.raises(ValueError, match=rf"{name} is a malformed sparse matrix"):
        call()
    for a, b in zip(snapshot(matrix), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_check_sparse_structure_finds_each_fault(fault, fmt):
    bad = break_it(good(fmt=fmt), fault)
    assert_refused(lambda: V.check_sparse_structure(bad, "X"), bad, "X")


@pytest.mark.parametrize("how", ["negative", "past_end", "row"])
def test_coo_indices_are_checked(how):
    bad = break_it(good(fmt="coo"), how)
    assert_refused(lambda: fastrec.cosine_topk(bad, k=2), bad, "X")


def test_valid_matrices_pass_and_spare_storage_is_cut_off():
    A = good()
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia"):
        V.check_sparse_structure(A.asformat(fmt), "X")
    B = sp.csr_matrix(
        (
            np.concatenate([A.data, [np.nan] * 3]).astype(np.float32),
            np.concatenate([A.indices, [10**6] * 3]).astype(np.int32),
            A.indptr,
        ),
        shape=A.shape,
    )  # storage past indptr[-1] is not part of the matrix
    checked = V.check_sparse_structure(B, "X")
    assert checked.indices.size == A.nnz and np.shares_memory(checked.indices, B.indices)
    for backend in BACKENDS:
        expected = fastrec.cosine_topk(A, k=3, backend=backend)
        got = fastrec.cosine_topk(B, k=3, backend=backend)
        np.testing.assert_array_equal(got.toarray(), expected.toarray())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", ["negative", "past_end", "decreasing", "overrun"])
def test_every_sparse_argument_of_every_entry_point(backend, fault):
    R = good(30, 20, seed=1)
    bad = break_it(R, fault)
    rng = np.random.default_rng(0)
    U = rng.normal(size=(30, 4)).astype(np.float32)
    V_ = rng.normal(size=(20, 4)).astype(np.float32)
    table = np.tile(np.arange(5), (30, 1))
    calls = {
        "X": [
            lambda: fastrec.cosine_topk(bad, k=3, backend=backend),
            lambda: (
                fastrec.cosine_topk(bad.T, k=3, backend=backend)
                if fault != "overrun"
                else fastrec.cosine_topk(bad, R, k=3, backend=backend)
            ),
            lambda: fastrec.KMeans(3, backend=backend).fit(bad),
        ],
        "Y": [lambda: fastrec.cosine_topk(R, bad, k=3, backend=backend)],
        "exclude": [lambda: fastrec.topn(U, V_, n=3, exclude=bad, backend=backend)],
        "candidates": [lambda: fastrec.topn(U, V_, n=3, candidates=bad, backend=backend)],
        "ratings matrix": [
            lambda: fastrec.MatrixFactorization(n_epochs=1, backend=backend).fit(bad),
            lambda: fastrec.ItemKNN(backend=backend).fit(bad),
            lambda: fastrec.UserKNN(backend=backend).fit(bad),
        ],
        "features": [lambda: fastrec.ContentKNN(bad, backend=backend).fit(R.T.tocsr())],
        "test": [lambda: fastrec.metrics.precision_at_k(table, bad, k=5, backend=backend)],
        "matrix": [lambda: Interactions(bad, np.arange(30), np.arange(20))],
        "data": [lambda: train_test_split(bad, seed=0)],
    }
    for name, entry_calls in calls.items():
        for call in entry_calls:
            assert_refused(call, bad, name)


def test_entry_rows_without_arrays_as_long_as_the_rows():
    for A in (
        good(50, 20),
        sp.random(5000, 20, density=0.0005, format="csr", random_state=0),
        sp.csr_matrix((3, 4)),
    ):
        np.testing.assert_array_equal(V.entry_rows(A.indptr), A.tocoo().row)


def test_declared_sizes_beyond_memory_or_int32_are_refused_before_allocating():
    huge = sp.coo_matrix(
        (np.array([3.0, 4.0], dtype=np.float32), ([0, 2**31 + 3], [1, 2])), shape=(2**31 + 5, 4)
    )  # COO: no array as long as the rows
    with pytest.raises(ValueError, match=r"at most 2\*\*31 - 1 users and items"):
        fastrec.MatrixFactorization(n_factors=2, n_epochs=1).fit(huge)
    del huge
    with pytest.raises(V.TooLargeError, match="factor matrices of 2,147,483,647 users"):
        fastrec.MatrixFactorization(n_epochs=1).fit(([0, 1], [0, 1], [1.0, 2.0]), n_users=2**31 - 1)
    with pytest.raises(MemoryError, match="more than the"):  # also a MemoryError
        fastrec.MatrixFactorization(n_factors=10**10, n_epochs=1).fit(([0, 1], [0, 1], [1.0, 2.0]))


def test_cosine_refuses_declared_shapes_beyond_memory():
    X = sp.coo_matrix((np.ones(2, np.float32), ([0, 1], [0, 3])), shape=(2, 10**12))
    with pytest.raises(V.TooLargeError, match="cosine_topk of 2 x 1,000,000,000,000"):
        fastrec.cosine_topk(X)
    Y = sp.coo_matrix((np.ones(1, np.float32), ([0], [1])), shape=(10**12, 4))
    with pytest.raises(MemoryError, match="against 1,000,000,000,000 rows"):
        fastrec.cosine_topk(sp.eye(3, 4, format="csr"), Y)
