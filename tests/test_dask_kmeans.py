"""KMeans on Dask arrays against single-machine KMeans, on a small two-process LocalCluster."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

# the optional extra fastrec[dask] (dask[dataframe] and distributed): without it, skip this file
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

import fastrec  # noqa: E402
import fastrec.dask as fdask  # noqa: E402
from fastrec.cluster import kmeans as K  # noqa: E402

# Centres and inertia of the two fits differ only in the order of the float64 sums over
# rows (chunks, then a tree): a few ulps of float64, and one rounding of float32 centres.
RTOL = {np.float64: 1e-10, np.float32: 4 * float(np.finfo(np.float32).eps)}


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def blobs(n=4003, d=7, k=5, seed=0, spread=4.0, dtype=np.float64):
    """Rows around ``k`` centres ``spread`` apart (no ties between distances), and the blob of each."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(k, d)) * spread
    member = rng.integers(0, k, n)
    return (truth[member] + rng.normal(size=(n, d))).astype(dtype), member, truth


def assert_same_fit(got, want, dtype):
    rtol = RTOL[dtype]
    scale = np.abs(want.cluster_centers_).max()
    assert got.cluster_centers_.dtype == want.cluster_centers_.dtype
    np.testing.assert_allclose(got.cluster_centers_, want.cluster_centers_, rtol=0, atol=rtol * scale)
    assert got.inertia_ == pytest.approx(want.inertia_, rel=max(rtol, 1e-10))
    assert got.n_iter_ == want.n_iter_
    assert got.n_features_in_ == want.n_features_in_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_equal_to_one_machine_from_the_same_centres(client, dtype, weighted):
    X, _, _ = blobs(dtype=dtype)
    rng = np.random.default_rng(1)
    init = X[rng.choice(X.shape[0], 9, replace=False)]
    weight = rng.uniform(0.1, 3.0, X.shape[0]) if weighted else None
    want = fastrec.KMeans(9, init=init).fit(X, sample_weight=weight)
    Xd = da.from_array(X, chunks=(777, 4))  # uneven row chunks; two column chunks joined
    wd = None if weight is None else da.from_array(weight, chunks=500)  # rechunked to X's rows
    got = fdask.fit(fastrec.KMeans(9, init=init), Xd, client=client, sample_weight=wd)
    assert_same_fit(got, want, dtype)
    assert not hasattr(got, "labels_")  # n_samples long: fastrec.dask.predict gives them lazily
    labels = fdask.predict(got, Xd, client=client)
    assert isinstance(labels, da.Array) and labels.dtype == np.int64 and labels.chunks == (Xd.chunks[0],)
    np.testing.assert_array_equal(labels.compute(), want.labels_)
    np.testing.assert_array_equal(labels.compute(), got.predict(X))


def test_empty_clusters_are_reseeded_as_on_one_machine(client):
    X, _, _ = blobs(n=3001, seed=2)
    init = np.vstack([X[:6], np.full((4, X.shape[1]), 100.0)])  # four centres no row is near
    want = fastrec.KMeans(10, init=init, tol=0).fit(X)
    got = fdask.fit(fastrec.KMeans(10, init=init, tol=0), da.from_array(X, chunks=600), client=client)
    assert_same_fit(got, want, np.float64)
    np.testing.assert_array_equal(fdask.predict(got, da.from_array(X, chunks=600)).compute(), want.labels_)


def test_random_init_and_extreme_scales_equal_one_machine(client):
    X, _, _ = blobs(n=2001, seed=3, dtype=np.float32)
    want = fastrec.KMeans(6, init="random", random_state=5).fit(X)
    got = fdask.fit(
        fastrec.KMeans(6, init="random", random_state=5), da.from_array(X, chunks=500), client=client
    )
    assert_same_fit(got, want, np.float32)
    # float32 values near 1e30: squared distances overflow, so both fit a copy scaled by 2**-k
    big = X * np.float32(1e30)
    want = fastrec.KMeans(6, init=big[:6]).fit(big)
    got = fdask.fit(fastrec.KMeans(6, init=big[:6]), da.from_array(big, chunks=500), client=client)
    assert np.isfinite(got.inertia_) and np.isfinite(got.cluster_centers_).all()
    assert_same_fit(got, want, np.float32)
    np.testing.assert_array_equal(fdask.predict(got, da.from_array(big, chunks=500)).compute(), want.labels_)


