"""pytest-benchmark suite for KMeans (not collected by the test run).

    pytest benchmarks/test_bench_kmeans.py --benchmark-only

Times one fit of 20 Lloyd iterations (tol=0) from fixed initial centres on a
Gaussian mixture, for every fastrec backend and for scikit-learn and faiss when
installed.  For the side-by-side report with both OPENBLAS_CORETYPE settings use
``python -m fastrec.bench kmeans``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrec
from fastrec.datasets import make_user_embeddings

SHAPES = [(50_000, 64, 256), (200_000, 32, 64)]
THREADS = 2
ITERATIONS = 20


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def problem(request):
    n, d, k = request.param
    X, _ = make_user_embeddings(n, d, n_segments=64, seed=0)
    init = X[np.random.default_rng(0).choice(n, k, replace=False)]
    return X, init


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_fastrec(benchmark, problem, backend):
    if backend not in fastrec.available_backends():
        pytest.skip(f"backend {backend} not available")
    X, init = problem
    km = fastrec.KMeans(
        init.shape[0], init=init, max_iter=ITERATIONS, tol=0.0, n_threads=THREADS, backend=backend
    )
    km.fit(X)  # warm-up (JIT compilation)
    benchmark(km.fit, X)
    assert km.n_iter_ == ITERATIONS


def test_sklearn(benchmark, problem):
    cluster = pytest.importorskip("sklearn.cluster")
    from threadpoolctl import threadpool_limits

    X, init = problem
    km = cluster.KMeans(init.shape[0], init=init, n_init=1, max_iter=ITERATIONS, tol=0.0, algorithm="lloyd")
    with threadpool_limits(limits=THREADS):
        benchmark(km.fit, X)


def test_faiss(benchmark, problem):
    faiss = pytest.importorskip("faiss")
    X, init = problem
    faiss.omp_set_num_threads(THREADS)

    def run():
        km = faiss.Kmeans(
            X.shape[1],
            init.shape[0],
            niter=ITERATIONS,
            nredo=1,
            max_points_per_centroid=X.shape[0],
            min_points_per_centroid=1,
        )
        km.train(X, init_centroids=init)

    benchmark(run)
