"""Sparse similarity with top-k neighbours."""

from fastrec.similarity.cosine import cosine_topk
from fastrec.similarity.measures import SIMILARITIES, similarity_topk

__all__ = ["SIMILARITIES", "cosine_topk", "similarity_topk"]
