"""KMeans on a Dask array: Lloyd iterations over row chunks, k-means|| seeding.

Every pass maps one task over each row chunk, running fastrec's fused assignment
kernel (:func:`fastrec.cluster.kmeans.assign_block`) with the task's share of its
worker's threads, and reduces the small per-chunk results (per-cluster sums and
weights, inertia, the farthest rows) in a tree; the client only ever holds
(n_clusters, n_features)-sized arrays and per-chunk scalars.  The rules are those
of :class:`fastrec.KMeans`: the same power-of-two scaling (from a distributed
pass), the same tolerance (the variance from a distributed pass), the same
empty-cluster re-seeding and stopping rules, so from the same initial centres the
labels are equal and the centres and inertia equal up to summation order.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from fastrec import _runtime
from fastrec import _validation as V
from fastrec.base import check_fitted
from fastrec.cluster import kmeans as K
from fastrec.cluster._checks import check_cluster_init
from fastrec.dask._workers import broadcast, current_client, task_threads

_FAN_IN = 8  # partial results merged per reduction task


# -- input --------------------------------------------------------------------------------


def _as_rows(X: Any, name: str, dtype: Any = None) -> tuple[Any, np.dtype]:
    """``X`` as a Dask array of float rows in one column chunk, and its compute dtype."""
    import dask.array as da

    if not isinstance(X, da.Array) and hasattr(X, "to_dask_array"):  # a Dask DataFrame
        raise TypeError(
            f"fastrec.dask takes {name} as a dask.array.Array, got a Dask {type(X).__name__}; "
            f"pass {name}.to_dask_array(lengths=True) (its numeric columns)."
        )
    if not isinstance(X, da.Array):
        raise TypeError(
            f"fastrec.dask takes {name} as a dask.array.Array, got {type(X).__name__}. Fit an array "
            "that fits in memory on one machine with fastrec.KMeans(...).fit(X), or wrap it with "
            "dask.array.from_array(X, chunks=(rows_per_chunk, -1))."
        )
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x features), got a Dask array of shape {X.shape}.")
    meta = getattr(X, "_meta", None)
    if meta is not None and not isinstance(meta, np.ndarray):
        raise TypeError(
            f"{name} has chunks of type {type(meta).__module__}.{type(meta).__name__}; fastrec.dask's "
            "KMeans takes dense numpy chunks. Densify them (X.map_blocks(lambda b: b.toarray())) "
            "or fit a scipy sparse matrix on one machine with fastrec.KMeans(...).fit(X)."
        )
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes (NaN); call {name}.compute_chunk_sizes() first, or "
            "build it with known chunk sizes."
        )
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}. Pass real values.")
    own = V.float_dtype_for(X.dtype, name)
    target = own if dtype is None else np.dtype(dtype)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} has shape {X.shape}; it needs at least one sample and one feature.")
    if len(X.chunks[1]) > 1:  # the kernel reads whole rows: one chunk across the columns
        X = X.rechunk({1: -1})
    if X.dtype != target:
        X = X.astype(target)
    return X, target


def _as_weights(sample_weight: Any, X: Any, dtype: np.dtype) -> Any:
    """``sample_weight`` as a Dask array chunked as X's rows (None stays None)."""
    import dask.array as da

    if sample_weight is None:
        return None
    if not isinstance(sample_weight, da.Array):
        weight = np.asarray(sample_weight)
        if weight.ndim == 0:
            weight = np.full(X.shape[0], weight)
        if weight.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight has shape {weight.shape}; it must be 1-D with one weight per "
                f"sample ({X.shape[0]},)."
            )
        sample_weight = da.from_array(weight, chunks=(X.chunks[0],))
    if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}; it must be 1-D with one weight per "
            f"sample ({X.shape[0]},)."
        )
    if sample_weight.dtype == object or sample_weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {sample_weight.dtype}.")
    if sample_weight.chunks[0] != X.chunks[0]:
        sample_weight = sample_weight.rechunk((X.chunks[0],))
    return sample_weight.astype(dtype)


def _blocks(X: Any, W: Any) -> tuple[list[Any], list[Any], np.ndarray]:
    """X's row chunks and W's (or Nones) as Delayed objects, and the first row of each chunk."""
    xs = list(X.to_delayed().ravel())
    ws = [None] * len(xs) if W is None else list(W.to_delayed().ravel())
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    return xs, ws, offsets


