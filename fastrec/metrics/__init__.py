"""Evaluation: rating metrics, ranking metrics at k, and :func:`evaluate` for fitted models."""

from fastrec.metrics.evaluate import evaluate
from fastrec.metrics.ranking import (
    RankingScore,
    coverage,
    f1_at_k,
    hit_rate_at_k,
    map_at_k,
    ndcg_at_k,
    per_user_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from fastrec.metrics.rating import mae, rmse

__all__ = [
    "RankingScore",
    "coverage",
    "evaluate",
    "f1_at_k",
    "hit_rate_at_k",
    "mae",
    "map_at_k",
    "ndcg_at_k",
    "per_user_metrics",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "rmse",
]
