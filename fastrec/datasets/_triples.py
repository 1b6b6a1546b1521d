"""Explicit ratings in any accepted container, read into three aligned arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._validation import _rating_values, check_sparse_structure, entry_rows, id_array
from fastrec.datasets.interactions import Interactions

# Column names looked for, in order, in a DataFrame of ratings given without ``columns=``.
USER_COLUMNS = ("user", "user_id", "userId", "userID", "uid", "u")
ITEM_COLUMNS = ("item", "item_id", "itemId", "itemID", "movieId", "movie_id", "iid", "i")
RATING_COLUMNS = ("rating", "ratings", "score", "value", "r")


@dataclass(frozen=True)
class RatingTriples:
    """Explicit ratings as three aligned arrays, the canonical form of every MF input."""

    users: np.ndarray  # (n) raw user ids, or int64 row indices when shape is set
    items: np.ndarray  # (n) raw item ids, or int64 column indices when shape is set
    ratings: np.ndarray  # (n) float64 or float32, finite
    shape: tuple[int, int] | None  # (n_users, n_items) when ids are already indices


def frame_column(frame: Any, given: str | None, candidates: tuple[str, ...], role: str) -> str:
    """The column of DataFrame ``frame`` holding ``role``: ``given``, else the first of ``candidates``."""
    columns = list(frame.columns)
    if given is not None:
        if given not in columns:
            raise ValueError(f"columns: the {role} column {given!r} is not in the DataFrame {columns}.")
        return given
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(
        f"Could not find the {role} column of the DataFrame (columns {columns}). Name it one of "
        f"{list(candidates[:3])} or pass columns=(user_column, item_column, rating_column)."
    )


def rating_triples(data: Any, columns: tuple[str, str, str] | None = None) -> RatingTriples:
    """Read MF training data into :class:`RatingTriples`, or raise a clear error.

    Accepts a ``(user_ids, item_ids, ratings)`` tuple of equal-length 1-D arrays,
    a users x items scipy sparse matrix (every stored entry is a rating, explicit
    zeros included; duplicates are summed, as scipy does), a pandas DataFrame or a
    :class:`fastrec.datasets.Interactions` (whose raw ids are kept).
    """

    if isinstance(data, Interactions):
        users, items, ratings = data.to_triples()
        if ratings.size == 0:
            raise ValueError("The Interactions hold no ratings: there is nothing to fit.")
        return RatingTriples(users, items, ratings, None)
    if sp.issparse(data):
        if data.ndim != 2:
            raise ValueError(f"ratings matrix must be 2-D, got {data.ndim} dimensions.")
        data = check_sparse_structure(data, "ratings matrix")
        # CSR sums duplicates in linear time (COO's sum_duplicates sorts); canonical
        # CSR, the common case, is read as it is.
        csr = sp.csr_matrix(data) if data.format != "csr" else data
        if not csr.has_canonical_format:
            csr = csr.copy()  # never change the caller's matrix
            csr.sum_duplicates()
        values = _rating_values(csr.data, "ratings matrix values")
        if values.size == 0:
            raise ValueError("The ratings matrix has no stored entries: there is nothing to fit.")
        rows = entry_rows(csr.indptr)
        return RatingTriples(
            rows, csr.indices.astype(np.int64), values, (int(csr.shape[0]), int(csr.shape[1]))
        )
    if hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        if columns is not None and (not isinstance(columns, (tuple, list)) or len(columns) != 3):
            raise TypeError("columns must be a (user_column, item_column, rating_column) tuple.")
        given = tuple(columns) if columns is not None else (None, None, None)
        user_col = frame_column(data, given[0], USER_COLUMNS, "user")
        item_col = frame_column(data, given[1], ITEM_COLUMNS, "item")
        rating_col = frame_column(data, given[2], RATING_COLUMNS, "rating")
        data = (data[user_col].to_numpy(), data[item_col].to_numpy(), data[rating_col].to_numpy())
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise TypeError(
            "Pass ratings as a (user_ids, item_ids, ratings) tuple of 1-D arrays, a users x items "
            f"scipy sparse matrix or a pandas DataFrame; got {type(data).__name__}."
        )
    users = id_array(data[0], "user_ids")
    items = id_array(data[1], "item_ids")
    ratings = _rating_values(data[2], "ratings")
    if not users.size == items.size == ratings.size:
        raise ValueError(
            f"user_ids, item_ids and ratings must have the same length, got {users.size}, "
            f"{items.size} and {ratings.size}."
        )
    if ratings.size == 0:
        raise ValueError("No ratings given (empty arrays): there is nothing to fit.")
    return RatingTriples(users, items, ratings, None)
