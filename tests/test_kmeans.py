"""KMeans: every backend and SIMD level against the numpy reference, thread
independence, scikit-learn agreement, seeding quality, API and bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec import _runtime
from fastrec.cluster import _reference
from fastrec.datasets import make_user_embeddings

BACKENDS = list(_runtime.available_backends())
DTYPES = [np.float32, np.float64]


def simd_levels():
    if _runtime._cpp is None:
        return []
    return list(_runtime._cpp.available_simd_levels())


@pytest.fixture
def restore_simd():
    if _runtime._cpp is None:
        yield
        return
    before = _runtime._cpp.simd_level()
    yield
    _runtime._cpp.set_simd_level(before)


def blobs(n=5003, d=13, segments=9, dtype=np.float32, seed=0):
    # Odd n and d exercise the partial micro-tiles and panel padding; n > 2048
    # gives several row chunks.
    X, _ = make_user_embeddings(n, d, n_segments=segments, cluster_std=1.0, seed=seed, dtype=dtype)
    return X


def first_rows(X, k, seed=0):
    return np.array(X[np.random.default_rng(seed).choice(X.shape[0], k, replace=False)])


def fit(X, k, init, backend, **kw):
    kw.setdefault("max_iter", 30)
    kw.setdefault("tol", 0.0)
    return fastrec.KMeans(k, init=init, backend=backend, **kw).fit(X)


# -- kernels against brute force -------------------------------------------------


def brute_force(X, w, C):
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    D = ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(-1)
    labels = D.argmin(1)
    k, d = C.shape
    sums = np.zeros((k, d))
    np.add.at(sums, labels, w.astype(np.float64)[:, None] * X64)
    counts = np.bincount(labels, weights=w.astype(np.float64), minlength=k)
    return labels, D.min(1), sums, counts, float(w.astype(np.float64) @ D.min(1))


def call_kernel(backend, X, w, C, sparse):
    mod = fastrec.cluster.kmeans._kernels(backend)
    n, d = X.shape
    k = C.shape[0]
    xs = np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64)).astype(X.dtype)
    labels, dist = np.empty(n, np.int32), np.empty(n, X.dtype)
    sums, counts, inertia = np.empty((k, d)), np.empty(k), np.empty(1)
    if sparse:
        A = sp.csr_matrix(X)
        mod.kmeans_assign_csr(
            A.indptr.astype(np.int64),
            A.indices.astype(np.int32),
            A.data,
            d,
            xs,
            w,
            C,
            labels,
            dist,
            sums,
            counts,
            inertia,
            True,
            2,
        )
    else:
        mod.kmeans_assign_dense(X, xs, w, C, labels, dist, sums, counts, inertia, True, 2)
    return labels, dist, sums, counts, inertia[0]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_kernel_matches_brute_force(backend, dtype, sparse, restore_simd):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2111, 11)).astype(dtype)
    X[rng.random(X.shape) < 0.3] = 0  # explicit sparsity for the CSR path
    C = first_rows(X, 53)  # 53 centres: more than one packed panel, with padding
    w = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)
    labels, mind, sums, counts, inertia = brute_force(X, w, C)
    levels = simd_levels() if backend == "cpp" else [None]
    for level in levels:
        if level is not None:
            _runtime._cpp.set_simd_level(level)
        got = call_kernel(backend, X, w, C, sparse)
        np.testing.assert_array_equal(got[0], labels, err_msg=f"level {level}")
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got[1], mind, rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(got[2], sums, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(got[3], counts, rtol=1e-12)
        assert got[4] == pytest.approx(inertia, rel=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_kernel_tile_edges_and_exact_ties(backend, dtype):
    # Small integers make every distance exact, so the many exact ties must go
    # to the smaller centre; k and d straddle the SIMD widths and panel sizes
    # (8/16 lanes, panels of 24/48 centres) and n leaves partial micro-tiles.
    rng = np.random.default_rng(7)
    for k, d in [(1, 1), (15, 17), (16, 16), (24, 63), (47, 64), (48, 65), (49, 7), (97, 33)]:
        X = rng.integers(-3, 4, (2051, d)).astype(dtype)
        C = rng.integers(-3, 4, (k, d)).astype(dtype)
        C[k // 2 :: 5] = C[0]  # duplicates in other lanes and panels than centre 0
        w = rng.integers(1, 4, X.shape[0]).astype(dtype)
        labels, mind, sums, counts, inertia = brute_force(X, w, C)
        got = call_kernel(backend, X, w, C, sparse=False)
        np.testing.assert_array_equal(got[0], labels, err_msg=f"k={k} d={d}")
        np.testing.assert_array_equal(got[1], mind, err_msg=f"k={k} d={d}")
        np.testing.assert_allclose(got[2], sums, rtol=1e-12)
        np.testing.assert_array_equal(got[3], counts)
        assert got[4] == inertia


@pytest.mark.parametrize("backend", BACKENDS)
def test_sqdist_kernel(backend):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((37, 9)).astype(np.float32)
    for m in (3, 16, 50):
        Y = rng.standard_normal((m, 9)).astype(np.float32)
        xs = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
        out = np.empty((37, m), np.float32)
        fastrec.cluster.kmeans._kernels(backend).sqdist_dense(X, xs, Y, out, 2)
        expected = ((X[:, None, :].astype(np.float64) - Y[None].astype(np.float64)) ** 2).sum(-1)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


# -- whole fits: backends, SIMD levels, threads ------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_match_reference_from_same_init(backend, dtype, restore_simd):
    X = blobs(dtype=dtype)
    init = first_rows(X, 12)
    ref = fit(X, 12, init, "numpy")
    levels = simd_levels() if backend == "cpp" else [None]
    for level in levels:
        if level is not None:
            _runtime._cpp.set_simd_level(level)
        km = fit(X, 12, init, backend)
        np.testing.assert_array_equal(km.labels_, ref.labels_, err_msg=f"level {level}")
        assert km.n_iter_ == ref.n_iter_
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
        assert km.cluster_centers_.dtype == dtype
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_csr_input_matches_dense(backend):
    rng = np.random.default_rng(3)
    X = blobs(n=3001, d=10, segments=6)
    X[rng.random(X.shape) < 0.4] = 0
    init = first_rows(X, 6)
    dense = fit(X, 6, init, "numpy")
    km = fit(sp.csr_matrix(X), 6, init, backend)
    np.testing.assert_array_equal(km.labels_, dense.labels_)
    assert km.inertia_ == pytest.approx(dense.inertia_, rel=1e-6)
    np.testing.assert_array_equal(km.predict(sp.csr_matrix(X[:50])), dense.labels_[:50])


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_results_identical_for_1_and_2_threads(backend):
    X = blobs(n=9000, d=17, segments=20)  # 5 row chunks
    results = [fastrec.KMeans(20, random_state=4, n_threads=t, backend=backend, tol=0).fit(X) for t in (1, 2)]
    a, b = results
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_
    assert a.n_iter_ == b.n_iter_
    Xs = sp.csr_matrix(X[:3000])
    a, b = [fastrec.KMeans(8, random_state=1, n_threads=t, backend=backend).fit(Xs) for t in (1, 2)]
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_


@pytest.mark.parametrize("dtype", DTYPES)
def test_inertia_matches_sklearn_from_same_init(dtype):
    from sklearn import cluster as sklearn_cluster

    X = blobs(n=4000, d=8, segments=10, dtype=dtype)
    init = first_rows(X, 10)
    theirs = sklearn_cluster.KMeans(10, init=init, n_init=1, max_iter=50, tol=0, algorithm="lloyd").fit(X)
    for backend in BACKENDS:
        ours = fit(X, 10, init, backend, max_iter=50)
        assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-5), backend
        np.testing.assert_array_equal(ours.labels_, theirs.labels_)


def test_kmeans_plusplus_beats_random_init_on_clustered_data():
    X = blobs(n=3000, d=6, segments=25, seed=5)
    X = X * np.float32(0.5)  # tighter blobs: a poor seeding leaves merged pairs behind

    def mean_inertia(init):
        return np.mean(
            [fastrec.KMeans(25, init=init, random_state=s, max_iter=100).fit(X).inertia_ for s in range(6)]
        )

    plus, rand = mean_inertia("k-means++"), mean_inertia("random")
    assert plus < rand


def test_seed_makes_fits_reproducible_and_init_changes_with_seed():
    X = blobs(n=2000, d=5, segments=8)
    a = fastrec.KMeans(8, random_state=11).fit(X)
    b = fastrec.KMeans(8, random_state=11).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    from fastrec.cluster._checks import check_cluster_data
    from fastrec.cluster.kmeans import _Problem, kmeans_plusplus

    pb = _Problem(
        check_cluster_data(X), np.ones(len(X), np.float32), "cpp" if "cpp" in BACKENDS else "numba", 1
    )
    s1 = kmeans_plusplus(pb, 8, np.random.default_rng(1))
    s2 = kmeans_plusplus(pb, 8, np.random.default_rng(2))
    assert not np.array_equal(s1, s2)
    # every seed is a row of X
    for centre in s1:
        assert (np.abs(X - centre).sum(1) == 0).any()


# -- rules: empty clusters, convergence, weights, degenerate data ---------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_cluster_is_reseeded_deterministically(backend):
    X = blobs(n=1500, d=4, segments=4)
    init = first_rows(X, 4)
    init[3] = 1e4  # far from every row: empty after the first assignment
    a = fit(X, 4, init, backend, max_iter=5)
    b = fit(X, 4, init, backend, max_iter=5)
    assert np.bincount(a.labels_, minlength=4).min() > 0
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    ref = fit(X, 4, init, "numpy", max_iter=5)
    np.testing.assert_array_equal(a.labels_, ref.labels_)
    # the re-seeded centre started at the row farthest from its centre
    first = fit(X, 4, init, backend, max_iter=1)
    assert not np.allclose(first.cluster_centers_[3], 1e4)


def test_empty_cluster_takes_the_farthest_row():
    X = np.array([[0.0], [0.1], [0.2], [10.0]], dtype=np.float64)
    init = np.array([[0.1], [100.0]])
    km = fastrec.KMeans(2, init=init, max_iter=1, tol=0).fit(X)
    # Iteration 1: everything joins centre 0 (mean 2.575); centre 1 is empty and is
    # re-seeded with the farthest row, 10.0, which leaves cluster 0 (mean 0.1).
    np.testing.assert_allclose(km.cluster_centers_.ravel(), [0.1, 10.0])
    np.testing.assert_array_equal(km.labels_, [0, 0, 0, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_and_constant_points_give_valid_output(backend):
    X = np.ones((50, 3), dtype=np.float32)
    km = fastrec.KMeans(3, random_state=0, backend=backend).fit(X)
    assert km.inertia_ == 0.0
    assert set(km.labels_) <= {0, 1, 2}
    np.testing.assert_array_equal(km.cluster_centers_, np.ones((3, 3), np.float32))
    X2 = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]], np.float32), 20, axis=0)
    km = fastrec.KMeans(2, random_state=0, backend=backend).fit(X2)
    assert km.inertia_ == 0.0
    assert sorted(map(tuple, km.cluster_centers_.tolist())) == [(0.0, 0.0), (5.0, 5.0)]


def test_integer_sample_weight_equals_repeated_rows():
    X = blobs(n=600, d=4, segments=3, dtype=np.float64)
    w = np.random.default_rng(0).integers(1, 4, size=600)
    init = first_rows(X, 3)
    weighted = fastrec.KMeans(3, init=init, tol=0).fit(X, sample_weight=w)
    repeated = fastrec.KMeans(3, init=init, tol=0).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)


def test_convergence_rules():
    X = blobs(n=2000, d=4, segments=5)
    init = first_rows(X, 5)
    strict = fastrec.KMeans(5, init=init, tol=0, max_iter=300).fit(X)
    assert strict.n_iter_ < 300  # stopped because the labels stopped changing
    loose = fastrec.KMeans(5, init=init, tol=1e3, max_iter=300).fit(X)
    assert loose.n_iter_ == 1  # first shift is within the (huge) tolerance
    capped = fastrec.KMeans(5, init=init, tol=0, max_iter=2).fit(X)
    assert capped.n_iter_ == 2


VERBOSE_LINE = re.compile(
    r"KMeans run (\d+) of (\d+): inertia (\S+) after (\d+) iteration\(s\), "
    r"(converged|stopped at max_iter=(\d+) before converging)\."
)


def verbose_runs(out):
    """The per-run lines of verbose output, as (run, of, inertia, iterations, converged)."""
    lines = out.strip().splitlines()
    runs = []
    for line in lines:
        match = VERBOSE_LINE.fullmatch(line)
        assert match, f"unexpected verbose line {line!r}"
        run, of, inertia, n_iter, status, _ = match.groups()
        runs.append((int(run), int(of), float(inertia), int(n_iter), status == "converged"))
    return runs


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_verbose_prints_one_line_per_run(capsys, init):
    X = blobs(n=500, d=3, segments=3)
    km = fastrec.KMeans(3, init=init, n_init=3, random_state=0, verbose=True, tol=0).fit(X)
    runs = verbose_runs(capsys.readouterr().out)
    assert [r[:2] for r in runs] == [(1, 3), (2, 3), (3, 3)]
    assert all(converged for *_, converged in runs)
    # The kept run is the one of lowest inertia, printed with 6 significant digits.
    best = min(runs, key=lambda r: r[2])
    assert best[2] == pytest.approx(km.inertia_, rel=1e-5)
    assert best[3] == km.n_iter_
    # Each printed run matches a single-run fit from the same seeding.
    quiet = fastrec.KMeans(3, init=init, n_init=1, random_state=0, tol=0).fit(X)
    assert runs[0][2] == pytest.approx(quiet.inertia_, rel=1e-5)
    assert runs[0][3] == quiet.n_iter_


def test_verbose_reports_runs_that_stop_at_max_iter(capsys):
    X = blobs(n=500, d=3, segments=3)
    init = first_rows(X, 3)
    km = fastrec.KMeans(3, init=init, max_iter=1, tol=0, verbose=True).fit(X)
    (run,) = verbose_runs(capsys.readouterr().out)
    assert run == (1, 1, pytest.approx(km.inertia_, rel=1e-5), 1, False)
    assert km.n_iter_ == 1
    fastrec.KMeans(3, init=init, max_iter=1, tol=0).fit(X)
    assert capsys.readouterr().out == ""  # quiet by default


@pytest.mark.parametrize("factor", [2.0**100, 2.0**-120])
def test_verbose_inertia_is_in_the_units_of_x(capsys, factor):
    # float32 data this large or small is clustered as a rescaled copy: the printed
    # inertia must still be that of the caller's X, not of the copy.
    X = blobs(n=600, d=4, segments=3) * np.float32(factor)
    from fastrec.cluster._checks import check_cluster_data
    from fastrec.cluster.kmeans import _choose_scale

    assert not _choose_scale(check_cluster_data(X), np.ones(len(X), np.float32)).is_identity
    km = fastrec.KMeans(3, n_init=2, random_state=1, verbose=True).fit(X)
    runs = verbose_runs(capsys.readouterr().out)
    assert len(runs) == 2
    assert min(r[2] for r in runs) == pytest.approx(km.inertia_, rel=1e-5)
    unit = fastrec.KMeans(3, n_init=2, random_state=1).fit(X / np.float32(factor))
    assert km.inertia_ == pytest.approx(unit.inertia_ * factor**2, rel=1e-5)


# -- estimator API -------------------------------------------------------------------


def test_sklearn_api():
    X = blobs(n=1200, d=5, segments=4, dtype=np.float64)
    km = fastrec.KMeans(4, random_state=3)
    assert km.get_params()["n_clusters"] == 4
    assert km.set_params(n_clusters=5, tol=0.0) is km
    assert km.get_params()["n_clusters"] == 5
    labels = km.fit_predict(X)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-12)
    dist = km.transform(X[:7])
    expected = np.sqrt(((X[:7, None, :] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(dist, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(dist.argmin(1), km.labels_[:7])
    assert "n_clusters=5" in repr(km)
    with pytest.raises(ValueError, match="Invalid parameter 'k'"):
        km.set_params(k=3)


def test_sklearn_clone_and_pipeline():
    from sklearn import base, pipeline, preprocessing

    km = fastrec.KMeans(3, random_state=0, tol=0)
    clone = base.clone(km)
    assert clone.get_params() == km.get_params()
    X = blobs(n=400, d=4, segments=3, dtype=np.float64)
    pipe = pipeline.make_pipeline(preprocessing.StandardScaler(), fastrec.KMeans(3, random_state=0))
    labels = pipe.fit_predict(X)
    assert labels.shape == (400,)
    assert pipe.transform(X).shape == (400, 3)


def test_feature_names_out_and_set_output():
    import pandas as pd
    from sklearn import pipeline, preprocessing

    X = pd.DataFrame(
        blobs(n=300, d=3, segments=3, dtype=np.float64), columns=["a", "b", "c"], index=np.arange(1000, 1300)
    )
    km = fastrec.KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.get_feature_names_out(), ["kmeans0", "kmeans1", "kmeans2"])
    pipe = pipeline.make_pipeline(preprocessing.StandardScaler(), fastrec.KMeans(3, random_state=0))
    pipe.set_output(transform="pandas")
    out = pipe.fit(X).transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    np.testing.assert_array_equal(out.index, X.index)
    scaled = preprocessing.StandardScaler().fit_transform(X.to_numpy())
    plain = fastrec.KMeans(3, random_state=0).fit(scaled)
    np.testing.assert_allclose(out.to_numpy(), plain.transform(scaled), rtol=1e-12)


def test_dtypes_are_kept_and_inputs_not_modified():
    X64 = blobs(n=300, d=3, segments=3, dtype=np.float64)
    init = first_rows(X64, 3)
    X_before, init_before = X64.copy(), init.copy()
    km = fastrec.KMeans(3, init=init).fit(X64)
    assert km.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(X64, X_before)
    np.testing.assert_array_equal(init, init_before)
    assert (
        fastrec.KMeans(2, random_state=0).fit(np.arange(20).reshape(10, 2)).cluster_centers_.dtype
        == np.float32
    )
    Xs = sp.csr_matrix(X64)
    data_before = Xs.data.copy()
    fastrec.KMeans(3, random_state=0).fit(Xs)
    np.testing.assert_array_equal(Xs.data, data_before)


def test_n_init_keeps_the_best_run():
    X = blobs(n=1500, d=4, segments=12, seed=2)
    singles = [fastrec.KMeans(12, init="random", random_state=s).fit(X).inertia_ for s in range(1)]
    best = fastrec.KMeans(12, init="random", n_init=4, random_state=0).fit(X)
    assert best.inertia_ <= singles[0] + 1e-6


def test_clone_gives_an_unfitted_copy_with_equal_params():
    from sklearn.base import clone

    init = first_rows(blobs(n=300, d=4, segments=3), 3)
    rs = np.random.RandomState(4)
    km = fastrec.KMeans(
        3,
        init=init,
        n_init=1,
        max_iter=7,
        tol=1e-3,
        random_state=rs,
        n_threads=1,
        backend="numpy",
        verbose=False,
    )
    km.fit(blobs(n=300, d=4, segments=3))
    copy = clone(km)
    assert not hasattr(copy, "cluster_centers_") and not hasattr(copy, "n_features_in_")
    params, original = copy.get_params(), km.get_params()
    assert params.keys() == original.keys()
    np.testing.assert_array_equal(params.pop("init"), original.pop("init"))
    copied_rs, original_rs = params.pop("random_state"), original.pop("random_state")
    assert params == original
    # clone deep-copies a RandomState: same state, not the same object
    assert copied_rs is not original_rs
    np.testing.assert_array_equal(copied_rs.get_state()[1], original_rs.get_state()[1])
    plain = fastrec.KMeans(3, random_state=0, tol=0.0).fit(blobs(n=300, d=4, segments=3))
    assert repr(clone(plain)) == repr(plain) == "KMeans(n_clusters=3, random_state=0, tol=0.0)"


def test_grid_search_over_n_clusters():
    from sklearn.model_selection import GridSearchCV, KFold

    X = blobs(n=600, d=4, segments=4, dtype=np.float64, seed=3)
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(fastrec.KMeans(random_state=0, n_init=2), {"n_clusters": [2, 3, 4]}, cv=cv).fit(X)
    # The score is minus the held-out inertia: recompute it for every candidate and fold.
    for i, k in enumerate([2, 3, 4]):
        expected = [
            fastrec.KMeans(k, random_state=0, n_init=2).fit(X[train]).score(X[test])
            for train, test in cv.split(X)
        ]
        assert search.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(expected), rel=1e-12)
    # more clusters never raise the held-out inertia of four blobs
    assert search.best_params_ == {"n_clusters": 4}
    refit = fastrec.KMeans(4, random_state=0, n_init=2).fit(X)
    np.testing.assert_array_equal(search.best_estimator_.cluster_centers_, refit.cluster_centers_)
    np.testing.assert_array_equal(search.predict(X), refit.labels_)


def test_random_state_int_seeds_the_generator_as_before():
    # An int seeds np.random.default_rng directly, as the former ``seed`` did: the starting
    # centres of init="random" are the rows default_rng(seed) picks.
    X = blobs(n=800, d=5, segments=6, dtype=np.float64)
    from fastrec.cluster._checks import check_cluster_data
    from fastrec.cluster.kmeans import _Problem, kmeans_plusplus

    for seed in (0, 7, 2**40):
        rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], 6, replace=False))
        got = fastrec.KMeans(6, init="random", random_state=seed, max_iter=2, tol=0).fit(X)
        want = fastrec.KMeans(6, init=X[rows], max_iter=2, tol=0).fit(X)
        np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)
        pb = _Problem(check_cluster_data(X), np.ones(len(X)), "numpy", 1)
        start = kmeans_plusplus(pb, 6, np.random.default_rng(seed))
        got = fastrec.KMeans(6, random_state=seed, max_iter=2, tol=0, backend="numpy").fit(X)
        want = fastrec.KMeans(6, init=start, max_iter=2, tol=0, backend="numpy").fit(X)
        np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_state_int_randomstate_and_generator_are_deterministic(backend):
    X = blobs(n=1000, d=4, segments=8, dtype=np.float64)

    def fit(random_state):
        return fastrec.KMeans(8, n_init=2, random_state=random_state, backend=backend).fit(X)

    def same(a, b):
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        assert a.inertia_ == b.inertia_

    same(fit(5), fit(5))
    same(fit(np.int64(5)), fit(5))
    # the same state gives the same fit; the instance is stored as given and advanced
    same(fit(np.random.RandomState(5)), fit(np.random.RandomState(5)))
    same(fit(np.random.default_rng(5)), fit(np.random.default_rng(5)))
    # and the fit is that of the int it draws
    bound = np.iinfo(np.int64).max
    same(fit(np.random.RandomState(5)), fit(int(np.random.RandomState(5).randint(0, bound, dtype=np.int64))))
    same(fit(np.random.default_rng(5)), fit(int(np.random.default_rng(5).integers(0, bound))))
    for state in (np.random.RandomState(5), np.random.default_rng(5)):
        km = fastrec.KMeans(8, random_state=state, backend=backend)
        before = repr(state.bit_generator.state if hasattr(state, "bit_generator") else state.get_state())
        km.fit(X)
        after = repr(state.bit_generator.state if hasattr(state, "bit_generator") else state.get_state())
        assert km.random_state is state
        assert before != after  # successive fits draw afresh, as in scikit-learn


def test_bad_random_state_raises_clear_errors():
    X = blobs(n=100, d=3, segments=2)
    for bad in ("0", 1.5, True, [1, 2], np.random.SeedSequence(0)):
        with pytest.raises(
            TypeError,
            match="random_state must be None, a non-negative int, a numpy RandomState or a numpy Generator",
        ):
            fastrec.KMeans(2, random_state=bad).fit(X)
    with pytest.raises(ValueError, match="negative int -1. Pass a seed >= 0"):
        fastrec.KMeans(2, random_state=-1).fit(X)
    with pytest.raises(TypeError, match="unexpected keyword argument 'seed'"):
        fastrec.KMeans(2, seed=0)


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_unfitted_model_raises_not_fitted_error(method):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    X = blobs(n=50, d=3, segments=2)
    km = fastrec.KMeans(2)
    with pytest.raises(NotFittedError, match=r"This KMeans is not fitted yet; call fit\(X\) first"):
        getattr(km, method)(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(km)
    assert fastrec.NotFittedError is NotFittedError
    km.fit(X)
    check_is_fitted(km)
    getattr(km, method)(X)


def test_n_features_in_and_feature_names_in():
    import pandas as pd

    X = blobs(n=200, d=3, segments=2, dtype=np.float64)
    km = fastrec.KMeans(2, random_state=0).fit(X)
    assert km.n_features_in_ == 3
    assert not hasattr(km, "feature_names_in_")
    frame = pd.DataFrame(X, columns=["age", "spend", "visits"])
    named = fastrec.KMeans(2, random_state=0).fit(frame)
    np.testing.assert_array_equal(named.feature_names_in_, ["age", "spend", "visits"])
    np.testing.assert_array_equal(named.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(named.predict(frame), km.labels_)
    with pytest.raises(ValueError, match="feature names should match"):
        named.predict(frame.rename(columns={"age": "years"}))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        named.predict(X)
    # a refit on an array forgets the names
    named.fit(X)
    assert not hasattr(named, "feature_names_in_")
    # a failed refit leaves the fitted model whole
    with pytest.raises(ValueError, match="X contains NaN"):
        named.fit(np.full((10, 5), np.nan))
    assert named.n_features_in_ == 3 and named.cluster_centers_.shape == (2, 3)


def test_input_validation_messages():
    X = blobs(n=60, d=3, segments=2, dtype=np.float64)
    km = fastrec.KMeans(2, random_state=0)
    with pytest.raises(ValueError, match="Complex data not supported: X has dtype complex128"):
        km.fit(X + 1j)
    with pytest.raises(ValueError, match="Reshape your data"):
        km.fit(X[:, 0])
    with pytest.raises(ValueError, match=r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1"):
        km.fit(X[:0])
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(60, 0\)\) while a minimum"):
        km.fit(X[:, :0])
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        km.fit(sp.csr_matrix((60, 0)))
    # object arrays of numbers (a pandas frame of mixed columns) compute in float64
    as_object = km.fit(X.astype(object)).cluster_centers_
    np.testing.assert_array_equal(as_object, fastrec.KMeans(2, random_state=0).fit(X).cluster_centers_)
    bad = X.astype(object)
    bad[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="X holds values that are not numbers"):
        km.fit(bad)
    km.fit(X)
    with pytest.raises(ValueError, match="Reshape your data"):
        km.predict(X[0])
    with pytest.raises(ValueError, match="Complex data not supported"):
        km.transform(X + 1j)
    with pytest.raises(
        ValueError,
        match="X has 1 features, but KMeans is expecting 3 features as "
        "input. Pass data with the same columns as in fit",
    ):
        km.score(X[:, :1])
    with pytest.raises(ValueError, match="X contains infinite"):
        km.predict(np.full((2, 3), np.inf))


# -- bad input -------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    X = blobs(n=100, d=3, segments=2)
    nan = X.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fastrec.KMeans(2).fit(nan)
    inf = X.copy()
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="X contains infinite"):
        fastrec.KMeans(2).fit(inf)
    with pytest.raises(ValueError, match="n_clusters must be >= 1"):
        fastrec.KMeans(0).fit(X)
    with pytest.raises(ValueError, match="n_clusters=101 is greater than the number of samples"):
        fastrec.KMeans(101).fit(X)
    with pytest.raises(ValueError, match="X must be 2-D"):
        fastrec.KMeans(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="X must be 2-D"):
        fastrec.KMeans(2).fit(X[None])
    with pytest.raises(ValueError, match=r"init has shape \(3, 3\), but it must be"):
        fastrec.KMeans(2, init=X[:3]).fit(X)
    with pytest.raises(ValueError, match="init contains NaN"):
        fastrec.KMeans(2, init=np.full((2, 3), np.nan)).fit(X)
    with pytest.raises(ValueError, match="init='kmeans' is not one of"):
        fastrec.KMeans(2, init="kmeans").fit(X)
    w = np.ones(100)
    w[5] = -1
    with pytest.raises(ValueError, match="sample_weight contains negative values"):
        fastrec.KMeans(2).fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        fastrec.KMeans(2).fit(X, sample_weight=np.ones(99))
    km = fastrec.KMeans(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 4 features, but KMeans is expecting 3 features"):
        km.predict(np.ones((5, 4)))
    with pytest.raises(ValueError, match="X has 2 features"):
        km.transform(np.ones((5, 2)))
    with pytest.raises(fastrec.NotFittedError, match="not fitted yet"):
        fastrec.KMeans(2).predict(X)
    with pytest.raises(ValueError, match="backend='gpu' is not one of"):
        fastrec.KMeans(2, backend="gpu").fit(X)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        fastrec.KMeans(2, tol=-1).fit(X)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        fastrec.KMeans(2, max_iter=0).fit(X)
    with pytest.raises(TypeError, match="verbose must be True or False"):
        fastrec.KMeans(2, verbose="yes").fit(X)
    with pytest.raises(ValueError, match="X contains NaN"):
        fastrec.KMeans(2).fit(sp.csr_matrix(nan))
    with pytest.warns(RuntimeWarning, match="n_init=3 is ignored"):
        fastrec.KMeans(2, init=X[:2], n_init=3).fit(X)


def test_reference_kernel_signature_matches_cpp_and_numba():
    import inspect

    from fastrec.cluster import _numba

    for name in ("kmeans_assign_dense", "kmeans_assign_csr", "sqdist_dense"):
        ref = list(inspect.signature(getattr(_reference, name)).parameters)
        nb = list(inspect.signature(getattr(_numba, name).py_func).parameters)
        assert ref == nb, name


# -- data of any finite magnitude ------------------------------------------------------


def magnitudes(X):
    """Powers of two that move X's largest |value| to where distances leave the dtype's
    range: float32 next to its top (with room for distances), far below 1 yet normal,
    and into the subnormals; float64 (tight clusters, so that the inertia still fits
    float64: beyond, fit raises, see test_values_float64_cannot_hold_raise_clear_errors)
    where squared distances overflow, and where they fall into the subnormals."""
    info = np.finfo(X.dtype)
    top = int(np.frexp(np.abs(X).max())[1])
    if X.dtype == np.float32:
        return [int(np.log2(info.max)) - top - 4, int(info.minexp) + 8 - top, int(info.minexp) - 2 - top]
    return [508 - top, -512 - top]


def scaled_pair(X, e, sparse):
    """(X * 2**e as the caller passes it, that same data scaled back to unit range)."""
    Xs = np.ldexp(X, e)  # rounds what falls into the subnormals
    Xu = np.ldexp(Xs, -e)  # exact: the reference sees the very same values
    if sparse:
        Xs, Xu = sp.csr_matrix(Xs), sp.csr_matrix(Xu)
    return Xs, Xu


def assert_scaled_fit(km, ref, e, X_unit, X_scaled, dtype, weight):
    """km fitted on X * 2**e agrees with ref fitted on X: labels, centres, inertia, and
    predict / transform / score / fit_predict."""
    rtol = 2e-5 if dtype == np.float32 else 1e-10
    # the inertia of tight clusters cancels ||x||^2 - 2 x.c + ||c||^2: backends differ by more
    inertia_rtol = 2e-5 if dtype == np.float32 else 1e-6
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    assert km.n_iter_ == ref.n_iter_
    assert km.cluster_centers_.dtype == dtype
    assert np.isfinite(km.cluster_centers_).all()
    scale = np.abs(ref.cluster_centers_).max()
    np.testing.assert_allclose(
        np.ldexp(km.cluster_centers_.astype(np.float64), -e),
        ref.cluster_centers_,
        rtol=rtol,
        atol=rtol * scale,
    )
    assert np.isfinite(km.inertia_)
    assert km.inertia_ == pytest.approx(np.ldexp(ref.inertia_, 2 * e), rel=inertia_rtol)
    np.testing.assert_array_equal(km.predict(X_scaled), ref.labels_)
    assert km.score(X_scaled, sample_weight=weight) == pytest.approx(
        np.ldexp(-ref.inertia_, 2 * e), rel=inertia_rtol
    )
    dist = km.transform(X_scaled)
    assert dist.dtype == dtype and np.isfinite(dist).all()
    expected = ref.transform(X_unit).astype(np.float64)
    np.testing.assert_allclose(
        np.ldexp(dist.astype(np.float64), -e), expected, rtol=rtol, atol=rtol * expected.max()
    )


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_any_finite_magnitude_matches_reference_on_unit_data(backend, dtype, sparse):
    X, _ = make_user_embeddings(
        700, 6, n_segments=4, seed=7, dtype=dtype, cluster_std=1.0 if dtype == np.float32 else 1e-4
    )
    if dtype == np.float32:  # zeros for the CSR path (they would loosen the float64 clusters)
        X[np.random.default_rng(0).random(X.shape) < 0.3] = 0
    w = np.random.default_rng(1).uniform(0.5, 3.0, X.shape[0]).astype(dtype)
    init = first_rows(X, 4)
    for e in magnitudes(X):
        Xs, Xu = scaled_pair(X, e, sparse)
        before = (Xs.copy(), w.copy())
        for how, weight in (("k-means++", None), ("random", w), ("array", w)):
            start = np.ldexp(init, e) if how == "array" else how
            unit_start = np.ldexp(start, -e) if how == "array" else how
            runs = 1 if how == "array" else 3  # the best of 3 seedings: the tight optimum
            ref = fastrec.KMeans(
                4, init=unit_start, n_init=runs, random_state=3, tol=0, max_iter=20, backend="numpy"
            ).fit(Xu, sample_weight=weight)
            km = fastrec.KMeans(
                4, init=start, n_init=runs, random_state=3, tol=0, max_iter=20, backend=backend
            )
            labels = km.fit_predict(Xs, sample_weight=weight)
            np.testing.assert_array_equal(labels, ref.labels_, err_msg=f"2**{e} {how}")
            assert_scaled_fit(km, ref, e, Xu, Xs, dtype, weight)
            if how == "array":
                np.testing.assert_array_equal(start, np.ldexp(init, e))
        after = (Xs.toarray() if sparse else Xs, w)
        np.testing.assert_array_equal(after[0], before[0].toarray() if sparse else before[0])
        np.testing.assert_array_equal(after[1], before[1])


def test_float32_data_near_1e30_and_1e_minus_30():
    X = blobs(n=1500, d=8, segments=5, dtype=np.float32)
    ref = fastrec.KMeans(5, random_state=0, backend="numpy").fit(X)
    for factor in (np.float32(1e30), np.float32(1e-30)):
        for backend in BACKENDS:
            km = fastrec.KMeans(5, random_state=0, backend=backend).fit(X * factor)
            np.testing.assert_array_equal(km.labels_, ref.labels_)
            assert km.inertia_ == pytest.approx(ref.inertia_ * float(factor) ** 2, rel=1e-5)
            np.testing.assert_allclose(
                km.cluster_centers_ / factor, ref.cluster_centers_, rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_float64_sample_weights(backend):
    X = blobs(n=800, d=5, segments=4, dtype=np.float64, seed=2)
    w = np.random.default_rng(2).uniform(0.5, 3.0, X.shape[0])
    ref = fastrec.KMeans(4, random_state=5, tol=0, backend="numpy").fit(X, sample_weight=w)
    for e in (1000, -1000):
        we = np.ldexp(w, e)
        km = fastrec.KMeans(4, random_state=5, tol=0, backend=backend).fit(X, sample_weight=we)
        np.testing.assert_array_equal(km.labels_, ref.labels_)
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-10)
        assert km.inertia_ == pytest.approx(np.ldexp(ref.inertia_, e), rel=1e-10)
        assert km.score(X, sample_weight=we) == pytest.approx(-km.inertia_, rel=1e-10)
        np.testing.assert_array_equal(we, np.ldexp(w, e))


def test_scaling_only_when_the_range_needs_it():
    from fastrec.cluster._checks import check_cluster_data
    from fastrec.cluster.kmeans import _choose_scale

    X = blobs(n=300, d=6, segments=3)
    w = np.ones(300, np.float32)
    for e in (-30, -10, 0, 10, 40, 55):  # float32 data from about 1e-9 to 1e17: untouched
        assert _choose_scale(check_cluster_data(np.ldexp(X, e)), w).is_identity, e
    for e in (-40, 62, 100):
        scale = _choose_scale(check_cluster_data(np.ldexp(X, e)), w)
        assert 0.5 <= np.abs(np.ldexp(np.ldexp(X, e), scale.x_exp)).max() < 1.0
    X64 = X.astype(np.float64)
    w64 = w.astype(np.float64)
    for e in (-200, 0, 200):
        assert _choose_scale(check_cluster_data(np.ldexp(X64, e)), w64).is_identity, e
    assert _choose_scale(check_cluster_data(X64), np.ldexp(w64, 300)).w_exp == -301


def test_values_float64_cannot_hold_raise_clear_errors():
    X = blobs(n=200, d=4, segments=3, dtype=np.float64)
    with pytest.raises(ValueError, match="inertia of this data exceeds the largest float64"):
        fastrec.KMeans(3, random_state=0).fit(np.ldexp(X, 1000))
    # an inertia below the smallest float64 rounds to it (or to 0), as float64 arithmetic does
    tiny = fastrec.KMeans(3, random_state=0).fit(np.ldexp(X, -1000))
    plain = fastrec.KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(tiny.labels_, plain.labels_)
    assert 0.0 <= tiny.inertia_ <= np.finfo(np.float64).smallest_normal
    with pytest.raises(ValueError, match="rescale X"):
        fastrec.KMeans(3, random_state=0).fit_predict(np.ldexp(X, 1000))
    # a model of data near 1e150 predicts data a thousand times larger, but its inertia
    # does not fit in float64
    big = np.ldexp(X, 500)
    km = fastrec.KMeans(3, random_state=0).fit(big)
    bigger = np.ldexp(X, 520)
    labels = km.predict(bigger)
    assert labels.shape == (200,)
    with pytest.raises(ValueError, match="weighted inertia of this data exceeds the largest"):
        km.score(bigger)


def test_transform_distances_beyond_float32_raise():
    top = np.finfo(np.float32).max
    X = np.array([[0.9, 0.9], [-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9]], np.float32) * top
    km = fastrec.KMeans(1, init=np.zeros((1, 2), np.float32)).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, np.zeros((1, 2), np.float32))
    assert km.inertia_ == pytest.approx(4 * 2 * (0.9 * float(top)) ** 2, rel=1e-6)
    np.testing.assert_array_equal(km.predict(X), np.zeros(4))
    with pytest.raises(ValueError, match="exceed the largest float32 value"):
        km.transform(X)
    dist = km.transform(X * np.float32(0.5))
    np.testing.assert_allclose(dist.ravel(), np.full(4, 0.45 * np.sqrt(2) * float(top)), rtol=1e-6)


# -- pickling and concurrent use ---------------------------------------------------------


def round_trips(model, tmp_path):
    """Copies of ``model`` through pickle (every protocol), cloudpickle and joblib."""
    import pickle

    import joblib

    cloudpickle = pytest.importorskip("cloudpickle")
    copies = [pickle.loads(pickle.dumps(model, protocol=p)) for p in range(2, pickle.HIGHEST_PROTOCOL + 1)]
    copies.append(cloudpickle.loads(cloudpickle.dumps(model)))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    copies += [joblib.load(path), joblib.load(path, mmap_mode="r")]
    return copies


FITTED = ("cluster_centers_", "labels_", "inertia_", "n_iter_", "n_features_in_")


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_cloudpickle_joblib_round_trips(backend, sparse, tmp_path):
    X = blobs(n=2500, d=7, segments=5)
    data = sp.csr_matrix(X) if sparse else X
    unfitted = fastrec.KMeans(5, init=first_rows(X, 5), tol=0, backend=backend)
    fitted = fastrec.KMeans(5, random_state=2, backend=backend).fit(data)
    for copy in round_trips(unfitted, tmp_path):
        assert not hasattr(copy, "cluster_centers_")
        params, original = copy.get_params(), unfitted.get_params()
        assert params.keys() == original.keys()
        np.testing.assert_array_equal(params.pop("init"), original.pop("init"))
        assert params == original
        refit = copy.fit(data)
        expected = fastrec.KMeans(**unfitted.get_params()).fit(data)
        np.testing.assert_array_equal(refit.cluster_centers_, expected.cluster_centers_)
    for copy in round_trips(fitted, tmp_path):
        assert copy.get_params() == fitted.get_params()
        for name in FITTED:
            np.testing.assert_array_equal(getattr(copy, name), getattr(fitted, name))
        assert copy.cluster_centers_.dtype == fitted.cluster_centers_.dtype
        np.testing.assert_array_equal(copy.predict(data), fitted.predict(data))
        np.testing.assert_array_equal(copy.transform(data), fitted.transform(data))
        assert copy.score(data) == fitted.score(data)


def test_models_pickled_with_a_seed_parameter_still_load():
    import pickle

    X = blobs(n=400, d=4, segments=3)
    km = fastrec.KMeans(3, random_state=3).fit(X)
    old = fastrec.KMeans(3, random_state=3).fit(X)
    old.__dict__["seed"] = old.__dict__.pop("random_state")  # the attributes an older fit kept
    restored = pickle.loads(pickle.dumps(old))
    assert "seed" not in restored.__dict__
    assert restored.get_params() == km.get_params()
    np.testing.assert_array_equal(restored.predict(X), km.labels_)
    np.testing.assert_array_equal(restored.fit(X).cluster_centers_, km.cluster_centers_)


def test_misaligned_buffers_give_the_same_results():
    X = blobs(n=900, d=5, segments=3)
    km = fastrec.KMeans(3, random_state=0).fit(X)

    def misaligned(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)
        out = np.ndarray(a.shape, a.dtype, buffer=raw, offset=1)
        out[...] = a
        assert not out.flags.aligned
        return out

    odd = fastrec.KMeans(3, random_state=0)
    odd.__dict__.update(km.__dict__, cluster_centers_=misaligned(km.cluster_centers_))
    for model in (km, odd):
        np.testing.assert_array_equal(model.predict(misaligned(X)), km.labels_)
        np.testing.assert_array_equal(model.transform(misaligned(X)), km.transform(X))
    refit = fastrec.KMeans(3, random_state=0).fit(misaligned(X))
    np.testing.assert_array_equal(refit.cluster_centers_, km.cluster_centers_)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_fitted_model_is_safe_for_concurrent_reads(backend):
    from concurrent.futures import ThreadPoolExecutor

    X = blobs(n=6000, d=9, segments=6)
    km = fastrec.KMeans(6, random_state=0, backend=backend, n_threads=2).fit(X)
    parts = [X[i::8] for i in range(8)]

    def reads(i):
        part = parts[i]
        return [
            (km.predict(part), km.transform(part), km.score(part), km.predict(sp.csr_matrix(part)))
            for _ in range(4)
        ]

    expected = [reads(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(reads, range(8)))
    for mine, theirs in zip(got, expected):
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            assert a[2] == b[2]
            np.testing.assert_array_equal(a[3], b[3])


# -- found by mutation testing ---------------------------------------------------------------


def test_fit_transform_and_fit_predict_pass_sample_weight_on():
    X = blobs(n=600, d=4, segments=3, dtype=np.float64)
    w = np.random.default_rng(1).uniform(0.0, 5.0, X.shape[0])
    w[X[:, 0] > 0] *= 50  # weights that move the centres
    init = first_rows(X, 3)
    weighted = fastrec.KMeans(3, init=init, tol=0).fit(X, sample_weight=w)
    plain = fastrec.KMeans(3, init=init, tol=0).fit(X)
    assert np.abs(weighted.cluster_centers_ - plain.cluster_centers_).max() > 1e-3
    np.testing.assert_array_equal(
        fastrec.KMeans(3, init=init, tol=0).fit_transform(X, sample_weight=w), weighted.transform(X)
    )
    np.testing.assert_array_equal(
        fastrec.KMeans(3, init=init, tol=0).fit_predict(X, sample_weight=w), weighted.labels_
    )
    # transform: Euclidean distances to the centres, every row and centre
    want = np.sqrt(((X[:, None, :] - weighted.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(weighted.transform(X), want, rtol=1e-12, atol=1e-12)


def test_transform_overflow_error_is_clean_and_names_the_fix():
    top = np.finfo(np.float32).max
    X = np.array([[0.9, 0.9], [-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9]], np.float32) * top
    km = fastrec.KMeans(1, init=np.zeros((1, 2), np.float32)).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow is reported once, as the ValueError
        with pytest.raises(ValueError) as info:
            km.transform(X)
    assert str(info.value) == (
        "Some distances from X to the centres exceed the largest float32 value (3.4e+38). Fit "
        "the model on float64 data, or rescale X by a constant such as 2.0**-64 before fitting "
        "and transforming."
    )


def greedy_kmeans_plusplus_rows(X, w, k, rng):
    """Rows greedy k-means++ picks, from its definition with brute-force float64 distances:
    first row ~ w, then the best of 2 + ln(k) candidates ~ w D^2 (lowest potential kept)."""
    X64, w = X.astype(np.float64), w.astype(np.float64)
    trials = 2 + int(np.log(k))

    def draw(weights, values):
        return np.minimum(np.searchsorted(np.cumsum(weights), values), len(weights) - 1)

    rows = [int(draw(w, rng.random(1) * w.sum())[0])]
    closest = ((X64 - X64[rows[0]]) ** 2).sum(1)
    for _ in range(1, k):
        potential = w @ closest
        if potential > 0:
            candidates = draw(w * closest, rng.random(trials) * potential)
        else:
            candidates = rng.integers(0, X.shape[0], size=trials)
        dist = ((X64[:, None, :] - X64[candidates][None]) ** 2).sum(-1)
        dist = np.minimum(dist, closest[:, None])
        best = int(np.argmin(w @ dist))
        closest = dist[:, best]
        rows.append(int(candidates[best]))
    return rows


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_seeds_match_the_definition(weighted):
    X = blobs(n=700, d=4, segments=9, dtype=np.float64, seed=3)
    w = np.random.default_rng(4).uniform(0.5, 3.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    small = X * 2.0**-12  # potentials below 1 are still drawn from D^2
    for data, k, seed in ((X, 1, 0), (X, 5, 1), (X, 9, 2), (X, 9, 3), (small, 9, 4)):
        rows = greedy_kmeans_plusplus_rows(data, w, k, np.random.default_rng(seed))
        got = fastrec.KMeans(k, random_state=seed, max_iter=1, tol=0).fit(data, sample_weight=w)
        want = fastrec.KMeans(k, init=data[rows], max_iter=1, tol=0).fit(data, sample_weight=w)
        np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)
        np.testing.assert_array_equal(got.labels_, want.labels_)
    # two distinct rows and three clusters: the third seed is drawn when every row sits on a centre
    D = np.repeat(np.array([[0.0, 1.0], [3.0, -1.0]]), [5, 7], axis=0)
    rows = greedy_kmeans_plusplus_rows(D, np.ones(12), 3, np.random.default_rng(6))
    got = fastrec.KMeans(3, random_state=6, max_iter=1, tol=0).fit(D)
    np.testing.assert_array_equal(
        got.cluster_centers_, fastrec.KMeans(3, init=D[rows], max_iter=1, tol=0).fit(D).cluster_centers_
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_score_transform_with_more_clusters_than_features(backend, dtype):
    X = blobs(n=500, d=2, segments=7, dtype=dtype, seed=8)
    Y = blobs(n=300, d=2, segments=7, dtype=dtype, seed=9)
    w = np.random.default_rng(2).uniform(0.0, 2.0, Y.shape[0])
    km = fastrec.KMeans(7, random_state=0, backend=backend).fit(X)
    C = km.cluster_centers_.astype(np.float64)
    D = ((Y.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(-1)
    labels = km.predict(Y)
    # every row's label is a nearest centre (to the rounding of the dtype's distances)
    eps = 1e-5 if dtype == np.float32 else 1e-12
    rows = np.arange(Y.shape[0])
    assert np.all(D[rows, labels] <= D.min(1) * (1 + eps) + eps)
    assert -km.score(Y, sample_weight=w) == pytest.approx(float(w @ D.min(1)), rel=eps * 10)
    assert -km.score(Y) == pytest.approx(float(D.min(1).sum()), rel=eps * 10)
    np.testing.assert_allclose(km.transform(Y), np.sqrt(D), rtol=eps * 10, atol=eps * 10)


def test_weighted_pick_is_the_inverse_cdf_and_clamps_rounding_overshoot():
    from fastrec.cluster.kmeans import _weighted_pick

    rng = np.random.default_rng(0)
    weights = rng.uniform(0.0, 1.0, 50)
    weights[rng.random(50) < 0.3] = 0.0  # zero-weight rows are never drawn
    cumulative = np.cumsum(weights)
    # draws over [0, total], the total itself, and a rounding overshoot past it
    total = cumulative[-1]
    values = np.concatenate([rng.random(500) * total, [total, total * (1 + 1e-15)]])
    got = _weighted_pick(cumulative, values)
    want = [
        min(next((i for i, c in enumerate(cumulative) if c >= v), len(cumulative)), len(cumulative) - 1)
        for v in values
    ]
    np.testing.assert_array_equal(got, want)
    assert got[-1] == len(cumulative) - 1 and weights[got[:500]].min() > 0


def hand_lloyd(X, w, C, max_iter, tol):
    """Weighted Lloyd iterations written from the definition (float64 brute-force distances,
    centres rounded to X's dtype): stop when the labels repeat or the squared centre shift is
    at most tol * mean(var(X)).  The data must leave no cluster empty."""
    X64, w = X.astype(np.float64), np.asarray(w, np.float64)
    tol_abs = tol * np.var(X64, axis=0).mean()
    C, previous, n_iter = C.astype(X.dtype), None, 0
    for it in range(max_iter):
        labels = ((X64[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(-1).argmin(1)
        new = np.stack(
            [
                (w[labels == j, None] * X64[labels == j]).sum(0) / w[labels == j].sum()
                for j in range(C.shape[0])
            ]
        ).astype(X.dtype)
        shift = ((new.astype(np.float64) - C.astype(np.float64)) ** 2).sum()
        C, n_iter = new, it + 1
        if (previous is not None and np.array_equal(labels, previous)) or shift <= tol_abs:
            break
        previous = labels
    D = ((X64[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(-1)
    return C, D.argmin(1), float(w @ D.min(1)), n_iter


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_lloyd_matches_hand_written_iterations(backend, dtype):
    X = blobs(n=800, d=3, segments=4, dtype=dtype, seed=11) * dtype(3)
    w = np.random.default_rng(3).uniform(0.5, 2.0, X.shape[0])
    init = first_rows(X, 4, seed=2)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    seen = set()
    for tol, max_iter in ((0.0, 300), (1e-3, 300), (0.05, 300), (0.0, 1), (0.0, 3)):
        C, labels, inertia, n_iter = hand_lloyd(X, w, init, max_iter, tol)
        km = fastrec.KMeans(4, init=init, tol=tol, max_iter=max_iter, backend=backend).fit(X, sample_weight=w)
        assert km.n_iter_ == n_iter, (tol, max_iter)
        np.testing.assert_array_equal(km.labels_, labels)
        np.testing.assert_allclose(km.cluster_centers_, C, rtol=rtol, atol=rtol)
        assert km.inertia_ == pytest.approx(inertia, rel=rtol * 10)
        assert -km.score(X, sample_weight=w) == pytest.approx(inertia, rel=rtol * 10)
        sparse = fastrec.KMeans(4, init=init, tol=tol, max_iter=max_iter, backend=backend).fit(
            sp.csr_matrix(X), sample_weight=w
        )  # the tolerance from the sparse variance
        assert sparse.n_iter_ == n_iter, (tol, max_iter)
        np.testing.assert_array_equal(sparse.labels_, labels)
        seen.add(n_iter)
    assert len(seen) >= 4  # the tolerances and caps stop at different iterations


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_cluster_relocation_ties_and_singletons_follow_the_rule(backend):
    # 40 rows around the origin; rows 5 and 30 tie as the farthest from centre 0, and centre 1
    # starts far from everything, so it is empty after the first assignment
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (40, 2))
    X[5], X[30] = (3.0, 0.0), (0.0, 3.0)
    init = np.array([[0.0, 0.0], [100.0, 100.0]])
    km = fastrec.KMeans(2, init=init, max_iter=1, tol=0, backend=backend).fit(X)
    # ties go to the smaller row index; the row leaves its old cluster's mean
    np.testing.assert_array_equal(km.cluster_centers_[1], X[5])
    np.testing.assert_allclose(
        km.cluster_centers_[0], np.delete(X, 5, axis=0).mean(0), rtol=1e-12, atol=1e-15
    )
    # a cluster holding one row of weight 1 is not empty: it keeps its row
    Y = np.vstack([X[np.arange(40) != 5], [[50.0, 50.0]]])
    km = fastrec.KMeans(2, init=np.array([[0.0, 0.0], [50.0, 50.0]]), max_iter=1, tol=0, backend=backend).fit(
        Y
    )
    np.testing.assert_array_equal(km.cluster_centers_[1], [50.0, 50.0])
    np.testing.assert_allclose(km.cluster_centers_[0], Y[:-1].mean(0), rtol=1e-12, atol=1e-15)


def test_kmeans_plusplus_draws_uniformly_once_every_row_sits_on_a_centre():
    from fastrec.cluster._checks import check_cluster_data
    from fastrec.cluster.kmeans import _Problem, kmeans_plusplus

    # three distinct rows: after three seeds the potential is 0 and the rest are uniform draws
    D = np.repeat(np.array([[0.0, 1.0], [3.0, -1.0], [-2.0, 5.0]]), [4, 5, 6], axis=0)
    pb = _Problem(check_cluster_data(D), np.ones(len(D)), "numpy", 1)
    for seed in range(4):
        rows = greedy_kmeans_plusplus_rows(D, np.ones(len(D)), 7, np.random.default_rng(seed))
        np.testing.assert_array_equal(kmeans_plusplus(pb, 7, np.random.default_rng(seed)), D[rows])


def test_farthest_rows_match_a_stable_sort_on_many_ties():
    # relocation takes rows by decreasing distance, ties to the smaller index; with
    # hundreds of equal distances an unstable sort (numpy's default) reorders them
    from fastrec.cluster.kmeans import _farthest

    rng = np.random.default_rng(0)
    for n, levels in ((500, 2), (1000, 5), (64, 64), (300, 1)):
        dist = rng.integers(0, levels, n).astype(np.float32)
        for m in (1, 3, 17, n // 2, n, n + 5):
            expected = np.argsort(-dist.astype(np.float64), kind="stable")[:m]
            np.testing.assert_array_equal(_farthest(dist, m), expected)
