"""numpy reference of the WARP kernel: a plain loop over the positives of an epoch.

It defines what the C++ (csrc/include/fastrec/warp.hpp) and Numba (``_numba.py``)
kernels compute.  It is slow (a Python-level loop per positive and per draw) and
meant for tiny data and tests.  Arithmetic is in the factor dtype, in the order
the compiled kernels use, so results agree within float rounding.

One epoch, for every entry ``t`` of ``order`` in turn (``u = users[t]``,
``i = indices[t]``, scores ``s_x = p_u . q_x + b_x``):

1. draw candidates ``j`` uniformly from ``[0, n_items)``, at most ``max_sampled``
   draws; a draw that is a positive of ``u`` (binary search in ``u``'s sorted
   row) counts as a draw but is skipped;
2. the first candidate with ``s_j > s_i - margin`` after ``N`` draws is a
   violator: the rank of ``i`` is estimated as ``floor((n_items - 1) / N)`` and
   the loss weight is ``L = log(rank)`` (LightFM's weight, the log approximation
   of sum_{k <= rank} 1/k); a rank estimate of 1 weighs 0 and updates nothing;
3. SGD on ``L * max(0, margin - s_i + s_j)``: with every gradient taken at the
   values before the step,

   g_p = reg p_u - L (q_i - q_j),  g_i = reg q_i - L p_u,  g_j = reg q_j + L p_u,
   g_bi = reg b_i - L,  g_bj = reg b_j + L,

   and each parameter x with gradient g becomes ``x - lr g`` (constant) or,
   with ``adagrad``, ``a += g * g; x - lr g / sqrt(a)`` with its own
   accumulator ``a`` (which starts at 1).

Draws come from ``draws`` when it is not empty (consumed in order across the
epoch; when they run out, no more candidates), else from the splitmix64 streams
described in ``warp.hpp``: the entries of ``order`` are cut into ``n_threads``
equal chunks, and chunk ``c`` draws from the stream keyed by ``(seed, c)``.
"""

from __future__ import annotations

import math

import numpy as np

from fastrec._draws import GOLDEN, MASK, in_sorted, mix


def stream_state(seed: int, chunk: int) -> int:
    """Initial generator state of one chunk of the epoch (``warp_rng::chunk_state``)."""
    return mix((seed + (chunk + 1) * GOLDEN) & MASK)


def draw_item(state: int, n_items: int) -> tuple[int, int]:
    """(new state, item uniform in [0, n_items)): one step of the shared generator."""
    state = (state + GOLDEN) & MASK
    return state, ((mix(state) >> 32) * n_items) >> 32


