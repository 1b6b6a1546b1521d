"""pytest-benchmark suite for topn (not collected by the test run).

    pytest benchmarks/test_bench_topn.py --benchmark-only

Top-10 unseen items for every user of the benchmark ratings (sizes S and M by
default, FASTREC_BENCH_SIZES=S,M,L for L), f = 64 random float32 factors, the
ratings CSR as exclusion, 2 threads: every fastrec backend, implicit's
``ALS.recommend`` and a blocked numpy matmul + argpartition.  For the
side-by-side report with both OPENBLAS_CORETYPE settings and the agreement
check use ``fastrec bench topn`` (``python -m fastrec.bench topn``).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastrec
from fastrec.bench.topn import CONTENDERS, agreement, make_factors

THREADS = 2
N = 10


@pytest.fixture(scope="module")
def problem(benchmark_ratings):
    size, seen = benchmark_ratings
    U, V = make_factors(*seen.shape)
    return size, U, V, seen


def _check(result, U, V, seen):
    ids, scores = np.asarray(result[0]), np.asarray(result[1])
    sample = np.arange(0, U.shape[0], max(1, U.shape[0] // 100))
    precision, seen_returned = agreement(U, V, seen, sample, ids[sample], N, scores[sample])
    assert precision == 1.0 and seen_returned == 0


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_fastrec(benchmark, problem, backend):
    if backend not in fastrec.available_backends():
        pytest.skip(f"backend {backend} not available")
    size, U, V, seen = problem
    run = CONTENDERS[f"fastrec {backend}"](U, V, seen, N, THREADS)
    run()  # warm-up (JIT compilation)
    result = benchmark(run)
    benchmark.extra_info["size"] = size
    _check(result, U, V, seen)


def test_implicit(benchmark, problem):
    pytest.importorskip("implicit")
    size, U, V, seen = problem
    run = CONTENDERS["implicit"](U, V, seen, N, THREADS)
    result = benchmark(run)
    benchmark.extra_info["size"] = size
    _check(result, U, V, seen)


def test_numpy(benchmark, problem):
    size, U, V, seen = problem
    run = CONTENDERS["numpy"](U, V, seen, N, THREADS)
    result = benchmark(run)
    benchmark.extra_info["size"] = size
    _check(result, U, V, seen)
