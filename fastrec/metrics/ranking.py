r"""Ranking metrics at k of a recommendation table against held-out test items.

Every function takes

* ``recommended``: an int array of shape (n_users, >= k) whose row ``u`` lists
  the inner item indices recommended to user ``u``, best first, -1 in empty
  slots (what ``recommend`` returns once raw ids are mapped to column numbers);
* ``test``: a users x items scipy sparse matrix whose stored entries are the
  relevant held-out items (or, with ``threshold``, the entries whose value is at
  least ``threshold``).  Row ``u`` of ``test`` belongs to row ``u`` of
  ``recommended``.

With :math:`T_u` the relevant items of user :math:`u`, :math:`L_u` its first
``k`` recommendations and :math:`\mathrm{rel}_p = 1` when the item in slot
:math:`p` (from 0) is in :math:`T_u`:

.. math::

    \mathrm{hits}_u &= \textstyle\sum_{p<k} \mathrm{rel}_p \\
    \mathrm{precision@k} &= \mathrm{hits}_u / k \quad\text{(empty slots count as misses)} \\
    \mathrm{recall@k} &= \mathrm{hits}_u / |T_u| \\
    \mathrm{F1@k} &= 2PR / (P + R) \quad\text{(0 without hits), per user} \\
    \mathrm{NDCG@k} &= \frac{\sum_{p<k} \mathrm{rel}_p / \log_2(p + 2)}
                            {\sum_{p < \min(k, |T_u|)} 1 / \log_2(p + 2)} \\
    \mathrm{AP@k} &= \frac{1}{\min(k, |T_u|)} \sum_{p<k} \mathrm{rel}_p\,
                     \frac{\mathrm{hits\ in\ slots\ } 0..p}{p + 1}
                     \quad\text{(MAP@k is its mean)} \\
    \mathrm{hit\ rate@k} &= 1[\mathrm{hits}_u > 0]

Each metric is the mean over the users that have at least one relevant test
item; users without one are excluded from the mean (their row of
``recommended`` is still checked and counts for coverage).  The functions
return a :class:`RankingScore` ``(value, n_users)`` holding that mean and the
number of users it averages (``nan`` and 0 when no user has test items).

Membership tests run in a compiled kernel (C++, Numba, or the numpy
reference), one user per task; the result does not depend on the thread count.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastrec import _runtime
from fastrec import _validation as V
from fastrec.metrics._checks import check_recommendation_table, check_relevance_matrix

METRIC_NAMES = ("precision", "recall", "f1", "ndcg", "map", "hit_rate")


class RankingScore(NamedTuple):
    """A ranking metric: the mean over users with test items, and how many there were."""

    value: float
    n_users: int


def _kernel(backend: str):
    return _runtime.kernel_module(backend, "metrics").ranking_metrics


def per_user_metrics(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Every ranking metric of every user, and which items were recommended.

    Parameters
    ----------
    recommended : int array, shape (n_users, >= min(k, n_items))
    test : scipy sparse matrix, shape (n_users, n_items)
    k : int, default 10
        Slots evaluated.  A k beyond ``n_items`` is allowed: the slots past
        ``n_items`` are empty, need not be present in ``recommended``, and count
        as misses for precision.
    threshold : float, optional
        Only test entries with a value >= threshold are relevant.
    n_threads : int, optional
    backend : {"auto", "cpp", "numba", "numpy"}

    Returns
    -------
    per_user : ndarray of float64, shape (n_users, 6)
        Columns precision, recall, f1, ndcg, ap, hit (see the module
        docstring); rows of users without relevant test items are NaN.
    recommended_items : ndarray of bool, shape (n_items,)
        True for every item in some user's first ``k`` slots.
    """
    k = V.check_int(k, "k", minimum=1)
    relevant = check_relevance_matrix(test, threshold)
    n_users, n_items = relevant.shape
    # A user can be shown at most n_items distinct items, so slots past that are empty and
    # only precision (hits / k) still depends on k: the kernels read k_read columns.
    k_read = min(k, max(n_items, 1))
    # ids and duplicates are still checked in every slot up to k that the table has
    try:
        shape = np.shape(recommended)
    except ValueError:  # ragged rows: check_recommendation_table names the problem
        shape = ()
    k_check = max(k_read, min(k, shape[1])) if len(shape) == 2 else k_read
    table = check_recommendation_table(recommended, n_users, n_items, k_check)
    backend = _runtime.resolve_backend(backend)
    n_threads = _runtime.resolve_threads(n_threads)
    out = np.empty((n_users, len(METRIC_NAMES)), dtype=np.float64)
    flags = np.zeros(n_items, dtype=np.uint8)
    with _runtime.kernel_threads(backend, n_threads):
        _kernel(backend)(
            recs=table,
            k=k_read,
            test_indptr=np.ascontiguousarray(relevant.indptr, dtype=np.int64),
            test_indices=np.ascontiguousarray(relevant.indices),
            n_items=n_items,
            out=out,
            out_recommended=flags,
            n_threads=n_threads,
        )
    if k_read < k:
        hits = np.rint(out[:, 0] * k_read)
        precision, recall = hits / k, out[:, 1]
        out[:, 0] = precision
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 2] = np.where(
                hits > 0,
                2.0 * precision * recall / (precision + recall),
                np.where(np.isnan(hits), np.nan, 0.0),
            )
    return out, flags.astype(bool)


