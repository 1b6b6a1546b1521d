"""pytest-benchmark suite for the neighbourhood recommenders and ranking metrics.

Run with ``python -m pytest benchmarks/test_bench_knn.py --benchmark-only``.  The
side-by-side comparison with implicit is ``python -m fastrec.bench knn``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastrec import ItemKNN, UserKNN, _runtime
from fastrec.metrics import ranking_metrics

BACKENDS = [b for b in _runtime.available_backends() if b != "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_recommend_all(benchmark, benchmark_ratings, cls, backend):
    size, R = benchmark_ratings
    model = cls(k=50, backend=backend).fit(R)
    users = np.arange(R.shape[0])
    model.recommend(users[:10])  # compile
    ids, _ = benchmark.pedantic(model.recommend, args=(users,), kwargs={"n": 10}, rounds=3)
    benchmark.extra_info["size"] = size
    assert ids.shape == (R.shape[0], 10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ranking_metrics(benchmark, benchmark_ratings, backend):
    size, R = benchmark_ratings
    rng = np.random.default_rng(0)
    recs = np.argsort(rng.random((R.shape[0], min(R.shape[1], 200))), axis=1)[:, :10]
    ranking_metrics(recs[:10], R[:10], 10, backend=backend)  # compile
    result = benchmark(ranking_metrics, recs, R, 10, backend=backend)
    benchmark.extra_info["size"] = size
    assert result["n_users"] > 0
