"""Models and weighting for behaviour data: plays, clicks, purchases, views.

- :class:`ALS`: implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008).
"""

from fastrec.implicit.als import ALS

__all__ = ["ALS"]
