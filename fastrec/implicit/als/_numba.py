"""Numba implicit-feedback ALS half-step: the algorithm of fastrec/implicit/als/_reference.py.

The Gram matrix ``Y^T Y`` is summed in float64 over fixed chunks of the rows of
``Y`` (one partial per chunk, the partials then added in chunk order), so it does
not depend on the thread count.  The rows of ``X`` are then solved in blocks
under ``prange``, each row on its own: the result is the same for any thread
count.  The conjugate-gradient arithmetic runs in the factors' dtype, as the C++
kernel's does; the exact solve forms and factors the matrix in float64.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_KERNEL_OPTIONS
from fastrec.implicit.als._reference import CG_TOLERANCE

# Rows of X per prange task: enough to amortise the scratch allocation.
ROW_BLOCK = 64
# The Gram matrix is summed over at most this many chunks, of at least GRAM_CHUNK_MIN rows.
GRAM_CHUNKS_MAX = 64
GRAM_CHUNK_MIN = 256


def gram_chunk_rows(n: int) -> int:
    """Rows of Y per partial Gram sum: fixed by n alone, so the sum does not depend on threads."""
    n_chunks = max(1, min(GRAM_CHUNKS_MAX, -(-n // GRAM_CHUNK_MIN)))
    return max(1, -(-n // n_chunks))


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _gram_partials(Y, k, chunk, out):
    n = Y.shape[0]
    for c in nb.prange(out.shape[0]):
        acc = out[c]
        for t in range(c * chunk, min(n, (c + 1) * chunk)):
            for a in range(k):
                ya = np.float64(Y[t, a])
                for b in range(k):
                    acc[a, b] += ya * Y[t, b]


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _cholesky_solve(A, b, k):
    """Solve A x = b in place (A float64 (k, k) SPD, overwritten by its factor); x in b."""
    for j in range(k):
        s = A[j, j]
        for t in range(j):
            s -= A[j, t] * A[j, t]
        d = np.sqrt(s) if s > 0.0 else 0.0
        A[j, j] = d
        for i in range(j + 1, k):
            s = A[i, j]
            for t in range(j):
                s -= A[i, t] * A[j, t]
            A[i, j] = s / d if d > 0.0 else 0.0
    for i in range(k):
        s = b[i]
        for t in range(i):
            s -= A[i, t] * b[t]
        b[i] = s / A[i, i] if A[i, i] > 0.0 else 0.0
    for i in range(k - 1, -1, -1):
        s = b[i]
        for t in range(i + 1, k):
            s -= A[t, i] * b[t]
        b[i] = s / A[i, i] if A[i, i] > 0.0 else 0.0


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _product(G, Y, indices, weights, start, stop, p, out, k, zero, one, residual):
    """out = (G + sum_i w_i y_i y_i^T) p over the row's entries, in the factors' dtype.

    With ``residual``, out = b - A p instead, b = sum_i (1 + w_i) y_i: the same
    pass over the entries with the coefficient 1 + w_i - w_i (y_i . p).
    ``zero`` and ``one`` are 0 and 1 of the dtype: literals would make the sums float64.
    """
    for a in range(k):
        out[a] = zero
    # four rows of G per pass: a quarter of the loads and stores of ``out``
    j = 0
    while j + 3 < k:
        p0, p1, p2, p3 = p[j], p[j + 1], p[j + 2], p[j + 3]
        g0, g1, g2, g3 = G[j], G[j + 1], G[j + 2], G[j + 3]
        for a in range(k):
            out[a] += (p0 * g0[a] + p1 * g1[a]) + (p2 * g2[a] + p3 * g3[a])
        j += 4
    while j < k:
        pj = p[j]
        for a in range(k):
            out[a] += pj * G[j, a]
        j += 1
    if residual:
        for a in range(k):
            out[a] = -out[a]
    # four entries per pass: a quarter of the loads and stores of ``out``
    e = start
    while e + 3 < stop:
        y0, y1, y2, y3 = Y[indices[e]], Y[indices[e + 1]], Y[indices[e + 2]], Y[indices[e + 3]]
        d0 = zero
        d1 = zero
        d2 = zero
        d3 = zero
        for a in range(k):
            pa = p[a]
            d0 += y0[a] * pa
            d1 += y1[a] * pa
            d2 += y2[a] * pa
            d3 += y3[a] * pa
        w0, w1, w2, w3 = weights[e], weights[e + 1], weights[e + 2], weights[e + 3]
        if residual:
            d0 = one + w0 - w0 * d0
            d1 = one + w1 - w1 * d1
            d2 = one + w2 - w2 * d2
            d3 = one + w3 - w3 * d3
        else:
            d0 *= w0
            d1 *= w1
            d2 *= w2
            d3 *= w3
        for a in range(k):
            out[a] += (d0 * y0[a] + d1 * y1[a]) + (d2 * y2[a] + d3 * y3[a])
        e += 4
    while e < stop:
        y0 = Y[indices[e]]
        d0 = zero
        for a in range(k):
            d0 += y0[a] * p[a]
        w0 = weights[e]
        d0 = one + w0 - w0 * d0 if residual else d0 * w0
        for a in range(k):
            out[a] += d0 * y0[a]
        e += 1


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def _dot(a, b, k, zero):
    s = zero
    for j in range(k):
        s += a[j] * b[j]
    return s


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def _solve_rows(indptr, indices, weights, X, Y, G, GT, k, reg, exact, cg_steps):
    n_rows = X.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    one = np.ones(1, dtype=X.dtype)[0]
    zero = np.zeros(1, dtype=X.dtype)[0]
    for blk in nb.prange(n_blocks):
        x = np.empty(k, dtype=X.dtype)
        r = np.empty(k, dtype=X.dtype)
        p = np.empty(k, dtype=X.dtype)
        Ap = np.empty(k, dtype=X.dtype)
        A = np.empty((k, k), dtype=np.float64)
        b = np.empty(k, dtype=np.float64)
        for u in range(blk * ROW_BLOCK, min(n_rows, (blk + 1) * ROW_BLOCK)):
            start, stop = indptr[u], indptr[u + 1]
            if exact:
                for i in range(k):
                    b[i] = 0.0
                    for j in range(k):
                        A[i, j] = G[i, j]
                    A[i, i] += reg
                for e in range(start, stop):
                    col = indices[e]
                    w = np.float64(weights[e])
                    for i in range(k):
                        yi = np.float64(Y[col, i])
                        b[i] += (1.0 + w) * yi
                        wy = w * yi
                        for j in range(k):
                            A[i, j] += wy * Y[col, j]
                _cholesky_solve(A, b, k)
                for i in range(k):
                    X[u, i] = b[i]
                continue
            for i in range(k):
                x[i] = X[u, i]
            _product(GT, Y, indices, weights, start, stop, x, r, k, zero, one, True)  # r = b - A x
            for i in range(k):
                p[i] = r[i]
            rs_old = _dot(r, r, k, zero)
            for _ in range(cg_steps):
                if rs_old < CG_TOLERANCE:
                    break
                _product(GT, Y, indices, weights, start, stop, p, Ap, k, zero, one, False)
                pAp = _dot(p, Ap, k, zero)
                if not pAp > 0:
                    break
                step = rs_old / pAp
                for i in range(k):
                    x[i] += step * p[i]
                    r[i] -= step * Ap[i]
                rs_new = _dot(r, r, k, zero)
                beta = rs_new / rs_old
                for i in range(k):
                    p[i] = r[i] + beta * p[i]
                rs_old = rs_new
            for i in range(k):
                X[u, i] = x[i]


def als_half_step(
    *,
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    n_factors: int,
    reg: float,
    exact: bool,
    cg_steps: int,
    n_threads: int,
) -> None:
    """Solve every row of ``X`` with ``Y`` fixed; arguments as the reference's ``als_half_step``.

    The thread count is set by the caller (``fastrec._runtime.kernel_threads``).
    """
    k = int(n_factors)
    chunk = gram_chunk_rows(Y.shape[0])
    partials = np.zeros((max(1, -(-Y.shape[0] // chunk)), k, k), dtype=np.float64)
    _gram_partials(Y, k, chunk, partials)
    G = np.zeros((k, k), dtype=np.float64)
    for c in range(partials.shape[0]):  # in chunk order: independent of the thread count
        G += partials[c]
    GT = (G + float(reg) * np.eye(k)).astype(X.dtype)
    _solve_rows(indptr, indices, weights, X, Y, G, GT, k, float(reg), bool(exact), int(cg_steps))
