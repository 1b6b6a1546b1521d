"""Bayesian Personalized Ranking (Rendle et al., 2009) of behaviour data by pairwise SGD."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._aligned import aligned_zeros, padded_width
from fastrec._concurrency import writes
from fastrec._draws import GOLDEN, MASK, mix
from fastrec.base import check_random_state, seed_from
from fastrec.implicit._positives import positives_of
from fastrec.recommenders._factors import FactorRecommender

FORMAT_NAME = "fastrec.BPR"
FORMAT_VERSION = 1

NEGATIVE_SAMPLING = ("uniform", "popularity")
# Negative draws per sample before the sample is skipped: a user with half the
# items as positives fails all of them once in 2^16 samples.
MAX_TRIES = 16
# Samples a thread draws and then takes in entry order, so by user: the larger,
# the denser a group's sweep over the users, whose rows and factors then come
# from cache (on MovieLens-10M-sized data 2^16 gives 2x the samples per second
# of one sample at a time, 2^20 over 3x); the buffers take 16 bytes a sample.
# Held-out NDCG@10 on MovieLens 100K and latest-small is the same as with one
# sample at a time, also when a group holds a whole epoch.
GROUP = 1 << 20
# The user solve of recommend(user_items=...) and fold_in: damped Newton steps
# at most, and the pairs it sums over at most (more negatives are subsampled).
SOLVE_STEPS = 25
SOLVE_MAX_PAIRS = 2_000_000


def _epoch_seed(seed: int, epoch: int) -> int:
    """The sampling seed of one epoch, a non-negative int64, from the fit's seed."""
    return mix((seed + (epoch + 1) * GOLDEN) & MASK) >> 1


