"""Implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008)."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._aligned import aligned_zeros, padded_width
from fastrec._concurrency import writes
from fastrec.base import check_random_state, seed_from
from fastrec.recommenders._factors import FactorRecommender

CONFIDENCES = ("linear", "log")
SOLVERS = ("cg", "cholesky")


def _kernel(backend: str) -> Callable[..., None]:
    """``als_half_step`` of one backend; call it with keyword arguments."""
    return _runtime.kernel_module(backend, "implicit.als").als_half_step


def check_values(values: np.ndarray, name: str) -> None:
    """Raise unless every value is finite and >= 0 (counts, plays, clicks, durations)."""
    if values.size == 0:
        return
    if not np.isfinite(values).all():
        raise ValueError(f"{name} hold NaN or infinite values; ALS needs finite counts >= 0.")
    if values.min() < 0:
        raise ValueError(
            f"{name} hold negative values (smallest {values.min():g}); ALS reads values as "
            "counts of interactions (plays, clicks, purchases), which must be >= 0. Drop or "
            "clip the negative entries."
        )


def confidence_minus_one(values: np.ndarray, alpha: float, kind: str) -> np.ndarray:
    """Float64 ``c - 1`` of each value: ``alpha * x`` ("linear") or ``alpha * log1p(x)`` ("log")."""
    values = np.asarray(values, dtype=np.float64)
    return alpha * (values if kind == "linear" else np.log1p(values))


def initial_factors(
    seed: int, n_users: int, n_items: int, params: dict[str, Any], dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The factors a fit starts from: ``N(0, init_std^2)`` draws of the seed, users first.

    Parameters
    ----------
    seed : int
        The fit's integer seed (``seed_``).
    n_users, n_items : int
    params : dict
        Checked parameters (``n_factors`` and ``init_std`` are read).
    dtype : np.dtype
        float32 or float64.

    Returns
    -------
    P, Q : ndarray of ``dtype``, shapes (n_users, stride) and (n_items, stride)
        64-byte aligned, rows padded with zeros to ``stride = padded_width(n_factors, dtype)``.
    """
    k = params["n_factors"]
    stride = padded_width(k, dtype)
    rng = np.random.default_rng([seed, 0])
    P = aligned_zeros(n_users, stride, dtype)
    Q = aligned_zeros(n_items, stride, dtype)
    std = dtype.type(params["init_std"])
    P[:, :k] = rng.standard_normal((n_users, k), dtype=dtype) * std
    Q[:, :k] = rng.standard_normal((n_items, k), dtype=dtype) * std
    return P, Q


def solve_rows(
    side: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    params: dict[str, Any],
    backend: str,
    n_threads: int,
) -> None:
    """Solve the rows of ``X`` in place, the other side ``Y`` fixed: one half-step, or a block of one.

    Each row's solve reads only its own entries, ``Y`` and the Gram matrix
    ``Y^T Y``, which the kernel sums in an order fixed by ``Y`` alone; so a block
    of rows solved on its own (``side`` and ``X`` holding only those rows) gets
    the same bits as in the whole half-step, for any ``n_threads``.

    Parameters
    ----------
    side : dict
        The rows' CSR as :meth:`ALS._weights` gives it: ``indptr`` int64
        (n_rows + 1,), ``indices`` int32 (nnz,) into the rows of ``Y``,
        ``weights`` (nnz,) confidence minus one in the factors' dtype.
    X : ndarray, shape (n_rows, stride)
        INOUT: the rows solved, aligned and padded as :func:`initial_factors`
        makes them; the CG solver starts from their current values.
    Y : ndarray, shape (n_cols, stride)
        IN: the other side, of ``X``'s dtype, aligned and padded alike.
    params : dict
        Checked parameters (``n_factors``, ``reg``, ``solver``, ``cg_steps``).
    backend : {"cpp", "numba", "numpy"}
    n_threads : int
        Threads of this call (Numba's count is set for the calling thread only).
    """
    with _runtime.kernel_threads(backend, n_threads):
        _kernel(backend)(
            **side,
            X=X,
            Y=Y,
            n_factors=params["n_factors"],
            reg=params["reg"],
            exact=params["solver"] == "cholesky",
            cg_steps=params["cg_steps"],
            n_threads=n_threads,
        )


