"""fastrec: fast recommender kernels with a compiled core.

Each kernel exists three times: C++ (OpenMP threads, SIMD chosen at run time),
Numba, and a plain numpy/scipy reference that defines the correct answer.
``backend="auto"`` picks the fastest one available.
"""

from fastrec import metrics, model_selection
from fastrec._runtime import (
    available_backends,
    get_num_threads,
    set_num_threads,
    set_simd_level,
    show_config,
    simd_level,
)
from fastrec._validation import TooLargeError
from fastrec._version import __version__
from fastrec.base import NotFittedError
from fastrec.cluster import KMeans
from fastrec.implicit import ALS, BPR, WARP, bm25_weight, confidence, tfidf_weight
from fastrec.metrics import evaluate
from fastrec.mf import MatrixFactorization
from fastrec.recommenders import ContentKNN, Hybrid, ItemKNN, UnknownIdError, UserKNN
from fastrec.scoring import topn
from fastrec.similarity import cosine_topk, similarity_topk

__all__ = [
    "KMeans",
    "MatrixFactorization",
    "NotFittedError",
    "TooLargeError",
    "__version__",
    "available_backends",
    "cosine_topk",
    "get_num_threads",
    "set_num_threads",
    "set_simd_level",
    "show_config",
    "simd_level",
    "similarity_topk",
    # recommenders and evaluation
    "ContentKNN",
    "Hybrid",
    "ItemKNN",
    "UnknownIdError",
    "UserKNN",
    "evaluate",
    "metrics",
    "model_selection",
    "topn",
    # behaviour data
    "ALS",
    "BPR",
    "WARP",
    "bm25_weight",
    "confidence",
    "tfidf_weight",
]