class BPR(FactorRecommender):
    """Bayesian Personalized Ranking: item ranking from behaviour data by pairwise SGD.

    The score of user ``u`` and item ``i`` is ``x_ui = p_u . q_i + b_i`` (the
    item bias ``b_i`` when ``item_bias``).  The positives of a user are the
    items with a stored value > 0 (plays, clicks, purchases: the values count
    as presence, not as weights).  One epoch draws as many samples as there
    are positives: a positive ``(u, i)`` uniformly, a negative ``j`` that is not
    a positive of ``u`` (uniform over the items, or by item popularity), and
    takes one SGD step up ``ln sigmoid(x_ui - x_uj)`` with L2 penalty ``reg``
    on every parameter it touches.  Threads update the shared factors without
    locks (Hogwild), each drawing from its own random stream, and each takes
    its samples in groups of 2^20 (all its share, on smaller data) ordered by
    user, so that a user's positives and factors are read from memory once for
    all its samples in the group.

    Parameters
    ----------
    n_factors : int, default 64
    n_epochs : int, default 100
    lr : float, default 0.05
        SGD learning rate (> 0).
    reg : float, default 0.01
        L2 penalty of the factors and biases (>= 0).
    item_bias : bool, default True
        Learn an item bias ``b_i``.
    negative_sampling : {"uniform", "popularity"}, default "uniform"
        Draw negatives uniformly over the items, or in proportion to their
        number of positives.
    init_std : float, default 0.1
        Standard deviation of the normal initial factors (biases start at 0).
    random_state : None, int, numpy Generator or RandomState
        Seeds the initial factors and the sampling.  Same seed, data and
        ``n_threads=1``: the same model, on either compiled backend (with more
        threads the draws are the same but the lock-free updates race).
    dtype : np.float32 or np.float64, default np.float32
    n_threads : int or None
        Threads (None: every core this process may use).
    backend : {"auto", "cpp", "numba", "numpy"}
    verbose : bool, default False
        Print one line per epoch (seconds, the fraction of sampled pairs the
        model ranked right before their step) on stderr.

    Attributes
    ----------
    user_factors_ : ndarray (n_users, n_factors)
    item_factors_ : ndarray (n_items, n_factors)
    item_bias_ : ndarray (n_items,), zeros when ``item_bias`` is False
    history_ : dict of lists, one entry per epoch
        ``seconds``; ``sampled_auc``, the fraction of the epoch's sampled pairs
        with ``x_ui > x_uj`` before their step (a cheap running estimate of the
        training AUC); ``skipped``, samples without a negative.
    seed_ : int
        The integer seed of the fit.

    Notes
    -----
    ``recommend(..., user_items=...)`` and :meth:`fold_in` solve a user's
    factors with the items fixed: they maximise the user's BPR objective over
    every (positive, non-positive item) pair,
    ``mean ln sigmoid(x_ui - x_uj) - reg / 2 |p_u|^2``, which is concave, by
    damped Newton steps from zero (deterministic; a user with more than
    2,000,000 pairs uses a fixed subsample of its negatives).
    """

    _FORMAT_NAME = FORMAT_NAME
    _FORMAT_VERSION = FORMAT_VERSION
    _PARAMS = (
        "n_factors",
        "n_epochs",
        "lr",
        "reg",
        "item_bias",
        "negative_sampling",
        "init_std",
        "random_state",
    )

    def __init__(
        self,
        n_factors: int = 64,
        n_epochs: int = 100,
        lr: float = 0.05,
        reg: float = 0.01,
        *,
        item_bias: bool = True,
        negative_sampling: str = "uniform",
        init_std: float = 0.1,
        random_state: Any = None,
        dtype: Any = np.float32,
        n_threads: int | None = None,
        backend: str = "auto",
        verbose: bool = False,
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.item_bias = item_bias
        self.negative_sampling = negative_sampling
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------

    def _checked_params(self) -> dict[str, Any]:
        sampling = self.negative_sampling
        if not isinstance(sampling, str) or sampling not in NEGATIVE_SAMPLING:
            raise ValueError(f"negative_sampling={sampling!r} is not one of 'uniform', 'popularity'.")
        return {
            "n_factors": V.check_int(self.n_factors, "n_factors", minimum=1),
            "n_epochs": V.check_int(self.n_epochs, "n_epochs", minimum=0),
            "lr": V.check_float(self.lr, "lr", minimum=0.0, strict_minimum=True),
            "reg": V.check_float(self.reg, "reg", minimum=0.0),
            "item_bias": V.check_bool(self.item_bias, "item_bias"),
            "popularity": sampling == "popularity",
            "init_std": V.check_float(self.init_std, "init_std", minimum=0.0),
            "random_state": check_random_state(self.random_state),
            "verbose": V.check_bool(self.verbose, "verbose"),
        }

    # -- training -----------------------------------------------------------------------

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        indptr, indices, users = positives_of(R)
        if indices.size == 0:
            raise ValueError(
                "BPR needs at least one positive interaction (a stored value > 0); every value is <= 0."
            )
        n_users, n_items = R.shape
        k, dtype = params["n_factors"], R.dtype
        seed = seed_from(params["random_state"])
        rng = np.random.default_rng(seed)
        stride = padded_width(k, dtype)
        V.check_memory((n_users + n_items) * stride * dtype.itemsize, "the BPR factors", "lower n_factors")
        P, Q = aligned_zeros(n_users, stride, dtype), aligned_zeros(n_items, stride, dtype)
        P[:, :k] = rng.standard_normal((n_users, k), dtype=dtype)
        Q[:, :k] = rng.standard_normal((n_items, k), dtype=dtype)
        P *= dtype.type(params["init_std"])
        Q *= dtype.type(params["init_std"])
        bi = np.zeros(n_items, dtype=dtype)
        kernel = _runtime.kernel_module(backend, "implicit.bpr").bpr_epoch
        history: dict[str, list[float]] = {"seconds": [], "sampled_auc": [], "skipped": []}
        stats = np.zeros(3, dtype=np.float64)
        with _runtime.kernel_threads(backend, n_threads):
            for epoch in range(params["n_epochs"]):
                start = time.perf_counter()
                kernel(
                    indptr=indptr,
                    indices=indices,
                    users=users,
                    P=P,
                    Q=Q,
                    bi=bi,
                    lr=params["lr"],
                    reg=params["reg"],
                    item_bias=params["item_bias"],
                    popularity=params["popularity"],
                    n_samples=indices.size,
                    seed=_epoch_seed(seed, epoch),
                    max_tries=MAX_TRIES,
                    out_stats=stats,
                    n_threads=n_threads,
                    group=GROUP,
                )
                seconds = time.perf_counter() - start
                auc = stats[1] / stats[0] if stats[0] else float("nan")
                history["seconds"].append(seconds)
                history["sampled_auc"].append(float(auc))
                history["skipped"].append(int(stats[2]))
                if params["verbose"]:
                    print(
                        f"BPR epoch {epoch + 1}/{params['n_epochs']}: {seconds:.3f} s, "
                        f"sampled AUC {auc:.4f}, skipped {int(stats[2])}",
                        file=sys.stderr,
                    )
        if not (np.isfinite(P).all() and np.isfinite(Q).all() and np.isfinite(bi).all()):
            raise FloatingPointError(
                f"BPR diverged (non-finite factors) with lr={params['lr']}; lower lr or raise reg."
            )
        self._P, self._Q, self._k = P, Q, k
        self.item_bias_ = bi
        self._item_bias_on = params["item_bias"]
        self.seed_ = seed
        self.history_ = history

    def _item_bias(self) -> np.ndarray | None:
        return self.item_bias_ if self._item_bias_on else None

    # -- fold-in ------------------------------------------------------------------------

    def _solve_user(
        self, inner: np.ndarray, values: np.ndarray, user: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, float]:
        """(factors (n_factors,) float64, 0.0): the user's BPR objective maximised, items fixed.

        Maximises ``mean over (i, j) of ln sigmoid(x_ui - x_uj) - reg / 2 |p|^2``
        over the positives ``i`` (values > 0) and the other items ``j`` by damped
        Newton steps from zero.  No positive, or no other item, gives zeros.
        """
        k, n_items = self._k, self._Q.shape[0]
        pos = np.unique(inner[values > 0])
        negative = np.ones(n_items, dtype=bool)
        negative[pos] = False
        neg = np.flatnonzero(negative)
        if pos.size == 0 or neg.size == 0:
            return np.zeros(k), 0.0
        if pos.size * neg.size > SOLVE_MAX_PAIRS:  # a fixed subsample keeps the solve deterministic
            keep = max(1, SOLVE_MAX_PAIRS // pos.size)
            neg = np.sort(np.random.default_rng(0).choice(neg, size=keep, replace=False))
        Qp = self._Q[pos, :k].astype(np.float64)
        Qn = self._Q[neg, :k].astype(np.float64)
        bias = self.item_bias_.astype(np.float64) if self._item_bias_on else np.zeros(n_items)
        db = bias[pos][:, None] - bias[neg][None, :]  # (P, N)
        m = float(pos.size * neg.size)
        reg = params["reg"]

        def objective(p: np.ndarray) -> float:
            x = (Qp @ p)[:, None] - (Qn @ p)[None, :] + db
            return float(-np.logaddexp(0.0, -x).sum() / m - 0.5 * reg * p @ p)

        p = np.zeros(k)
        value = objective(p)
        for _ in range(SOLVE_STEPS):
            x = (Qp @ p)[:, None] - (Qn @ p)[None, :] + db
            z = 0.5 * (1.0 - np.tanh(0.5 * x))  # sigmoid(-x), stable
            w = z * (1.0 - z)
            zi, zj = z.sum(axis=1), z.sum(axis=0)
            grad = (Qp.T @ zi - Qn.T @ zj) / m - reg * p
            wi, wj = w.sum(axis=1), w.sum(axis=0)
            cross = Qp.T @ w @ Qn
            H = (Qp.T * wi) @ Qp + (Qn.T * wj) @ Qn - cross - cross.T
            H = H / m + (reg + 1e-10) * np.eye(k)
            step = np.linalg.solve(H, grad)
            t = 1.0
            while t > 1e-6:  # backtracking: the objective must not fall
                trial = p + t * step
                trial_value = objective(trial)
                if trial_value >= value:
                    break
                t *= 0.5
            else:
                break
            converged = trial_value - value < 1e-12 * max(1.0, abs(value))
            p, value = trial, trial_value
            if converged:
                break
        return p, 0.0

    @writes
    def fold_in(self, user: Any, items: Any, values: Any = None) -> BPR:
        """Solve one user's factors from its interactions, item side fixed, and store them.

        The solve is the one ``recommend(..., user_items=...)`` runs (see the
        class notes).  A known user's factors are replaced; unknown items are
        ignored; the items join the user's interactions.

        Parameters
        ----------
        user : hashable
            Raw id of the user.
        items : array-like, shape (m,)
            Raw ids of the items.
        values : array-like, shape (m,), optional
            Interaction values; the positives are those > 0.  None: all ones.

        Returns
        -------
        self
        """
        self._check_fitted()
        item_ids, values = self._fold_in_arrays(items, values)
        if not np.isfinite(values).all():
            raise ValueError("values must be finite (no NaN or infinity).")
        self._fold_in(user, item_ids, values)
        return self

    # -- persistence --------------------------------------------------------------------

    def _saved_param_values(self) -> dict[str, Any]:
        return {**super()._saved_param_values(), "item_bias": bool(self._item_bias_on)}

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
            "seed": np.array(self.seed_),
        }

    def _set_state(self, archive: Any) -> None:
        P, Q, bi, saved, seed = self._read_factors(archive, item_bias=True)
        self._install_factors(P, Q)
        self.item_bias_ = bi.copy()
        self._item_bias_on = bool(saved["item_bias"])
        self.seed_ = seed
        self.history_ = {}
