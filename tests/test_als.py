"""Implicit-feedback ALS: the reference against dense solves, every backend against the
reference, determinism, the estimator, bad input."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import compiled_variants, variant
from sklearn.base import clone

from fastrec import ALS, _runtime
from fastrec._aligned import aligned_zeros, padded_width
from fastrec.implicit.als import _numba, _reference
from fastrec.implicit.als.model import confidence_minus_one

COMPILED = [b for b in ("cpp", "numba") if b in _runtime.available_backends()]


def kernel(backend):
    if backend == "cpp":
        return _runtime._cpp.als_half_step
    return {"numba": _numba.als_half_step, "numpy": _reference.als_half_step}[backend]


def counts(n_users=30, n_items=20, density=0.2, seed=0, empty_user=True, empty_item=True) -> sp.csr_matrix:
    """Users x items play counts with an empty user and an empty item, and a stored zero."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_users, n_items)) < density, rng.integers(1, 9, (n_users, n_items)), 0)
    if empty_user:
        dense[3] = 0
    if empty_item:
        dense[:, 5] = 0
    dense[0, 1] = 0
    rows, cols = np.nonzero(dense)
    # a stored zero at (0, 1): no preference, confidence 1
    rows, cols = np.append(rows, 0), np.append(cols, 1)
    values = dense[rows, cols].astype(np.float64)
    R = sp.csr_matrix((values, (rows, cols)), shape=dense.shape)
    assert R.nnz == np.count_nonzero(dense) + 1
    return R


def side(R: sp.csr_matrix, alpha: float, dtype) -> dict[str, np.ndarray]:
    """The kernel's CSR of ``R``'s rows: positive entries, their ``c - 1``."""
    return ALS._weights(sp.csr_matrix(R), {"alpha": alpha, "confidence": "linear"}, np.dtype(dtype))


def factors(n: int, k: int, dtype, seed: int, scale: float = 0.3) -> np.ndarray:
    out = aligned_zeros(n, padded_width(k, dtype), dtype)
    out[:, :k] = np.random.default_rng(seed).standard_normal((n, k)) * scale
    return out


