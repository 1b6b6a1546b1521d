"""Models and weighting for behaviour data: plays, clicks, purchases, views.

- :class:`BPR`: Bayesian Personalized Ranking, pairwise SGD on sampled (user, positive, negative) triples.
"""

from fastrec.implicit.bpr import BPR

__all__ = ["BPR"]
