"""Models and weighting for behaviour data: plays, clicks, purchases, views.

WARP: factorization trained with the Weighted Approximate-Rank Pairwise loss.
"""

from fastrec.implicit.warp import WARP

__all__ = ["WARP"]
