"""Models and weighting for behaviour data: plays, clicks, purchases, views.

- ``ALS``: implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008).
- ``BPR``: Bayesian Personalized Ranking, pairwise SGD on sampled (user, positive, negative) triples.
- ``WARP``: factorization trained with the Weighted Approximate-Rank Pairwise loss.
- weighting: ``bm25_weight``, ``tfidf_weight`` and ``confidence`` over CSR.
"""

from fastrec.implicit.als import ALS
from fastrec.implicit.bpr import BPR
from fastrec.implicit.warp import WARP
from fastrec.implicit.weighting import bm25_weight, confidence, tfidf_weight

__all__ = ["ALS", "BPR", "WARP", "bm25_weight", "confidence", "tfidf_weight"]
