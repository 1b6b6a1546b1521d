"""Sparse similarity with top-k neighbours."""

from fastrec.similarity.cosine import cosine_topk

__all__ = ["cosine_topk"]
