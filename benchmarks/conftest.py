"""pytest-benchmark suites: ``python -m pytest benchmarks`` (not part of the test run).

Sizes S and M run by default; set FASTREC_BENCH_SIZES=S,M,L for the large one.
"""

import os

import pytest

SIZES = os.environ.get("FASTREC_BENCH_SIZES", "S,M").split(",")


@pytest.fixture(scope="session", params=SIZES)
def benchmark_ratings(request):
    from fastrec.datasets import make_benchmark_ratings

    return request.param, make_benchmark_ratings(request.param)