def _means(per_user: np.ndarray) -> tuple[np.ndarray, int]:
    valid = ~np.isnan(per_user[:, 0])
    count = int(valid.sum())
    if count == 0:
        return np.full(per_user.shape[1], np.nan), 0
    return per_user[valid].mean(axis=0), count


def ranking_metrics(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> dict[str, float]:
    """All ranking metrics at ``k`` in one pass (definitions in the module docstring).

    Parameters
    ----------
    recommended, test, k, threshold, n_threads, backend
        As in :func:`per_user_metrics`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``ndcg``, ``map``, ``hit_rate`` (means
        over users with test items), ``coverage`` (fraction of test's columns
        recommended to anyone) and ``n_users`` (users in the means).
    """
    per_user, flags = per_user_metrics(
        recommended, test, k, threshold=threshold, n_threads=n_threads, backend=backend
    )
    means, count = _means(per_user)
    result = {name: float(value) for name, value in zip(METRIC_NAMES, means)}
    result["coverage"] = float(flags.mean()) if flags.size else float("nan")
    result["n_users"] = count
    return result


def _one(
    column: int,
    recommended: Any,
    test: Any,
    k: int,
    threshold: float | None,
    n_threads: int | None,
    backend: str,
) -> RankingScore:
    per_user, _ = per_user_metrics(
        recommended, test, k, threshold=threshold, n_threads=n_threads, backend=backend
    )
    means, count = _means(per_user)
    return RankingScore(float(means[column]), count)


def precision_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""Mean precision@k, :math:`\mathrm{hits}_u / k` (empty slots are misses).

    Parameters and the treatment of users without test items: see
    :mod:`fastrec.metrics.ranking`.

    Returns
    -------
    RankingScore
        ``(value, n_users)``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastrec.metrics import precision_at_k
    >>> test = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0]]))
    >>> precision_at_k(np.array([[2, 1], [0, 3]]), test, k=2)
    RankingScore(value=0.5, n_users=1)
    """
    return _one(0, recommended, test, k, threshold, n_threads, backend)


def recall_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""Mean recall@k, :math:`\mathrm{hits}_u / |T_u|` (see :mod:`fastrec.metrics.ranking`)."""
    return _one(1, recommended, test, k, threshold, n_threads, backend)


def f1_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""Mean over users of F1@k, :math:`2PR/(P+R)` per user (0 without hits)."""
    return _one(2, recommended, test, k, threshold, n_threads, backend)


def ndcg_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""Mean NDCG@k with binary relevance.

    .. math:: \frac{\sum_{p<k} \mathrm{rel}_p / \log_2(p + 2)}{\sum_{p < \min(k, |T_u|)} 1 / \log_2(p + 2)}
    """
    return _one(3, recommended, test, k, threshold, n_threads, backend)


def map_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""MAP@k: the mean over users of

    .. math:: \mathrm{AP@k} = \frac{1}{\min(k, |T_u|)} \sum_{p<k} \mathrm{rel}_p\, \mathrm{precision@}(p+1)
    """
    return _one(4, recommended, test, k, threshold, n_threads, backend)


def hit_rate_at_k(
    recommended: Any,
    test: Any,
    k: int = 10,
    *,
    threshold: float | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
) -> RankingScore:
    r"""Fraction of users with at least one relevant item in their first ``k`` slots."""
    return _one(5, recommended, test, k, threshold, n_threads, backend)


def coverage(
    recommended: Any, test: Any, k: int = 10, *, n_threads: int | None = None, backend: str = "auto"
) -> float:
    r"""Catalogue coverage: the fraction of items recommended to at least one user.

    .. math:: \mathrm{coverage@k} = |\textstyle\bigcup_u L_u| / n_\mathrm{items}

    Counted over every row of ``recommended`` (users with and without test
    items alike), with ``n_items`` the number of columns of ``test``.

    Parameters
    ----------
    recommended : int array, shape (n_users, >= k)
    test : scipy sparse matrix, shape (n_users, n_items)
        Only its shape is used here.
    k : int, default 10

    Returns
    -------
    float
    """
    _, flags = per_user_metrics(recommended, test, k, n_threads=n_threads, backend=backend)
    return float(flags.mean()) if flags.size else float("nan")
