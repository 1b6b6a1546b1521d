"""Neighbourhood, content-based and hybrid recommenders.

All of them take ratings in the forms :meth:`fastrec.MatrixFactorization.fit`
accepts, keep raw user and item ids, and share ``recommend(users, n=10, *,
exclude_seen=True, items=None, unknown="raise")`` and ``.npz`` ``save`` / ``load``.
"""

from fastrec._validation import UnknownIdError
from fastrec.recommenders.content import ContentKNN
from fastrec.recommenders.hybrid import Hybrid
from fastrec.recommenders.knn import ItemKNN, UserKNN

__all__ = ["ContentKNN", "Hybrid", "ItemKNN", "UnknownIdError", "UserKNN"]
