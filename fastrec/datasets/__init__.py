"""Datasets: synthetic generators, loaders for common formats and the ``Interactions`` container."""

from fastrec.datasets.synthetic import (
    SIZES,
    make_benchmark_ratings,
    make_ratings,
    make_user_embeddings,
)

__all__ = ["SIZES", "make_benchmark_ratings", "make_ratings", "make_user_embeddings"]

# --- loaders, interactions and downloads ---
from fastrec.datasets.fetch import DownloadError, fetch_movielens, get_data_home  # noqa: E402
from fastrec.datasets.interactions import Interactions  # noqa: E402
from fastrec.datasets.loaders import (  # noqa: E402
    load_interactions,
    load_lastfm,
    load_ml1m,
    load_ml100k,
    load_ml_latest,
    load_movielens,
)

__all__ += [
    "DownloadError",
    "train_test_split",
    "Interactions",
    "fetch_movielens",
    "get_data_home",
    "load_interactions",
    "load_lastfm",
    "load_ml100k",
    "load_ml1m",
    "load_ml_latest",
    "load_movielens",
]
from fastrec.datasets.splits import train_test_split  # noqa: E402