class ALS(FactorRecommender):
    r"""Implicit-feedback matrix factorization by alternating least squares.

    Hu, Koren and Volinsky (2008): every stored value :math:`x_{ui} > 0` (a
    count of plays, clicks, purchases) is a preference :math:`p_{ui} = 1` held
    with confidence :math:`c_{ui} = 1 + \alpha x_{ui}` (or
    :math:`1 + \alpha \log(1 + x_{ui})`); every other pair, stored zeros
    included, is :math:`p_{ui} = 0` with confidence 1.  The model minimises

    .. math::

        \sum_{u, i} c_{ui} (p_{ui} - x_u \cdot y_i)^2
        + \lambda \Big(\sum_u |x_u|^2 + \sum_i |y_i|^2\Big)

    over all users and items, alternately solving every user with the items
    fixed and every item with the users fixed.  One user's normal equations are

    .. math::

        (Y^T Y + \lambda I + Y^T (C_u - I) Y)\, x_u = Y^T C_u p_u,

    where the Gram matrix :math:`Y^T Y` is computed once per half-step and only
    the user's own entries enter the rest.  ``solver="cg"`` runs ``cg_steps``
    conjugate-gradient steps from the current :math:`x_u` (Takacs et al. 2011),
    each step one pass over the user's entries; ``solver="cholesky"`` solves
    exactly, at a cost of :math:`k^2` per entry and :math:`k^3 / 3` per user.

    Parameters
    ----------
    n_factors : int, default 64
        Length :math:`k` of the user and item factors.
    n_iterations : int, default 15
        Full iterations (a user half-step, then an item half-step).
    reg : float, default 0.01
        L2 penalty :math:`\lambda` (>= 0).
    alpha : float, default 1.0
        Confidence scale :math:`\alpha` (> 0).
    confidence : {"linear", "log"}, default "log"
        :math:`c = 1 + \alpha x` or :math:`c = 1 + \alpha \log(1 + x)`; the
        logarithm keeps heavy-tailed counts (plays) from swamping the rest (see
        ``fastrec bench implicit --accuracy``).
    solver : {"cg", "cholesky"}, default "cg"
        Conjugate gradient warm-started from the current factors, or the exact
        solve (for small ``n_factors``).
    cg_steps : int, default 3
        CG steps per user and per item in each half-step.
    init_std : float, default 0.01
        Factors start as :math:`N(0, \mathrm{init\_std}^2)` draws.
    random_state : int, numpy Generator or RandomState, optional
        Seed of the initial factors (kept in ``seed_``).  The same seed gives a
        bit-identical model on the ``cpp`` and ``numba`` backends, for any
        ``n_threads``.
    dtype : np.float32 or np.float64, default np.float32
        Dtype of the factors and of the CG arithmetic.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  The model does
        not depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"numpy"`` is the per-user reference loop, for small data only.
    verbose : bool, default False
        Compute the loss after every iteration (one more pass over the data)
        into ``history_["loss"]`` and print it to stderr.

    Attributes
    ----------
    user_factors_ : ndarray, shape (n_users, n_factors)
    item_factors_ : ndarray, shape (n_items, n_factors)
    user_ids_, item_ids_ : ndarray
        Raw id of every inner index.
    history_ : dict of lists
        Per iteration: ``"seconds"``, and ``"loss"`` (the objective above,
        float64) when ``verbose``.
    seed_ : int
        The integer seed of the fit.
    interactions_ : scipy.sparse.csr_matrix, shape (n_users, n_items)
        The training values (repeated pairs summed) plus those of :meth:`fold_in`.

    Notes
    -----
    Scores are :math:`x_u \cdot y_i`.  ``recommend(..., user_items=...)`` and
    :meth:`fold_in` solve a user's equations exactly with the items fixed (the
    Cholesky solve, whatever ``solver``).
    """

    _FORMAT_NAME = "fastrec.ALS"
    _FORMAT_VERSION = 1
    _PARAMS = (
        "n_factors",
        "n_iterations",
        "reg",
        "alpha",
        "confidence",
        "solver",
        "cg_steps",
        "init_std",
        "random_state",
        "verbose",
    )

    def __init__(
        self,
        n_factors: int = 64,
        n_iterations: int = 15,
        reg: float = 0.01,
        alpha: float = 1.0,
        *,
        confidence: str = "log",
        solver: str = "cg",
        cg_steps: int = 3,
        init_std: float = 0.01,
        random_state: Any = None,
        dtype: Any = np.float32,
        n_threads: int | None = None,
        backend: str = "auto",
        verbose: bool = False,
    ):
        super().__init__(dtype=dtype, n_threads=n_threads, backend=backend)
        self.n_factors = n_factors
        self.n_iterations = n_iterations
        self.reg = reg
        self.alpha = alpha
        self.confidence = confidence
        self.solver = solver
        self.cg_steps = cg_steps
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------

    def _checked_params(self) -> dict[str, Any]:
        for value, name, names in (
            (self.confidence, "confidence", CONFIDENCES),
            (self.solver, "solver", SOLVERS),
        ):
            if not isinstance(value, str) or value not in names:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, names))}.")
        return {
            "n_factors": V.check_int(self.n_factors, "n_factors", minimum=1),
            "n_iterations": V.check_int(self.n_iterations, "n_iterations", minimum=1),
            "reg": V.check_float(self.reg, "reg", minimum=0.0),
            "alpha": V.check_float(self.alpha, "alpha", minimum=0.0, strict_minimum=True),
            "confidence": self.confidence,
            "solver": self.solver,
            "cg_steps": V.check_int(self.cg_steps, "cg_steps", minimum=1),
            "init_std": V.check_float(self.init_std, "init_std", minimum=0.0),
            "random_state": check_random_state(self.random_state),
            "verbose": V.check_bool(self.verbose, "verbose"),
        }

    # -- training -----------------------------------------------------------------------

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        check_values(R.data, "ratings")
        dtype = R.dtype
        k = params["n_factors"]
        n_users, n_items = R.shape
        stride = padded_width(k, dtype)
        V.check_memory(
            (n_users + n_items) * stride * dtype.itemsize + R.nnz * 3 * (dtype.itemsize + 4),
            f"the factors of {n_users:,} users and {n_items:,} items at n_factors={k}",
            "pass fewer ids (as triples, so that only the ids present count) or fewer factors.",
        )
        users_side = self._weights(R, params, dtype)
        items_side = self._weights(sp.csr_matrix(R.T), params, dtype)
        seed = seed_from(self.random_state)
        P, Q = initial_factors(seed, n_users, n_items, params, dtype)
        history: dict[str, list[float]] = {"seconds": []}
        if params["verbose"]:
            history["loss"] = []
        for iteration in range(params["n_iterations"]):
            start = time.perf_counter()
            solve_rows(users_side, P, Q, params, backend, n_threads)
            solve_rows(items_side, Q, P, params, backend, n_threads)
            history["seconds"].append(time.perf_counter() - start)
            if params["verbose"]:
                loss = als_loss(users_side, P, Q, k, params["reg"])
                history["loss"].append(loss)
                print(
                    f"ALS iteration {iteration + 1}/{params['n_iterations']}: loss {loss:.6g}, "
                    f"{history['seconds'][-1]:.3f} s",
                    file=sys.stderr,
                )
        if not (np.isfinite(P).all() and np.isfinite(Q).all()):
            raise FloatingPointError("ALS produced non-finite factors; lower alpha or use dtype=np.float64.")
        self._install(P, Q, k, seed)
        self.history_ = history

    @staticmethod
    def _weights(R: sp.csr_matrix, params: dict[str, Any], dtype: np.dtype) -> dict[str, np.ndarray]:
        """The kernel's CSR of one side: entries with x > 0 only, their ``c - 1`` in ``dtype``."""
        keep = R.data > 0
        if keep.all():  # the common case: no stored zeros to drop
            indptr, indices, values = R.indptr.astype(np.int64), R.indices.astype(np.int32), R.data
        else:
            rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))[keep]
            indptr = np.zeros(R.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=R.shape[0]), out=indptr[1:])
            indices, values = R.indices[keep].astype(np.int32), R.data[keep]
        weights = confidence_minus_one(values, params["alpha"], params["confidence"])
        if weights.size and weights.max() > np.finfo(dtype).max:
            raise ValueError(
                f"alpha * values overflow {dtype.name}: lower alpha, use confidence='log' or "
                "pass dtype=np.float64."
            )
        return {
            "indptr": indptr,
            "indices": indices,
            "weights": weights.astype(dtype),
        }

    def _install(self, P: np.ndarray, Q: np.ndarray, k: int, seed: int) -> None:
        """Set the fitted factors (aligned, padded)."""
        self._k = k
        self._P, self._Q = P, Q
        self._gram: np.ndarray | None = None  # Y^T Y in float64, made by the first exact user solve
        self.seed_ = seed

    # -- one user -----------------------------------------------------------------------

    def _solve_user(
        self, inner: np.ndarray, values: np.ndarray, user: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, float]:
        """(factors (n_factors,) float64, 0.0): the exact solve of one user, items fixed.

        ``values`` are the user's values of the known items ``inner``; zeros
        count as no preference.
        """
        from fastrec.implicit.als._reference import solve_row

        check_values(values, "values")
        keep = values > 0
        Yu = self._Q[inner[keep], : self._k].astype(np.float64)
        w = confidence_minus_one(values[keep], params["alpha"], params["confidence"])
        gram = self.__dict__.get("_gram")
        if gram is None:  # racing readers compute the same matrix: no lock needed
            Qk = self._Q[:, : self._k].astype(np.float64)
            gram = self._gram = Qk.T @ Qk
        x = solve_row(gram, Yu, w, params["reg"], None, 1)
        if not np.isfinite(x).all():
            raise ValueError(f"values up to {values.max():.3g} give user {user!r} non-finite factors.")
        return x, 0.0

    @writes
    def fold_in(self, user: Any, items: Any, values: Any = None) -> ALS:
        """Learn one user's factors from its interactions, item factors fixed.

        The exact solve of the user's equations; a known user's factors are
        replaced, a new user appended.  Unknown items are ignored.  The items
        join the user's interactions (seen by :meth:`recommend`).

        Parameters
        ----------
        user : hashable
            Raw id of the user.
        items : array-like, shape (m,)
            Raw ids of the items interacted with.
        values : array-like, shape (m,), optional
            Counts (>= 0); ``None`` means one interaction each.

        Returns
        -------
        self
        """
        self._check_fitted()
        item_ids, values = self._fold_in_arrays(items, values)
        check_values(values, "values")
        self._fold_in(user, item_ids, values)
        return self

    # -- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "seed": np.array(self.seed_),
        }

    def _set_state(self, archive: Any) -> None:
        P, Q, _, _, seed = self._read_factors(archive)
        self._install_factors(P, Q)
        self._gram = None
        self.seed_ = seed
        self.history_ = {}


