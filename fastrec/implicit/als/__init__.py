"""Implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008)."""

from fastrec.implicit.als.model import ALS

__all__ = ["ALS"]
