"""Splitters: objects whose ``split(data)`` yields (train, test) rating sets in the input's form.

:class:`KFold` cuts the ratings into folds; the others run
:func:`fastrec.datasets.train_test_split` once per split with their method.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

from fastrec import _validation as V
from fastrec.datasets.splits import train_test_split
from fastrec.model_selection._data import n_ratings, take


def check_random_state(random_state: Any) -> int | None:
    """``random_state`` as a non-negative int or None, or a ValueError/TypeError naming it."""
    if random_state is None:
        return None
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"random_state must be None or a non-negative integer seed, got {random_state!r} of "
            f"type {type(random_state).__name__}."
        )
    if random_state < 0:
        raise ValueError(f"random_state must be a non-negative integer seed, got {random_state}.")
    return int(random_state)


def _check_n_splits(n_splits: Any, minimum: int) -> int:
    if isinstance(n_splits, (bool, np.bool_)) or not isinstance(n_splits, numbers.Integral):
        raise TypeError(f"n_splits must be an integer, got {n_splits!r} of type {type(n_splits).__name__}.")
    if n_splits < minimum:
        need = (
            "at least 2 folds (each rating is tested once, trained on in the others)"
            if minimum == 2
            else "at least 1 split"
        )
        raise ValueError(f"n_splits={n_splits} is too small: use {need}.")
    return int(n_splits)


def _check_test_size(test_size: Any) -> float | int:
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a fraction in (0, 1) or a number of ratings, got {test_size!r}.")
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise ValueError(f"test_size={test_size} must be at least 1 rating (or a fraction in (0, 1)).")
        return int(test_size)
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(
            f"test_size={test_size} must be a fraction strictly between 0 and 1 "
            "(or an integer number of ratings)."
        )
    return float(test_size)


def _split_seeds(random_state: int | None, n: int) -> list[int]:
    """``n`` independent seeds for train_test_split: fixed by an int random_state, fresh for None."""
    return [int(s) for s in np.random.SeedSequence(random_state).generate_state(n, dtype=np.uint32)]


def _checked_pair(train: Any, test: Any, what: str) -> tuple[Any, Any]:
    if n_ratings(test, "test") == 0:
        raise ValueError(f"{what} left no rating in the test set: {_EMPTY_HINT}")
    return train, test


_EMPTY_HINT = "every user has k ratings or fewer; lower k or drop users with few ratings."


class _Splitter:
    """Shared repr and get_n_splits of the splitters."""

    _params: tuple[str, ...] = ()

    def get_n_splits(self, data: Any = None) -> int:
        """Number of (train, test) pairs :meth:`split` yields.

        Parameters
        ----------
        data : object, optional
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        int
        """
        return int(getattr(self, "n_splits", 1))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._params)
        return f"{type(self).__name__}({args})"


class KFold(_Splitter):
    """K-fold cross-validation over ratings: every rating is in exactly one test fold.

    The ratings (CSR order for an ``Interactions`` or a sparse matrix, row order
    for a tuple or a DataFrame) are cut into ``n_splits`` folds whose sizes differ
    by at most one (the first ``n_ratings % n_splits`` folds hold one more);
    fold ``f`` is the test set of split ``f`` and the other folds its training set.

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds, at least 2 and at most the number of ratings.
    shuffle : bool, default True
        Shuffle the ratings before cutting them.  Without shuffling the folds
        are consecutive blocks, which for CSR data are blocks of users: their
        users are then unseen in training.
    random_state : int, optional
        Seed of the shuffle: the same seed gives the same folds.  ``None`` draws
        fresh folds at every :meth:`split` call.  Must be None without shuffling.

    Examples
    --------
    >>> from fastrec.datasets import make_ratings
    >>> from fastrec.model_selection import KFold
    >>> R = make_ratings(50, 40, 600, seed=0)
    >>> [test.nnz for _, test in KFold(3, random_state=0).split(R)]
    [200, 200, 200]
    """

    _params = ("n_splits", "shuffle", "random_state")

    def __init__(self, n_splits: int = 5, shuffle: bool = True, random_state: int | None = None):
        self.n_splits = _check_n_splits(n_splits, 2)
        self.shuffle = V.check_bool(shuffle, "shuffle")
        self.random_state = check_random_state(random_state)
        if not self.shuffle and self.random_state is not None:
            raise ValueError(
                "random_state has no effect with shuffle=False: pass shuffle=True or random_state=None."
            )

    def test_masks(self, data: Any) -> Iterator[np.ndarray]:
        """The test fold of every split as a mask over the ratings.

        Parameters
        ----------
        data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame

        Yields
        ------
        ndarray of bool, shape (n_ratings,)
            True for the ratings of the test fold.
        """
        n = n_ratings(data)
        if self.n_splits > n:
            raise ValueError(
                f"n_splits={self.n_splits} is more than the {n} rating(s) in data: every fold needs "
                f"a rating; use n_splits <= {n}."
            )
        order = np.random.default_rng(self.random_state).permutation(n) if self.shuffle else np.arange(n)
        sizes = np.full(self.n_splits, n // self.n_splits, dtype=np.int64)
        sizes[: n % self.n_splits] += 1
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        for fold in range(self.n_splits):
            mask = np.zeros(n, dtype=bool)
            mask[order[bounds[fold] : bounds[fold + 1]]] = True
            yield mask

    def split(self, data: Any) -> Iterator[tuple[Any, Any]]:
        """Yield the (train, test) ratings of every fold.

        Parameters
        ----------
        data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
            Any form :func:`fastrec.datasets.train_test_split` takes.

        Yields
        ------
        train, test
            In the form of ``data`` (as :func:`fastrec.datasets.train_test_split`
            returns them): ``Interactions`` with all users and items, matrices of
            the input's shape, tuples of arrays, or DataFrames.
        """
        for mask in self.test_masks(data):
            yield take(data, ~mask), take(data, mask)


class ShuffleSplit(_Splitter):
    """Repeated random train / test splits (``train_test_split(method="random")``).

    Parameters
    ----------
    n_splits : int, default 5
        Number of independent splits.  Test sets of different splits may overlap.
    test_size : float or int, default 0.2
        Fraction of the ratings (rounded, at least one on each side) or number
        of ratings in each test set.
    random_state : int, optional
        The same seed gives the same splits; ``None`` draws fresh ones per call.
    """

    _params = ("n_splits", "test_size", "random_state")

    def __init__(self, n_splits: int = 5, *, test_size: float | int = 0.2, random_state: int | None = None):
        self.n_splits = _check_n_splits(n_splits, 1)
        self.test_size = _check_test_size(test_size)
        self.random_state = check_random_state(random_state)

    def split(self, data: Any) -> Iterator[tuple[Any, Any]]:
        """Yield (train, test) for every split, in the form of ``data`` (see :meth:`KFold.split`)."""
        for seed in _split_seeds(self.random_state, self.n_splits):
            yield train_test_split(data, self.test_size, method="random", seed=seed)


class LeaveKOut(_Splitter):
    """Per-user holdout: ``k`` random ratings of every user are tested (``method="leave_k_out"``).

    Users with ``k`` ratings or fewer keep all of them in training.

    Parameters
    ----------
    k : int, default 1
        Ratings held out per user.
    n_splits : int, default 1
        Independent repetitions with different draws.
    random_state : int, optional
        The same seed gives the same splits; ``None`` draws fresh ones per call.
    """

    _params = ("k", "n_splits", "random_state")

    def __init__(self, k: int = 1, *, n_splits: int = 1, random_state: int | None = None):
        self.k = V.check_int(k, "k", minimum=1)
        self.n_splits = _check_n_splits(n_splits, 1)
        self.random_state = check_random_state(random_state)

    def split(self, data: Any) -> Iterator[tuple[Any, Any]]:
        """Yield (train, test) for every split, in the form of ``data`` (see :meth:`KFold.split`)."""
        for seed in _split_seeds(self.random_state, self.n_splits):
            yield _checked_pair(
                *train_test_split(data, method="leave_k_out", k=self.k, seed=seed), f"LeaveKOut(k={self.k})"
            )


class LeaveLastKOut(_Splitter):
    """Per-user temporal holdout: every user's ``k`` latest ratings are tested.

    Wraps ``train_test_split(method="leave_last_k_out")``; one split, no randomness.

    Parameters
    ----------
    k : int, default 1
        Latest ratings held out per user (ties by input order); users with ``k``
        ratings or fewer keep all of them in training.
    """

    _params = ("k",)
    n_splits = 1

    def __init__(self, k: int = 1):
        self.k = V.check_int(k, "k", minimum=1)

    def split(self, data: Any, timestamps: Any = None) -> Iterator[tuple[Any, Any]]:
        """Yield the one (train, test) pair, in the form of ``data``.

        Parameters
        ----------
        data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
        timestamps : array-like, sparse matrix or str, optional
            As in :func:`fastrec.datasets.train_test_split`; defaults to the
            timestamps of an ``Interactions``, the fourth array of a tuple or a
            DataFrame column named like ``timestamp``.
        """
        yield _checked_pair(
            *train_test_split(data, method="leave_last_k_out", k=self.k, timestamps=timestamps),
            f"LeaveLastKOut(k={self.k})",
        )


class TemporalSplit(_Splitter):
    """A global time cut: the latest ``test_size`` ratings are tested (``method="temporal"``).

    Parameters
    ----------
    test_size : float or int, default 0.2
        Fraction of the ratings (rounded, at least one on each side) or number of ratings.
    """

    _params = ("test_size",)
    n_splits = 1

    def __init__(self, test_size: float | int = 0.2):
        self.test_size = _check_test_size(test_size)

    def split(self, data: Any, timestamps: Any = None) -> Iterator[tuple[Any, Any]]:
        """Yield the one (train, test) pair, in the form of ``data`` (timestamps as in
        :meth:`LeaveLastKOut.split`)."""
        yield train_test_split(data, self.test_size, method="temporal", timestamps=timestamps)


def check_cv(cv: Any, random_state: int | None = None) -> Any:
    """A splitter from ``cv``: an int gives a shuffled :class:`KFold` seeded by ``random_state``.

    Parameters
    ----------
    cv : int or splitter
        Number of folds, or an object with ``split(data)`` and ``get_n_splits()``.
    random_state : int, optional
        Seed of the :class:`KFold` an int ``cv`` makes.

    Returns
    -------
    splitter
    """
    if isinstance(cv, numbers.Integral) and not isinstance(cv, (bool, np.bool_)):
        if cv < 2:
            raise ValueError(f"cv={cv} folds is too few: use cv >= 2 or pass a splitter object.")
        return KFold(int(cv), shuffle=True, random_state=random_state)
    if callable(getattr(cv, "split", None)) and callable(getattr(cv, "get_n_splits", None)):
        return cv
    raise ValueError(
        f"cv={cv!r} is neither a number of folds nor a splitter: pass an int >= 2 or an object with "
        "split(data) and get_n_splits(), such as fastrec.model_selection.KFold(5, random_state=0)."
    )
