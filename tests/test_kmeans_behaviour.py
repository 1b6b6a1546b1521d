"""KMeans: behaviour pinned against independent computations on small dense data.

Every expected value is computed here with numpy (brute-force distances,
weighted means, and Lloyd's iterations with the documented relocation of
empty clusters), never read back from the fitted model.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastrec
from fastrec import _runtime
from fastrec.cluster import KMeans


def sqdist(X, C):
    X, C = np.asarray(X, dtype=np.float64), np.asarray(C, dtype=np.float64)
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)


def numpy_lloyd(X, w, C, max_iter, tol=0.0):
    """Lloyd's iterations as KMeans documents them, in float64.

    An empty cluster takes the row farthest from its centre (decreasing distance, ties to the
    smaller row, one row per empty cluster in cluster order); that row leaves its old cluster's
    weighted mean unless it would empty it.  Stops when no label changes or the total squared
    centre shift is at most ``tol``.  Returns (centers, labels, inertia, n_iter).
    """
    X, w, C = np.asarray(X, np.float64), np.asarray(w, np.float64), np.array(C, np.float64)
    previous, n_iter = None, 0
    for it in range(max_iter):
        D = sqdist(X, C)
        labels = D.argmin(axis=1)
        near = D[np.arange(len(X)), labels]
        k = C.shape[0]
        sums = np.array([(w[labels == j, None] * X[labels == j]).sum(axis=0) for j in range(k)])
        counts = np.array([w[labels == j].sum() for j in range(k)])
        new = np.zeros_like(C)
        for j in range(k):
            if counts[j] > 0:
                new[j] = sums[j] / counts[j]
        empty = [j for j in range(k) if counts[j] <= 0]
        far = sorted(range(len(X)), key=lambda i: (-near[i], i))[: len(empty)]
        for j, i in zip(empty, far):
            old = labels[i]
            if w[i] > 0 and counts[old] > w[i]:
                sums[old] -= w[i] * X[i]
                counts[old] -= w[i]
                new[old] = sums[old] / counts[old]
            new[j] = X[i]
        shift = ((new - C) ** 2).sum()
        C, n_iter = new, it + 1
        if (previous is not None and np.array_equal(labels, previous)) or shift <= tol:
            break
        previous = labels
    D = sqdist(X, C)
    labels = D.argmin(axis=1)
    return C, labels, float((w * D[np.arange(len(X)), labels]).sum()), n_iter


def test_fit_inertia_and_labels_match_brute_force():
    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    X = np.concatenate([rng.normal(c, 0.3, size=(10, 2)) for c in centres])
    truth = np.repeat(np.arange(3), 10)
    km = KMeans(3, n_init=2, random_state=0).fit(X)
    # well-separated blobs: the partition is the generating one, and each centre is its mean
    for j in range(3):
        members = km.labels_ == km.labels_[10 * j]
        np.testing.assert_array_equal(members, truth == j)
        np.testing.assert_allclose(
            km.cluster_centers_[km.labels_[10 * j]], X[truth == j].mean(axis=0), atol=1e-12
        )
    means = np.array([X[truth == j].mean(axis=0) for j in range(3)])
    np.testing.assert_allclose(km.inertia_, sqdist(X, means).min(axis=1).sum(), rtol=1e-12)


def test_empty_clusters_take_the_farthest_rows_with_fractional_weights():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    w = np.array([1.0, 1.0, 1.0, 0.5])
    init = np.array([[1.0], [100.0], [200.0]])  # clusters 1 and 2 start empty
    for max_iter in (1, 2, 10):
        want_c, want_l, want_inertia, want_iter = numpy_lloyd(X, w, init, max_iter)
        km = KMeans(3, init=init, n_init=1, max_iter=max_iter, tol=0.0).fit(X, sample_weight=w)
        np.testing.assert_allclose(km.cluster_centers_, want_c, rtol=1e-12)
        np.testing.assert_array_equal(km.labels_, want_l)
        assert km.inertia_ == pytest.approx(want_inertia, rel=1e-12)
        assert km.n_iter_ == want_iter


def numpy_kmeans_plusplus(X, k, seed):
    """Greedy k-means++ as KMeans documents it, drawing from ``np.random.default_rng(seed)``.

    First centre: a row drawn with probability proportional to its weight (1 here); every
    further centre: the best of ``2 + int(ln k)`` candidates drawn with probability
    proportional to D(x)^2, the one leaving the smallest potential.
    """
    rng = np.random.default_rng(seed)
    n = len(X)
    trials = 2 + int(np.log(k))
    weight = np.ones(n)
    first = min(int(np.searchsorted(np.cumsum(weight), rng.random(1)[0] * n)), n - 1)
    centers = [X[first]]
    closest = sqdist(X, X[first : first + 1])[:, 0]
    for _ in range(1, k):
        potential = closest.sum()
        picks = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * potential), n - 1)
        dist = np.minimum(sqdist(X, X[picks]), closest[:, None])
        best = int(np.argmin(dist.sum(axis=0)))
        closest = dist[:, best]
        centers.append(X[picks[best]])
    return np.array(centers)


@pytest.mark.parametrize("k", [3, 8])
def test_kmeans_plusplus_seeding_follows_the_documented_draws(k):
    # integer coordinates: every squared distance is exact, so the draws pick the same rows
    X = np.random.default_rng(3).integers(-20, 21, size=(60, 2)).astype(np.float64)
    start = numpy_kmeans_plusplus(X, k, seed=11)
    want_c, want_l, want_inertia, _ = numpy_lloyd(X, np.ones(len(X)), start, max_iter=1)
    km = KMeans(k, max_iter=1, tol=0.0, random_state=11).fit(X)
    np.testing.assert_allclose(km.cluster_centers_, want_c, rtol=1e-12)
    np.testing.assert_array_equal(km.labels_, want_l)
    assert km.inertia_ == pytest.approx(want_inertia, rel=1e-12)


def test_predict_near_small_rows_with_huge_centres_is_not_a_tie():
    # centres near 1e200 and rows near 1: the squared distances only fit float64 once scaled
    centres = np.array([[2e200], [-1e200]])
    km = KMeans(2, init=centres, n_init=1, max_iter=1).fit(centres)
    X = np.array([[0.0], [1.0], [-3.0]])
    want = np.argmin(sqdist(X / 1e200, centres / 1e200), axis=1)
    np.testing.assert_array_equal(want, [1, 1, 1])
    np.testing.assert_array_equal(km.predict(X), want)
    np.testing.assert_allclose(
        km.transform(X) / 1e200, np.sqrt(sqdist(X / 1e200, centres / 1e200)), rtol=1e-12
    )


def test_overflowing_inertia_and_bad_arguments_name_the_fix():
    X = np.array([[1e200], [-1e200], [3e200]])
    fix = (
        "by a constant such as 2.0**-100 or 2.0**100 so that its values lie nearer 1, "
        "and scale the results back."
    )
    with pytest.raises(ValueError, match=re.escape(fix)):
        KMeans(1, n_init=1).fit(X)
    with pytest.raises(ValueError, match="^n_init must be >= 1"):
        KMeans(1, n_init=0).fit(np.ones((3, 1)))
    km = KMeans(1, random_state=0).fit(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match="^X must be 2-D"):
        km.predict(np.arange(2.0))
    with pytest.raises(ValueError, match="^X contains NaN"):
        km.predict(np.array([[np.nan, 1.0]]))


def test_a_model_pickled_with_seed_reads_it_as_random_state():
    import pickle

    X = np.random.default_rng(0).normal(size=(20, 2))
    km = KMeans(2, random_state=5).fit(X)
    old = pickle.loads(pickle.dumps(km))
    state = dict(old.__dict__)
    state["seed"] = state.pop("random_state")  # the attribute's name before random_state
    restored = KMeans.__new__(KMeans)
    restored.__setstate__(state)
    assert restored.random_state == 5 and "seed" not in restored.__dict__
    refit = restored.fit(X)
    want = KMeans(2, random_state=5).fit(X)
    np.testing.assert_array_equal(refit.cluster_centers_, want.cluster_centers_)


def test_verbose_reports_a_converged_run_in_the_units_of_x(capsys):
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    init = np.array([[0.0], [1.0]])
    _, _, inertia, n_iter = numpy_lloyd(X, np.ones(len(X)), init, max_iter=50)
    assert n_iter < 50  # the labels settle long before max_iter
    KMeans(2, init=init, n_init=1, max_iter=50, tol=0.0, verbose=True).fit(X)
    line = f"KMeans run 1 of 1: inertia {inertia:.6g} after {n_iter} iteration(s), converged."
    assert capsys.readouterr().out.strip() == line


def test_float32_rows_are_measured_in_the_dtype_of_float64_centres():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 10.0], [10.0, 11.0]])
    init = np.array([[0.0, 0.0], [10.0, 10.0]])
    km = KMeans(2, init=init, n_init=1).fit(X)
    means = np.array([[0.0, 0.5], [10.0, 10.5]])  # the two pairs, by construction
    rows = np.array([[1.0, 2.0], [9.0, 9.5]], dtype=np.float32)
    out = km.transform(rows)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, np.sqrt(sqdist(rows, means)), rtol=1e-12)
    np.testing.assert_array_equal(km.predict(rows), [0, 1])


def test_sparse_rows_are_measured_like_dense_ones():
    import scipy.sparse as sp

    X = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [5.0, 5.0, 0.0], [5.0, 6.0, 0.0]])
    init = np.array([[0.0, 0.0, 1.0], [5.0, 5.0, 0.0]])
    km = KMeans(2, init=init, n_init=1).fit(sp.csr_matrix(X))
    means = np.array([[0.0, 0.5, 1.0], [5.0, 5.5, 0.0]])  # the two pairs, by construction
    rows = np.array([[1.0, 2.0, 0.0], [4.0, 4.0, 3.0]])
    np.testing.assert_allclose(km.transform(sp.csr_matrix(rows)), np.sqrt(sqdist(rows, means)), rtol=1e-12)


@pytest.mark.parametrize("backend", fastrec.available_backends())
def test_fit_runs_the_kernels_of_the_backend_asked_for(backend, monkeypatch):
    """backend= picks the kernels that run, not only the label a result carries."""
    module = _runtime.kernel_module(backend, "cluster")
    calls = []
    original = module.kmeans_assign_dense

    def counted(**kwargs):
        calls.append(kwargs["x"].shape)
        return original(**kwargs)

    monkeypatch.setattr(module, "kmeans_assign_dense", counted)
    X = np.random.default_rng(3).normal(size=(120, 4)).astype(np.float32)
    KMeans(n_clusters=3, n_init=1, max_iter=3, random_state=0, backend=backend).fit(X)
    assert calls and all(shape == X.shape for shape in calls)