def chunk_bounds(n_visits: int, n_chunks: int) -> list[int]:
    """Start of every chunk of ``order``, then ``n_visits``: chunk c is [n*c // C, n*(c+1) // C)."""
    return [(n_visits * c) // n_chunks for c in range(n_chunks + 1)]


def rank_weight(n_items: int, n_drawn: int) -> float:
    """log(floor((n_items - 1) / n_drawn)), 0 when that estimate is below 2."""
    rank = (n_items - 1) // n_drawn
    return math.log(rank) if rank > 1 else 0.0


def _step(x, g, acc, lr, adagrad):
    """x - lr g, or the adagrad step with accumulator ``acc`` (updated in place)."""
    if adagrad:
        acc += g * g
        return x - lr * g / np.sqrt(acc)
    return x - lr * g


def warp_epoch(
    indptr,  # IN    (n_users + 1) int64: the positives of user u are indices[indptr[u]:indptr[u+1]]
    indices,  # IN    (nnz) int32, sorted within every row
    users,  # IN    (nnz) int32 row of every entry
    order,  # IN    (n_visits) int64 entries to visit, in this order
    draws,  # IN    (n_draws) int32 candidates in [0, n_items) to use in order, or empty
    P,  # INOUT (n_users, stride) user factors
    Q,  # INOUT (n_items, stride) item factors
    bi,  # INOUT (n_items) item biases
    P_acc,  # INOUT like P: adagrad accumulators (empty without adagrad)
    Q_acc,  # INOUT like Q
    bi_acc,  # INOUT like bi
    n_factors,  # IN    factors per row; the padding lanes after them stay 0
    lr,  # IN
    reg,  # IN
    margin,  # IN
    max_sampled,  # IN    draws per positive, >= 1
    adagrad,  # IN    per-parameter adagrad steps, else constant
    seed,  # IN    key of the draw streams (unused with explicit draws)
    out_stats,  # OUT   (3) float64: weighted hinge summed, updates made, positives visited
    n_threads,  # IN    number of draw streams (chunks of order); the reference runs them in turn
):
    """One WARP epoch (see the module docstring); parameters are updated in place."""
    dtype = P.dtype.type
    n_items = Q.shape[0]
    k = n_factors
    lr_t, reg_t, margin_t = dtype(lr), dtype(reg), dtype(margin)
    explicit = len(draws) > 0
    cursor = 0
    loss, updates = 0.0, 0
    n_chunks = 1 if explicit else max(1, int(n_threads))
    bounds = chunk_bounds(len(order), n_chunks)
    for chunk in range(n_chunks):
        state = stream_state(int(seed), chunk)
        for position in range(bounds[chunk], bounds[chunk + 1]):
            t = int(order[position])
            u, i = int(users[t]), int(indices[t])
            begin, end = int(indptr[u]), int(indptr[u + 1])
            p, qi = P[u], Q[i]
            s_i = dtype(np.dot(p[:k], qi[:k])) + bi[i]
            n_drawn = 0
            while n_drawn < max_sampled:
                if explicit:
                    if cursor == len(draws):
                        break
                    j = int(draws[cursor])
                    cursor += 1
                else:
                    state, j = draw_item(state, n_items)
                n_drawn += 1
                if in_sorted(indices, begin, end, j):
                    continue
                qj = Q[j]
                s_j = dtype(np.dot(p[:k], qj[:k])) + bi[j]
                if s_j > s_i - margin_t:
                    weight = rank_weight(n_items, n_drawn)
                    if weight > 0.0:
                        L = dtype(weight)
                        loss += weight * float(margin_t - s_i + s_j)
                        updates += 1
                        pu, qiv, qjv = p[:k].copy(), qi[:k].copy(), qj[:k].copy()
                        g_p = reg_t * pu - L * (qiv - qjv)
                        g_i = reg_t * qiv - L * pu
                        g_j = reg_t * qjv + L * pu
                        g_bi = reg_t * bi[i] - L
                        g_bj = reg_t * bi[j] + L
                        if adagrad:
                            p[:k] = _step(pu, g_p, P_acc[u, :k], lr_t, True)
                            qi[:k] = _step(qiv, g_i, Q_acc[i, :k], lr_t, True)
                            qj[:k] = _step(qjv, g_j, Q_acc[j, :k], lr_t, True)
                            bi_acc[i : i + 1] += g_bi * g_bi
                            bi[i] = bi[i] - lr_t * g_bi / np.sqrt(bi_acc[i])
                            bi_acc[j : j + 1] += g_bj * g_bj
                            bi[j] = bi[j] - lr_t * g_bj / np.sqrt(bi_acc[j])
                        else:
                            p[:k] = pu - lr_t * g_p
                            qi[:k] = qiv - lr_t * g_i
                            qj[:k] = qjv - lr_t * g_j
                            bi[i] = bi[i] - lr_t * g_bi
                            bi[j] = bi[j] - lr_t * g_bj
                    break
    out_stats[0] = loss
    out_stats[1] = updates
    out_stats[2] = len(order)


def _representation(x, feature_indptr, feature_indices, feature_data, E, eb, k):
    """(q_x, b_x) of item x: its features' embeddings and biases weighted by its values, in row order."""
    q = np.zeros(k, dtype=E.dtype)
    b = E.dtype.type(0)
    for t in range(int(feature_indptr[x]), int(feature_indptr[x + 1])):
        f, w = int(feature_indices[t]), feature_data[t]
        q = q + w * E[f, :k]
        b = b + w * eb[f]
    return q, b


def warp_epoch_features(
    indptr,  # IN    (n_users + 1) int64 positives of every user
    indices,  # IN    (nnz) int32 items, sorted within every row
    users,  # IN    (nnz) int32 row of every entry
    order,  # IN    (n_visits) int64 entries to visit, in this order
    draws,  # IN    (n_draws) int32 explicit candidates, or empty
    feature_indptr,  # IN    (n_items + 1) int64: the features of item x are row x of a CSR
    feature_indices,  # IN    int32 feature of every entry
    feature_data,  # IN    its value (the factor dtype)
    P,  # INOUT (n_users, stride) user factors
    E,  # INOUT (n_features, stride) feature embeddings
    eb,  # INOUT (n_features) feature biases
    P_acc,  # INOUT like P (adagrad), or empty
    E_acc,  # INOUT like E
    eb_acc,  # INOUT like eb
    n_factors,  # IN
    lr,  # IN
    reg,  # IN
    margin,  # IN
    max_sampled,  # IN
    adagrad,  # IN
    seed,  # IN
    out_stats,  # OUT   (3) float64: weighted hinge summed, updates made, positives visited
    n_threads,  # IN    number of draw streams (chunks of order)
):
    """One WARP epoch with items represented by features (LightFM's model).

    Item x is ``q_x = sum_f X[x, f] E_f`` and ``b_x = sum_f X[x, f] eb_f`` (X the
    feature CSR).  Draws, the violator and its weight are those of
    :func:`warp_epoch` on these representations.  The step, with ``c = X[x, f] L``
    and every gradient at the values before the step of the user:

    * ``p_u`` as in :func:`warp_epoch`, with ``q_i - q_j`` of the representations;
    * then for every feature f of i in row order, ``g = reg E_f - c p_u`` and
      ``g_b = reg eb_f - c``; then for every feature f of j, ``g = reg E_f + c p_u``
      and ``g_b = reg eb_f + c`` (a feature of both steps twice, in that order);
      each step constant or adagrad as in :func:`warp_epoch`.

    With identity features this is :func:`warp_epoch` exactly.
    """
    dtype = P.dtype.type
    n_items = len(feature_indptr) - 1
    k = n_factors
    lr_t, reg_t, margin_t = dtype(lr), dtype(reg), dtype(margin)
    explicit = len(draws) > 0
    cursor = 0
    loss, updates = 0.0, 0
    n_chunks = 1 if explicit else max(1, int(n_threads))
    bounds = chunk_bounds(len(order), n_chunks)
    feats = (feature_indptr, feature_indices, feature_data)
    for chunk in range(n_chunks):
        state = stream_state(int(seed), chunk)
        for position in range(bounds[chunk], bounds[chunk + 1]):
            t = int(order[position])
            u, i = int(users[t]), int(indices[t])
            begin, end = int(indptr[u]), int(indptr[u + 1])
            p = P[u]
            qi, b_i = _representation(i, *feats, E, eb, k)
            s_i = dtype(np.dot(p[:k], qi)) + b_i
            n_drawn = 0
            while n_drawn < max_sampled:
                if explicit:
                    if cursor == len(draws):
                        break
                    j = int(draws[cursor])
                    cursor += 1
                else:
                    state, j = draw_item(state, n_items)
                n_drawn += 1
                if in_sorted(indices, begin, end, j):
                    continue
                qj, b_j = _representation(j, *feats, E, eb, k)
                s_j = dtype(np.dot(p[:k], qj)) + b_j
                if s_j > s_i - margin_t:
                    weight = rank_weight(n_items, n_drawn)
                    if weight > 0.0:
                        L = dtype(weight)
                        loss += weight * float(margin_t - s_i + s_j)
                        updates += 1
                        pu = p[:k].copy()
                        g_p = reg_t * pu - L * (qi - qj)
                        if adagrad:
                            p[:k] = _step(pu, g_p, P_acc[u, :k], lr_t, True)
                        else:
                            p[:k] = pu - lr_t * g_p
                        for x, sign in ((i, -1), (j, 1)):
                            for e in range(int(feature_indptr[x]), int(feature_indptr[x + 1])):
                                f = int(feature_indices[e])
                                c = feature_data[e] * L
                                ef = E[f, :k].copy()
                                g = reg_t * ef - c * pu if sign < 0 else reg_t * ef + c * pu
                                g_b = reg_t * eb[f] - c if sign < 0 else reg_t * eb[f] + c
                                if adagrad:
                                    E[f, :k] = _step(ef, g, E_acc[f, :k], lr_t, True)
                                    eb_acc[f : f + 1] += g_b * g_b
                                    eb[f] = eb[f] - lr_t * g_b / np.sqrt(eb_acc[f])
                                else:
                                    E[f, :k] = ef - lr_t * g
                                    eb[f] = eb[f] - lr_t * g_b
                    break
    out_stats[0] = loss
    out_stats[1] = updates
    out_stats[2] = len(order)