def als_loss(side: dict[str, np.ndarray], P: np.ndarray, Q: np.ndarray, k: int, reg: float) -> float:
    r"""The ALS objective in float64, from the users' side of the kernel's CSR.

    :math:`\sum_u x_u^T (Y^T Y) x_u + \sum_{(u,i)\ \mathrm{stored}} [c (1 - s)^2 - s^2]
    + \lambda (|X|^2 + |Y|^2)`, with :math:`s = x_u \cdot y_i`: every pair counts
    :math:`s^2` with confidence 1, the stored pairs are corrected to theirs.
    """
    X = P[:, :k].astype(np.float64)
    Y = Q[:, :k].astype(np.float64)
    total = float(np.einsum("ij,jk,ik->", X, Y.T @ Y, X))
    rows = np.repeat(np.arange(X.shape[0]), np.diff(side["indptr"]))
    cols = side["indices"]
    c = 1.0 + side["weights"].astype(np.float64)
    loss = 0.0
    for start in range(0, rows.size, 1 << 18):  # bounded scratch
        r, i, cc = (
            rows[start : start + (1 << 18)],
            cols[start : start + (1 << 18)],
            c[start : start + (1 << 18)],
        )
        s = np.einsum("ij,ij->i", X[r], Y[i])
        loss += float(np.sum(cc * (1.0 - s) ** 2 - s * s))
    return total + loss + reg * float(np.sum(X * X) + np.sum(Y * Y))