def dense_solution(R: np.ndarray, Y: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Every row's exact least-squares solution from the dense C_u and p_u (numpy.linalg.solve)."""
    k = Y.shape[1]
    out = np.empty((R.shape[0], k))
    for u in range(R.shape[0]):
        C = np.diag(1.0 + alpha * R[u])
        p = (R[u] > 0).astype(np.float64)
        out[u] = np.linalg.solve(Y.T @ C @ Y + reg * np.eye(k), Y.T @ C @ p)
    return out


# -- the reference --------------------------------------------------------------------


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_reference_cholesky_is_the_dense_solve(reg):
    R = counts()
    k, alpha = 4, 1.5
    Y = factors(R.shape[1], k, np.float64, 1)
    X = factors(R.shape[0], k, np.float64, 2)
    _reference.als_half_step(
        **side(R, alpha, np.float64), X=X, Y=Y, n_factors=k, reg=reg, exact=True, cg_steps=1, n_threads=1
    )
    expected = dense_solution(R.toarray(), Y[:, :k], alpha, reg)
    np.testing.assert_allclose(X[:, :k], expected, rtol=1e-10, atol=1e-12)
    assert not X[:, k:].any()


def test_reference_cg_converges_to_the_dense_solve():
    R = counts()
    k, alpha, reg = 5, 2.0, 0.1
    Y = factors(R.shape[1], k, np.float64, 1)
    expected = dense_solution(R.toarray(), Y[:, :k], alpha, reg)
    X = factors(R.shape[0], k, np.float64, 2)
    start = X.copy()
    errors = []
    for steps in (1, 2, 40):
        X[:] = start
        _reference.als_half_step(
            **side(R, alpha, np.float64),
            X=X,
            Y=Y,
            n_factors=k,
            reg=reg,
            exact=False,
            cg_steps=steps,
            n_threads=1,
        )
        errors.append(np.abs(X[:, :k] - expected).max())
    assert errors[0] > errors[1] > 1e-3 > 1e-9 > errors[2]


def test_reference_cg_one_step_by_hand():
    """One CG step from x0 is the exact line search along the residual."""
    R = counts(n_users=4, n_items=6, density=0.5, empty_user=False, empty_item=False)
    k, alpha, reg = 3, 1.0, 0.2
    Y = factors(R.shape[1], k, np.float64, 3)
    X = factors(R.shape[0], k, np.float64, 4)
    x0 = X[:, :k].copy()
    _reference.als_half_step(
        **side(R, alpha, np.float64), X=X, Y=Y, n_factors=k, reg=reg, exact=False, cg_steps=1, n_threads=1
    )
    D, Yk = R.toarray(), Y[:, :k]
    for u in range(R.shape[0]):
        C = np.diag(1.0 + alpha * D[u])
        A = Yk.T @ C @ Yk + reg * np.eye(k)
        r = Yk.T @ C @ (D[u] > 0) - A @ x0[u]
        np.testing.assert_allclose(X[u, :k], x0[u] + (r @ r) / (r @ A @ r) * r, rtol=1e-12)


# -- every backend against the reference ------------------------------------------------


@pytest.mark.parametrize("backend, level", compiled_variants())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("k", [3, 16, 20, 150])
def test_kernel_matches_reference(backend, level, dtype, exact, k):
    R = counts(n_users=40, n_items=300 if k == 150 else 25, density=0.3, seed=k)
    alpha, reg = 3.0, 0.05
    Y = factors(R.shape[1], k, dtype, 5)
    X = factors(R.shape[0], k, dtype, 6)
    expected = X.copy()
    args = dict(**side(R, alpha, dtype), Y=Y, n_factors=k, reg=reg, exact=exact, cg_steps=3)
    _reference.als_half_step(**args, X=expected, n_threads=1)
    with variant(level), _runtime.kernel_threads(backend, 2):
        kernel(backend)(**args, X=X, n_threads=2)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    scale = np.abs(expected).max()
    np.testing.assert_allclose(X, expected, rtol=0, atol=tol * scale)
    assert not X[:, k:].any()  # padding stays zero


@pytest.mark.parametrize("backend", COMPILED)
def test_kernel_empty_sides(backend):
    """No rows to solve, and rows against a side with no entries at all."""
    k = 4
    Y = factors(3, k, np.float64, 1)
    X = aligned_zeros(0, Y.shape[1], np.float64)
    empty = dict(indptr=np.zeros(1, np.int64), indices=np.zeros(0, np.int32), weights=np.zeros(0))
    kernel(backend)(**empty, X=X, Y=Y, n_factors=k, reg=0.1, exact=False, cg_steps=3, n_threads=1)
    X = factors(2, k, np.float64, 2)
    rows = dict(indptr=np.zeros(3, np.int64), indices=np.zeros(0, np.int32), weights=np.zeros(0))
    expected = X.copy()
    _reference.als_half_step(
        **rows, X=expected, Y=Y, n_factors=k, reg=0.1, exact=False, cg_steps=3, n_threads=1
    )
    kernel(backend)(**rows, X=X, Y=Y, n_factors=k, reg=0.1, exact=False, cg_steps=3, n_threads=1)
    np.testing.assert_allclose(X, expected, atol=1e-12)


@pytest.mark.parametrize("backend", [b for b in COMPILED if b == "cpp"])
def test_cpp_kernel_rejects_bad_arrays(backend):
    k = 4
    Y = factors(5, k, np.float32, 1)
    X = factors(2, k, np.float32, 2)
    good = dict(
        indptr=np.array([0, 1, 2]), indices=np.array([0, 4], np.int32), weights=np.ones(2, np.float32)
    )
    call = _runtime._cpp.als_half_step
    with pytest.raises(ValueError, match="indices: index out of range"):
        call(
            **{**good, "indices": np.array([0, 5], np.int32)},
            X=X,
            Y=Y,
            n_factors=k,
            reg=0.1,
            exact=False,
            cg_steps=1,
            n_threads=1,
        )
    with pytest.raises(ValueError, match="indptr must be non-decreasing"):
        call(
            **{**good, "indptr": np.array([0, 2, 1])},
            X=X,
            Y=Y,
            n_factors=k,
            reg=0.1,
            exact=False,
            cg_steps=1,
            n_threads=1,
        )
    with pytest.raises(ValueError, match="X: expected 2-D rows padded"):
        call(
            **good,
            X=np.zeros((2, 4), np.float32),
            Y=np.zeros((5, 4), np.float32),
            n_factors=k,
            reg=0.1,
            exact=False,
            cg_steps=1,
            n_threads=1,
        )
    with pytest.raises(ValueError, match="Y: expected shape"):
        call(
            **good,
            X=X,
            Y=np.zeros((5, 32), np.float32),
            n_factors=k,
            reg=0.1,
            exact=False,
            cg_steps=1,
            n_threads=1,
        )


# -- the estimator ------------------------------------------------------------------------


def fit(backend, dtype=np.float64, **kw):
    params = dict(
        n_factors=6,
        n_iterations=3,
        reg=0.05,
        alpha=2.0,
        confidence="linear",
        random_state=3,
        dtype=dtype,
        n_threads=2,
    )
    params.update(kw)
    return ALS(backend=backend, **params).fit(counts())


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fit_matches_reference(backend, dtype, solver):
    expected = fit("numpy", dtype, solver=solver)
    model = fit(backend, dtype, solver=solver)
    tol = 1e-3 if dtype == np.float32 else 1e-9
    for got, want in (
        (model.user_factors_, expected.user_factors_),
        (model.item_factors_, expected.item_factors_),
    ):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
    # empty user and empty item: the exact solve makes them 0, CG shrinks them towards 0
    assert np.abs(model.user_factors_[3]).max() <= np.abs(model.user_factors_).max() * 0.01
    assert np.abs(model.item_factors_[5]).max() <= np.abs(model.item_factors_).max() * 0.01


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_same_seed_bit_identical_for_any_thread_count(backend, solver):
    one = fit(backend, np.float32, n_threads=1, n_factors=20, solver=solver)
    again = fit(backend, np.float32, n_threads=1, n_factors=20, solver=solver)
    two = fit(backend, np.float32, n_threads=2, n_factors=20, solver=solver)
    for model in (again, two):
        assert np.array_equal(model.user_factors_, one.user_factors_)
        assert np.array_equal(model.item_factors_, one.item_factors_)
    other_seed = fit(backend, np.float32, n_threads=1, n_factors=20, random_state=4, solver=solver)
    assert not np.array_equal(other_seed.user_factors_, one.user_factors_)


def test_duplicates_are_summed_and_raw_ids_kept():
    R = counts().tocoo()
    users, items, values = R.row, R.col, R.data
    # every value split into two rows of the triples (duplicates), ids as strings
    split = np.concatenate([values * 0.25, values * 0.75])
    u = np.concatenate([users, users]).astype(str)
    i = np.concatenate([items, items]).astype(str)
    model = ALS(4, 2, random_state=0, dtype=np.float64, backend="numpy").fit((u, i, split))
    whole = ALS(4, 2, random_state=0, dtype=np.float64, backend="numpy").fit(
        (users.astype(str), items.astype(str), values)
    )
    assert np.array_equal(model.user_ids_, whole.user_ids_)
    np.testing.assert_allclose(model.user_factors_, whole.user_factors_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_loss_decreases(backend):
    model = fit(backend, np.float64, solver="cholesky", n_iterations=6, verbose=True)
    loss = np.array(model.history_["loss"])
    assert loss.size == 6 and len(model.history_["seconds"]) == 6
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])  # every exact half-step lowers the objective
    cg = fit(backend, np.float64, solver="cg", n_iterations=6, verbose=True)
    assert cg.history_["loss"][-1] < cg.history_["loss"][0]


