"""K-means clustering (Lloyd's algorithm) with a scikit-learn compatible estimator.

The three backends share everything except the assignment pass, which is the
only O(n k d) step: ``kmeans_assign_dense`` / ``kmeans_assign_csr`` label every
row with its nearest centre and return the per-cluster weighted sums, from
which this module forms the new centres.  Empty clusters, convergence and
progress reporting live here once, so every backend follows the same rules.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any

import numpy as np

from fastrec import _runtime
from fastrec import _validation as V


def _kernels(backend: str):
    """The module holding the backend's assignment and distance kernels."""
    return _runtime.kernel_module(backend, "cluster")


class _Problem:
    """Canonical data of one call, and the backend kernels bound to it."""

    def __init__(self, data: V.ClusterData, weight: np.ndarray, backend: str, n_threads: int):
        self.data = data
        self.weight = weight
        self.backend = backend
        self.n_threads = n_threads
        self.kernels = _kernels(backend)
        self.dtype = data.dtype
        self.n = data.n_samples
        self.d = data.n_features
        if data.is_sparse:
            csr = data.csr
            self.csr_arrays = V.csr_arrays(csr, V.index_dtype_for(self.d, csr.nnz))
            squares = csr.multiply(csr).astype(np.float64)
            self.x_sqnorm = np.asarray(squares.sum(axis=1)).ravel().astype(self.dtype)
        else:  # in float64, a block at a time (no full float64 copy of X)
            x, block = data.dense, 65536
            self.x_sqnorm = np.empty(self.n, dtype=self.dtype)
            for lo in range(0, self.n, block):
                part = x[lo : lo + block].astype(np.float64)
                self.x_sqnorm[lo : lo + block] = np.einsum("ij,ij->i", part, part)

    def row(self, i: int) -> np.ndarray:
        """Row ``i`` of X as a new dense float64 vector."""
        if self.data.is_sparse:
            return self.data.csr[i].toarray().ravel().astype(np.float64)
        return self.data.dense[i].astype(np.float64)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` of X as a new dense array of X's dtype."""
        if self.data.is_sparse:
            return self.data.csr[idx].toarray().astype(self.dtype)
        return np.ascontiguousarray(self.data.dense[idx])

    def assign(self, centers, labels, min_dist, sums, counts, compute_sums: bool) -> float:
        """One assignment pass; fills the outputs and returns the weighted inertia."""
        inertia = np.zeros(1, dtype=np.float64)
        centers = np.ascontiguousarray(centers, dtype=self.dtype)
        with _runtime.kernel_threads(self.backend, self.n_threads):
            if self.data.is_sparse:
                a = self.csr_arrays
                self.kernels.kmeans_assign_csr(
                    a.indptr, a.indices, a.data, self.d, self.x_sqnorm, self.weight, centers,
                    labels, min_dist, sums, counts, inertia, compute_sums, self.n_threads,
                )
            else:
                self.kernels.kmeans_assign_dense(
                    self.data.dense, self.x_sqnorm, self.weight, centers, labels, min_dist,
                    sums, counts, inertia, compute_sums, self.n_threads,
                )
        return float(inertia[0])

    def sqdist(self, y: np.ndarray) -> np.ndarray:
        """Squared distances (n, m) of every row of X to the rows of ``y``."""
        y = np.ascontiguousarray(y, dtype=self.dtype)
        if self.data.is_sparse:  # sparse x dense product; scipy does it well
            y64 = y.astype(np.float64)
            dots = np.asarray(self.data.csr.astype(np.float64) @ y64.T)
            out = self.x_sqnorm.astype(np.float64)[:, None] - 2.0 * dots
            out += np.einsum("ij,ij->i", y64, y64)[None, :]
            return np.maximum(out, 0.0).astype(self.dtype)
        out = np.empty((self.n, y.shape[0]), dtype=self.dtype)
        with _runtime.kernel_threads(self.backend, self.n_threads):
            self.kernels.sqdist_dense(self.data.dense, self.x_sqnorm, y, out, self.n_threads)
        return out


def _weighted_pick(cumulative: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices i with cumulative[i-1] < value <= cumulative[i] (inverse-CDF sampling)."""
    return np.minimum(np.searchsorted(cumulative, values), cumulative.shape[0] - 1)


def kmeans_plusplus(pb: _Problem, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with local trials).

    The first centre is a row drawn with probability proportional to its
    weight.  Every further centre is the best of ``2 + ln(k)`` candidates drawn
    with probability proportional to ``weight * D(x)^2`` (D = distance to the
    nearest centre so far): the one that lowers the potential sum most.  The
    candidate distances are one (n, trials) pass of the backend's distance
    kernel, which runs in parallel; everything else is O(n) numpy.

    Returns
    -------
    ndarray of X's dtype, shape (n_clusters, n_features)
    """
    n = pb.n
    weight = pb.weight.astype(np.float64)
    trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, pb.d), dtype=pb.dtype)
    first = int(_weighted_pick(np.cumsum(weight), rng.random(1) * weight.sum())[0])
    centers[0] = pb.rows(np.array([first]))[0]
    closest = pb.sqdist(centers[:1])[:, 0].astype(np.float64)
    potential = float(weight @ closest)
    for c in range(1, n_clusters):
        if potential > 0:
            candidates = _weighted_pick(np.cumsum(weight * closest), rng.random(trials) * potential)
        else:  # every row sits on a centre (duplicates): any row will do
            candidates = rng.integers(0, n, size=trials)
        dist = pb.sqdist(pb.rows(candidates)).astype(np.float64)
        np.minimum(dist, closest[:, None], out=dist)
        potentials = weight @ dist
        best = int(np.argmin(potentials))
        closest = dist[:, best]
        potential = float(potentials[best])
        centers[c] = pb.rows(candidates[best : best + 1])[0]
    return centers


def _relocate_empty(pb, labels, min_dist, sums, counts, new_centers) -> int:
    """Re-seed empty clusters from the rows farthest from their centres.

    Deterministic: rows are taken by decreasing distance, ties to the smaller
    row index, one per empty cluster in increasing cluster order.  Each taken
    row leaves its old cluster's sum (unless that would empty it) and becomes
    the new centre.  Returns the number of clusters re-seeded.
    """
    empty = np.flatnonzero(counts <= 0)
    if empty.size == 0:
        return 0
    far = np.argsort(-min_dist.astype(np.float64), kind="stable")[: empty.size]
    for j, i in zip(empty, far):
        old = labels[i]
        w = float(pb.weight[i])
        row = pb.row(int(i))
        if w > 0 and counts[old] > w:
            sums[old] -= w * row
            counts[old] -= w
            new_centers[old] = sums[old] / counts[old]
        new_centers[j] = row
    return int(empty.size)


def lloyd(pb: _Problem, centers: np.ndarray, max_iter: int, tol: float, verbose: bool):
    """Lloyd iterations from ``centers`` until the labels stop changing or the
    total squared centre shift is at most ``tol`` (absolute).

    Returns (centers, labels, inertia, n_iter); labels and inertia are those
    of the final centres.
    """
    n, d, k = pb.n, pb.d, centers.shape[0]
    labels = np.empty(n, dtype=np.int32)
    previous = np.empty(n, dtype=np.int32)
    min_dist = np.empty(n, dtype=pb.dtype)
    sums = np.empty((k, d), dtype=np.float64)
    counts = np.empty(k, dtype=np.float64)
    centers = np.array(centers, dtype=pb.dtype, order="C", copy=True)
    n_iter = 0
    for it in range(max_iter):
        inertia = pb.assign(centers, labels, min_dist, sums, counts, True)
        new_centers = np.zeros((k, d), dtype=np.float64)
        filled = counts > 0
        new_centers[filled] = sums[filled] / counts[filled, None]
        relocated = _relocate_empty(pb, labels, min_dist, sums, counts, new_centers)
        new_centers = new_centers.astype(pb.dtype)
        shift = float(((new_centers.astype(np.float64) - centers) ** 2).sum())
        centers = new_centers
        n_iter = it + 1
        if verbose:
            note = f", {relocated} empty cluster(s) re-seeded" if relocated else ""
            print(f"Iteration {it}: inertia {inertia:.6g}, centre shift {shift:.3g}{note}",
                  file=sys.stdout, flush=True)
        if it > 0 and np.array_equal(labels, previous):
            if verbose:
                print(f"Converged at iteration {it}: labels unchanged.", flush=True)
            break
        if shift <= tol:
            if verbose:
                print(f"Converged at iteration {it}: centre shift {shift:.3g} within tolerance "
                      f"{tol:.3g}.", flush=True)
            break
        labels, previous = previous, labels
    # Labels and inertia of the final centres (the loop's are one update behind).
    inertia = pb.assign(centers, labels, min_dist, sums, counts, False)
    return centers, labels, inertia, n_iter


def _tolerance(data: V.ClusterData, tol: float) -> float:
    """``tol`` scaled by the mean feature variance, as scikit-learn does, so it is unit-free."""
    if tol == 0:
        return 0.0
    if data.is_sparse:
        x = data.csr.astype(np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    else:
        var = np.var(data.dense, axis=0, dtype=np.float64)
    return float(np.mean(var) * tol)


class KMeans:
    """K-means clustering: Lloyd iterations on a fused SIMD kernel, k-means++ seeding.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters (1 <= n_clusters <= n_samples).
    init : {"k-means++", "random"} or ndarray of shape (n_clusters, n_features)
        ``"k-means++"``: greedy k-means++ (several candidates per step, the one
        lowering the potential most is kept).  ``"random"``: ``n_clusters``
        distinct rows drawn at random.  An array gives the initial centres
        (it is copied, never modified).
    n_init : int, default 1
        Runs from different seedings; the run with the lowest inertia is kept.
        Ignored (one run) when ``init`` is an array.
    max_iter : int, default 300
        Most Lloyd iterations per run.
    tol : float, default 1e-4
        Stop when the total squared shift of the centres is at most
        ``tol * mean(var(X, axis=0))`` (relative to the data's spread, as in
        scikit-learn).  Iterations also stop as soon as no label changes.
        ``tol=0`` stops only on unchanged labels.
    seed : int, optional
        Seed of the seeding; ``None`` draws fresh entropy.  Same seed, data and
        parameters give bit-identical results, for any ``n_threads``.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  Results do
        not depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"auto"`` picks the compiled core, else Numba; ``"numpy"`` is the
        slow reference.
    verbose : bool, default False
        Print the inertia and centre shift of every iteration.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Final centres, in X's dtype (float32 or float64).
    labels_ : ndarray of int32, shape (n_samples,)
        Nearest final centre of every training row (ties: the smaller index).
    inertia_ : float
        Sum over rows of ``sample_weight * squared distance`` to the nearest
        final centre.
    n_iter_ : int
        Lloyd iterations run (in the kept run).
    n_features_in_ : int

    Notes
    -----
    Dense float32 and float64 rows are kept in their dtype; CSR rows (TF-IDF
    user profiles, say) are accepted as they are and never densified (the
    centres are dense).  A cluster left empty by an iteration is re-seeded
    with the row farthest from its centre, deterministically.

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_user_embeddings
    >>> X, _ = make_user_embeddings(2000, 16, n_segments=5, seed=0)
    >>> km = fastrec.KMeans(5, seed=0).fit(X)
    >>> km.cluster_centers_.shape
    (5, 16)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        seed: int | None = None,
        n_threads: int | None = None,
        backend: str = "auto",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.n_threads = n_threads
        self.backend = backend
        self.verbose = verbose

    # -- scikit-learn estimator protocol --------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values() if p.name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as a dict (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> KMeans:
        """Set constructor parameters by name; returns self (scikit-learn protocol)."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for KMeans. Valid parameters: {', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """Estimator tags for scikit-learn >= 1.6 (``clone``, pipelines); sklearn is
        imported only when sklearn itself asks, so it stays an optional dependency."""
        from sklearn.base import BaseEstimator
        from sklearn.utils import TransformerTags

        tags = BaseEstimator.__sklearn_tags__(self)
        tags.estimator_type = "clusterer"
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        tags.input_tags.sparse = True
        return tags

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self"
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults[name]
            same = (
                value is default
                if isinstance(value, np.ndarray) or isinstance(default, np.ndarray)
                else value == default
            )
            if not same:
                shown = f"array{value.shape}" if isinstance(value, np.ndarray) else repr(value)
                changed.append(f"{name}={shown}")
        return f"KMeans({', '.join(changed)})"

    # -- fitting ---------------------------------------------------------------

    def _check_params(self, n_samples: int):
        n_clusters = V.check_n_clusters(self.n_clusters, n_samples)
        n_init = V.check_int(self.n_init, "n_init", minimum=1)
        max_iter = V.check_int(self.max_iter, "max_iter", minimum=1)
        tol = V.check_float(self.tol, "tol", minimum=0.0)
        seed = V.check_seed(self.seed)
        verbose = V.check_bool(self.verbose, "verbose")
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        return n_clusters, n_init, max_iter, tol, seed, verbose, backend, n_threads

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or scipy sparse (CSR)
            float32 or float64 rows (kept in that dtype; integers compute in
            float32).  NaN and infinity are refused.
        y : ignored
            Present for scikit-learn pipeline compatibility.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of every row; ``None`` weighs all rows 1.

        Returns
        -------
        self
        """
        data = V.check_cluster_data(X, "X")
        n_clusters, n_init, max_iter, tol, seed, verbose, backend, n_threads = (
            self._check_params(data.n_samples)
        )
        init = V.check_cluster_init(self.init, n_clusters, data.n_features, data.dtype)
        weight = V.check_sample_weight(sample_weight, data.n_samples, data.dtype)
        if isinstance(init, np.ndarray) and n_init != 1:
            warnings.warn(
                f"n_init={n_init} is ignored because init is an array of centres: "
                "only one run is made. Pass n_init=1 to silence this warning.",
                RuntimeWarning,
                stacklevel=2,
            )
            n_init = 1
        pb = _Problem(data, weight, backend, n_threads)
        tol_abs = _tolerance(data, tol)
        rng = np.random.default_rng(seed)

        best = None
        for run in range(n_init):
            if isinstance(init, np.ndarray):
                start = init
            elif init == "random":
                start = pb.rows(np.sort(rng.choice(data.n_samples, n_clusters, replace=False)))
            else:
                start = kmeans_plusplus(pb, n_clusters, rng)
            if verbose:
                print(f"Initialisation complete ({init if isinstance(init, str) else 'array'}"
                      f", run {run + 1} of {n_init}).", flush=True)
            result = lloyd(pb, start, max_iter, tol_abs, verbose)
            if best is None or result[2] < best[2]:
                best = result
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        self.n_features_in_ = data.n_features
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit and return ``labels_`` (int32, shape (n_samples,))."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit and return the distances of every row to every centre (see ``transform``)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # -- using a fitted model -----------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError(
                "This KMeans instance is not fitted yet. Call fit(X) before using it."
            )

    def _problem(self, X: Any, sample_weight: Any = None) -> _Problem:
        self._check_fitted()
        data = V.check_cluster_data(X, "X", dtype=self.cluster_centers_.dtype)
        V.check_n_features(data.n_features, self.n_features_in_)
        weight = V.check_sample_weight(sample_weight, data.n_samples, data.dtype)
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        return _Problem(data, weight, backend, n_threads)

    def _labels_inertia(self, pb: _Problem):
        labels = np.empty(pb.n, dtype=np.int32)
        min_dist = np.empty(pb.n, dtype=pb.dtype)
        k = self.cluster_centers_.shape[0]
        sums = np.empty((k, pb.d), dtype=np.float64)
        counts = np.empty(k, dtype=np.float64)
        inertia = pb.assign(self.cluster_centers_, labels, min_dist, sums, counts, False)
        return labels, inertia

    def predict(self, X: Any, sample_weight: Any = None) -> np.ndarray:
        """Index of the nearest centre of every row of ``X`` (int32, shape (n_samples,)).

        ``X`` must have the features seen in ``fit``; it is computed in the
        dtype of the centres.  Ties go to the smaller centre index.
        """
        return self._labels_inertia(self._problem(X, sample_weight))[0]

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances of every row of ``X`` to every centre.

        Returns
        -------
        ndarray of shape (n_samples, n_clusters), dtype of the centres
        """
        pb = self._problem(X)
        return np.sqrt(pb.sqdist(self.cluster_centers_))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of ``X`` under the fitted centres.

        Higher is better, as scikit-learn's scorers expect.
        """
        return -self._labels_inertia(self._problem(X, sample_weight))[1]

