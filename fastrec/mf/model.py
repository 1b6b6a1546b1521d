"""Biased matrix factorization of explicit ratings trained by SGD (Funk-SVD)."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._concurrency import model_lock, reads, writes
from fastrec._idmap import IdMap
from fastrec.base import check_random_state, seed_from
from fastrec.datasets._triples import rating_triples
from fastrec.mf._checks import check_index_range
from fastrec.mf.grid import (
    _rank,
    _rows_in_order,
    aligned_zeros,
    arrange_blocks,
    grid_groups,
    make_schedules,
    padded_width,
    standard_normal,
)
from fastrec.recommenders._factors import FactorRecommender, grown_interactions, interactions

FORMAT_NAME = "fastrec.MatrixFactorization"
# Version 2: the Recommender layout (ratings_* interactions, params with random_state);
# version 1 files (seen_* pattern, a seed member) still load.
FORMAT_VERSION = 2

# Rows of initial factors drawn from one random stream, and the chunks a thread
# must have before the draws go to a thread pool (see _init_factors): on 2
# threads, the pool took 1.10-1.22x the serial time for 6 chunks (MovieLens 1M's
# users), 0.90x for 12 and 0.74x for 32.
INIT_CHUNK_ROWS = 1024
INIT_CHUNKS_PER_THREAD = 6


class DivergenceError(FloatingPointError, ValueError):
    """Training produced NaN or infinite parameters (the learning rate is too high for the data).

    Also a ``ValueError``: the data and parameters passed cause it.
    """


class _Kernels(NamedTuple):
    """The factorization kernels of one backend; call them with keyword arguments."""

    sgd_mf_epoch: Callable[..., None]
    mf_predict: Callable[..., None]
    group_by_block: Callable[..., None]


def sgd_settings(params: dict[str, Any], mu: float) -> dict[str, Any]:
    """The ``sgd_mf_epoch`` arguments fixed by the estimator's parameters (``_checked_params``)
    and the global mean: what every epoch of a fit passes, on one machine or per block."""
    return {
        "n_factors": params["n_factors"],
        "mu": mu,
        "lr": params["lr"],
        "reg": params["reg"],
        "lr_bias": params["lr_bias"],
        "reg_bias": params["reg_bias"],
        "biased": params["biased"],
        "non_negative": params["non_negative"],
    }


def _kernels(backend: str) -> _Kernels:
    """``sgd_mf_epoch``, ``mf_predict`` and ``group_by_block`` of one backend."""
    module = _runtime.kernel_module(backend, "mf")
    return _Kernels(module.sgd_mf_epoch, module.mf_predict, module.group_by_block)


class MatrixFactorization(FactorRecommender):
    r"""Biased matrix factorization (Funk-SVD) of explicit ratings, trained by SGD.

    .. math:: \hat r_{ui} = \mu + b_u + b_i + p_u \cdot q_i

    For every training rating in turn, with :math:`e = r_{ui} - \hat r_{ui}`:

    .. math::

        b_u &\leftarrow b_u + \eta_b (e - \lambda_b b_u), \quad
        b_i \leftarrow b_i + \eta_b (e - \lambda_b b_i), \\
        p_u &\leftarrow p_u + \eta (e\, q_i - \lambda p_u), \quad
        q_i \leftarrow q_i + \eta (e\, p_u - \lambda q_i).

    :math:`\mu` is the mean training rating and stays fixed.  Training runs on
    a grid of user groups x item groups: blocks sharing no user and no item run
    on different threads at once (LIBMF's conflict-free scheduling).  Within a
    block, each user's ratings are visited as one run (as LIBMF and Surprise
    do, so the user's factors stay in cache).  The ratings within each run are
    shuffled once per training call (``fit``, ``partial_fit``); every epoch
    draws a fresh order of the runs, in windows of 16 neighbouring runs (windows
    in random order, runs in random order within a window) so that memory
    accesses stay local, and four runs are walked side by side, one rating from
    each in turn, so that their updates overlap.

    Parameters
    ----------
    n_factors : int, default 100
        Length of :math:`p_u` and :math:`q_i`.
    n_epochs : int, default 20
        Passes over the training ratings.
    lr : float, default 0.02
        Learning rate :math:`\eta` of the factors.
    reg : float, default 0.09
        L2 penalty :math:`\lambda` of the factors, applied at every update.
    lr_bias : float or None, default 0.01
        Learning rate :math:`\eta_b` of the biases; ``None`` uses ``lr``.
    reg_bias : float or None, default 0.05
        Penalty :math:`\lambda_b` of the biases; ``None`` uses ``reg``.
    init_std : float, default 0.05
        Factors start as :math:`N(0, \mathrm{init\_std}^2)` draws (their absolute
        values when ``non_negative``); biases start at 0.
    biased : bool, default True
        Learn :math:`\mu, b_u, b_i`.  ``False`` fits :math:`\hat r = p_u \cdot q_i` alone.
    non_negative : bool, default False
        Projected SGD: factors are clipped at 0 after every update (NMF-style).
    random_state : int, numpy Generator or RandomState, optional
        Seed of the initialisation, the grid and every shuffle.  An int is the
        seed itself; a Generator or RandomState draws one integer seed from its
        stream (advancing it); ``None`` draws one from the OS.  The seed used is
        kept in ``seed_``.  The same int and the same ``n_threads`` give a
        bit-identical model with the ``cpp`` and ``numba`` backends.
    dtype : np.float32 or np.float64, default np.float32
        Dtype of the parameters and of the arithmetic.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  The model
        depends on it (it sets the grid), but is reproducible for a given value.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"numpy"`` is the slow per-rating reference loop, for tiny data only.
    hogwild : bool, default False
        Lock-free mode: blocks run as soon as a thread is free, with racy updates
        of shared rows.  Can be faster on unbalanced data; not reproducible.
    clip : bool, default True
        :meth:`predict` clips to the rating range seen in ``fit``.
    early_stopping : int, optional
        With validation data, stop when the validation RMSE has not improved for
        this many epochs and keep the best epoch's parameters.
    verbose : bool or None, default False
        A tqdm progress bar carrying the train (and validation) RMSE of the
        epochs done: ``True`` always shows it, ``None`` shows it only when
        stderr is a terminal, ``False`` never.

    Attributes
    ----------
    user_factors_ : ndarray, shape (n_users, n_factors)
    item_factors_ : ndarray, shape (n_items, n_factors)
    user_bias_, item_bias_ : ndarray, shape (n_users,), (n_items,)
    global_mean_ : float
        Mean training rating: :math:`\mu` of a biased model, and the fallback
        prediction of an unbiased one.
    rating_range_ : (float, float)
        Smallest and largest training rating, the clipping range.
    user_ids_, item_ids_ : ndarray
        Raw id of every inner index.
    history_ : dict of lists
        Per epoch: ``"train_rmse"`` (RMSE of the errors met while training
        through the epoch, which costs nothing extra), ``"valid_rmse"`` (with
        validation data) and ``"seconds"``.
    seed_ : int
        The integer seed of the fit (drawn from ``random_state`` unless it is
        an int); ``partial_fit`` continues from it.
    interactions_ : scipy.sparse.csr_matrix, shape (n_users, n_items)
        The training ratings by inner index (repeated pairs summed), plus the
        ratings of :meth:`fold_in`: what ``exclude_seen`` excludes.

    Notes
    -----
    The defaults were chosen by measurement on MovieLens 100K (mean test RMSE
    over the five GroupLens splits u1..u5, ``python -m fastrec.bench mf
    --accuracy``): with 100 factors and 20 epochs, a grid over lr, reg, their
    bias counterparts and init_std gave 0.908-0.910 for these values (seeds 0-2,
    1 and 2 threads), against 0.937 with Surprise's SVD defaults (lr 0.005,
    reg 0.02, init_std 0.1).  A larger lr for the factors than for the biases
    and a stronger factor penalty were what mattered.

    Unknown ids at prediction: an unknown user is predicted :math:`\mu + b_i`,
    an unknown item :math:`\mu + b_u`, and a pair of unknowns :math:`\mu`
    (an unbiased model falls back to ``global_mean_`` whenever a side is unknown).

    Recommendation follows the :class:`~fastrec.recommenders.Recommender`
    contract shared with the other recommenders: ``recommend`` ranks by
    :math:`\mu + b_u + b_i + p_u \cdot q_i` (unclipped) with the exact top-N
    kernel, ``score_items`` gives those scores, users without interactions are
    served by popularity, unknown users raise (or are skipped with
    ``unknown="skip"``), and ``user_items`` folds users in on the fly (the solve
    of :meth:`fold_in`, not stored).  ``similar_items`` / ``similar_users`` rank
    by the cosine of the factor vectors.

    Threads: one fitted model may serve :meth:`predict`, :meth:`recommend` and
    :meth:`save` from any number of threads at once.  :meth:`fold_in` and
    :meth:`partial_fit` change the model: each runs alone, after the reads in
    progress and before later ones, so no read sees a half-updated model and no
    update is lost.  :meth:`fit` trains without holding readers back and swaps
    the new model in at the end.  A model pickles (``pickle``, ``joblib``,
    ``cloudpickle``) and works the same after unpickling.
    """

    _FORMAT_NAME = FORMAT_NAME
    _FORMAT_VERSION = FORMAT_VERSION
    _HAS_USER_BIAS = True
    _PARAMS = (
        "n_factors",
        "n_epochs",
        "lr",
        "reg",
        "lr_bias",
        "reg_bias",
        "init_std",
        "biased",
        "non_negative",
        "random_state",
        "hogwild",
        "clip",
        "early_stopping",
    )
    # Fitted state, set by fit or load (absent before): padded, aligned (n, stride) factors.
    _P: np.ndarray
    _Q: np.ndarray

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 20,
        lr: float = 0.02,
        reg: float = 0.09,
        *,
        lr_bias: float | None = 0.01,
        reg_bias: float | None = 0.05,
        init_std: float = 0.05,
        biased: bool = True,
        non_negative: bool = False,
        random_state: Any = None,
        dtype: Any = np.float32,
        n_threads: int | None = None,
        backend: str = "auto",
        hogwild: bool = False,
        clip: bool = True,
        early_stopping: int | None = None,
        verbose: bool | None = False,
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.lr_bias = lr_bias
        self.reg_bias = reg_bias
        self.init_std = init_std
        self.biased = biased
        self.non_negative = non_negative
        self.random_state = random_state
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend
        self.hogwild = hogwild
        self.clip = clip
        self.early_stopping = early_stopping
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------

    def _checked_params(self) -> dict[str, Any]:
        lr = V.check_float(self.lr, "lr", minimum=0.0, strict_minimum=True)
        reg = V.check_float(self.reg, "reg", minimum=0.0)
        lr_bias = (
            lr
            if self.lr_bias is None
            else V.check_float(self.lr_bias, "lr_bias", minimum=0.0, strict_minimum=True)
        )
        reg_bias = reg if self.reg_bias is None else V.check_float(self.reg_bias, "reg_bias", minimum=0.0)
        early = self.early_stopping
        if early is not None:
            early = V.check_int(early, "early_stopping", minimum=1)
        return {
            "n_factors": V.check_int(self.n_factors, "n_factors", minimum=1),
            "n_epochs": V.check_int(self.n_epochs, "n_epochs", minimum=1),
            "lr": lr,
            "reg": reg,
            "lr_bias": lr_bias,
            "reg_bias": reg_bias,
            "init_std": V.check_float(self.init_std, "init_std", minimum=0.0),
            "biased": V.check_bool(self.biased, "biased"),
            "non_negative": V.check_bool(self.non_negative, "non_negative"),
            "dtype": V.check_factor_dtype(self.dtype),
            "n_threads": _runtime.resolve_threads(self.n_threads),
            "backend": _runtime.resolve_backend(self.backend),
            "hogwild": V.check_bool(self.hogwild, "hogwild"),
            "clip": V.check_bool(self.clip, "clip"),
            "early_stopping": early,
            "verbose": None if self.verbose is None else V.check_bool(self.verbose, "verbose"),
            "random_state": check_random_state(self.random_state),
        }

    # -- training -----------------------------------------------------------------------

    def fit(
        self,
        ratings: Any,
        *,
        validation: Any = None,
        columns: tuple[str, str, str] | None = None,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> MatrixFactorization:
        """Learn the model from explicit ratings, replacing any previous fit.

        Parameters
        ----------
        ratings : tuple, scipy sparse matrix or pandas DataFrame
            ``(user_ids, item_ids, values)`` of equal length (ids of any hashable
            type, values numeric and finite); or a users x items sparse matrix
            whose stored entries are the ratings (raw ids are then the row and
            column numbers); or a DataFrame with user, item and rating columns
            (found by name, e.g. ``user_id``/``item_id``/``rating``, or named by
            ``columns``).
        validation : same forms as ``ratings``, optional
            Held-out ratings scored after every epoch into ``history_["valid_rmse"]``.
        columns : (str, str, str), optional
            DataFrame column names of user, item and rating.
        n_users, n_items : int, optional
            Declare that ids are already indices in ``[0, n_users)`` / ``[0, n_items)``:
            the id maps are then the identity and ids outside the range are an error.

        Returns
        -------
        self
        """
        params = self._checked_params()
        _check_matrix_ids(ratings)
        for declared, name in ((n_users, "n_users"), (n_items, "n_items")):
            if declared is not None:  # the identity id maps and factors of that many ids
                _check_factor_memory(V.check_int(declared, name, minimum=1), 0, params)
        data = rating_triples(ratings, columns)
        user_map, users = self._map_ids(
            data.users, n_users, "n_users", "user_ids", data.shape[0] if data.shape else None
        )
        item_map, items = self._map_ids(
            data.items, n_items, "n_items", "item_ids", data.shape[1] if data.shape else None
        )
        _check_factor_memory(len(user_map), len(item_map), params)
        values = data.ratings.astype(params["dtype"])  # a copy: the caller's data stays as it is
        seed = seed_from(self.random_state)
        k, dtype = params["n_factors"], params["dtype"]
        rng = np.random.default_rng([seed, 0])
        P = self._init_factors(len(user_map), k, dtype, params, rng)
        Q = self._init_factors(len(item_map), k, dtype, params, rng)
        bu = np.zeros(len(user_map), dtype=dtype)
        bi = np.zeros(len(item_map), dtype=dtype)
        mean = float(np.mean(data.ratings, dtype=np.float64))
        state = {"P": P, "Q": Q, "bu": bu, "bi": bi}
        history, epochs = self._train(
            state,
            users,
            items,
            values,
            params,
            mu=mean if params["biased"] else 0.0,
            seed=seed,
            first_epoch=0,
            n_epochs=params["n_epochs"],
            validation=validation,
            columns=columns,
            user_map=user_map,
            item_map=item_map,
        )
        # Only a finished, finite model is stored (a diverged fit raised above).
        with model_lock(self).writing():
            self._k = k
            self._P, self._Q = state["P"], state["Q"]
            self.user_bias_, self.item_bias_ = state["bu"], state["bi"]
            self._user_map, self._item_map = user_map, item_map
            self.global_mean_ = mean
            self._mu = mean if params["biased"] else 0.0
            self._biased = params["biased"]
            self.rating_range_ = (float(np.min(data.ratings)), float(np.max(data.ratings)))
            self.seed_ = seed
            self.epochs_trained_ = epochs
            self.history_ = history
            self._R = interactions(users, items, values, len(user_map), len(item_map))
        return self

    @writes
    def partial_fit(
        self,
        ratings: Any,
        *,
        n_epochs: int | None = None,
        validation: Any = None,
        columns: tuple[str, str, str] | None = None,
    ) -> MatrixFactorization:
        """Run more epochs on (new) ratings, starting from the current parameters.

        Users and items not seen before are added with freshly initialised
        factors; :math:`\\mu` and the rating range stay those of the first fit.
        Without a previous fit this is :meth:`fit`.  On divergence the model is
        left as it was before the call.

        Parameters
        ----------
        ratings : same forms as in :meth:`fit`
        n_epochs : int, optional
            Epochs to run; ``None`` uses the estimator's ``n_epochs``.
        validation, columns : as in :meth:`fit`

        Returns
        -------
        self
        """
        if getattr(self, "_R", None) is None:
            if n_epochs is not None:
                V.check_int(n_epochs, "n_epochs", minimum=1)
            return self.fit(ratings, validation=validation, columns=columns)
        params = self._checked_params()
        if params["n_factors"] != self._k or params["dtype"] != self._P.dtype:
            raise ValueError(
                "n_factors and dtype cannot change between fit and partial_fit (model has "
                f"n_factors={self._k}, dtype={self._P.dtype}); set them back or call fit."
            )
        n_epochs = params["n_epochs"] if n_epochs is None else V.check_int(n_epochs, "n_epochs", minimum=1)
        params["biased"] = self._biased
        _check_matrix_ids(ratings)
        data = rating_triples(ratings, columns)
        # Sparse input: its row and column numbers are the raw ids.
        user_map, users = self._user_map.extend(data.users)
        item_map, items = self._item_map.extend(data.items)
        _check_factor_memory(len(user_map), len(item_map), params)
        values = data.ratings.astype(params["dtype"])
        rng = np.random.default_rng([self.seed_, 3, self.epochs_trained_])
        state = {
            "P": self._grow(self._P, len(user_map), params, rng),
            "Q": self._grow(self._Q, len(item_map), params, rng),
            "bu": np.concatenate(
                [self.user_bias_, np.zeros(len(user_map) - self.user_bias_.size, dtype=params["dtype"])]
            ),
            "bi": np.concatenate(
                [self.item_bias_, np.zeros(len(item_map) - self.item_bias_.size, dtype=params["dtype"])]
            ),
        }
        history, epochs = self._train(
            state,
            users,
            items,
            values,
            params,
            mu=self._mu,
            seed=self.seed_,
            first_epoch=self.epochs_trained_,
            n_epochs=n_epochs,
            validation=validation,
            columns=columns,
            user_map=user_map,
            item_map=item_map,
        )
        self._P, self._Q = state["P"], state["Q"]
        self.user_bias_, self.item_bias_ = state["bu"], state["bi"]
        self._user_map, self._item_map = user_map, item_map
        self.epochs_trained_ += epochs
        for key, values_ in history.items():
            self.history_.setdefault(key, []).extend(values_)
        self._R = grown_interactions(
            self._R, interactions(users, items, values, len(user_map), len(item_map))
        )
        return self

    def _map_ids(
        self, raw: np.ndarray, declared: int | None, size_name: str, name: str, matrix_size: int | None
    ) -> tuple[IdMap, np.ndarray]:
        if declared is not None:
            declared = V.check_int(declared, size_name, minimum=1)
            if declared > V.INT32_MAX:
                raise ValueError(f"{size_name}={declared} exceeds the supported 2**31 - 1 ids.")
            check_index_range(raw, declared, name, size_name)
            return IdMap.range(declared), raw.astype(np.int32)
        if matrix_size is not None:  # sparse input: raw ids are the row / column numbers
            return IdMap.range(matrix_size), raw.astype(np.int32)
        return IdMap.from_values(raw)

    @staticmethod
    def _init_factors(
        n: int, k: int, dtype: np.dtype, params: dict[str, Any], rng: np.random.Generator
    ) -> np.ndarray:
        """(n, padded k) factors drawn from N(0, init_std^2), |.| when non-negative.

        The rows are drawn in chunks of INIT_CHUNK_ROWS, each from its own stream
        seeded from ``rng`` (see :func:`standard_normal`); with at least
        INIT_CHUNKS_PER_THREAD chunks per thread, on up to n_threads threads
        (numpy releases the GIL while it computes), where a thread pool costs
        less than it saves.  The chunks, not the threads, fix the streams, so
        the values do not depend on the thread count.
        """
        factors = aligned_zeros(n, padded_width(k, dtype), dtype)
        starts = range(0, n, INIT_CHUNK_ROWS)
        seeds = rng.integers(np.iinfo(np.int64).max, size=len(starts))
        scale = dtype.type(params["init_std"])

        def draw(start: int, seed: int) -> None:
            stop = min(n, start + INIT_CHUNK_ROWS)
            draws = standard_normal(np.random.default_rng(seed), (stop - start) * k, dtype)
            draws = draws.reshape(stop - start, k)
            draws *= scale
            factors[start:stop, :k] = np.abs(draws) if params["non_negative"] else draws

        n_workers = min(params["n_threads"], len(starts) // INIT_CHUNKS_PER_THREAD)
        if n_workers <= 1:
            for start, seed in zip(starts, seeds):
                draw(start, seed)
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                list(pool.map(draw, starts, seeds))
        return factors

    def _grow(
        self, factors: np.ndarray, n: int, params: dict[str, Any], rng: np.random.Generator
    ) -> np.ndarray:
        """A copy of ``factors`` with rows for new ids appended (the original is untouched)."""
        grown = aligned_zeros(n, factors.shape[1], factors.dtype)
        grown[: factors.shape[0]] = factors
        if n > factors.shape[0]:
            grown[factors.shape[0] :] = self._init_factors(
                n - factors.shape[0], self._k, factors.dtype, params, rng
            )
        return grown

    def _validation_arrays(
        self, validation: Any, columns: Any, user_map: IdMap, item_map: IdMap
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if validation is None:
            return None
        data = rating_triples(validation, columns)
        return (user_map.lookup(data.users), item_map.lookup(data.items), data.ratings.astype(np.float64))

    def _train(
        self,
        state: dict[str, np.ndarray],
        users: np.ndarray,
        items: np.ndarray,
        values: np.ndarray,
        params: dict[str, Any],
        *,
        mu: float,
        seed: int,
        first_epoch: int,
        n_epochs: int,
        validation: Any,
        columns: Any,
        user_map: IdMap,
        item_map: IdMap,
    ) -> tuple[dict[str, list[float]], int]:
        """Run the epochs on ``state`` (INOUT); returns (history, epochs run)."""
        backend, n_threads = params["backend"], params["n_threads"]
        kernels = _kernels(backend)
        valid = self._validation_arrays(validation, columns, user_map, item_map)
        rating_range = (
            self.rating_range_
            if first_epoch  # set by the fit being continued
            else (float(values.min()), float(values.max()))
        )
        if params["early_stopping"] is not None and valid is None:
            raise ValueError("early_stopping needs validation data: pass fit(..., validation=...).")

        grid = grid_groups(
            users,
            items,
            len(user_map),
            len(item_map),
            n_threads,
            np.random.default_rng([seed, 1, first_epoch]),
            row_bytes=state["P"].shape[1] * state["P"].itemsize,
        )
        side = grid.side
        # Working copies grouped by block; the kernels shuffle them in place.  With
        # a grid, rows are renumbered in group order (see grid_groups) for the epochs.
        work_users, work_items, work_values, block_ptr = arrange_blocks(
            grid, users, items, values, kernels.group_by_block
        )
        final_state, user_order, item_order = state, grid.user_order, grid.item_order
        if user_order is not None and item_order is not None:  # both or neither
            state = {
                "P": _rows_in_order(state["P"], user_order),
                "Q": _rows_in_order(state["Q"], item_order),
                "bu": _rows_in_order(state["bu"], user_order),
                "bi": _rows_in_order(state["bi"], item_order),
            }
            if valid is not None:
                valid = (
                    _rank(user_order, user_order.size)[valid[0]],
                    _rank(item_order, item_order.size)[valid[1]],
                    valid[2],
                )
        block_sse = np.zeros(side * side, dtype=np.float64)
        nnz = values.size
        # Every sgd_mf_epoch argument but the per-epoch three, named once for the whole fit.
        epoch_args = dict(
            users=work_users,
            items=work_items,
            ratings=work_values,
            block_ptr=block_ptr,
            P=state["P"],
            Q=state["Q"],
            bu=state["bu"],
            bi=state["bi"],
            **sgd_settings(params, mu),
            hogwild=params["hogwild"],
            out_block_sse=block_sse,
            n_threads=n_threads,
        )

        history: dict[str, list[float]] = {"train_rmse": [], "seconds": []}
        if valid is not None:
            history["valid_rmse"] = []
        best: tuple[float, int, dict[str, np.ndarray]] | None = None
        progress = None
        if params["verbose"] is not False:
            from tqdm.auto import tqdm

            # verbose=None: only when stderr is a terminal (tqdm's disable=None)
            progress = tqdm(
                total=n_epochs,
                desc="MatrixFactorization",
                unit="epoch",
                disable=None if params["verbose"] is None else False,
            )
        epochs_run = 0
        # Every epoch's block order and shuffle seed, drawn up front.
        plan_rng = np.random.default_rng([seed, 2, first_epoch])
        schedules = make_schedules(side, n_epochs, plan_rng)
        shuffle_seeds = plan_rng.integers(0, np.iinfo(np.int64).max, size=n_epochs).tolist()
        # One thread setting for all epochs: entering it costs ~0.3 ms.
        try:
            with _runtime.kernel_threads(backend, n_threads):
                for epoch, schedule, shuffle_seed in zip(
                    range(first_epoch, first_epoch + n_epochs), schedules, shuffle_seeds
                ):
                    start = time.perf_counter()
                    kernels.sgd_mf_epoch(
                        schedule=schedule,
                        shuffle_seed=shuffle_seed,
                        shuffle_within_runs=epoch == first_epoch,
                        **epoch_args,
                    )
                    train_rmse = math.sqrt(float(block_sse.sum()) / nnz)
                    epochs_run += 1
                    last = epoch == first_epoch + n_epochs - 1
                    # The error sum turns NaN within an epoch of any parameter blowing up;
                    # the full parameter scan is paid only when it matters.
                    if not np.isfinite(train_rmse) or (
                        (last or valid is not None) and not _all_finite(state)
                    ):
                        raise DivergenceError(
                            f"SGD diverged at epoch {epoch + 1}: the parameters became NaN or "
                            f"infinite (lr={params['lr']}, reg={params['reg']}). Lower lr (and "
                            "lr_bias), or raise reg." + _scale_hint(rating_range)
                        )
                    history["train_rmse"].append(train_rmse)
                    history["seconds"].append(time.perf_counter() - start)
                    postfix = {"train_rmse": f"{train_rmse:.4f}"}
                    if valid is not None:
                        pred = np.empty(valid[0].size, dtype=state["P"].dtype)
                        kernels.mf_predict(
                            P=state["P"],
                            Q=state["Q"],
                            bu=state["bu"],
                            bi=state["bi"],
                            mu=mu,
                            biased=params["biased"],
                            users=valid[0],
                            items=valid[1],
                            out=pred,
                            n_threads=n_threads,
                        )
                        pred = self._finish_predictions(
                            pred, valid[0], valid[1], params["biased"], params["clip"], rating_range
                        )
                        valid_rmse = float(np.sqrt(np.mean((pred - valid[2]) ** 2)))
                        history["valid_rmse"].append(valid_rmse)
                        postfix["valid_rmse"] = f"{valid_rmse:.4f}"
                        patience = params["early_stopping"]
                        if patience is not None:
                            if best is None or valid_rmse < best[0]:
                                best = (
                                    valid_rmse,
                                    epochs_run,
                                    {key: value.copy() for key, value in state.items()},
                                )
                            elif epochs_run - best[1] >= patience:
                                break
                    if progress is not None:  # the counter and the RMSE of the same epoch
                        progress.set_postfix(postfix, refresh=False)
                        progress.update(1)
        finally:
            if progress is not None:
                progress.close()
        if best is not None and best[1] < epochs_run:
            for key, value in best[2].items():  # keep the best epoch's parameters
                state[key][...] = value
        if state is not final_state:  # back to the caller's row numbering
            final_state["P"][user_order] = state["P"]
            final_state["Q"][item_order] = state["Q"]
            final_state["bu"][user_order] = state["bu"]
            final_state["bi"][item_order] = state["bi"]
        return history, epochs_run

    # -- prediction ---------------------------------------------------------------------

    def _finish_predictions(
        self,
        pred: np.ndarray,
        users: np.ndarray,
        items: np.ndarray,
        biased: bool,
        clip: bool,
        rating_range: tuple[float, float],
    ) -> np.ndarray:
        if not biased:  # an unbiased model has nothing to say about unknown ids
            pred[(users < 0) | (items < 0)] = self._fallback_mean(pred)
        if clip:
            np.clip(pred, rating_range[0], rating_range[1], out=pred)
        return pred

    def _fallback_mean(self, pred: np.ndarray) -> Any:
        return pred.dtype.type(getattr(self, "global_mean_", 0.0))

    @reads
    def predict(self, users: Any, items: Any, *, clip: bool | None = None) -> np.ndarray:
        """Predicted ratings of (user, item) pairs, given by raw ids.

        Parameters
        ----------
        users, items : array-like, shape (n,), or scalars
            Raw ids as given to ``fit``.  Unknown ids fall back to what is known:
            an unknown user gets :math:`\\mu + b_i`, an unknown item
            :math:`\\mu + b_u`, both unknown :math:`\\mu` (``global_mean_`` for an
            unbiased model whenever a side is unknown).
        clip : bool, optional
            Clip to ``rating_range_``; ``None`` uses the estimator's ``clip``.

        Returns
        -------
        ndarray of the model dtype, shape (n,) (a scalar for scalar input)
        """
        self._check_fitted()
        scalar = np.ndim(users) == 0 and np.ndim(items) == 0
        clip = V.check_bool(self.clip if clip is None else clip, "clip")
        user_ids = V.id_array(users, "users") if np.ndim(users) else np.asarray([users])
        item_ids = V.id_array(items, "items") if np.ndim(items) else np.asarray([items])
        if user_ids.size != item_ids.size:
            if user_ids.size == 1:
                user_ids = np.repeat(user_ids, item_ids.size)
            elif item_ids.size == 1:
                item_ids = np.repeat(item_ids, user_ids.size)
            else:
                raise ValueError(
                    f"users and items must have the same length, got {user_ids.size} and {item_ids.size}."
                )
        inner_u = self._user_map.lookup(user_ids)
        inner_i = self._item_map.lookup(item_ids)
        pred = np.empty(inner_u.size, dtype=self._P.dtype)
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        with _runtime.kernel_threads(backend, n_threads):
            _kernels(backend).mf_predict(
                P=self._P,
                Q=self._Q,
                bu=self.user_bias_,
                bi=self.item_bias_,
                mu=self._mu,
                biased=self._biased,
                users=inner_u,
                items=inner_i,
                out=pred,
                n_threads=n_threads,
            )
        pred = self._finish_predictions(pred, inner_u, inner_i, self._biased, clip, self.rating_range_)
        return pred[0] if scalar else pred

    def _scoring_factors(self, factors: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Factors whose products are the recommendation scores, for :func:`fastrec.topn`.

        A biased model scores :math:`\\mu + b_u + b_i + p_u \\cdot q_i` as the product of
        ``[p_u, mu + b_u, 1]`` and ``[q_i, 1, b_i]``.
        """
        k, dtype = self._k, self._P.dtype
        extra = 2 if self._biased else 0
        U = np.zeros((factors.shape[0], k + extra), dtype=dtype)
        U[:, :k] = factors
        Q = np.empty((self._Q.shape[0], k + extra), dtype=dtype)
        Q[:, :k] = self._Q[:, :k]
        if self._biased:
            U[:, k] = self._mu
            U[:, k] += bias
            U[:, k + 1] = 1
            Q[:, k] = 1
            Q[:, k + 1] = self.item_bias_
        return U, Q

    def _add_offsets(self, scores: np.ndarray, bias: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self._biased:
            scores += self._mu + bias.astype(np.float64)[:, None]
            scores += self.item_bias_[candidates].astype(np.float64)[None, :]
        return scores

    # -- fold-in ------------------------------------------------------------------------

    def _solve_user(
        self, inner: np.ndarray, values: np.ndarray, user: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, float]:
        """(factors (n_factors,) float64, bias) of one user from ratings of known items, exactly.

        The SGD objective restricted to the user, item side frozen: a ridge
        regression on the item factors whose penalties are weighted by the number
        of ratings, as SGD applies them once per rating (bounded least squares
        when ``non_negative``).  No known item gives zero factors and bias.
        """
        k = self._k
        if inner.size == 0:
            return np.zeros(k), 0.0
        X = self._Q[inner, :k].astype(np.float64)
        target = values - self._mu
        if self._biased:
            target -= self.item_bias_[inner]
            X = np.hstack([X, np.ones((inner.size, 1))])
        penalty = np.full(X.shape[1], params["reg"] * inner.size)
        if self._biased:
            penalty[-1] = params["reg_bias"] * inner.size
        if params["non_negative"]:
            from scipy.optimize import lsq_linear

            A = np.vstack([X, np.diag(np.sqrt(penalty))])
            b = np.concatenate([target, np.zeros(X.shape[1])])
            lower = np.zeros(X.shape[1])
            if self._biased:
                lower[-1] = -np.inf
            solution = lsq_linear(A, b, bounds=(lower, np.inf)).x
        else:
            solution = np.linalg.solve(X.T @ X + np.diag(penalty), X.T @ target)
        if not np.isfinite(solution).all() or np.abs(solution).max() > np.finfo(self._P.dtype).max / 2:
            raise ValueError(
                f"ratings up to {np.abs(values).max():.3g} give user {user!r} factors beyond "
                f"{self._P.dtype}'s range; fold in ratings on the scale the model was fitted on "
                f"({self.rating_range_[0]:g} to {self.rating_range_[1]:g})."
            )
        return solution[:k], float(solution[k]) if self._biased else 0.0

    @writes
    def fold_in(self, user: Any, items: Any, ratings: Any) -> MatrixFactorization:
        """Learn one user's factors and bias from its ratings, item side frozen.

        Solves the SGD objective restricted to this user exactly (a ridge
        regression on the item factors, the penalties weighted by the number of
        ratings as SGD applies them once per rating; bounded least squares when
        ``non_negative``), so a new user is served without retraining.  A known
        user's parameters are replaced.  Unknown items are ignored; a user with
        no known item gets zero factors and bias.  The items join the user's
        interactions (seen by :meth:`recommend`).  ``recommend(...,
        user_items=...)`` runs the same solve without storing anything.

        Parameters
        ----------
        user : hashable
            Raw id of the user.
        items : array-like, shape (m,)
            Raw ids of the rated items.
        ratings : array-like, shape (m,)

        Returns
        -------
        self
        """
        self._check_fitted()
        item_ids = V.id_array(items, "items")
        values = np.asarray(V._rating_values(ratings, "ratings"), dtype=np.float64)
        if item_ids.size != values.size:
            raise ValueError(
                f"items and ratings must have the same length, got {item_ids.size} and {values.size}."
            )
        self._fold_in(user, item_ids, values)
        return self

    # -- persistence --------------------------------------------------------------------

    def _saved_param_values(self) -> dict[str, Any]:
        return {**super()._saved_param_values(), "biased": self._biased}

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
            "global_mean": np.array(self.global_mean_),
            "rating_range": np.array(self.rating_range_),
            "seed": np.array(self.seed_),
            "epochs_trained": np.array(self.epochs_trained_),
        }

    def _set_state(self, archive: Any) -> None:
        saved = archive.params("params", (*self._PARAMS, "dtype"))
        n_users, n_items = self._R.shape
        state = _read_parameters(archive, n_users, n_items)
        P = state["user_factors"]
        if saved["n_factors"] != P.shape[1]:
            raise archive.error(
                f"n_factors is {saved['n_factors']} but the factors have {P.shape[1]} columns"
            )
        if P.dtype != self._R.dtype:
            raise archive.error(f"the factors are {P.dtype} but the model is {self._R.dtype}")
        self._install(state, bool(saved["biased"]))

    def _install(self, state: dict[str, Any], biased: bool) -> None:
        """Set the fitted parameters read from a file (aligned, padded factor copies)."""
        P, Q = state["user_factors"], state["item_factors"]
        dtype = P.dtype
        self._install_factors(P, Q)
        self.user_bias_ = state["user_bias"].astype(dtype)
        self.item_bias_ = state["item_bias"].astype(dtype)
        self.global_mean_ = state["global_mean"]
        self._biased = biased
        self._mu = self.global_mean_ if biased else 0.0
        self.rating_range_ = state["rating_range"]
        self.seed_ = state["seed"]
        self.epochs_trained_ = state["epochs_trained"]
        self.history_ = {}

    @classmethod
    def _from_archive(cls, archive: Any, overrides: dict[str, Any]) -> MatrixFactorization:
        if archive.scalar("format_version", "i") == 1:
            return cls._from_version_1(archive, overrides)
        return super()._from_archive(archive, overrides)

    @classmethod
    def _from_version_1(cls, archive: Any, overrides: dict[str, Any]) -> MatrixFactorization:
        """A file of format 1: the seen pattern as seen_*, the seed as a member of its own."""
        user_ids, item_ids = archive.ids("user_ids"), archive.ids("item_ids")
        state = _read_parameters(archive, user_ids.size, item_ids.size)
        P = state["user_factors"]
        biased = archive.scalar("biased", "b")
        seen = archive.csr(
            archive["seen_indptr"],
            archive["seen_indices"],
            None,
            (user_ids.size, item_ids.size),
            "the seen-items matrix",
        )
        params = archive.params(
            "params",
            ("n_factors", "n_epochs", "lr", "reg", "lr_bias", "reg_bias", "init_std", "non_negative", "clip"),
        )
        params.update(dtype=P.dtype, random_state=state["seed"], biased=biased)
        try:  # the saved parameters must pass the checks fit would make
            cls(**params)._checked_params()
        except (TypeError, ValueError) as exc:
            raise archive.error(f"invalid saved parameters: {exc}") from exc
        if params.get("n_factors", P.shape[1]) != P.shape[1]:
            raise archive.error(
                f"n_factors is {params['n_factors']} but the factors have {P.shape[1]} columns"
            )
        model = cls(**{**params, **overrides})
        model._user_map, model._item_map = IdMap(user_ids), IdMap(item_ids)
        model._R = sp.csr_matrix(
            (np.ones(seen.indices.size, dtype=P.dtype), seen.indices, seen.indptr), shape=seen.shape
        )
        model._install(state, biased)
        return model


