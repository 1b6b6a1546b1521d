"""Numba BPR kernels: the algorithm and arithmetic of ``_reference`` and csrc/include/fastrec/bpr.hpp.

The chunks of an epoch's samples run in parallel (``prange``), updating the
shared factors without locks (Hogwild), as the C++ kernel does.  The kernels
compile with strict IEEE arithmetic (no fastmath): the dot product is summed in
the lanes and order of the SIMD kernel and nothing is fused, so for one sample
order the result is bit-identical to the reference and the C++ kernel.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_STRICT_OPTIONS

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ALIGN = 64


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _mix(z):
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _stream(seed, key):
    return _mix(np.uint64(seed) + np.uint64(key) * _GOLDEN)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _below(state, n):
    """(new state, index uniform in [0, n)), as _reference._Stream.below."""
    state = state + _GOLDEN
    u = np.float64(_mix(state) >> _S11) * 1.1102230246251565e-16  # 2^-53
    index = np.int64(u * np.float64(n))
    return state, min(index, n - 1)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _is_positive(indices, begin, end, item):
    lo = begin
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == item


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _draw_negative(state, indptr, indices, u, n_items, popularity, max_tries):
    """(new state, negative item of user u or -1)."""
    row_begin = indptr[u]
    row_end = indptr[u + 1]
    if row_end - row_begin >= n_items:
        return state, -1
    nnz = indices.shape[0]
    for _ in range(max_tries):
        if popularity:
            state, c = _below(state, nnz)
            candidate = np.int64(indices[c])
        else:
            state, candidate = _below(state, n_items)
        if not _is_positive(indices, row_begin, row_end, candidate):
            return state, candidate
    return state, -1


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _step(P, Q, bi, u, i, j, lr_t, reg_t, item_bias, acc, tmp):
    """One SGD step on sample (u, i, j); 1 if x_ui > x_uj before it, else 0."""
    lanes = acc.shape[0]
    stride = P.shape[1]
    p = P[u]
    qi = Q[i]
    qj = Q[j]
    for l in range(lanes):
        acc[l] = 0
    for base in range(0, stride, lanes):
        for l in range(lanes):
            f = base + l
            acc[l] = acc[l] + p[f] * (qi[f] - qj[f])
    half = lanes // 2
    while half > 0:
        for l in range(lanes):
            tmp[l] = acc[l] + acc[l ^ half]
        for l in range(lanes):
            acc[l] = tmp[l]
        half //= 2
    x = acc[0]
    if item_bias:
        x = x + (bi[i] - bi[j])
    xd = np.float64(x)
    z64 = 1.0 / (1.0 + math.exp(xd))  # exp overflows to inf: z = 0
    tmp[0] = z64  # rounded to the factor dtype
    z = tmp[0]
    nz = -z
    for f in range(stride):
        pf = p[f]
        qif = qi[f]
        qjf = qj[f]
        p[f] = pf + lr_t * (z * (qif - qjf) - reg_t * pf)
        qi[f] = qif + lr_t * (z * pf - reg_t * qif)
        qj[f] = qjf + lr_t * (nz * pf - reg_t * qjf)
    if item_bias:
        b_i = bi[i]
        b_j = bi[j]
        bi[i] = b_i + lr_t * (z - reg_t * b_i)
        bi[j] = b_j + lr_t * (nz - reg_t * b_j)
    return 1 if x > 0 else 0


@nb.njit(**NUMBA_STRICT_OPTIONS)
def _scalars(P, lr, reg):
    """lr, reg rounded to the factor dtype, and the lane scratch arrays."""
    lanes = _ALIGN // P.itemsize
    scratch = np.empty(2, dtype=P.dtype)
    scratch[0] = lr
    scratch[1] = reg
    return scratch[0], scratch[1], np.zeros(lanes, dtype=P.dtype), np.zeros(lanes, dtype=P.dtype)


@nb.njit(**NUMBA_STRICT_OPTIONS)
def bpr_draw(
    indptr,  # IN  (n_users + 1) int64 sorted positives per user
    indices,  # IN  (nnz) int32
    users,  # IN  (nnz) int32 user of every positive
    n_items,  # IN  int
    n_samples,  # IN  int
    seed,  # IN  int >= 0
    popularity,  # IN  bool
    max_tries,  # IN  int >= 1
    out_users,  # OUT (n_samples) int32
    out_items,  # OUT (n_samples) int32
    out_negatives,  # OUT (n_samples) int32, -1 for a skipped sample
    n_threads,  # IN  int >= 1: chunks
):
    """The samples ``bpr_epoch`` draws (see ``_reference.bpr_draw``)."""
    nnz = indices.shape[0]
    n_threads = max(n_threads, 1)
    for t in range(n_threads):
        pos_state = _stream(seed, 2 * t + 1)
        neg_state = _stream(seed, 2 * t + 2)
        begin = n_samples * t // n_threads
        end = n_samples * (t + 1) // n_threads
        for s in range(begin, end):
            pos_state, entry = _below(pos_state, nnz)
            u = users[entry]
            out_users[s] = u
            out_items[s] = indices[entry]
            neg_state, j = _draw_negative(neg_state, indptr, indices, u, n_items, popularity, max_tries)
            out_negatives[s] = j


@nb.njit(**NUMBA_STRICT_OPTIONS)
def bpr_samples(
    users,  # IN  (n) int32
    items,  # IN  (n) int32
    negatives,  # IN  (n) int32, -1 to skip
    P,  # INOUT (n_users, stride) float
    Q,  # INOUT (n_items, stride)
    bi,  # INOUT (n_items)
    lr,  # IN  float
    reg,  # IN  float
    item_bias,  # IN  bool
    out_stats,  # OUT (3,) float64: used, ranked right, skipped
):
    """SGD over the given samples, one after the other."""
    lr_t, reg_t, acc, tmp = _scalars(P, lr, reg)
    used = 0
    right = 0
    skipped = 0
    for s in range(users.shape[0]):
        j = negatives[s]
        if j < 0:
            skipped += 1
            continue
        right += _step(P, Q, bi, users[s], items[s], j, lr_t, reg_t, item_bias, acc, tmp)
        used += 1
    out_stats[0] = used
    out_stats[1] = right
    out_stats[2] = skipped


@nb.njit(parallel=True, **NUMBA_STRICT_OPTIONS)
def bpr_epoch(
    indptr,  # IN  (n_users + 1) int64 sorted positives per user
    indices,  # IN  (nnz) int32
    users,  # IN  (nnz) int32 user of every positive
    P,  # INOUT (n_users, stride) float
    Q,  # INOUT (n_items, stride)
    bi,  # INOUT (n_items)
    lr,  # IN  float
    reg,  # IN  float
    item_bias,  # IN  bool
    popularity,  # IN  bool
    n_samples,  # IN  int
    seed,  # IN  int >= 0
    max_tries,  # IN  int >= 1
    out_stats,  # OUT (3,) float64, as bpr_samples
    n_threads,  # IN  int >= 1: chunks, one per thread, Hogwild
):
    """One epoch: each chunk draws its samples and steps through them as it goes."""
    nnz = indices.shape[0]
    n_items = Q.shape[0]
    n_threads = max(n_threads, 1)
    counts = np.zeros((n_threads, 3), dtype=np.int64)
    for t in nb.prange(n_threads):
        lr_t, reg_t, acc, tmp = _scalars(P, lr, reg)
        pos_state = _stream(seed, 2 * t + 1)
        neg_state = _stream(seed, 2 * t + 2)
        begin = n_samples * t // n_threads
        end = n_samples * (t + 1) // n_threads
        used = 0
        right = 0
        skipped = 0
        for _ in range(begin, end):
            pos_state, entry = _below(pos_state, nnz)
            u = users[entry]
            neg_state, j = _draw_negative(neg_state, indptr, indices, u, n_items, popularity, max_tries)
            if j < 0:
                skipped += 1
                continue
            right += _step(P, Q, bi, u, indices[entry], j, lr_t, reg_t, item_bias, acc, tmp)
            used += 1
        counts[t, 0] = used
        counts[t, 1] = right
        counts[t, 2] = skipped
    for c in range(3):
        out_stats[c] = counts[:, c].sum()
