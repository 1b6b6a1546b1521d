"""WARP: implicit-feedback factorization trained with the Weighted Approximate-Rank Pairwise loss."""

from fastrec.implicit.warp.model import WARP

__all__ = ["WARP"]
