"""Matrix factorization of explicit ratings by SGD."""

from fastrec.mf.model import DivergenceError, MatrixFactorization

__all__ = ["DivergenceError", "MatrixFactorization"]
