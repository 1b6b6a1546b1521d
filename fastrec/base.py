"""The base every fastrec estimator derives: scikit-learn's estimator protocol.

Constructor parameters are stored as given and validated in ``fit``, so
``get_params``, ``set_params``, ``sklearn.base.clone``, ``repr`` and parameter
searches work as they do for scikit-learn's own estimators.  On top of
scikit-learn's ``BaseEstimator`` the base adds what a model shared inside a
service needs: the read-write lock of :mod:`fastrec._concurrency` (dropped when
pickled, recreated on first use) and a hook to rebuild what pickling cannot
carry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from fastrec import _validation as V
from fastrec._concurrency import SharedModel

__all__ = ["Estimator", "NotFittedError", "check_fitted"]


class Estimator(SharedModel, BaseEstimator):
    """Base of every fastrec estimator.

    Subclasses list every parameter in ``__init__`` as a keyword with a default,
    store each one unchanged under its own name, and check them in ``fit``
    (scikit-learn's rules), so that ``clone(model)`` gives an unfitted copy with
    the same parameters.  Fitted attributes end in ``_``.
    """

    # SharedModel comes first in the MRO: its __getstate__/__setstate__ drop and
    # recreate the lock; scikit-learn's add nothing for estimators outside sklearn.


def check_fitted(estimator: Any, attribute: str, fit_call: str = "fit") -> None:
    """Raise :class:`NotFittedError` when ``estimator`` lacks ``attribute`` (or it is None).

    Parameters
    ----------
    estimator : object
        The estimator asked to do something that needs a fitted model.
    attribute : str
        A fitted attribute (ending in ``_``) that exists only after fitting.
    fit_call : str
        How to fit it, named in the message (``"fit(X)"``, ``"fit(ratings)"``).
    """
    if getattr(estimator, attribute, None) is None:
        raise NotFittedError(f"This {type(estimator).__name__} is not fitted yet; call {fit_call} first.")


def check_random_state(random_state: Any) -> Any:
    """``random_state`` if it is None, an int >= 0, a Generator or a RandomState (else raise)."""
    if random_state is None or isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(
            f"random_state must be None, an int >= 0, a numpy Generator or a RandomState, got "
            f"{type(random_state).__name__}."
        )
    return V.check_int(random_state, "random_state", minimum=0)


def seed_from(random_state: Any) -> int:
    """The integer seed of one fit: ``random_state`` itself, or one drawn from it or the OS."""
    random_state = check_random_state(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, np.iinfo(np.int64).max))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, np.iinfo(np.int64).max, dtype=np.int64))
    return random_state
