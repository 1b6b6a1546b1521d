"""Input checks of the similarity kernels."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastrec._sparse import transpose_csr
from fastrec._validation import as_sparse_2d, canonical_csr


def rows_and_transpose(X: Any, name: str, dtype: np.dtype | None = None, n_threads: int = 1):
    """Canonical CSR of ``X`` and of its transpose, converting the format only once.

    CSC input (such as ``interactions.T``) already holds the transpose as CSR, so
    only the CSR of the rows needs building; CSR input needs only the transpose.
    """
    A = as_sparse_2d(X, name)
    if A.format == "csc":
        transpose = canonical_csr(A.T, name, dtype)
        return transpose_csr(transpose, n_threads), transpose
    rows = canonical_csr(A, name, dtype)
    return rows, transpose_csr(rows, n_threads)


def check_rows(rows: Any, n_rows: int, name: str = "rows") -> tuple[int, int]:
    """A ``rows=`` block (None, a slice with step 1, or a (start, stop) pair) as (start, stop)."""
    if rows is None:
        return 0, n_rows
    if isinstance(rows, range):
        rows = slice(rows.start, rows.stop, rows.step)
    if isinstance(rows, tuple) and len(rows) == 2:
        rows = slice(*rows)
    if not isinstance(rows, slice):
        raise TypeError(
            f"{name} must be a slice such as slice(0, 1000), a (start, stop) pair or None; "
            f"got {type(rows).__name__}."
        )
    for part in ("start", "stop", "step"):
        value = getattr(rows, part)
        if value is not None and not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}.{part} must be an integer or None, got {value!r}.")
    start, stop, step = rows.indices(n_rows)
    if step != 1:
        raise ValueError(f"{name} must be a contiguous block (step 1), got step {step}.")
    return start, max(start, stop)
