"""Factor matrices on 64-byte boundaries, rows padded to whole SIMD vectors."""

from __future__ import annotations

import numpy as np

ALIGN = 64  # bytes: one cache line, one AVX-512 register


def padded_width(n_factors: int, dtype: np.dtype) -> int:
    """Row length of the factor matrices: n_factors rounded up to whole 64-byte vectors."""
    lanes = ALIGN // np.dtype(dtype).itemsize
    return -(-n_factors // lanes) * lanes


def aligned_zeros(rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous (rows, cols) array of zeros whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n_bytes = max(rows * cols, 1) * dtype.itemsize
    raw = np.zeros(n_bytes + ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGN
    return raw[offset : offset + rows * cols * dtype.itemsize].view(dtype).reshape(rows, cols)


def aligned_copy(factors: np.ndarray, cols: int | None = None) -> np.ndarray:
    """``factors`` (rows, k) copied into aligned zeros of ``cols`` (default: padded) columns."""
    rows, k = factors.shape
    out = aligned_zeros(rows, padded_width(k, factors.dtype) if cols is None else cols, factors.dtype)
    out[:, :k] = factors
    return out