def test_loss_is_the_objective():
    model = fit("numpy", np.float64, n_iterations=1, verbose=True)
    D = counts().toarray()
    X, Y = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    C, P = 1.0 + 2.0 * D, (D > 0).astype(np.float64)
    expected = np.sum(C * (P - X @ Y.T) ** 2) + 0.05 * (np.sum(X**2) + np.sum(Y**2))
    assert model.history_["loss"][0] == pytest.approx(expected, rel=1e-10)


def test_log_confidence():
    R = counts()
    np.testing.assert_allclose(confidence_minus_one(R.data, 2.0, "log"), 2.0 * np.log1p(R.data))
    k = 4
    model = ALS(
        k,
        1,
        reg=0.1,
        alpha=2.0,
        confidence="log",
        solver="cholesky",
        random_state=0,
        dtype=np.float64,
        backend="numpy",
    ).fit(R)
    # the item half-step ran last: the items are the exact solve given the users
    D = np.log1p(R.toarray())  # dense_solution's c = 1 + alpha * D
    expected = dense_solution(D.T, model.user_factors_, 2.0, 0.1)
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_user_items_and_fold_in_are_the_exact_solve(backend):
    model = fit(backend, np.float64)
    R = counts()
    row = R[7].toarray().ravel()
    expected = dense_solution(row[None, :], model.item_factors_, 2.0, 0.05)[0]
    scores = model.score_items(7, user_items=sp.csr_matrix(row))
    np.testing.assert_allclose(scores, expected @ model.item_factors_.T, rtol=1e-9, atol=1e-12)
    items = np.flatnonzero(row)
    model.fold_in("new", items, row[items])
    np.testing.assert_allclose(model.user_factors_[-1], expected, rtol=1e-9, atol=1e-12)
    model.fold_in("ones", [0, 2])
    ones = np.zeros_like(row)
    ones[[0, 2]] = 1.0
    np.testing.assert_allclose(
        model.user_factors_[-1], dense_solution(ones[None, :], model.item_factors_, 2.0, 0.05)[0], rtol=1e-9
    )


