"""Train / test splits of rating data: random, per-user leave-k-out, and temporal."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.datasets._checks import check_interactions_have_timestamps, check_test_size, check_timestamps
from fastrec.datasets._triples import USER_COLUMNS, frame_column

METHODS = ("random", "leave_k_out", "leave_last_k_out", "temporal")
_TIME_COLUMNS = ("timestamp", "timestamps", "time", "ts", "datetime", "date")


def _test_mask(
    users: np.ndarray, times: np.ndarray | None, method: str, test_size: Any, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of the ratings that go to the test side.

    ``users`` holds dense user indices (int) of every rating, in input order.
    """
    n = users.size
    positions = np.arange(n)
    mask = np.zeros(n, dtype=bool)
    if method == "random":
        mask[rng.choice(n, size=check_test_size(test_size, n), replace=False)] = True
        return mask
    if method == "temporal":
        assert times is not None  # the caller refuses the time-based methods without timestamps
        # Latest ratings first out; equal timestamps are broken by input order.
        order = np.lexsort((positions, times))
        mask[order[n - check_test_size(test_size, n) :]] = True
        return mask
    if method == "leave_k_out":
        order = np.lexsort((rng.random(n), users))  # each user's ratings in random order
    else:  # leave_last_k_out: each user's ratings by time, ties by input order
        assert times is not None
        order = np.lexsort((positions, times, users))
    grouped = users[order]
    counts = np.bincount(grouped)
    end = np.cumsum(counts)[grouped]  # one past the user's last position in `order`
    from_end = end - 1 - np.arange(n)  # 0 for the last rating of each user in `order`
    mask[order] = (from_end < k) & (counts[grouped] > k)
    return mask


