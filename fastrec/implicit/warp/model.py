"""WARP: the Weighted Approximate-Rank Pairwise loss of Weston, Bengio and Usunier (2011)."""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._aligned import aligned_zeros, padded_width
from fastrec._concurrency import writes
from fastrec.base import check_random_state, seed_from
from fastrec.implicit._positives import positives_of
from fastrec.recommenders._factors import FactorRecommender

FORMAT_NAME = "fastrec.WARP"
FORMAT_VERSION = 1

LEARNING_SCHEDULES = ("adagrad", "constant")
# Full-batch steps of the fold-in solve (see WARP._solve_user) and their step size.
FOLD_IN_STEPS = 30
FOLD_IN_STEP = 0.5


class _Kernels(NamedTuple):
    warp_epoch: Callable[..., None]
    warp_epoch_features: Callable[..., None]


def _kernels(backend: str) -> _Kernels:
    """``warp_epoch`` and ``warp_epoch_features`` of one backend."""
    module = _runtime.kernel_module(backend, "implicit.warp")
    return _Kernels(module.warp_epoch, module.warp_epoch_features)


def epoch_seed(seed: int, epoch: int) -> int:
    """The key of the draw streams of one epoch (a non-negative int64)."""
    return int(np.random.SeedSequence([seed, 2, epoch]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The visit order of the ``n`` training positives in one epoch: a fresh permutation (int64)."""
    return np.random.default_rng([seed, 1, epoch]).permutation(n).astype(np.int64)


class WARP(FactorRecommender):
    r"""Implicit-feedback factorization trained with the WARP loss (as LightFM implements it).

    .. math:: s_{ui} = p_u \cdot q_i + b_i

    Every stored value > 0 of the training data is a positive.  One epoch visits
    every positive :math:`(u, i)` once, in a fresh random order.  For each, items
    :math:`j` are drawn uniformly (draws that are positives of :math:`u` count but
    are skipped) until one violates the margin, :math:`s_{uj} > s_{ui} - m`, or
    ``max_sampled`` draws were made.  A violator found after :math:`N` draws
    estimates the rank of :math:`i` as :math:`\lfloor (n_{items} - 1) / N \rfloor`
    and weighs the pair by :math:`L = \log(\text{rank})` (LightFM's weight: the log
    approximation of :math:`\sum_{k \le \text{rank}} 1/k`; a rank estimate of 1
    weighs 0).  The step is SGD on :math:`L \max(0, m - s_{ui} + s_{uj})` plus the
    L2 penalty ``reg``:

    .. math::

        p_u &\leftarrow p_u - \eta\,(\lambda p_u - L (q_i - q_j)), \quad
        q_i \leftarrow q_i - \eta\,(\lambda q_i - L p_u), \quad
        q_j \leftarrow q_j - \eta\,(\lambda q_j + L p_u), \\
        b_i &\leftarrow b_i - \eta\,(\lambda b_i - L), \quad
        b_j \leftarrow b_j - \eta\,(\lambda b_j + L),

    every gradient taken before the step.  With ``learning_schedule="adagrad"``
    (LightFM's default) each parameter steps by :math:`\eta g / \sqrt{a}` with
    :math:`a` (starting at 1) accumulating its squared gradients :math:`g^2`.

    Parameters
    ----------
    n_factors : int, default 64
    n_epochs : int, default 30
    lr : float, default 0.05
        Learning rate :math:`\eta`.
    reg : float, default 0.0
        L2 penalty :math:`\lambda` of the factors and biases, applied at every update.
    max_sampled : int, default 10
        Draws per positive before giving up on finding a violator.
    margin : float, default 1.0
        :math:`m`.
    item_features : scipy sparse matrix, shape (n_items, n_features), optional
        LightFM's item model: item :math:`i` is represented by the sum of the
        embeddings :math:`e_f` (and biases) of its features weighted by its row,
        :math:`q_i = \sum_f x_{if} e_f`, and the steps go to the embeddings (see
        ``_reference.warp_epoch_features``).  Row ``r`` describes the item of inner
        index ``r`` (``item_ids_[r]``; column ``r`` of a users x items matrix).
        ``None``: every item has its own factors (the identity features), on a
        faster kernel.  After fitting, ``item_factors_`` / ``item_bias_`` hold the items'
        representations and ``feature_factors_`` / ``feature_bias_`` the
        embeddings; :meth:`save` keeps the representations only (a loaded model
        scores the same, with ``item_features=None``).
    learning_schedule : {"adagrad", "constant"}, default "adagrad"
    init_std : float, default 0.01
        Factors start as :math:`N(0, \mathrm{init\_std}^2)` draws; biases at 0.  Small
        starting factors matter: on 50k users x 20k items with 64 factors, 3 epochs
        reached precision@10 0.046 from 0.01 against 0.013 from 0.1.
    random_state : int, numpy Generator or RandomState, optional
        Seed of the initialisation, the visit orders and the draws (``seed_`` keeps it).
    dtype : np.float32 or np.float64, default np.float32
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  Each epoch's visit
        order is cut into ``n_threads`` chunks, one per thread, each with its own
        draw stream.  With one thread, the same seed gives a bit-identical model
        (and ``cpp`` and ``numba`` agree to rounding).  With more, the threads
        update shared item rows without locks (Hogwild), so models of two runs
        differ by the interleaving of the updates.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"numpy"`` is the slow per-positive reference loop, for tiny data only.
    verbose : bool, default False
        Print one line per epoch.

    Attributes
    ----------
    user_factors_ : ndarray, shape (n_users, n_factors)
    item_factors_ : ndarray, shape (n_items, n_factors)
    item_bias_ : ndarray, shape (n_items,)
    history_ : dict of lists
        Per epoch: ``"loss"`` (the weighted hinge summed over the updates made,
        divided by the positives visited), ``"violated"`` (the share of positives
        that found a violator and were updated) and ``"seconds"``.
    seed_ : int
    interactions_ : scipy.sparse.csr_matrix
        The training values by inner index (what ``exclude_seen`` excludes).

    Notes
    -----
    :meth:`fold_in` and ``recommend(..., user_items=...)`` solve one user's
    factors with the items frozen by :data:`FOLD_IN_STEPS` full-batch steps from
    zero on the user's positives: each positive :math:`i` is compared with every
    non-positive item, its violators :math:`V_i` (:math:`s_j > s_i - m`) weigh it
    by :math:`L_i = \log |V_i|` (0 when :math:`|V_i| \le 1`), and
    :math:`p \leftarrow p - \frac{\eta_f}{\bar n} (\lambda p + \frac{1}{|P|}\sum_i
    L_i (\bar q_{V_i} - q_i))` with :math:`\bar q_{V_i}` the mean violator,
    :math:`\eta_f` = :data:`FOLD_IN_STEP` and :math:`\bar n` the mean squared norm
    of the item factors: the expected WARP step over all candidates rather than a
    sampled one, so the solve is deterministic.
    """

    _FORMAT_NAME = FORMAT_NAME
    _FORMAT_VERSION = FORMAT_VERSION
    _PARAMS = (
        "n_factors",
        "n_epochs",
        "lr",
        "reg",
        "max_sampled",
        "margin",
        "learning_schedule",
        "init_std",
        "random_state",
    )

    def __init__(
        self,
        n_factors: int = 64,
        n_epochs: int = 30,
        lr: float = 0.05,
        reg: float = 0.0,
        *,
        max_sampled: int = 10,
        margin: float = 1.0,
        item_features: Any = None,
        learning_schedule: str = "adagrad",
        init_std: float = 0.01,
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
        self.max_sampled = max_sampled
        self.margin = margin
        self.item_features = item_features
        self.learning_schedule = learning_schedule
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------

    def _checked_params(self) -> dict[str, Any]:
        schedule = self.learning_schedule
        if not isinstance(schedule, str) or schedule not in LEARNING_SCHEDULES:
            raise ValueError(f"learning_schedule must be 'adagrad' or 'constant', got {schedule!r}.")
        features = self.item_features
        if features is not None:
            if not sp.issparse(features):
                raise TypeError(
                    "item_features must be a scipy sparse matrix (n_items x n_features) or None, got "
                    f"{type(features).__name__}."
                )
            features = V.canonical_csr(V.check_sparse_structure(features, "item_features"), "item_features")
            if features.shape[1] < 1 or (features.nnz and not np.isfinite(features.data).all()):
                raise ValueError("item_features must have at least one column and finite values.")
        return {
            "n_factors": V.check_int(self.n_factors, "n_factors", minimum=1),
            "n_epochs": V.check_int(self.n_epochs, "n_epochs", minimum=1),
            "lr": V.check_float(self.lr, "lr", minimum=0.0, strict_minimum=True),
            "reg": V.check_float(self.reg, "reg", minimum=0.0),
            "max_sampled": V.check_int(self.max_sampled, "max_sampled", minimum=1),
            "margin": V.check_float(self.margin, "margin", minimum=0.0),
            "adagrad": schedule == "adagrad",
            "init_std": V.check_float(self.init_std, "init_std", minimum=0.0),
            "random_state": check_random_state(self.random_state),
            "verbose": V.check_bool(self.verbose, "verbose"),
            "item_features": features,
        }

    # -- training -----------------------------------------------------------------------

    def _fit_model(
        self, R: sp.csr_matrix, params: dict[str, Any], backend: str, n_threads: int, context: Any
    ) -> None:
        dtype = R.dtype
        n_users, n_items = R.shape
        features = params["item_features"]
        if features is not None and features.shape[0] != n_items:
            raise ValueError(
                f"item_features has {features.shape[0]} rows but the data has {n_items} items; "
                "row r must describe the item of inner index r (item_ids_[r]: column r of a "
                "users x items matrix)."
            )
        # the rows the kernel trains: one per item, or one per feature
        n_rows = n_items if features is None else features.shape[1]
        k = params["n_factors"]
        stride = padded_width(k, dtype)
        V.check_memory(
            (n_users + n_rows) * stride * dtype.itemsize * (2 if params["adagrad"] else 1),
            f"the factors of {n_users:,} users and {n_rows:,} item rows at n_factors={k}",
            "pass fewer factors.",
        )
        seed = seed_from(self.random_state)
        rng = np.random.default_rng([seed, 0])
        P = aligned_zeros(n_users, stride, dtype)
        Q = aligned_zeros(n_rows, stride, dtype)
        P[:, :k] = rng.standard_normal((n_users, k)) * params["init_std"]
        Q[:, :k] = rng.standard_normal((n_rows, k)) * params["init_std"]
        bi = np.zeros(n_rows, dtype=dtype)
        if params["adagrad"]:
            P_acc, Q_acc = aligned_zeros(n_users, stride, dtype), aligned_zeros(n_rows, stride, dtype)
            P_acc[:], Q_acc[:] = 1, 1
            bi_acc = np.ones(n_rows, dtype=dtype)
        else:
            P_acc = Q_acc = np.zeros((0, stride), dtype=dtype)
            bi_acc = np.zeros(0, dtype=dtype)
        indptr, indices, users = positives_of(R)
        common = dict(
            indptr=indptr,
            indices=indices,
            users=users,
            draws=np.zeros(0, dtype=np.int32),
            P=P,
            P_acc=P_acc,
            n_factors=k,
            lr=params["lr"],
            reg=params["reg"],
            margin=params["margin"],
            max_sampled=params["max_sampled"],
            adagrad=params["adagrad"],
            n_threads=n_threads,
        )
        kernels = _kernels(backend)
        if features is None:
            kernel = kernels.warp_epoch
            common.update(Q=Q, bi=bi, Q_acc=Q_acc, bi_acc=bi_acc)
        else:
            kernel = kernels.warp_epoch_features
            common.update(
                feature_indptr=features.indptr.astype(np.int64),
                feature_indices=features.indices.astype(np.int32),
                feature_data=features.data.astype(dtype),
                E=Q,
                eb=bi,
                E_acc=Q_acc,
                eb_acc=bi_acc,
            )
        stats = np.zeros(3, dtype=np.float64)
        history: dict[str, list[float]] = {"loss": [], "violated": [], "seconds": []}
        for epoch in range(params["n_epochs"]):
            start = time.perf_counter()
            order = epoch_order(seed, epoch, indices.size)
            if n_items > 1 and indices.size:
                with _runtime.kernel_threads(backend, n_threads):
                    kernel(**common, order=order, seed=epoch_seed(seed, epoch), out_stats=stats)
            else:
                stats[:] = 0.0
            visited = max(stats[2], 1.0)
            history["loss"].append(float(stats[0] / visited))
            history["violated"].append(float(stats[1] / visited))
            history["seconds"].append(time.perf_counter() - start)
            if params["verbose"]:
                print(
                    f"WARP epoch {epoch + 1}/{params['n_epochs']}: loss {history['loss'][-1]:.4g}, "
                    f"violated {history['violated'][-1]:.3f}, {history['seconds'][-1]:.2f} s"
                )
        if not (np.isfinite(P).all() and np.isfinite(Q).all() and np.isfinite(bi).all()):
            raise FloatingPointError(
                f"WARP diverged (non-finite factors) with lr={params['lr']}; lower lr or use "
                "learning_schedule='adagrad'."
            )
        if features is not None:
            # the items as the model scores them: their features' embeddings and biases, weighted
            self.feature_factors_, self.feature_bias_ = Q[:, :k].copy(), bi.copy()
            weights = features.astype(dtype)
            Q = aligned_zeros(n_items, stride, dtype)
            Q[:, :k] = weights @ self.feature_factors_
            bi = np.asarray(weights @ self.feature_bias_, dtype=dtype)
        self._k = k
        self._P, self._Q = P, Q
        self.item_bias_ = bi
        self.seed_ = seed
        self.history_ = history

    # -- scores ------------------------------------------------------------------------

    def _item_bias(self) -> np.ndarray | None:
        return self.item_bias_

    # -- fold-in ------------------------------------------------------------------------

    def _solve_user(
        self, inner: np.ndarray, values: np.ndarray, user: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, float]:
        """(factors (n_factors,) float64, 0.0): the deterministic full-batch solve of the class notes."""
        k = self._k
        pos = np.unique(np.asarray(inner)[np.asarray(values) > 0])
        p = np.zeros(k)
        if pos.size == 0:
            return p, 0.0
        Q = self._Q[:, :k].astype(np.float64)
        b = self.item_bias_.astype(np.float64)
        n_items = Q.shape[0]
        negative = np.ones(n_items, dtype=bool)
        negative[pos] = False
        if not negative.any():
            return p, 0.0
        Qn, bn = Q[negative], b[negative]
        scale = FOLD_IN_STEP / max(float(np.mean(np.einsum("ij,ij->i", Q, Q))), 1e-12)
        margin, reg = params["margin"], params["reg"]
        for _ in range(FOLD_IN_STEPS):
            s_pos = Q[pos] @ p + b[pos]
            s_neg = Qn @ p + bn
            # the violators of a positive are the best-scored negatives: their count by a binary
            # search, their sum from sums of the score-sorted rows up to each distinct count
            ranked = np.argsort(s_neg, kind="stable")
            counts = ranked.size - np.searchsorted(s_neg[ranked], s_pos - margin, side="right")
            cuts = np.unique(counts[counts > 0])
            mean_violator = np.zeros((pos.size, k))
            if cuts.size:
                best_first = np.vstack([Qn[ranked[::-1]], np.zeros((1, k))])
                starts = np.concatenate([[0], cuts])  # cuts <= n_negatives: a row of best_first
                up_to_cut = np.cumsum(np.add.reduceat(best_first, starts, axis=0)[:-1], axis=0)
                hit = counts > 0
                mean_violator[hit] = up_to_cut[np.searchsorted(cuts, counts[hit])] / counts[hit, None]
            weight = np.where(counts > 1, np.log(np.maximum(counts, 1)), 0.0)
            grad = reg * p + (weight[:, None] * (mean_violator - Q[pos])).sum(axis=0) / pos.size
            p = p - scale * grad
        return p, 0.0

    @writes
    def fold_in(self, user: Any, items: Any, values: Any = None) -> WARP:
        """Learn one user's factors from its interactions, item side frozen.

        Runs the deterministic solve described in the class notes on the items
        with a value > 0.  A known user's factors are replaced; a new user is
        appended.  Unknown items are ignored; a user without a known positive
        gets zero factors (scored by the item biases).  The items join the
        user's interactions (seen by :meth:`recommend`).

        Parameters
        ----------
        user : hashable
            Raw id of the user.
        items : array-like, shape (m,)
            Raw ids of the items.
        values : array-like, shape (m,), optional
            Interaction values; ``None`` means ones.

        Returns
        -------
        self
        """
        self._check_fitted()
        self._fold_in(user, *self._fold_in_arrays(items, values))
        return self

    # -- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
            "seed": np.array(self.seed_),
        }

    def _set_state(self, archive: Any) -> None:
        P, Q, bias, _, seed = self._read_factors(archive, item_bias=True)
        self._install_factors(P, Q)
        self.item_bias_ = bias.copy()
        self.seed_ = seed
        self.history_ = {}