def test_save_load_pickle_clone(tmp_path):
    model = fit("numpy", np.float32, confidence="log", solver="cholesky")
    path = tmp_path / "als.npz"
    model.save(path)
    loaded = ALS.load(path)
    # backend and n_threads belong to the machine, not to the file
    assert loaded.get_params() == {
        **model.get_params(),
        "dtype": "float32",
        "backend": "auto",
        "n_threads": None,
    }
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)
    np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
    assert loaded.seed_ == model.seed_
    np.testing.assert_array_equal(loaded.recommend([0, 1], 5)[0], model.recommend([0, 1], 5)[0])
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.recommend([0, 1], 5)[0], model.recommend([0, 1], 5)[0])
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "_P")
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    assert ALS.load(buffer, backend="numpy").backend == "numpy"


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_factors": 0}, ValueError, "n_factors must be >= 1"),
        ({"n_iterations": 0}, ValueError, "n_iterations must be >= 1"),
        ({"alpha": 0.0}, ValueError, "alpha must be > 0"),
        ({"alpha": -1.0}, ValueError, "alpha must be > 0"),
        ({"reg": -0.1}, ValueError, "reg must be >= 0"),
        ({"cg_steps": 0}, ValueError, "cg_steps must be >= 1"),
        ({"confidence": "square"}, ValueError, "confidence='square' is not one of 'linear', 'log'"),
        ({"solver": "lu"}, ValueError, "solver='lu' is not one of 'cg', 'cholesky'"),
        ({"n_factors": 2.5}, TypeError, "n_factors must be an integer"),
        ({"random_state": "x"}, TypeError, "random_state must be None"),
    ],
)
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        ALS(**params).fit(counts())


def test_bad_values():
    R = counts()
    negative = R.copy()
    negative.data[2] = -1.0
    before = negative.copy()
    with pytest.raises(ValueError, match="negative values"):
        ALS(4, 1).fit(negative)
    assert (negative != before).nnz == 0  # input unchanged
    nan = R.copy()
    nan.data[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ALS(4, 1).fit(nan)
    with pytest.raises(ValueError, match="overflow float32"):
        ALS(4, 1, alpha=1e38).fit(R * 1e3)
    model = ALS(4, 1, random_state=0).fit(R)
    with pytest.raises(ValueError, match="negative values"):
        model.fold_in("u", [0, 1], [1.0, -2.0])
    with pytest.raises(ValueError, match="same length"):
        model.fold_in("u", [0, 1], [1.0])
    singular = ALS(30, 1, reg=0.0, solver="cholesky", random_state=0, backend="numpy", dtype=np.float64)
    with pytest.raises(ValueError, match="singular.*use reg > 0"):
        singular.fit(R)  # 30 factors, 20 items: Y^T Y has rank 20
