"""Weighting of behaviour data: BM25, TF-IDF and ALS confidence over CSR."""

from fastrec.implicit.weighting.weights import bm25_weight, confidence, tfidf_weight

__all__ = ["bm25_weight", "confidence", "tfidf_weight"]
