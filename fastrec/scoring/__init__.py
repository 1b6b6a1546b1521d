"""Exact top-N scoring of factor models with exclusions."""

from fastrec.scoring.topn import topn

__all__ = ["topn"]
