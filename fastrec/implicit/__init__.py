"""Models and weighting for behaviour data: plays, clicks, purchases, views.

- ``WARP``: factorization trained with the Weighted Approximate-Rank Pairwise loss.
- weighting: ``bm25_weight``, ``tfidf_weight`` and ``confidence`` over CSR.
"""

from fastrec.implicit.warp import WARP
from fastrec.implicit.weighting import bm25_weight, confidence, tfidf_weight

__all__ = ["WARP", "bm25_weight", "confidence", "tfidf_weight"]