# -- what the tasks run --------------------------------------------------------------------


def _prepared(x: np.ndarray, w: Any, x_exp: int, w_exp: int) -> tuple[np.ndarray, np.ndarray]:
    """A chunk and its weights as the kernels see them: C-contiguous, scaled by powers of two."""
    x = np.ascontiguousarray(x)
    w = np.ones(x.shape[0], dtype=x.dtype) if w is None else np.ascontiguousarray(w, dtype=x.dtype)
    if x_exp:
        x = np.ldexp(x, x_exp)
    if w_exp:
        w = np.ldexp(w, w_exp)
    return x, w


def _summary(x: np.ndarray, w: Any) -> dict[str, Any]:
    """Checks of one chunk, and what the scaling needs: max |x|, the largest weight and the
    weight total (as a float64 mantissa sum and the exponent it is relative to)."""
    V.check_finite(x, "X")
    out = {"top": K._max_abs(x), "w_max": 1.0, "w_sum": float(x.shape[0]), "w_exp": 0, "positive": True}
    if w is not None:
        V.check_finite(w, "sample_weight")
        if w.size and (w < 0).any():
            raise ValueError(
                f"sample_weight contains negative values (smallest {w.min()}); weights must be >= 0."
            )
        w_max = float(w.max()) if w.size else 0.0
        exp = -math.frexp(w_max)[1] if w_max > 0 else 0
        out.update(
            w_max=w_max,
            w_sum=float(np.sum(np.ldexp(w, exp) if exp else w, dtype=np.float64)),
            w_exp=exp,
            positive=bool(w_max > 0),
        )
    return {**out, "parts": [(out["w_sum"], out["w_exp"])]}


def _merge_summaries(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "top": max(p["top"] for p in parts),
        "w_max": max(p["w_max"] for p in parts),
        "positive": any(p["positive"] for p in parts),
        "parts": [q for p in parts for q in p["parts"]],
    }


def _total(parts: list[tuple[float, int]], w_exp: int) -> float:
    """The float64 weight total times ``2**w_exp`` from the chunks' (sum * 2**exp, exp) pairs."""
    with np.errstate(over="ignore"):
        return float(sum(float(np.ldexp(s, w_exp - e)) for s, e in parts))