def _scale_hint(rating_range: tuple[float, float] | None) -> str:
    """Advice for a divergence on values far from a rating scale (play counts, clicks)."""
    if rating_range is None or max(abs(rating_range[0]), abs(rating_range[1])) <= 100:
        return ""
    return (
        f" The ratings span [{rating_range[0]:g}, {rating_range[1]:g}], far from a star "
        "scale: SGD steps grow with the rating, so rescale the values (np.log1p for play "
        "counts or clicks) or use a model for behaviour data such as ItemKNN."
    )


def _check_matrix_ids(ratings: Any) -> None:
    """Refuse a sparse matrix with more rows or columns than the int32 training indices hold."""
    if sp.issparse(ratings) and ratings.ndim == 2 and max(ratings.shape) > V.INT32_MAX:
        raise ValueError(
            f"ratings matrix has shape {ratings.shape}: its row and column numbers are the ids, "
            "and matrix factorization supports at most 2**31 - 1 users and items. Pass "
            "(user_ids, item_ids, ratings) triples instead, so that only the ids present count."
        )


def _check_factor_memory(n_users: int, n_items: int, params: dict[str, Any]) -> None:
    """Refuse before allocating factor matrices the machine cannot hold."""
    dtype = params["dtype"]
    row_bytes = padded_width(params["n_factors"], dtype) * dtype.itemsize
    V.check_memory(
        (n_users + n_items) * (row_bytes + dtype.itemsize),
        f"the factor matrices of {n_users:,} users and {n_items:,} items at n_factors={params['n_factors']}",
        "pass fewer ids (as triples, so that only the ids present count) or fewer factors.",
    )
    if max(n_users, n_items) > V.INT32_MAX:
        raise ValueError(
            f"{n_users:,} users and {n_items:,} items: matrix factorization supports at "
            "most 2**31 - 1 of each."
        )


