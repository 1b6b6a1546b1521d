"""The counter-based draws and sorted-row lookups the numpy references of the SGD kernels share.

splitmix64 (the compiled kernels' generator): a stream's state advances by the
golden gamma and each output is the mixed state, so a (seed, key) pair fixes a
stream independently of the thread that runs it.
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


def mix(z: int) -> int:
    """splitmix64's finaliser on a Python int in [0, 2^64) (64-bit wrap-around)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def in_sorted(indices: np.ndarray, begin: int, end: int, item: int) -> bool:
    """Whether ``item`` is in the sorted ``indices[begin:end]`` (lower-bound binary search)."""
    lo, hi = begin, end
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == item
