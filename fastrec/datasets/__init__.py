"""Datasets: synthetic generators (and loaders for common formats)."""

from fastrec.datasets.synthetic import (
    SIZES,
    make_benchmark_ratings,
    make_ratings,
    make_user_embeddings,
)

__all__ = ["SIZES", "make_benchmark_ratings", "make_ratings", "make_user_embeddings"]
from fastrec.datasets.splits import train_test_split  # noqa: E402,F401