def test_kmeans_parallel_finds_one_centre_per_blob_and_is_as_good_as_kmeans_plusplus(client):
    X, member, truth = blobs(n=6000, d=5, k=8, seed=4, spread=12.0)
    Xd = da.from_array(X, chunks=1000)
    got = fdask.fit(fastrec.KMeans(8, random_state=0, max_iter=1), Xd, client=client)  # k-means|| + 1 step
    nearest = np.argmin(((truth[:, None, :] - got.cluster_centers_[None]) ** 2).sum(-1), axis=1)
    assert sorted(nearest) == list(range(8))  # one centre per blob
    full = fdask.fit(fastrec.KMeans(8, init="k-means||", random_state=0), Xd, client=client)
    plus = fastrec.KMeans(8, random_state=0).fit(X)
    assert full.inertia_ <= 1.1 * plus.inertia_
    labels = fdask.predict(full, Xd).compute()
    assert len({(a, b) for a, b in zip(member, labels)}) == 8  # the blobs exactly
    # deterministic given random_state and the chunking, whatever the workers' timing
    again = fdask.fit(fastrec.KMeans(8, init="k-means||", random_state=0), Xd, client=client)
    np.testing.assert_array_equal(again.cluster_centers_, full.cluster_centers_)
    # oversampling and rounds are options; a tiny X (fewer candidates than clusters) still seeds
    small = fdask.fit(
        fastrec.KMeans(5, random_state=1),
        da.from_array(X[:7], chunks=3),
        client=client,
        oversampling=0.5,
        n_rounds=1,
    )
    assert small.cluster_centers_.shape == (5, 5) and np.isfinite(small.inertia_)


def test_predict_follows_the_model_dtype_and_a_single_machine_fit(client):
    X, _, _ = blobs(n=2500, seed=6, dtype=np.float32)
    model = fastrec.KMeans(7, random_state=0).fit(X)
    X64 = X.astype(np.float64) + 1e-9  # computed in the centres' dtype, as model.predict does
    labels = fdask.predict(model, da.from_array(X64, chunks=(400, -1)), client=client)
    np.testing.assert_array_equal(labels.compute(), model.predict(X64))
    # lazy: any scheduler may compute it, with or without the client
    np.testing.assert_array_equal(labels.compute(scheduler="sync"), model.predict(X64))
    ints = np.rint(X * 3).astype(np.int64)
    np.testing.assert_array_equal(
        fdask.predict(model, da.from_array(ints, chunks=900)).compute(), model.predict(ints)
    )


def test_errors_are_clear(client):
    X, _, _ = blobs(n=100)
    Xd = da.from_array(X, chunks=30)
    with pytest.raises(TypeError, match=r"KMeans\(\.\.\.\)\.fit\(X\)"):
        fdask.fit(fastrec.KMeans(3), X, client=client)
    import dask.dataframe as dd
    import pandas as pd

    with pytest.raises(TypeError, match=r"to_dask_array\(lengths=True\)"):
        fdask.fit(fastrec.KMeans(3), dd.from_pandas(pd.DataFrame(X), npartitions=2), client=client)
    with pytest.raises(TypeError, match="numpy chunks"):
        fdask.fit(fastrec.KMeans(3), Xd.map_blocks(sp.csr_matrix), client=client)
    with pytest.raises(ValueError, match="2-D"):
        fdask.fit(fastrec.KMeans(3), Xd[:, 0], client=client)
    bad = X.copy()
    bad[77, 2] = np.nan  # in the third chunk: found by the task that reads it
    with pytest.raises(ValueError, match="NaN"):
        fdask.fit(fastrec.KMeans(3), da.from_array(bad, chunks=30), client=client)
    with pytest.raises(ValueError, match="n_clusters=101 is greater than the number of samples"):
        fdask.fit(fastrec.KMeans(101), Xd, client=client)
    with pytest.raises(ValueError, match="negative"):
        fdask.fit(fastrec.KMeans(3), Xd, client=client, sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match="one weight per sample"):
        fdask.fit(fastrec.KMeans(3), Xd, client=client, sample_weight=np.ones(99))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fdask.fit(fastrec.KMeans(3), Xd[Xd[:, 0] > 0], client=client)
    with pytest.raises(ValueError, match="persist"):
        fdask.fit(fastrec.KMeans(3), Xd, client=client, persist="sometimes")
    with pytest.raises(NotFittedError):
        fdask.predict(fastrec.KMeans(3), Xd)
    fitted = fdask.fit(fastrec.KMeans(3, random_state=0), Xd, client=client)
    with pytest.raises(ValueError, match="expecting 7 features"):
        fdask.predict(fitted, Xd[:, :5])
    with pytest.raises(ValueError, match="fastrec.dask.fit"):
        fastrec.KMeans(3, init="k-means||").fit(X)  # k-means|| is the distributed seeding


def test_fitted_model_pickles_and_works_as_a_single_machine_one(client):
    X, _, _ = blobs(n=1500, seed=7)
    model = fastrec.KMeans(4, random_state=0).fit(X[:50])  # a previous fit's labels_ do not survive
    fdask.fit(model, da.from_array(X, chunks=500), client=client)
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.cluster_centers_, model.cluster_centers_)
    assert not hasattr(back, "labels_")
    np.testing.assert_array_equal(
        back.predict(X), fdask.predict(model, da.from_array(X, chunks=500)).compute()
    )
    np.testing.assert_allclose(
        back.transform(X[:3]), np.sqrt(((X[:3, None] - model.cluster_centers_) ** 2).sum(-1))
    )
    assert back.score(X) == pytest.approx(-model.inertia_, rel=1e-10)


