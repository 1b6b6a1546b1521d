"""Bayesian Personalized Ranking (Rendle et al. 2009) of behaviour data by pairwise SGD."""

from fastrec.implicit.bpr.model import BPR

__all__ = ["BPR"]
