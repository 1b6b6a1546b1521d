"""cosine_topk per backend and size (item-item, top-50)."""

import pytest

import fastrec

BACKENDS = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_item_item_cosine_top50(benchmark, benchmark_ratings, backend):
    size, ratings = benchmark_ratings
    items = ratings.T
    fastrec.cosine_topk(items, k=50, backend=backend)  # compile / warm up
    result = benchmark(fastrec.cosine_topk, items, k=50, backend=backend)
    benchmark.extra_info["size"] = size
    assert result.shape == (ratings.shape[1], ratings.shape[1])
