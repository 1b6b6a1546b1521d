"""Rating-prediction metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastrec import _validation as V


def rmse(y_true: Any, y_pred: Any) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac{1}{n} \sum_t (y_t - \hat y_t)^2}`.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted ratings, finite numbers (computed in float64).

    Returns
    -------
    float
    """
    true, pred = V.check_prediction_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((true - pred) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    r"""Mean absolute error, :math:`\frac{1}{n} \sum_t |y_t - \hat y_t|`.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)

    Returns
    -------
    float
    """
    true, pred = V.check_prediction_pair(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))
