"""Input checks of matrix factorization."""

from __future__ import annotations

import numpy as np


def check_index_range(indices: np.ndarray, n: int, name: str, size_name: str) -> None:
    """Raise if integer ``indices`` fall outside ``[0, n)``."""
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers when {size_name} is given, got {indices.dtype}.")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices[(indices < 0) | (indices >= n)][0]
        raise ValueError(
            f"{name} contains {bad}, outside [0, {size_name}={n}). Raise {size_name} or leave it "
            "as None to map raw ids automatically."
        )