def _all_finite(state: dict[str, np.ndarray]) -> bool:
    return all(np.isfinite(value).all() for value in state.values())


def _read_parameters(archive: Any, n_users: int, n_items: int) -> dict[str, Any]:
    """The fitted parameters of a saved model, each checked against the others."""
    P = archive.array("user_factors", 2, "f", n_users, finite=True)
    Q = archive.array("item_factors", 2, "f", n_items, finite=True)
    if P.dtype not in (np.float32, np.float64) or Q.dtype != P.dtype:
        raise archive.error(f"the factors must be both float32 or both float64, got {P.dtype} and {Q.dtype}")
    if P.shape[1] < 1 or Q.shape[1] != P.shape[1]:
        raise archive.error(
            f"user factors have {P.shape[1]} columns and item factors "
            f"{Q.shape[1]}; both need the same n_factors >= 1"
        )
    state: dict[str, Any] = {"user_factors": P, "item_factors": Q}
    for name, n in (("user_bias", n_users), ("item_bias", n_items)):
        state[name] = archive.array(name, 1, "f", n, finite=True).astype(P.dtype)
    for name, kind in (("global_mean", "f"), ("seed", "i"), ("epochs_trained", "i")):
        state[name] = archive.scalar(name, kind)
    if state["seed"] < 0 or state["epochs_trained"] < 0:
        raise archive.error(
            f"seed ({state['seed']}) and epochs_trained ({state['epochs_trained']}) must be >= 0"
        )
    bounds = archive.array("rating_range", 1, "fiu", finite=True)
    if bounds.size != 2 or not bounds[0] <= bounds[1]:
        raise archive.error(f"rating_range must be (low, high) with low <= high, got {bounds.tolist()}")
    state["rating_range"] = (float(bounds[0]), float(bounds[1]))
    return state
