"""Models and weighting for behaviour data: plays, clicks, purchases, views.

- weighting: ``bm25_weight``, ``tfidf_weight`` and ``confidence`` over CSR.
"""

from fastrec.implicit.weighting import bm25_weight, confidence, tfidf_weight

__all__ = ["bm25_weight", "confidence", "tfidf_weight"]
