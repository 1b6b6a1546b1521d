"""Numpy reference of the implicit-feedback ALS half-step: what correct means.

One call solves every row of ``X`` (users, or items) with ``Y`` (the other side)
fixed.  Row ``u`` minimises

    sum_i c_ui (p_ui - x_u . y_i)^2 + reg |x_u|^2

over the whole of ``Y``, where ``p_ui = 1`` and ``c_ui = 1 + w_ui`` for the
stored entries of row ``u`` and ``p_ui = 0``, ``c_ui = 1`` for every other
column.  Its normal equations are

    (Y^T Y + reg I + sum_i w_ui y_i y_i^T) x_u = sum_i (1 + w_ui) y_i,

the sums over the row's stored entries only.  ``exact`` solves them (Cholesky);
otherwise ``cg_steps`` conjugate-gradient steps start from the current ``x_u``
(Takacs et al. 2011), each step one product with the matrix: the Gram matrix
times the direction plus one pass over the row's entries.  Everything is
computed in float64 here and stored in the factors' dtype.
"""

from __future__ import annotations

import numpy as np

# Stop a row's CG when its squared residual falls below this: the step would be 0 / 0.
CG_TOLERANCE = 1e-20


def gram(Y: np.ndarray, n_factors: int) -> np.ndarray:
    """Float64 (n_factors, n_factors) ``Y^T Y`` of the first ``n_factors`` columns of ``Y``."""
    Yk = Y[:, :n_factors].astype(np.float64)
    return Yk.T @ Yk


def solve_row(
    G: np.ndarray, Yu: np.ndarray, w: np.ndarray, reg: float, x0: np.ndarray | None, cg_steps: int
) -> np.ndarray:
    """Float64 (k,) solution of one row's normal equations.

    ``G`` is the float64 Gram matrix (without ``reg``), ``Yu`` (m, k) the rows of
    the fixed side at the row's entries, ``w`` (m,) their confidences minus one.
    ``x0`` None solves exactly; otherwise ``cg_steps`` CG steps start from it.
    """
    k = G.shape[0]
    b = Yu.T @ (1.0 + w)
    if x0 is None:
        A = G + reg * np.eye(k) + (Yu.T * w) @ Yu
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                "the least-squares equations are singular (the fixed factors span fewer than "
                "n_factors dimensions); use reg > 0."
            ) from exc
        return np.linalg.solve(L.T, np.linalg.solve(L, b))

    def product(v: np.ndarray) -> np.ndarray:
        return G @ v + reg * v + Yu.T @ (w * (Yu @ v))

    x = x0.copy()
    r = b - product(x)
    p = r.copy()
    rs_old = float(r @ r)
    for _ in range(cg_steps):
        if rs_old < CG_TOLERANCE:
            break
        Ap = product(p)
        pAp = float(p @ Ap)
        if not pAp > 0.0:
            break
        step = rs_old / pAp
        x += step * p
        r -= step * Ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs_old) * p
        rs_old = rs_new
    return x


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
    """Solve every row of ``X`` with ``Y`` fixed (see the module docstring).

    Parameters
    ----------
    indptr : int64 (n_rows + 1,)
        IN: the rows' entries, CSR offsets.
    indices : int32 (nnz,)
        IN: column (row of ``Y``) of every entry.
    weights : float32 or float64 (nnz,)
        IN: confidence minus one, ``c - 1 > 0``, of every entry (preference 1).
    X : (n_rows, stride) of the factor dtype
        INOUT: the side being solved; the first ``n_factors`` columns are the
        factors, the rest padding (zeros, left as they are).
    Y : (n_cols, stride) of X's dtype
        IN: the fixed side.
    n_factors : int
    reg : float
        L2 penalty, >= 0.
    exact : bool
        Cholesky solve instead of CG.
    cg_steps : int
        CG steps per row (>= 1), warm-started from the current row.
    n_threads : int
        Ignored (one thread).
    """
    k = n_factors
    G = gram(Y, k)
    Yk = Y[:, :k].astype(np.float64)
    for u in range(X.shape[0]):
        start, stop = int(indptr[u]), int(indptr[u + 1])
        Yu = Yk[indices[start:stop]]
        w = weights[start:stop].astype(np.float64)
        x0 = None if exact else X[u, :k].astype(np.float64)
        X[u, :k] = solve_row(G, Yu, w, reg, x0, cg_steps)
