"""pytest-benchmark suite for MatrixFactorization (not collected by the test run).

Run with ``python -m pytest benchmarks/test_bench_mf.py --benchmark-only``.  The
side-by-side comparison with Surprise and LIBMF is ``python -m fastrec.bench mf``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastrec import MatrixFactorization, _runtime
from fastrec.datasets import make_benchmark_ratings

BACKENDS = [b for b in _runtime.available_backends() if b != "numpy"]
EPOCHS = 5


@pytest.fixture(scope="module", params=["S", "M"])
def ratings(request):
    return request.param, make_benchmark_ratings(request.param)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fit(benchmark, ratings, backend, n_threads):
    size, R = ratings
    MatrixFactorization(n_factors=8, n_epochs=1, backend=backend, random_state=0).fit(R)  # compile

    def fit():
        return MatrixFactorization(
            n_factors=100, n_epochs=EPOCHS, random_state=0, n_threads=n_threads, backend=backend
        ).fit(R)

    model = benchmark.pedantic(fit, rounds=3, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (a smoke run)
        benchmark.extra_info["updates_per_s"] = R.nnz * EPOCHS / benchmark.stats.stats.median
    benchmark.extra_info["size"] = size
    assert np.isfinite(model.history_["train_rmse"][-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict(benchmark, ratings, backend):
    _, R = ratings
    model = MatrixFactorization(n_factors=100, n_epochs=1, random_state=0, backend=backend).fit(R)
    coo = R.tocoo()
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    model.predict(users[:10], items[:10])
    pred = benchmark(model.predict, users, items)
    assert pred.shape == users.shape


def test_recommend(benchmark, ratings):
    _, R = ratings
    model = MatrixFactorization(n_factors=100, n_epochs=1, random_state=0).fit(R)
    users = np.arange(min(1000, R.shape[0]))
    ids, _ = benchmark(model.recommend, users, 10)
    assert ids.shape == (users.size, 10)
