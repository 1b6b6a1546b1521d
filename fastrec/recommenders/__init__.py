"""Neighbourhood, content-based and hybrid recommenders, and the Recommender base of all of them.

Every recommender (these and :class:`fastrec.MatrixFactorization`) derives
:class:`Recommender`: it takes ratings in the forms
:meth:`fastrec.MatrixFactorization.fit` accepts, keeps raw user and item ids, and
shares ``recommend(users, n=10, *, exclude_seen=True, items=None,
filter_items=None, unknown="raise", user_items=None)``, ``score_items``,
scikit-learn's estimator protocol and ``.npz`` ``save`` / ``load``.
"""

from fastrec.recommenders._base import Recommender
from fastrec.recommenders._checks import UnknownIdError
from fastrec.recommenders._factors import FactorRecommender
from fastrec.recommenders.content import ContentKNN
from fastrec.recommenders.hybrid import Hybrid
from fastrec.recommenders.knn import ItemKNN, UserKNN

__all__ = ["ContentKNN", "FactorRecommender", "Hybrid", "ItemKNN", "Recommender", "UnknownIdError", "UserKNN"]
