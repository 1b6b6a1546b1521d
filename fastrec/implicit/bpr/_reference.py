"""Reference BPR kernels: plain per-sample loops that define what the compiled kernels compute.

Three kernels, with the names and keywords of csrc/include/fastrec/bpr.hpp and
``_numba.py``:

- ``bpr_draw`` writes the (user, positive, negative) samples an epoch draws;
- ``bpr_samples`` runs SGD over given samples, in their order;
- ``bpr_epoch`` draws the samples and runs SGD over them (here: the two above).

Sampling.  The samples are split into ``n_threads`` contiguous chunks, and
each chunk into groups of ``group`` samples (the last one shorter); chunk ``t``
draws from two splitmix64 streams keyed by ``(seed, t)``: one gives the
positives (stored entries uniform over ``nnz``, each naming a user and an item),
the other the negatives.  A group draws its positives first and takes them in
ascending entry order, so by user, which lets the compiled kernels read each
user's row and factors once for the group's samples of that user; chunk ``t``
starts at entry ``nnz * t // n_threads`` and wraps around (the entries from
there up, then those below), so that threads sweep different users at a time.
Then, in that order, each sample draws its negative (uniform over the items, or
the item of another uniform entry for popularity sampling), redrawn while the
candidate is one of the user's positives (binary search of the user's sorted
row), at most ``max_tries`` draws; a sample whose draws all failed, or whose
user has every item, gets negative -1 and is skipped.  Two streams keep the
draws independent of how far ahead a kernel draws.

Arithmetic.  With ``z = sigmoid(-(x_ui - x_uj))`` every sample ascends
``ln sigmoid(x_ui - x_uj)`` with L2 penalties::

    p_u += lr (z (q_i - q_j) - reg p_u)
    q_i += lr (z p_u - reg q_i)          (p_u: its value before the update)
    q_j += lr (-z p_u - reg q_j)
    b_i += lr (z - reg b_i);  b_j += lr (-z - reg b_j)

in the factor dtype, each operation rounded once (no fused multiply-add), the
dot product summed in ``64 / itemsize`` lanes (lane ``l`` takes the elements
``f = l mod lanes`` in order) and the lanes added by halving (lane ``l`` plus
lane ``l ^ h`` for h = lanes / 2, ..., 1), and ``z`` computed in float64 from the
rounded ``x``.  That is the order of the SIMD kernel, so the backends agree to
the bit for one sample order.
"""

from __future__ import annotations

import math

import numpy as np

from fastrec._aligned import ALIGN
from fastrec._draws import GOLDEN, MASK, in_sorted, mix


class _Stream:
    """A splitmix64 stream: the state advances by the golden gamma, each output is mixed."""

    def __init__(self, seed: int, key: int):
        self.state = mix((seed + key * GOLDEN) & MASK)

    def below(self, n: int) -> int:
        """An index uniform in [0, n): 53 random bits as a double in [0, 1), times n."""
        self.state = (self.state + GOLDEN) & MASK
        index = int(float(mix(self.state) >> 11) * 2.0**-53 * float(n))
        return min(index, n - 1)


def chunk_bounds(n_samples: int, n_threads: int, t: int) -> tuple[int, int]:
    """Samples [begin, end) of chunk ``t``."""
    return n_samples * t // n_threads, n_samples * (t + 1) // n_threads


def check_group(group) -> int:
    """``group`` as an int, or a ValueError unless it is >= 1."""
    if int(group) < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    return int(group)


def bpr_draw(
    indptr,  # IN  (n_users + 1) int64 positives of user u: indices[indptr[u]:indptr[u+1]], sorted
    indices,  # IN  (nnz) int32 item of every positive
    users,  # IN  (nnz) int32 user of every positive (the row of entry t)
    n_items,  # IN  int, items to draw negatives from
    n_samples,  # IN  int
    seed,  # IN  int >= 0
    popularity,  # IN  bool: negatives by item popularity, else uniform
    max_tries,  # IN  int >= 1: negative draws per sample at most
    out_users,  # OUT (n_samples) int32
    out_items,  # OUT (n_samples) int32
    out_negatives,  # OUT (n_samples) int32, -1 for a skipped sample
    n_threads,  # IN  int >= 1: chunks (the thread count of bpr_epoch)
    group,  # IN  int >= 1: samples drawn, then taken in entry order, together
):
    """The samples ``bpr_epoch`` draws for these arguments, in each chunk's order."""
    nnz = indices.shape[0]
    n_threads = max(int(n_threads), 1)
    group = check_group(group)
    for t in range(n_threads):
        positives, negatives = _Stream(seed, 2 * t + 1), _Stream(seed, 2 * t + 2)
        begin, end = chunk_bounds(n_samples, n_threads, t)
        start = nnz * t // n_threads  # where this chunk's sweeps over the entries begin
        for first in range(begin, end, group):
            entries = sorted(positives.below(nnz) for _ in range(min(group, end - first)))
            entries = [e for e in entries if e >= start] + [e for e in entries if e < start]
            for s, entry in enumerate(entries, first):
                u = int(users[entry])
                out_users[s] = u
                out_items[s] = indices[entry]
                out_negatives[s] = _negative(indptr, indices, u, n_items, popularity, max_tries, negatives)


