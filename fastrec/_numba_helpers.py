"""Small Numba building blocks shared by several kernels: the bounded top-k heap."""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_KERNEL_OPTIONS

_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")


@nb.njit(**_INLINE)
def ranks_before(score_a, index_a, score_b, index_b):
    """True when (score_a, index_a) ranks before (score_b, index_b)."""
    return score_a > score_b or (score_a == score_b and index_a < index_b)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def heap_push(scores, indices, size, score, index):
    """Offer a candidate to a bounded min-heap whose root is the worst kept entry.

    ``scores`` / ``indices`` (INOUT) have the heap's capacity as length; ``size``
    is the current fill.  Returns the new size.
    """
    capacity = scores.shape[0]
    if size < capacity:
        pos = size
        while pos > 0:
            parent = (pos - 1) // 2
            if not ranks_before(scores[parent], indices[parent], score, index):
                break
            scores[pos] = scores[parent]
            indices[pos] = indices[parent]
            pos = parent
        scores[pos] = score
        indices[pos] = index
        return size + 1
    if capacity == 0 or not ranks_before(score, index, scores[0], indices[0]):
        return size
    _sift_down(scores, indices, size, score, index)
    return size


@nb.njit(**_INLINE)
def _sift_down(scores, indices, size, score, index):
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and ranks_before(
            scores[child], indices[child], scores[child + 1], indices[child + 1]
        ):
            child += 1
        if not ranks_before(score, index, scores[child], indices[child]):
            break
        scores[pos] = scores[child]
        indices[pos] = indices[child]
        pos = child
    scores[pos] = score
    indices[pos] = index


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def heap_drain_sorted(scores, indices, size, out_scores, out_indices):
    """Write the heap's entries best first into ``out_*`` (OUT); returns the count."""
    n = size
    for slot in range(n - 1, -1, -1):
        out_scores[slot] = scores[0]
        out_indices[slot] = indices[0]
        size -= 1
        if size > 0:
            _sift_down(scores, indices, size, scores[size], indices[size])
    return n


@nb.njit(**_INLINE)
def heap_threshold(scores, size):
    """Score a candidate must reach: -inf until the heap is full."""
    if size < scores.shape[0] or size == 0:
        return -np.inf
    return scores[0]