def test_local_scheduler_and_out_of_core_mode_give_the_same_result(client, monkeypatch):
    import fastrec.dask._kmeans as dk

    X, _, _ = blobs(n=3000, seed=8, dtype=np.float32)
    Xd = da.from_array(X, chunks=700)
    want = fdask.fit(fastrec.KMeans(5, random_state=3), Xd, client=client)
    monkeypatch.setattr(dk, "current_client", lambda client: None)  # as if none had started
    with dask.config.set(scheduler="threads"):
        for persist in (True, False):
            got = fdask.fit(fastrec.KMeans(5, random_state=3), Xd, persist=persist)
            np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)  # same tree, same sums
            assert got.inertia_ == want.inertia_ and got.n_iter_ == want.n_iter_


def test_a_task_takes_its_share_of_the_worker_threads(monkeypatch):
    seen = []
    assign = K.assign_block

    def spy(x, weight, centers, backend, n_threads, compute_sums, x_sqnorm=None):
        seen.append(n_threads)
        return assign(x, weight, centers, backend, n_threads, compute_sums, x_sqnorm)

    monkeypatch.setattr(K, "assign_block", spy)
    X, _, _ = blobs(n=800, seed=9)
    init = X[:3]
    want = fastrec.KMeans(3, init=init).fit(X)
    cap = fastrec._runtime.max_threads()
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        model = fastrec.KMeans(3, init=init)
        got = fdask.fit(model, da.from_array(X, chunks=-1), client=c)  # one chunk: alone on its worker
        assert set(seen) == {min(2, cap)}
        seen.clear()
        got1 = fdask.fit(fastrec.KMeans(3, init=init), da.from_array(X, chunks=-1), client=c, n_threads=1)
        assert set(seen) == {1}
    assert model.n_threads is None  # no setting of the model or of the process changes
    assert_same_fit(got, want, np.float64)
    np.testing.assert_array_equal(got1.cluster_centers_, got.cluster_centers_)


def _memory():
    """Peak RSS in bytes of the worker process this runs in (VmHWM: this process's own peak;
    getrusage's ru_maxrss would include the peak of the process that started it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_out_of_core_fit_on_data_larger_than_a_worker_memory():
    limit = 600_000_000  # a worker holds fastrec and Dask (about 300 MB) and a few chunks, not X
    n, d, rows = 2_600_000, 64, 100_000  # 666 MB of float32 in 26 chunks of 25.6 MB
    X = da.random.default_rng(11).random((n, d), chunks=(rows, d), dtype=np.float32)
    assert X.nbytes > limit
    init = np.random.default_rng(12).random((6, d)).astype(np.float32)
    with (
        # a worker over its limit is restarted (and the test fails) rather than paused (and hung)
        dask.config.set({"distributed.worker.memory.pause": False}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit=limit, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        workers = set(c.scheduler_info()["workers"])
        # persist="auto" does not keep X: it is larger than half the workers' memory
        got = fdask.fit(fastrec.KMeans(6, init=init, max_iter=2, tol=0), X, client=c)
        assert set(c.scheduler_info()["workers"]) == workers  # no worker was restarted
        peaks = c.run(_memory)
    assert len(peaks) == 2 and max(peaks.values()) < limit
    # the same chunks, made on this process (the values do not depend on the scheduler)
    want = fastrec.KMeans(6, init=init, max_iter=2, tol=0).fit(X.compute(scheduler="threads"))
    assert got.n_iter_ == 2
    np.testing.assert_allclose(got.cluster_centers_, want.cluster_centers_, rtol=0, atol=RTOL[np.float32])
    assert got.inertia_ == pytest.approx(want.inertia_, rel=1e-9)


def test_empty_chunks_are_skipped(monkeypatch):
    import fastrec.dask._kmeans as dk

    monkeypatch.setattr(dk, "current_client", lambda client: None)  # Dask's local scheduler
    X, _, _ = blobs(n=1000, seed=10)
    Xd = da.from_array(X, chunks=((0, 500, 0, 500), (X.shape[1],)))
    with dask.config.set(scheduler="sync"):
        for init in (X[:5], "random"):
            want = fastrec.KMeans(5, init=init, random_state=0).fit(X)
            got = fdask.fit(fastrec.KMeans(5, init=init, random_state=0), Xd, sample_weight=np.ones(1000))
            assert_same_fit(got, want, np.float64)
        got = fdask.fit(fastrec.KMeans(5, random_state=0), Xd)  # k-means|| draws from non-empty chunks
        np.testing.assert_array_equal(fdask.predict(got, Xd).compute(), got.predict(X))