def _negative(indptr, indices, u, n_items, popularity, max_tries, stream) -> int:
    """A negative of user ``u`` drawn from ``stream``, or -1 (see the module doc)."""
    nnz = indices.shape[0]
    row_begin, row_end = int(indptr[u]), int(indptr[u + 1])
    if row_end - row_begin >= n_items:
        return -1  # every item is a positive of u: no negative exists
    for _ in range(max_tries):
        candidate = stream.below(nnz if popularity else n_items)
        if popularity:
            candidate = int(indices[candidate])
        if not in_sorted(indices, row_begin, row_end, candidate):
            return candidate
    return -1


def lane_dot(p: np.ndarray, d: np.ndarray) -> np.generic:
    """<p, d> in the dtype of p, summed in SIMD lanes and added by halving (see the module doc)."""
    lanes = ALIGN // p.dtype.itemsize
    n = -(-p.size // lanes) * lanes
    products = np.zeros(n, dtype=p.dtype)
    products[: p.size] = p * d
    acc = np.zeros(lanes, dtype=p.dtype)
    for v in range(n // lanes):
        acc = acc + products[v * lanes : (v + 1) * lanes]
    half = lanes // 2
    while half:
        acc = acc + acc[np.arange(lanes) ^ half]
        half //= 2
    return acc[0]


def sigmoid_neg(x: float) -> float:
    """sigmoid(-x) = 1 / (1 + exp(x)) in float64, 0 where exp overflows."""
    try:
        return 1.0 / (1.0 + math.exp(x))
    except OverflowError:
        return 0.0


def update_one(P, Q, bi, u, i, j, lr, reg, item_bias) -> bool:
    """One SGD step on sample (u, i, j); whether x_ui > x_uj before it."""
    T = P.dtype.type
    p, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
    d = qi - qj
    x = lane_dot(p, d)
    if item_bias:
        x = x + (bi[i] - bi[j])
    z = T(sigmoid_neg(float(x)))
    lr_t, reg_t = T(lr), T(reg)
    P[u] = p + lr_t * (z * d - reg_t * p)
    Q[i] = qi + lr_t * (z * p - reg_t * qi)
    Q[j] = qj + lr_t * ((-z) * p - reg_t * qj)
    if item_bias:
        b_i, b_j = bi[i], bi[j]
        bi[i] = b_i + lr_t * (z - reg_t * b_i)
        bi[j] = b_j + lr_t * ((-z) - reg_t * b_j)
    return bool(float(x) > 0)


def bpr_samples(
    users,  # IN  (n) int32 user of every sample
    items,  # IN  (n) int32 positive item
    negatives,  # IN  (n) int32 negative item, -1 to skip the sample
    P,  # INOUT (n_users, stride) float user factors (padding columns zero)
    Q,  # INOUT (n_items, stride) item factors
    bi,  # INOUT (n_items) item biases
    lr,  # IN  float
    reg,  # IN  float
    item_bias,  # IN  bool: learn bi
    out_stats,  # OUT (3,) float64: samples used, pairs ranked right before their step, skipped
):
    """SGD over the given samples, one after the other."""
    used = right = skipped = 0
    for s in range(users.shape[0]):
        j = int(negatives[s])
        if j < 0:
            skipped += 1
            continue
        right += update_one(P, Q, bi, int(users[s]), int(items[s]), j, lr, reg, item_bias)
        used += 1
    out_stats[:] = (used, right, skipped)


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
    n_threads,  # IN  int >= 1: chunks, run here one after the other
    group,  # IN  int >= 1: samples a group (see the module doc)
):
    """One epoch: draw ``n_samples`` samples (as :func:`bpr_draw`) and step through them."""
    n = int(n_samples)
    su, si, sj = (np.empty(n, dtype=np.int32) for _ in range(3))
    bpr_draw(indptr, indices, users, Q.shape[0], n, seed, popularity, max_tries, su, si, sj, n_threads, group)
    bpr_samples(su, si, sj, P, Q, bi, lr, reg, item_bias, out_stats)