def train_test_split(
    data: Any,
    test_size: float | int = 0.2,
    *,
    method: str = "random",
    k: int = 1,
    timestamps: Any = None,
    seed: int | None = None,
    columns: Any = None,
) -> tuple[Any, Any]:
    """Split ratings into a training and a test part, returned in the form they came in.

    Methods:

    * ``"random"``: ``test_size`` of all ratings (a fraction, rounded, or a
      count), drawn uniformly without replacement.
    * ``"leave_k_out"``: ``k`` ratings of every user, drawn at random, go to
      test.  A user with ``k`` ratings or fewer keeps all of them in training.
    * ``"leave_last_k_out"``: the same with each user's ``k`` latest ratings by
      timestamp (among equal timestamps, the later in input order counts as later).
    * ``"temporal"``: the ``test_size`` latest ratings overall by timestamp go to
      test (a global time cut; equal timestamps broken by input order).

    Every rating lands on exactly one side, and the two sides together are the
    input.  The same ``seed`` gives the same split; the temporal methods use no
    randomness.

    Parameters
    ----------
    data : Interactions, scipy sparse matrix, tuple of arrays, or pandas DataFrame
        A :class:`fastrec.datasets.Interactions` (its ratings in CSR order; its
        timestamps, when it has them, serve the temporal methods); a users x
        items sparse matrix (its stored entries, in CSR order, are the
        ratings); or ``(users, items, ratings)`` or ``(users, items, ratings,
        timestamps)`` arrays of equal length; or a DataFrame with a user column
        (found by name like ``user_id``, or named by ``columns``).
    test_size : float or int, default 0.2
        For ``"random"`` and ``"temporal"``: a fraction in (0, 1) (rounded to a
        count, at least one rating on each side) or a number of ratings.
    method : {"random", "leave_k_out", "leave_last_k_out", "temporal"}
    k : int, default 1
        Ratings per user for the leave-k-out methods.
    timestamps : array-like, sparse matrix or str, optional
        Needed by the temporal methods.  An array aligned with the ratings (for
        a sparse matrix: with its stored entries in CSR order), a sparse matrix
        with exactly the ratings' stored pattern, or, for a DataFrame, a column
        name.  Defaults to the timestamps of an ``Interactions``, the fourth
        array of a tuple or a DataFrame column named like ``timestamp``.
    seed : int, optional
        Seed of the random methods; ``None`` draws fresh randomness.
    columns : str or (str, ...), optional
        DataFrame: the user column name (or a (user, item, rating) tuple whose
        first entry is it).

    Returns
    -------
    train, test
        Same form as ``data``: ``Interactions`` with the input's users, items,
        side tables and the timestamps of their ratings (as
        :meth:`Interactions.subset` makes them); CSR (or the input's sparse
        format) matrices of the input's shape; tuples of arrays of the input's
        length (3 or 4); or DataFrames (rows selected, index kept).
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(map(repr, METHODS))}.")
    k = V.check_int(k, "k", minimum=1)
    seed = V.check_seed(seed)
    rng = np.random.default_rng(seed)
    needs_time = method in ("temporal", "leave_last_k_out")

    from fastrec.datasets.interactions import Interactions

    if isinstance(data, Interactions):
        # Row numbers are the users; the Interactions' own timestamps serve the
        # temporal methods unless others are given.
        users = np.repeat(np.arange(data.n_users), np.diff(data.matrix.indptr))
        if timestamps is None and needs_time:
            check_interactions_have_timestamps(data, method)
        given = data.timestamps.data if timestamps is None and data.timestamps is not None else timestamps
        pattern = data.matrix if sp.issparse(given) else None
        times = _times(given, data.nnz, needs_time, method, pattern)
        mask = _checked_mask(users, times, method, test_size, k, rng)
        return data.subset(~mask), data.subset(mask)

    if sp.issparse(data):
        if data.ndim != 2:
            raise ValueError(f"data must be a 2-D ratings matrix, got {data.ndim} dimensions.")
        csr = sp.csr_matrix(V.check_sparse_structure(data, "data"))  # no copy for CSR input
        n = csr.nnz
        users = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        times = _times(timestamps, n, needs_time, method, csr)
        mask = _checked_mask(users, times, method, test_size, k, rng)
        return _csr_part(csr, ~mask, data.format), _csr_part(csr, mask, data.format)

    if hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        given = columns[0] if isinstance(columns, (tuple, list)) else columns
        user_column = frame_column(data, given, USER_COLUMNS, "user")
        users = IdMap.from_values(V.id_array(data[user_column].to_numpy(), "user column"))[1]
        if isinstance(timestamps, str):
            if timestamps not in data.columns:
                raise ValueError(f"timestamps={timestamps!r} is not a column of the DataFrame.")
            timestamps = data[timestamps].to_numpy()
        elif timestamps is None and needs_time:
            found = [c for c in _TIME_COLUMNS if c in data.columns]
            timestamps = data[found[0]].to_numpy() if found else None
        times = _times(timestamps, len(data), needs_time, method)
        mask = _checked_mask(users, times, method, test_size, k, rng)
        return data.iloc[np.flatnonzero(~mask)], data.iloc[np.flatnonzero(mask)]

    if not isinstance(data, (tuple, list)) or len(data) not in (3, 4):
        raise TypeError(
            "data must be a users x items scipy sparse matrix, an Interactions, a (users, items, "
            f"ratings[, timestamps]) tuple of arrays or a pandas DataFrame; got {type(data).__name__}."
        )
    arrays = [np.asarray(part) for part in data]
    lengths = {a.shape[0] if a.ndim else -1 for a in arrays}
    if len(lengths) != 1 or any(a.ndim != 1 for a in arrays):
        raise ValueError(
            "users, items, ratings (and timestamps) must be 1-D arrays of the same length, got shapes "
            f"{[a.shape for a in arrays]}."
        )
    if timestamps is None and len(arrays) == 4:
        timestamps = arrays[3]
    users = IdMap.from_values(V.id_array(arrays[0], "users"))[1]
    times = _times(timestamps, users.size, needs_time, method)
    mask = _checked_mask(users, times, method, test_size, k, rng)
    kind = type(data) if isinstance(data, tuple) else tuple
    return kind(a[~mask] for a in arrays), kind(a[mask] for a in arrays)


def _times(
    timestamps: Any, n: int, needs_time: bool, method: str, pattern: sp.csr_matrix | None = None
) -> np.ndarray | None:
    if timestamps is None:
        if needs_time:
            raise ValueError(
                f"method={method!r} needs timestamps: pass timestamps=... (an array aligned with the "
                "ratings, or a matrix with their pattern) or a 4-tuple (users, items, ratings, timestamps)."
            )
        return None
    return check_timestamps(timestamps, n, pattern)


def _checked_mask(
    users: np.ndarray, times: np.ndarray | None, method: str, test_size: Any, k: int, rng: np.random.Generator
) -> np.ndarray:
    if users.size < 2:
        raise ValueError(f"data holds {users.size} rating(s); a split needs at least 2.")
    return _test_mask(users.astype(np.int64), times, method, test_size, k, rng)


def _csr_part(csr: sp.csr_matrix, keep: np.ndarray, fmt: str) -> Any:
    """The stored entries of ``csr`` flagged in ``keep``, as a matrix of the same shape and format."""
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    indptr = np.zeros(csr.shape[0] + 1, dtype=csr.indptr.dtype)
    np.cumsum(np.bincount(rows[keep], minlength=csr.shape[0]), out=indptr[1:])
    part = sp.csr_matrix((csr.data[keep], csr.indices[keep], indptr), shape=csr.shape)
    return part if fmt == "csr" else part.asformat(fmt)
