"""Input checks and errors of the recommenders."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._idmap import IdMap
from fastrec._validation import (
    as_2d_array,
    canonical_csr,
    check_finite,
    check_sparse_structure,
    float_dtype_for,
    id_array,
)


def saveable_ids(ids: np.ndarray | None, side: str) -> np.ndarray:
    """Raise when id labels cannot be written to ``.npz`` without pickle."""
    if ids is None:
        raise TypeError(
            f"The {side} ids are neither all integers nor all strings, so they cannot be saved "
            "without pickle. Map them to integers or strings before fit to use save()."
        )
    return ids


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id that the model never saw.

    Subclasses both ``KeyError`` (an id lookup failed) and ``ValueError`` (bad
    argument value), so either ``except`` clause catches it.
    """

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def check_item_features(features: Any, name: str = "features") -> sp.csr_matrix:
    """An items x features matrix (sparse or dense) as canonical CSR with float data."""
    if sp.issparse(features):
        if features.ndim != 2:
            raise ValueError(f"{name} must be 2-D (items x features), got {features.ndim} dimensions.")
        matrix = check_sparse_structure(features, name)
    else:
        matrix = as_2d_array(features, name, "items x features")
        float_dtype_for(matrix.dtype, name)
        check_finite(np.asarray(matrix, dtype=np.float64), name)
        matrix = sp.csr_matrix(matrix)
    csr = canonical_csr(matrix, name)
    if csr.shape[0] < 1:
        raise ValueError(f"{name} has no rows: it needs one row of features per item.")
    return csr


def check_feature_ids(item_ids: Any, n_rows: int) -> np.ndarray:
    """Raw item ids of the feature rows: ``0 .. n_rows-1`` when None, else distinct ids."""
    if item_ids is None:
        return np.arange(n_rows, dtype=np.int64)
    ids = id_array(item_ids, "item_ids")
    if ids.size != n_rows:
        raise ValueError(
            f"item_ids has {ids.size} ids but features has {n_rows} rows; pass one item id per row."
        )

    mapping, inner = IdMap.from_values(ids)
    if len(mapping) != ids.size:
        counts = np.bincount(inner, minlength=len(mapping))
        raise ValueError(
            f"item_ids contains the id {mapping.ids[int(np.argmax(counts > 1))]!r} more than once; "
            "every feature row must belong to a different item."
        )
    return ids
