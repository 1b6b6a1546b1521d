"""Rating-prediction metrics.

Both metrics are computed on the errors scaled by one power of two when their
magnitude demands it (as BLAS ``nrm2`` scales by the largest element), so that
neither the squares nor the sums overflow or underflow: the result is finite
and correct to rounding whenever the true value is a finite float64.  Errors of
ordinary magnitude take the direct formula, bit for bit as before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastrec.metrics._checks import check_prediction_pair

# Inputs below 2**1022 in magnitude have differences below 2**1023, which float64 holds.
_INPUT_LIMIT = 2.0**1022
# Errors within [2**-480, 2**480] square and sum (over < 2**60 terms) inside float64's normal range.
_SAFE_LOW, _SAFE_HIGH = 2.0**-480, 2.0**480


def _errors(y_true: Any, y_pred: Any) -> tuple[np.ndarray, int]:
    """``(e, p)`` with ``e * 2**p`` the float64 errors ``y_true - y_pred`` and ``max|e|``
    either inside the safe range or in [0.5, 1)."""
    true, pred = check_prediction_pair(y_true, y_pred)
    shift = 0
    if max(float(np.max(np.abs(true))), float(np.max(np.abs(pred)))) >= _INPUT_LIMIT:
        shift = 2  # the difference of two values this large can overflow: halve both twice
        true, pred = np.ldexp(true, -shift), np.ldexp(pred, -shift)
    errors = true - pred
    top = float(np.max(np.abs(errors)))
    if top == 0.0 or _SAFE_LOW <= top <= _SAFE_HIGH:
        return errors, shift
    exponent = math.frexp(top)[1]
    return np.ldexp(errors, -exponent), shift + exponent


def _unscale(value: float, exponent: int, name: str) -> float:
    """``value * 2**exponent``, or a ValueError when float64 cannot hold it."""
    if exponent == 0:
        return value
    try:
        out = math.ldexp(value, exponent)
    except OverflowError:
        out = math.inf
    if math.isinf(out):
        raise ValueError(
            f"The {name} of these ratings exceeds the largest float64 value (about "
            f"{value:.6g} * 2**{exponent}). Rescale y_true and y_pred by the same constant "
            "(for example 2.0**-64) and scale the result back."
        )
    return out


def rmse(y_true: Any, y_pred: Any) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac{1}{n} \sum_t (y_t - \hat y_t)^2}`.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted ratings, finite numbers (computed in float64).

    Returns
    -------
    float
        Finite and correct to rounding for any finite inputs whose RMSE is a
        finite float64; a ValueError says so when it is not.
    """
    errors, exponent = _errors(y_true, y_pred)
    return _unscale(float(np.sqrt(np.mean(errors**2))), exponent, "RMSE")


def mae(y_true: Any, y_pred: Any) -> float:
    r"""Mean absolute error, :math:`\frac{1}{n} \sum_t |y_t - \hat y_t|`.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted ratings, finite numbers (computed in float64).

    Returns
    -------
    float
        Finite and correct to rounding for any finite inputs whose MAE is a
        finite float64; a ValueError says so when it is not.
    """
    errors, exponent = _errors(y_true, y_pred)
    return _unscale(float(np.mean(np.abs(errors))), exponent, "MAE")