def _moments(x: np.ndarray, w: Any, x_exp: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Row count, float64 column means and sums of squared deviations of one (scaled) chunk."""
    x, _ = _prepared(x, None, x_exp, 0)
    if x.shape[0] == 0:
        return 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    mean = np.asarray(np.mean(x, axis=0, dtype=np.float64))
    m2 = np.zeros(x.shape[1], dtype=np.float64)
    for lo in range(0, x.shape[0], 65536):  # float64 deviations a block at a time, not a chunk's copy
        dev = x[lo : lo + 65536].astype(np.float64) - mean
        m2 += np.einsum("ij,ij->j", dev, dev)
    return int(x.shape[0]), mean, m2


def _merge_moments(*parts: tuple[int, np.ndarray, np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise combination of (count, mean, M2)."""
    parts = tuple(p for p in parts if p[0] > 0) or parts[:1]  # an empty chunk has no mean
    n, mean, m2 = parts[0]
    for nb, mb, m2b in parts[1:]:
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        n = total
    return n, mean, m2


def _kept_block(x, w, x_exp: int, w_exp: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """What every Lloyd pass over a persisted chunk reuses: the scaled chunk when scaling did
    not copy it (else None: a second copy of X is not kept), its weights and squared norms."""
    scaled, w = _prepared(x, w, x_exp, w_exp)
    return (scaled if scaled is x else None), w, K.squared_norms(scaled)


def _lloyd_kept(x, kept, centers, previous, offset, m, x_exp, backend, n_threads):
    """:func:`_lloyd_block` of a chunk whose weights and norms :func:`_kept_block` kept."""
    scaled, w, sqnorm = kept
    if scaled is None:
        scaled, _ = _prepared(x, None, x_exp, 0)
    return _lloyd_block(scaled, w, centers, previous, offset, m, 0, 0, backend, n_threads, sqnorm)


def _lloyd_block(x, w, centers, previous, offset, m, x_exp, w_exp, backend, n_threads, sqnorm=None):
    """One chunk's assignment: its labels (kept on the worker) and the partial statistics."""
    x, w = _prepared(x, w, x_exp, w_exp)
    labels, min_dist, sums, counts, inertia = K.assign_block(
        x, w, centers, backend, task_threads(n_threads), True, sqnorm
    )
    far = K._farthest(min_dist, min(m, x.shape[0]))
    stats = {
        "sums": sums,
        "counts": counts,
        "inertia": inertia,
        "changed": -1 if previous is None else int(np.count_nonzero(labels != previous)),
        "far_dist": min_dist[far].astype(np.float64),
        "far_index": far.astype(np.int64) + offset,
        "far_label": labels[far],
        "far_weight": w[far].astype(np.float64),
        "m": m,
    }
    return labels, stats


def _merge_lloyd(*parts: dict[str, Any]) -> dict[str, Any]:
    """Sums added; the farthest rows of all parts cut to the ``m`` farthest (ties: smaller row)."""
    out = dict(parts[0])
    for p in parts[1:]:
        out["sums"] = out["sums"] + p["sums"]
        out["counts"] = out["counts"] + p["counts"]
        out["inertia"] = out["inertia"] + p["inertia"]
        out["changed"] = -1 if min(out["changed"], p["changed"]) < 0 else out["changed"] + p["changed"]
    keys = ("far_dist", "far_index", "far_label", "far_weight")
    joined = {key: np.concatenate([p[key] for p in parts]) for key in keys}
    order = np.lexsort((joined["far_index"], -joined["far_dist"]))[: out["m"]]
    out.update({key: joined[key][order] for key in keys})
    return out


def _inertia_block(x, w, centers, x_exp, w_exp, backend, n_threads) -> float:
    x, w = _prepared(x, w, x_exp, w_exp)
    return K.assign_block(x, w, centers, backend, task_threads(n_threads), False)[4]


def _rows_block(x, local: np.ndarray, x_exp: int) -> np.ndarray:
    x, _ = _prepared(x, None, x_exp, 0)
    return np.ascontiguousarray(x[local])


def _pick_block(x, w, target: float, x_exp: int, w_exp: int) -> np.ndarray:
    """The row where the chunk's cumulative weight first reaches ``target`` (one row, 2-D)."""
    x, w = _prepared(x, w, x_exp, w_exp)
    i = int(K._weighted_pick(np.cumsum(w.astype(np.float64)), np.array([target]))[0])
    return np.ascontiguousarray(x[i : i + 1])


def _closer_block(x, w, previous, candidates, x_exp, w_exp, backend, n_threads):
    """Squared distances of the chunk's rows to the nearest candidate so far, and their weighted sum."""
    x, w = _prepared(x, w, x_exp, w_exp)
    dist = K.assign_block(x, w, candidates, backend, task_threads(n_threads), False)[1]
    dist = dist.astype(np.float64)
    if previous is not None:
        np.minimum(dist, previous, out=dist)
    return dist, float(w.astype(np.float64) @ dist)


def _sample_block(x, w, dist, phi, factor, seed, x_exp, w_exp) -> np.ndarray:
    """Rows drawn independently with probability min(1, factor * w * d^2 / phi)."""
    x, w = _prepared(x, w, x_exp, w_exp)
    rng = np.random.default_rng(seed)
    take = rng.random(x.shape[0]) < factor * w.astype(np.float64) * dist / phi
    return np.ascontiguousarray(x[take])


def _counts_block(x, w, candidates, x_exp, w_exp, backend, n_threads) -> np.ndarray:
    x, w = _prepared(x, w, x_exp, w_exp)
    return K.assign_block(x, w, candidates, backend, task_threads(n_threads), True)[3]


def _add(*parts: Any) -> Any:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _predict_block(x, centers, summary, n_samples, backend, n_threads) -> np.ndarray:
    scale = K._scale_from_stats(
        x.dtype, x.shape[1], max(summary, K._max_abs(centers)), 1.0, lambda e: float(n_samples)
    )
    x, w = _prepared(x, None, scale.x_exp, 0)
    labels = K.assign_block(x, w, scale.to_kernel(centers), backend, task_threads(n_threads), False)[0]
    return labels.astype(np.int64)


def _max_abs_block(x) -> float:
    V.check_finite(x, "X")
    return K._max_abs(x)


# -- the client side ---------------------------------------------------------------------


class _Runner:
    """Builds and runs the per-chunk passes on a client or on Dask's local scheduler."""

    def __init__(self, client: Any, X: Any, W: Any, n_threads: int | None, backend: str):
        self.client = client
        self.X, self.W = X, W
        self.xs, self.ws, self.offsets = _blocks(X, W)
        self.n_threads = n_threads
        self.backend = backend
        self.x_exp = self.w_exp = 0
        self.kept = False  # X persisted: Lloyd keeps its scaled chunks and norms too

    def compute(self, obj: Any) -> Any:
        import dask

        if self.client is not None:
            return self.client.gather(self.client.compute(obj))
        return dask.compute(obj)[0]

    def persist(self, objs: list[Any]) -> list[Any]:
        import dask

        if self.client is not None:
            return list(self.client.persist(objs))
        return list(dask.persist(*objs))

    def share(self, array: np.ndarray) -> Any:
        return broadcast(array, self.client)

    def tree(self, parts: list[Any], combine: Any) -> Any:
        import dask

        while len(parts) > 1:
            parts = [
                dask.delayed(combine, pure=True)(*parts[i : i + _FAN_IN])
                for i in range(0, len(parts), _FAN_IN)
            ]
        return parts[0]

    def map(self, func: Any, *args: Any, with_weights: bool = True, nout: int | None = None) -> list[Any]:
        """``func(x_b, [w_b,] *args)`` for every chunk b, as Delayed objects."""
        import dask

        task = dask.delayed(func, pure=True, nout=nout)
        if with_weights:
            return [task(x, w, *args) for x, w in zip(self.xs, self.ws)]
        return [task(x, *args) for x in self.xs]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (global, any order) of the scaled X, in X's dtype."""
        import dask

        index = np.asarray(index, dtype=np.int64)
        block = np.searchsorted(self.offsets, index, side="right") - 1
        out = np.empty((index.size, self.X.shape[1]), dtype=self.X.dtype)
        jobs, where = [], []
        for b in np.unique(block):
            sel = np.flatnonzero(block == b)
            local = index[sel] - self.offsets[b]
            jobs.append(dask.delayed(_rows_block, pure=True)(self.xs[b], local, self.x_exp))
            where.append(sel)
        for sel, rows in zip(where, self.compute(jobs)):
            out[sel] = rows
        return out


def _choose_persist(persist: Any, client: Any, nbytes: int) -> bool:
    """``persist`` as a bool; ``"auto"`` keeps X in memory when it takes at most half the
    memory of the cluster's workers (of this machine without a client)."""
    if isinstance(persist, (bool, np.bool_)):
        return bool(persist)
    if persist != "auto":
        raise ValueError(f"persist must be True, False or 'auto', got {persist!r}.")
    if client is not None:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
        if not limits or min(limits) == 0:  # a worker without a limit: nothing to compare with
            return True
        return nbytes <= 0.5 * sum(limits)
    try:
        import psutil

        return nbytes <= 0.5 * psutil.virtual_memory().available
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return True


def fit_kmeans(
    model: Any,
    X: Any,
    *,
    client: Any = None,
    n_threads: int | None = None,
    sample_weight: Any = None,
    persist: Any = "auto",
    oversampling: float | None = None,
    n_rounds: int = 5,
) -> Any:
    """Fit ``model`` (a :class:`fastrec.KMeans`) on the rows of a Dask array.

    Parameters
    ----------
    model : fastrec.KMeans
        Its parameters are the training parameters; it is fitted in place.
        ``init="k-means++"`` (the default) and ``init="k-means||"`` seed with
        k-means|| (exact k-means++ needs ``n_clusters`` passes over the data);
        ``"random"`` and an array of centres seed as on one machine.
    X : dask.array.Array of shape (n_samples, n_features)
        Chunked by rows (column chunks are joined); float32 and float64 are kept,
        integers compute in float32.  Never gathered on the client.
    client : distributed.Client, optional
        The default client when omitted, else Dask's local scheduler.
    n_threads : int, optional
        Threads per task; by default each task takes its share of its worker's threads.
    sample_weight : dask.array.Array or array-like of shape (n_samples,), optional
        Non-negative row weights (rechunked to X's row chunks).
    persist : bool or "auto", default "auto"
        Keep X in the workers' memory across passes (``X.persist()``).  ``False`` is
        the out-of-core mode: every pass recomputes (or reloads) the chunks, so only
        a few chunks are in memory at a time.  ``"auto"`` persists when X takes at
        most half of the workers' total memory limit.
    oversampling : float, optional
        k-means|| points drawn per round (Bahmani et al.'s l); default ``2 * n_clusters``.
    n_rounds : int, default 5
        k-means|| sampling rounds.

    Returns
    -------
    fastrec.KMeans
        ``model`` with ``cluster_centers_``, ``inertia_``, ``n_iter_`` and
        ``n_features_in_``.  ``labels_`` is not stored (it would be n_samples long):
        ``fastrec.dask.predict(model, X)`` gives the labels, lazily.
    """
    from sklearn.utils.validation import validate_data

    if not isinstance(model, K.KMeans):
        raise TypeError(f"model must be a fastrec.KMeans, got {type(model).__name__}.")
    X, dtype = _as_rows(X, "X")
    n, d = int(X.shape[0]), int(X.shape[1])
    n_clusters, n_init, max_iter, tol, random_state, verbose, backend, local_threads = model._check_params(n)
    if n_threads is not None:
        n_threads = _runtime.check_threads(n_threads)
    n_rounds = V.check_int(n_rounds, "n_rounds", minimum=1)
    factor = (
        2.0 * n_clusters if oversampling is None else V.check_float(oversampling, "oversampling", minimum=0.0)
    )
    if factor <= 0:
        raise ValueError(f"oversampling must be > 0, got {oversampling!r}.")
    init = model.init
    if isinstance(init, str) and init in ("k-means++", "k-means||"):
        init = "k-means||"
    else:
        init = check_cluster_init(init, n_clusters, d, dtype)
    if isinstance(init, np.ndarray) and n_init != 1:
        warnings.warn(
            f"n_init={n_init} is ignored because init is an array of centres: "
            "only one run is made. Pass n_init=1 to silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        n_init = 1
    W = _as_weights(sample_weight, X, dtype)
    client = current_client(client)
    kept = _choose_persist(persist, client, X.nbytes + (0 if W is None else W.nbytes))
    if kept:
        if client is not None:
            X, W = client.persist(X), (None if W is None else client.persist(W))
        else:
            X, W = X.persist(), (None if W is None else W.persist())
    run = _Runner(client, X, W, n_threads, backend)
    run.kept = kept

    # one pass: finite values, non-negative weights, and what the scaling needs
    summary = run.compute(run.tree(run.map(_summary), _merge_summaries))
    if not summary["positive"]:
        raise ValueError("sample_weight is zero everywhere; at least one weight must be > 0.")
    top = summary["top"] if not isinstance(init, np.ndarray) else max(summary["top"], K._max_abs(init))
    parts = summary["parts"]
    scale = K._scale_from_stats(dtype, d, top, summary["w_max"], lambda e: _total(parts, e))
    run.x_exp, run.w_exp = scale.x_exp, scale.w_exp
    tol_abs = 0.0
    if tol > 0:
        _, _, m2 = run.compute(run.tree(run.map(_moments, scale.x_exp), _merge_moments))
        tol_abs = float(np.mean(m2 / n) * tol)
    rng = K._generator(random_state)

    best = None
    for attempt in range(n_init):
        if isinstance(init, np.ndarray):
            start = scale.to_kernel(init)
        elif init == "random":
            start = run.rows(np.sort(rng.choice(n, n_clusters, replace=False)))
        else:
            start = _kmeans_parallel(run, n_clusters, factor, n_rounds, rng, local_threads, max_iter, tol_abs)
        result = _lloyd(run, start, max_iter, tol_abs)
        if verbose:
            _, inertia, n_iter, converged = result
            status = "converged" if converged else f"stopped at max_iter={max_iter} before converging"
            print(
                f"KMeans run {attempt + 1} of {n_init} (Dask): inertia {scale.unscaled(inertia):.6g} "
                f"after {n_iter} iteration(s), {status}.",
                flush=True,
            )
        if best is None or result[1] < best[1]:
            best = result
    assert best is not None  # n_init >= 1 was checked
    centers, inertia, n_iter, _ = best
    inertia = scale.inertia(inertia, "inertia")
    validate_data(model, X, reset=True, skip_check_array=True)
    model.cluster_centers_ = scale.from_kernel(centers)
    model.inertia_, model.n_iter_ = inertia, n_iter
    model.__dict__.pop("labels_", None)  # a previous fit's labels are not this fit's
    return model


def _lloyd(run: _Runner, centers: np.ndarray, max_iter: int, tol: float):
    """:func:`fastrec.cluster.kmeans.lloyd` over the chunks: (centers, inertia, n_iter, converged)."""
    k = centers.shape[0]
    centers = np.array(centers, dtype=run.X.dtype, order="C", copy=True)
    previous: list[Any] = [None] * len(run.xs)
    # Chunks kept in memory are scaled and their norms computed once, not every pass.
    kept = run.persist(run.map(_kept_block, run.x_exp, run.w_exp)) if run.kept else None
    n_iter, converged = 0, False
    for it in range(max_iter):
        shared = run.share(centers)
        parts = [
            _task(x, w, shared, prev, int(off), k, run, None if kept is None else kept[b])
            for b, (x, w, prev, off) in enumerate(zip(run.xs, run.ws, previous, run.offsets[:-1]))
        ]
        labels = [p[0] for p in parts]
        total = run.tree([p[1] for p in parts], _merge_lloyd)
        *labels, total = run.persist([*labels, total])
        stats = run.compute(total)
        sums, counts = stats["sums"], stats["counts"]
        new_centers = K.means(sums, counts)
        empty = np.flatnonzero(counts <= 0)
        if empty.size:
            rows = run.rows(stats["far_index"][: empty.size]).astype(np.float64)
            K.reseed(empty, rows, stats["far_label"], stats["far_weight"], sums, counts, new_centers)
        new_centers = new_centers.astype(run.X.dtype)
        shift = float(((new_centers.astype(np.float64) - centers) ** 2).sum())
        centers = new_centers
        n_iter = it + 1
        previous = labels
        if (it > 0 and stats["changed"] == 0) or shift <= tol:
            converged = True
            break
    shared = run.share(centers)
    inertias = run.map(_inertia_block, shared, run.x_exp, run.w_exp, run.backend, run.n_threads)
    inertia = float(run.compute(run.tree(inertias, _add)))
    return centers, inertia, n_iter, converged


def _task(x, w, shared, previous, offset, k, run, kept=None):
    import dask

    if kept is not None:
        return dask.delayed(_lloyd_kept, pure=True, nout=2)(
            x, kept, shared, previous, offset, k, run.x_exp, run.backend, run.n_threads
        )
    return dask.delayed(_lloyd_block, pure=True, nout=2)(
        x, w, shared, previous, offset, k, run.x_exp, run.w_exp, run.backend, run.n_threads
    )


def _kmeans_parallel(run: _Runner, k: int, factor: float, n_rounds: int, rng, n_threads: int, max_iter, tol):
    """k-means|| seeding (Bahmani et al. 2012) on the scaled chunks.

    The first candidate is a row drawn by weight.  Each round, one pass gives
    every row's squared distance d^2 to the nearest candidate (kept on the
    workers) and phi, the weighted sum; a second draws every row independently
    with probability ``min(1, factor * w * d^2 / phi)``, each chunk from its own
    stream seeded by (one draw of ``rng``, round, chunk), so the candidates depend
    only on the random state and the chunking.  The candidates are weighted by
    the weight of the rows nearest to them, and k-means++ with Lloyd iterations on
    those weighted candidates (on the client: about ``factor * n_rounds`` rows)
    gives the ``k`` centres.
    """
    import dask

    base = int(rng.integers(0, K._SEED_BOUND))
    weights = np.array(run.compute(run.map(_weight_total)), dtype=np.float64)
    if run.w_exp:
        weights = np.ldexp(weights, run.w_exp)
    cumulative = np.cumsum(weights)
    target = float(rng.random()) * cumulative[-1]
    b = int(min(np.searchsorted(cumulative, target), len(run.xs) - 1))
    while weights[b] <= 0:  # a chunk without weight (or rows) holds no row to draw
        b = (b + 1) % len(run.xs)
    before = cumulative[b - 1] if b else 0.0
    first = dask.delayed(_pick_block, pure=True)(run.xs[b], run.ws[b], target - before, run.x_exp, run.w_exp)
    chosen = [run.compute(first)]
    dist: list[Any] = [None] * len(run.xs)
    for r in range(n_rounds):
        shared = run.share(chosen[-1])
        parts = [
            dask.delayed(_closer_block, pure=True, nout=2)(
                x, w, prev, shared, run.x_exp, run.w_exp, run.backend, run.n_threads
            )
            for x, w, prev in zip(run.xs, run.ws, dist)
        ]
        dist = [p[0] for p in parts]
        total = run.tree([p[1] for p in parts], _add)
        *dist, total = run.persist([*dist, total])
        phi = float(run.compute(total))
        if phi <= 0:  # every row sits on a candidate
            break
        drawn = [
            dask.delayed(_sample_block, pure=True)(x, w, dd, phi, factor, [base, r, b], run.x_exp, run.w_exp)
            for b, (x, w, dd) in enumerate(zip(run.xs, run.ws, dist))
        ]
        new = np.concatenate(run.compute(drawn))
        if new.shape[0] == 0:
            continue
        chosen.append(new)
    candidates = np.ascontiguousarray(np.concatenate(chosen))
    if candidates.shape[0] < k:  # a tiny X: add rows drawn uniformly
        extra = run.rows(np.sort(rng.choice(run.offsets[-1], k - candidates.shape[0], replace=False)))
        candidates = np.concatenate([candidates, extra])
    shared = run.share(candidates)
    counts = run.compute(
        run.tree(run.map(_counts_block, shared, run.x_exp, run.w_exp, run.backend, run.n_threads), _add)
    )
    data = K.ClusterData(candidates, None, candidates.shape[0], candidates.shape[1], candidates.dtype)
    pb = K._Problem(data, counts.astype(candidates.dtype), run.backend, n_threads)
    start = K.kmeans_plusplus(pb, k, rng)
    return K.lloyd(pb, start, max_iter, tol)[0]


def _weight_total(x, w) -> float:
    """The chunk's float64 weight total (before the weight scaling; the rows count 1 without weights)."""
    return float(x.shape[0]) if w is None else float(np.sum(w, dtype=np.float64))


def predict_kmeans(model: Any, X: Any, *, client: Any = None, n_threads: int | None = None) -> Any:
    """Labels of every row of a Dask array under a fitted KMeans, as a lazy int64 Dask array.

    Equal to ``model.predict`` on the whole array (same dtype rules, same scaling,
    decided from one reduction over X that the graph computes once).  The centres
    travel in the graph, so any scheduler may compute the result; ``client`` is
    accepted for symmetry with :func:`fit_kmeans` and not needed.
    """
    import dask
    import dask.array as da

    check_fitted(model, "cluster_centers_", "fit(X)")
    centers = np.ascontiguousarray(model.cluster_centers_)
    X, _ = _as_rows(X, "X", centers.dtype)
    if X.shape[1] != centers.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(model).__name__} is expecting "
            f"{centers.shape[1]} features as input. Pass data with the same columns as in fit."
        )
    if n_threads is not None:
        n_threads = _runtime.check_threads(n_threads)
    backend = _runtime.resolve_backend(model.backend)
    xs = list(X.to_delayed().ravel())
    tops = [dask.delayed(_max_abs_block, pure=True)(x) for x in xs]
    while len(tops) > 1:
        tops = [dask.delayed(max, pure=True)(tops[i : i + _FAN_IN]) for i in range(0, len(tops), _FAN_IN)]
    # in the graph (once), not scattered: the lazy result may be computed by any scheduler
    shared = dask.delayed(centers, pure=True)
    parts = [
        da.from_delayed(
            dask.delayed(_predict_block, pure=True)(x, shared, tops[0], int(X.shape[0]), backend, n_threads),
            shape=(rows,),
            dtype=np.int64,
        )
        for x, rows in zip(xs, X.chunks[0])
    ]
    return da.concatenate(parts)
