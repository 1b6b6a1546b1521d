"""The rating data a splitter cuts: counting ratings and taking a subset in the input's form."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec.datasets.splits import _csr_part

_FORMS = (
    "an Interactions, a users x items scipy sparse matrix, a (users, items, ratings[, timestamps]) "
    "tuple of 1-D arrays or a pandas DataFrame"
)


def is_frame(data: Any) -> bool:
    """True for a pandas DataFrame (tested by duck type, so pandas stays optional)."""
    return hasattr(data, "columns") and hasattr(data, "iloc")


def _arrays(data: Any, name: str) -> list[np.ndarray]:
    """The 1-D arrays of a (users, items, ratings[, timestamps]) tuple or list, checked."""
    if len(data) not in (3, 4):
        raise ValueError(
            f"{name} as a tuple must hold 3 or 4 arrays (users, items, ratings[, timestamps]), "
            f"got {len(data)}."
        )
    arrays = [np.asarray(part) for part in data]
    if any(a.ndim != 1 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(
            f"{name}: users, items, ratings (and timestamps) must be 1-D arrays of the same length, "
            f"got shapes {[a.shape for a in arrays]}."
        )
    return arrays


def n_ratings(data: Any, name: str = "data") -> int:
    """Number of ratings in ``data`` (stored entries of a matrix, rows of a table).

    Parameters
    ----------
    data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
    name : str
        The argument's name, for error messages.

    Returns
    -------
    int
    """
    from fastrec.datasets.interactions import Interactions

    if isinstance(data, Interactions):
        return data.nnz
    if sp.issparse(data):
        if data.ndim != 2:
            raise ValueError(f"{name} must be a 2-D ratings matrix, got {data.ndim} dimensions.")
        return int(sp.csr_matrix(V.check_sparse_structure(data, name)).nnz)
    if is_frame(data):
        return int(len(data))
    if isinstance(data, (tuple, list)):
        return int(_arrays(data, name)[0].shape[0])
    raise TypeError(f"{name} must be {_FORMS}; got {type(data).__name__}.")


def take(data: Any, mask: np.ndarray) -> Any:
    """The ratings flagged in ``mask``, in the form ``data`` came in.

    Parameters
    ----------
    data : Interactions, scipy sparse matrix, tuple of arrays or pandas DataFrame
        Already accepted by :func:`n_ratings`.
    mask : ndarray of bool, shape (n_ratings,)
        One flag per rating, in the order :func:`fastrec.datasets.train_test_split`
        uses: CSR order for an ``Interactions`` or a matrix, row order otherwise.

    Returns
    -------
    Same form as ``data``: an ``Interactions`` with the same users and items, a
    matrix of the same shape and format, a tuple of arrays (a list gives a
    tuple) or a DataFrame with the selected rows (index kept).
    """
    from fastrec.datasets.interactions import Interactions

    if isinstance(data, Interactions):
        return data.subset(mask)
    if sp.issparse(data):
        csr = sp.csr_matrix(V.check_sparse_structure(data, "data"))  # no copy for CSR input
        return _csr_part(csr, mask, data.format)
    if is_frame(data):
        return data.iloc[np.flatnonzero(mask)]
    kind = type(data) if isinstance(data, tuple) else tuple
    return kind(a[mask] for a in _arrays(data, "data"))


def fit_form(data: Any) -> Any:
    """``data`` as a recommender's ``fit`` takes it: a 4-tuple loses its timestamps."""
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return tuple(data[:3])
    return data
