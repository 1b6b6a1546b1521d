"""K-means clustering (Lloyd's algorithm) with a scikit-learn compatible estimator.

The three backends share everything except the assignment pass, which is the
only O(n k d) step: ``kmeans_assign_dense`` / ``kmeans_assign_csr`` label every
row with its nearest centre and return the per-cluster weighted sums, from
which this module forms the new centres.  Empty clusters, convergence and
progress reporting live here once, so every backend follows the same rules.

K-means is scale-equivariant: multiplying X (and any initial centres) by a
power of two multiplies the centres by it, the inertia by its square and
leaves the labels alone, exactly, as long as nothing overflows or underflows.
Data whose squared distances would leave the dtype's range (|x| near 1e30 in
float32, say, or near 1e-30) is therefore clustered as a scaled copy with
max |x| near 1, and the results are scaled back (see ``_Scale``); data inside
the safe range is used as it is, bit for bit.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.utils import TransformerTags
from sklearn.utils.validation import validate_data

from fastrec import _runtime
from fastrec import _validation as V
from fastrec._concurrency import reads, writes
from fastrec.base import Estimator, check_fitted
from fastrec.cluster._checks import (
    ClusterData,
    check_cluster_data,
    check_cluster_init,
    check_n_clusters,
    check_sample_weight,
)


def _kernels(backend: str):
    """The module holding the backend's assignment and distance kernels."""
    return _runtime.kernel_module(backend, "cluster")


def _dense(data: ClusterData) -> np.ndarray:
    """The array of dense ``data``."""
    assert data.dense is not None  # check_cluster_data sets exactly one of dense and csr
    return data.dense


def _csr(data: ClusterData) -> sp.csr_matrix:
    """The matrix of sparse ``data``."""
    assert data.csr is not None  # check_cluster_data sets exactly one of dense and csr
    return data.csr


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Squared norms of the rows of dense ``x`` (n, d), summed in float64, in x's dtype.

    A block of rows at a time, so there is never a full float64 copy of x.
    """
    block = 65536
    out = np.empty(x.shape[0], dtype=x.dtype)
    for lo in range(0, x.shape[0], block):
        part = x[lo : lo + block].astype(np.float64)
        out[lo : lo + block] = np.einsum("ij,ij->i", part, part)
    return out


class _Problem:
    """Canonical data of one call, and the backend kernels bound to it."""

    def __init__(
        self,
        data: ClusterData,
        weight: np.ndarray,
        backend: str,
        n_threads: int,
        x_sqnorm: np.ndarray | None = None,
    ):
        if data.dense is not None and not data.dense.flags.aligned:
            # C++ reads rows as typed scalars: copy a misaligned buffer (np.frombuffer with
            # an odd offset, say); aligned ones (every numpy, pickle or joblib array) pass as is.
            data = ClusterData(
                np.require(data.dense, requirements=["C", "A"]),
                None,
                data.n_samples,
                data.n_features,
                data.dtype,
            )
        self.data = data
        self.weight = weight
        self.backend = backend
        self.n_threads = n_threads
        self.kernels = _kernels(backend)
        self.dtype = data.dtype
        self.n = data.n_samples
        self.d = data.n_features
        if data.is_sparse:
            csr = _csr(data)
            a = V.csr_arrays(csr, V.index_dtype_for(self.d, csr.nnz))
            self.csr_arrays = V.CsrArrays(
                np.require(a.indptr, requirements=["C", "A"]),
                np.require(a.indices, requirements=["C", "A"]),
                np.require(a.data, requirements=["C", "A"]),
                a.shape,
            )
            squares = csr.multiply(csr).astype(np.float64)
            self.x_sqnorm = np.asarray(squares.sum(axis=1)).ravel().astype(self.dtype)
        elif x_sqnorm is not None:  # computed once by a caller that assigns the same rows again
            self.x_sqnorm = x_sqnorm
        else:
            self.x_sqnorm = squared_norms(_dense(data))

    def row(self, i: int) -> np.ndarray:
        """Row ``i`` of X as a new dense float64 vector."""
        if self.data.is_sparse:
            return _csr(self.data)[i].toarray().ravel().astype(np.float64)
        return _dense(self.data)[i].astype(np.float64)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` of X as a new dense array of X's dtype."""
        if self.data.is_sparse:
            return _csr(self.data)[idx].toarray().astype(self.dtype)
        return np.ascontiguousarray(_dense(self.data)[idx])

    def assign(self, centers, labels, min_dist, sums, counts, compute_sums: bool) -> float:
        """One assignment pass; fills the outputs and returns the weighted inertia."""
        inertia = np.zeros(1, dtype=np.float64)
        centers = np.require(centers, dtype=self.dtype, requirements=["C", "A"])
        with _runtime.kernel_threads(self.backend, self.n_threads):
            if self.data.is_sparse:
                a = self.csr_arrays
                self.kernels.kmeans_assign_csr(
                    indptr=a.indptr,
                    indices=a.indices,
                    data=a.data,
                    n_features=self.d,
                    x_sqnorm=self.x_sqnorm,
                    sample_weight=self.weight,
                    centers=centers,
                    labels=labels,
                    min_dist=min_dist,
                    sums=sums,
                    counts=counts,
                    inertia=inertia,
                    compute_sums=compute_sums,
                    n_threads=self.n_threads,
                )
            else:
                self.kernels.kmeans_assign_dense(
                    x=_dense(self.data),
                    x_sqnorm=self.x_sqnorm,
                    sample_weight=self.weight,
                    centers=centers,
                    labels=labels,
                    min_dist=min_dist,
                    sums=sums,
                    counts=counts,
                    inertia=inertia,
                    compute_sums=compute_sums,
                    n_threads=self.n_threads,
                )
        return float(inertia[0])

    def sqdist(self, y: np.ndarray) -> np.ndarray:
        """Squared distances (n, m) of every row of X to the rows of ``y``."""
        y = np.require(y, dtype=self.dtype, requirements=["C", "A"])
        if self.data.is_sparse:  # sparse x dense product; scipy does it well
            y64 = y.astype(np.float64)
            dots = np.asarray(_csr(self.data).astype(np.float64) @ y64.T)
            out = self.x_sqnorm.astype(np.float64)[:, None] - 2.0 * dots
            out += np.einsum("ij,ij->i", y64, y64)[None, :]
            return np.maximum(out, 0.0).astype(self.dtype)
        out = np.empty((self.n, y.shape[0]), dtype=self.dtype)
        with _runtime.kernel_threads(self.backend, self.n_threads):
            self.kernels.sqdist_dense(
                x=_dense(self.data), x_sqnorm=self.x_sqnorm, y=y, out=out, n_threads=self.n_threads
            )
        return out


class _Scale:
    """The powers of two that bring one call's data and weights to a safe range.

    The kernels see ``X * 2**x_exp`` (and centres scaled alike) and
    ``sample_weight * 2**w_exp``; both are exact in floating point, so the
    labels are those of the unscaled problem and centres, distances and
    inertia scale back exactly (up to the rounding of the dtype).
    """

    def __init__(self, x_exp: int, w_exp: int):
        self.x_exp = x_exp
        self.w_exp = w_exp

    @property
    def is_identity(self) -> bool:
        return self.x_exp == 0 and self.w_exp == 0

    def data(self, data: ClusterData) -> ClusterData:
        """``data`` times ``2**x_exp``: a new copy, or ``data`` itself when unscaled."""
        if self.x_exp == 0:
            return data
        if data.is_sparse:
            csr = _csr(data)
            scaled = sp.csr_matrix(
                (np.ldexp(csr.data, self.x_exp), csr.indices.copy(), csr.indptr.copy()),
                shape=csr.shape,
            )
            scaled.has_sorted_indices = csr.has_sorted_indices
            return ClusterData(None, scaled, data.n_samples, data.n_features, data.dtype)
        return ClusterData(
            np.ldexp(_dense(data), self.x_exp), None, data.n_samples, data.n_features, data.dtype
        )

    def weight(self, weight: np.ndarray) -> np.ndarray:
        """``weight`` times ``2**w_exp`` (a new array when scaled)."""
        return np.ldexp(weight, self.w_exp) if self.w_exp else weight

    def to_kernel(self, centers: np.ndarray) -> np.ndarray:
        """Centres in user units -> the units the kernels see (a new array when scaled)."""
        return np.ldexp(centers, self.x_exp) if self.x_exp else centers

    def from_kernel(self, centers: np.ndarray) -> np.ndarray:
        """Centres found on the scaled data -> user units."""
        if self.x_exp == 0:
            return centers
        with np.errstate(over="ignore"):
            out = np.ldexp(centers, -self.x_exp)
        # A mean cannot exceed its largest row; rounding may nudge it past the top of the dtype.
        limit = np.finfo(out.dtype).max
        return np.clip(out, -limit, limit, out=out)

    def unscaled(self, value: float) -> float:
        """A weighted sum of squared distances in user units; ``inf`` when it exceeds
        float64, and one below the smallest float64 rounds to it or to 0, as any
        float64 arithmetic would."""
        if self.is_identity:
            return value
        try:
            return math.ldexp(value, -2 * self.x_exp - self.w_exp)
        except OverflowError:
            return math.inf

    def inertia(self, value: float, what: str) -> float:
        """:meth:`unscaled`, or a ValueError if it exceeds float64 (``what`` names the
        quantity in the message)."""
        out = self.unscaled(value)
        if math.isinf(out) and not self.is_identity:
            raise ValueError(
                f"The {what} of this data exceeds the largest float64 value (it is about "
                f"{value:.6g} * 2**{-2 * self.x_exp - self.w_exp}), so it cannot be returned. "
                "The labels and centres are well defined: rescale X (and init) by a constant "
                "such as 2.0**-100 or 2.0**100 so that its values lie nearer 1, and "
                "scale the results back."
            )
        return out

    def distances(self, dist: np.ndarray) -> np.ndarray:
        """Euclidean distances (in place) in user units, or a ValueError if the dtype cannot
        hold them."""
        if self.x_exp == 0:
            return dist
        with np.errstate(over="ignore"):
            np.ldexp(dist, -self.x_exp, out=dist)
        if not np.isfinite(dist).all():
            raise ValueError(
                f"Some distances from X to the centres exceed the largest {dist.dtype} value "
                f"({np.finfo(dist.dtype).max:.3g}). Fit the model on float64 data, or rescale "
                "X by a constant such as 2.0**-64 before fitting and transforming."
            )
        return dist


def _max_abs(*arrays: np.ndarray) -> float:
    """The largest |value| over ``arrays`` (0 for empty ones); a max and a min pass, no copy."""
    top = 0.0
    for a in arrays:
        if a.size:
            top = max(top, float(a.max()), -float(a.min()))
    return top


def _choose_scale(data: ClusterData, weight: np.ndarray, centers=None) -> _Scale:
    """The scaling a call needs: identity unless distances or weighted sums could
    leave the range of the dtype (or of the float64 accumulators).

    Squared distances reach ``4 d max|x|^2`` in X's dtype and the weighted
    inertia ``sum(w) 4 d max|x|^2`` in float64: the data is used unscaled when
    both stay 8x clear of overflow and ``max|x|`` is at least
    ``2**(minexp / 4)`` (2**-32 in float32), far enough above the subnormals
    that underflowing products are below the rounding of any distance.
    float64 weights (float32 ones always fit the float64 accumulators) are
    scaled when the largest lies outside ``[2**-256, 2**256]``.
    """
    values = _csr(data).data if data.is_sparse else _dense(data)
    top = _max_abs(values) if centers is None else _max_abs(values, centers)
    return _scale_from_stats(
        data.dtype,
        data.n_features,
        top,
        float(weight.max()),
        lambda w_exp: float(np.sum(np.ldexp(weight, w_exp) if w_exp else weight, dtype=np.float64)),
    )


def _scale_from_stats(dtype: np.dtype, n_features: int, top: float, w_max: float, weight_total_at) -> _Scale:
    """:func:`_choose_scale` from summaries of the data, so data held in pieces (Dask
    chunks) can be scaled as the whole would be.

    ``top`` is the largest |value| of X (and of the initial centres), ``w_max`` the
    largest weight, and ``weight_total_at(w_exp)`` the float64 sum of the weights
    times ``2**w_exp``.
    """
    w_exp = 0
    if np.dtype(dtype) == np.float64 and not 2.0**-256 <= w_max <= 2.0**256:
        w_exp = -math.frexp(w_max)[1]
    weight_total = weight_total_at(w_exp)
    info = np.finfo(dtype)
    ceiling = min(float(info.max), sys.float_info.max / max(1.0, weight_total))
    high = math.sqrt(ceiling / (8.0 * n_features))
    low = 2.0 ** (int(info.minexp) // 4)
    x_exp = 0 if top == 0.0 or low <= top <= high else -math.frexp(top)[1]
    return _Scale(x_exp, w_exp)


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


def _farthest(min_dist: np.ndarray, m: int) -> np.ndarray:
    """Rows of the ``m`` largest distances, decreasing, ties to the smaller row index.

    The same rows as a stable argsort of ``-min_dist`` cut to ``m``, in O(n): a
    partition finds the m-th largest value, and only the rows at or above it
    are sorted (stably, so ties keep their index order).
    """
    dist = min_dist.astype(np.float64)
    if m >= dist.size:
        return np.argsort(-dist, kind="stable")[:m]
    threshold = np.partition(dist, dist.size - m)[dist.size - m]
    candidates = np.flatnonzero(dist >= threshold)
    return candidates[np.argsort(-dist[candidates], kind="stable")[:m]]


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
    far = _farthest(min_dist, empty.size)
    reseed(empty, [pb.row(int(i)) for i in far], labels[far], pb.weight[far], sums, counts, new_centers)
    return int(empty.size)


def reseed(empty, rows, row_labels, row_weights, sums, counts, new_centers) -> None:
    """Make ``rows[i]`` the centre of cluster ``empty[i]``, in order (in place).

    ``rows`` are the farthest rows (float64 vectors, by decreasing distance),
    ``row_labels`` and ``row_weights`` their clusters and weights.  Each row
    leaves its old cluster's sum (unless that would empty it), whose centre is
    recomputed.  Shared by :func:`lloyd` and the Dask Lloyd iterations.
    """
    for j, row, old, w in zip(empty, rows, row_labels, row_weights):
        w = float(w)
        if w > 0 and counts[old] > w:
            sums[old] -= w * row
            counts[old] -= w
            new_centers[old] = sums[old] / counts[old]
        new_centers[j] = row


def means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """float64 (k, d) centres ``sums / counts`` of the non-empty clusters, zeros for the empty ones."""
    new_centers = np.zeros(sums.shape, dtype=np.float64)
    filled = counts > 0
    new_centers[filled] = sums[filled] / counts[filled, None]
    return new_centers


def assign_block(
    x: np.ndarray,
    weight: np.ndarray,
    centers: np.ndarray,
    backend: str,
    n_threads: int,
    compute_sums: bool,
    x_sqnorm: np.ndarray | None = None,
):
    """The fused assignment pass on one block of dense rows (already scaled).

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (n, d)
    weight : ndarray of x's dtype, shape (n,)
    centers : ndarray, shape (k, d)
        Computed in x's dtype.
    x_sqnorm : ndarray of x's dtype, shape (n,), optional
        :func:`squared_norms` of x, when the caller keeps them between passes.

    Returns
    -------
    (labels, min_dist, sums, counts, inertia)
        int32 (n,), x's dtype (n,), float64 (k, d) and (k,) (undefined when
        ``compute_sums`` is False), and the float64 weighted inertia; every row's
        label and distance are those the whole array would give it.
    """
    x = np.ascontiguousarray(x)
    pb = _Problem(ClusterData(x, None, x.shape[0], x.shape[1], x.dtype), weight, backend, n_threads, x_sqnorm)
    k = centers.shape[0]
    labels = np.empty(pb.n, dtype=np.int32)
    min_dist = np.empty(pb.n, dtype=pb.dtype)
    sums = np.zeros((k, pb.d), dtype=np.float64)
    counts = np.zeros(k, dtype=np.float64)
    inertia = pb.assign(centers, labels, min_dist, sums, counts, compute_sums)
    return labels, min_dist, sums, counts, inertia


def lloyd(pb: _Problem, centers: np.ndarray, max_iter: int, tol: float):
    """Lloyd iterations from ``centers`` until the labels stop changing or the
    total squared centre shift is at most ``tol`` (absolute).

    Returns
    -------
    (centers, labels, inertia, n_iter, converged)
        Labels and inertia are those of the final centres (in the units the
        kernels see); ``converged`` is False when ``max_iter`` iterations ran
        without either stopping rule being met.
    """
    n, d, k = pb.n, pb.d, centers.shape[0]
    labels = np.empty(n, dtype=np.int32)
    previous = np.empty(n, dtype=np.int32)
    min_dist = np.empty(n, dtype=pb.dtype)
    sums = np.empty((k, d), dtype=np.float64)
    counts = np.empty(k, dtype=np.float64)
    centers = np.array(centers, dtype=pb.dtype, order="C", copy=True)
    n_iter = 0
    converged = False
    for it in range(max_iter):
        pb.assign(centers, labels, min_dist, sums, counts, True)
        new_centers = means(sums, counts)
        _relocate_empty(pb, labels, min_dist, sums, counts, new_centers)
        new_centers = new_centers.astype(pb.dtype)
        shift = float(((new_centers.astype(np.float64) - centers) ** 2).sum())
        centers = new_centers
        n_iter = it + 1
        if (it > 0 and np.array_equal(labels, previous)) or shift <= tol:
            converged = True
            break
        labels, previous = previous, labels
    # Labels and inertia of the final centres (the loop's are one update behind).
    inertia = pb.assign(centers, labels, min_dist, sums, counts, False)
    return centers, labels, inertia, n_iter, converged


def _tolerance(data: ClusterData, tol: float) -> float:
    """``tol`` scaled by the mean feature variance, as scikit-learn does, so it is unit-free."""
    if tol == 0:
        return 0.0
    if data.is_sparse:
        x = _csr(data).astype(np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    else:
        var = np.var(_dense(data), axis=0, dtype=np.float64)
    return float(np.mean(var) * tol)


_RANDOM_STATE_HELP = "random_state must be None, a non-negative int, a numpy RandomState or a numpy Generator"


def _check_random_state(random_state: Any) -> Any:
    """``random_state`` unchanged when it is one of the accepted kinds, else raise."""
    if random_state is None or isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(f"{_RANDOM_STATE_HELP}, got {random_state!r} of type {type(random_state).__name__}.")
    if random_state < 0:
        raise ValueError(f"{_RANDOM_STATE_HELP}; got the negative int {random_state}. Pass a seed >= 0.")
    return random_state


def _generator(random_state: Any) -> np.random.Generator:
    """The generator one ``fit`` draws from, derived from a checked ``random_state``.

    An int seeds it directly (``np.random.default_rng(seed)``); a RandomState
    or a Generator gives one draw that seeds it, so it is advanced once per fit
    (successive fits differ, as in scikit-learn) and the same state gives the
    same result; None draws fresh entropy.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, _SEED_BOUND, dtype=np.int64)))
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(int(random_state.integers(0, _SEED_BOUND)))
    return np.random.default_rng(int(random_state))


_SEED_BOUND = np.iinfo(np.int64).max


def _check_rows(X: Any, name: str = "X") -> Any:
    """``X`` checked for what the shared validation does not say in scikit-learn's terms.

    Refuses complex values, input that is not 2-D and empty input with the
    messages scikit-learn's estimators give, and reads object arrays (a pandas
    frame of mixed columns, say) as float64, raising a TypeError that says
    which value is not a number.  Returns a scipy sparse matrix as it is,
    anything else as a numpy array (no copy when it already is one).
    """
    if sp.issparse(X):
        dtype, shape = X.dtype, X.shape
        array = X
    else:
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name} must be a 2-D array or a scipy sparse matrix, got {type(X).__name__}.")
        array = np.asarray(X)
        dtype, shape = array.dtype, array.shape
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {name} has dtype {dtype}. Pass real values, for "
            f"example np.abs({name}) or {name}.real."
        )
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D (samples x features), got an array of shape {shape}. "
            "Reshape your data either using X.reshape(-1, 1) if it has a single feature or "
            "X.reshape(1, -1) if it is a single sample."
        )
    if shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 "
            f"is required: {name} needs at least one row."
        )
    if shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 "
            f"is required: {name} needs at least one column."
        )
    if not sp.issparse(array) and dtype.kind == "O":
        try:
            array = np.asarray(array, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} holds values that are not numbers ({exc}). Pass a numeric array, "
                f"for example {name}.astype(np.float64) once every value is a number."
            ) from exc
    return array


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, Estimator):
    """K-means clustering: Lloyd iterations on a fused SIMD kernel, k-means++ seeding.

    A scikit-learn estimator: parameters are stored as given and checked in
    ``fit``, so ``clone``, pipelines and parameter searches work with it.  As a
    transformer it names its output columns ``kmeans0``, ``kmeans1``, ...
    (``get_feature_names_out``) and follows ``set_output``.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters (1 <= n_clusters <= n_samples).
    init : {"k-means++", "random", "k-means||"} or ndarray of shape (n_clusters, n_features)
        ``"k-means++"``: greedy k-means++ (several candidates per step, the one
        lowering the potential most is kept).  ``"random"``: ``n_clusters``
        distinct rows drawn at random.  An array gives the initial centres
        (it is copied, never modified).  ``"k-means||"`` is the distributed
        seeding of :func:`fastrec.dask.fit` (which also uses it for
        ``"k-means++"``); ``fit`` on one machine refuses it.
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
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Source of the seeding's randomness.  An int (>= 0) gives the same
        result on every fit: same ``random_state``, data and parameters give
        bit-identical results, for any ``n_threads``.  A RandomState or a
        Generator is advanced by one draw per fit (the same state gives the
        same result; successive fits differ), as in scikit-learn.  ``None``
        draws fresh entropy.
    n_threads : int, optional
        Threads; ``None`` uses :func:`fastrec.get_num_threads`.  Results do
        not depend on it.
    backend : {"auto", "cpp", "numba", "numpy"}
        ``"auto"`` picks the compiled core, else Numba; ``"numpy"`` is the
        slow reference.
    verbose : bool, default False
        Print one line per run (of ``n_init``): its final inertia, in the
        units of X, the Lloyd iterations it took and whether it converged.

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
        Number of features (columns) of the X seen in ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Column names of X, set only when X was a pandas DataFrame with string
        column names.

    Notes
    -----
    Dense float32 and float64 rows are kept in their dtype; CSR rows (TF-IDF
    user profiles, say) are accepted as they are and never densified (the
    centres are dense).  A cluster left empty by an iteration is re-seeded
    with the row farthest from its centre, deterministically.

    Any finite values work, whatever their magnitude (float32 data near 1e30
    or 1e-30, say): data whose squared distances would overflow or underflow
    its dtype is clustered as a copy scaled by a power of two, which is exact,
    and the results are scaled back; other data is used as it is.  Only a
    result float64 cannot hold (the inertia of float64 data near 1e200, say)
    raises a ValueError.

    Examples
    --------
    >>> import fastrec
    >>> from fastrec.datasets import make_user_embeddings
    >>> X, _ = make_user_embeddings(2000, 16, n_segments=5, seed=0)
    >>> km = fastrec.KMeans(5, random_state=0).fit(X)
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
        random_state: Any = None,
        n_threads: int | None = None,
        backend: str = "auto",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_threads = n_threads
        self.backend = backend
        self.verbose = verbose

    def __sklearn_tags__(self):
        """scikit-learn's tags: a clusterer and transformer that keeps float32 and
        float64 and accepts sparse input."""
        tags = super().__sklearn_tags__()
        tags.estimator_type = "clusterer"
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        tags.input_tags.sparse = True
        return tags

    def _restore(self) -> None:
        """Read a model pickled before ``random_state`` replaced ``seed``."""
        if "seed" in self.__dict__ and "random_state" not in self.__dict__:
            self.random_state = self.__dict__.pop("seed")

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``'s output (one per centre), for ``get_feature_names_out``."""
        return self.cluster_centers_.shape[0]

    # -- fitting ---------------------------------------------------------------

    def _check_params(self, n_samples: int):
        n_clusters = check_n_clusters(self.n_clusters, n_samples)
        n_init = V.check_int(self.n_init, "n_init", minimum=1)
        max_iter = V.check_int(self.max_iter, "max_iter", minimum=1)
        tol = V.check_float(self.tol, "tol", minimum=0.0)
        verbose = V.check_bool(self.verbose, "verbose")
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        random_state = _check_random_state(self.random_state)
        return n_clusters, n_init, max_iter, tol, random_state, verbose, backend, n_threads

    @writes
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or scipy sparse
            float32 or float64 rows (kept in that dtype; integers compute in
            float32; object arrays of numbers, in float64).  A pandas
            DataFrame's string column names are kept in ``feature_names_in_``.
            NaN, infinity and complex values are refused.
        y : ignored
            Present for scikit-learn pipeline compatibility.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of every row; ``None`` weighs all rows 1.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad input, and when the inertia is too large or too small for
            float64 (float64 data near 1e200 or 1e-200): rescale X then.
        """
        data = check_cluster_data(_check_rows(X, "X"), "X")
        n_clusters, n_init, max_iter, tol, random_state, verbose, backend, n_threads = self._check_params(
            data.n_samples
        )
        if isinstance(self.init, str) and self.init == "k-means||":
            raise ValueError(
                "init='k-means||' is the distributed seeding of fastrec.dask.fit(KMeans(...), X) on a "
                "Dask array; on one machine use init='k-means++' (the exact sequential seeding)."
            )
        init = check_cluster_init(self.init, n_clusters, data.n_features, data.dtype)
        weight = check_sample_weight(sample_weight, data.n_samples, data.dtype)
        if isinstance(init, np.ndarray) and n_init != 1:
            warnings.warn(
                f"n_init={n_init} is ignored because init is an array of centres: "
                "only one run is made. Pass n_init=1 to silence this warning.",
                RuntimeWarning,
                stacklevel=3,
            )
            n_init = 1
        scale = _choose_scale(data, weight, init if isinstance(init, np.ndarray) else None)
        data = scale.data(data)
        if isinstance(init, np.ndarray):
            init = scale.to_kernel(init)
        pb = _Problem(data, scale.weight(weight), backend, n_threads)
        tol_abs = _tolerance(data, tol)
        rng = _generator(random_state)  # drawn once every check has passed

        best = None
        for run in range(n_init):
            if isinstance(init, np.ndarray):
                start = init
            elif init == "random":
                start = pb.rows(np.sort(rng.choice(data.n_samples, n_clusters, replace=False)))
            else:
                start = kmeans_plusplus(pb, n_clusters, rng)
            result = lloyd(pb, start, max_iter, tol_abs)
            if verbose:
                # The kernels may see a rescaled copy of X: report in the caller's units.
                _, _, inertia, n_iter, converged = result
                status = "converged" if converged else f"stopped at max_iter={max_iter} before converging"
                print(
                    f"KMeans run {run + 1} of {n_init}: inertia "
                    f"{scale.unscaled(inertia):.6g} after {n_iter} iteration(s), {status}.",
                    file=sys.stdout,
                    flush=True,
                )
            if best is None or result[2] < best[2]:
                best = result
        assert best is not None  # n_init >= 1 was checked
        centers, labels, inertia, n_iter, _ = best
        inertia = scale.inertia(inertia, "inertia")
        # Feature names and count are recorded only once the fit has succeeded, so a
        # failed refit leaves the previous model whole.
        validate_data(self, X, reset=True, skip_check_array=True)
        self.cluster_centers_ = scale.from_kernel(centers)
        self.labels_, self.inertia_, self.n_iter_ = labels, inertia, n_iter
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit and return ``labels_`` (int32, shape (n_samples,))."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit and return the distances of every row to every centre (see ``transform``)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # -- using a fitted model -----------------------------------------------------

    def _problem(self, X: Any, sample_weight: Any = None):
        """The scaled problem of ``X``, the fitted centres in its units, and the scaling."""
        check_fitted(self, "cluster_centers_", "fit(X)")
        rows = _check_rows(X, "X")
        try:  # feature names and count, with scikit-learn's messages
            validate_data(self, X, reset=False, skip_check_array=True)
        except ValueError as exc:
            raise ValueError(f"{exc} Pass data with the same columns as in fit.") from exc
        data = check_cluster_data(rows, "X", dtype=self.cluster_centers_.dtype)
        weight = check_sample_weight(sample_weight, data.n_samples, data.dtype)
        backend = _runtime.resolve_backend(self.backend)
        n_threads = _runtime.resolve_threads(self.n_threads)
        centers = np.ascontiguousarray(self.cluster_centers_)
        scale = _choose_scale(data, weight, centers)
        pb = _Problem(scale.data(data), scale.weight(weight), backend, n_threads)
        return pb, scale.to_kernel(centers), scale

    def _labels_inertia(self, X: Any, sample_weight: Any):
        pb, centers, scale = self._problem(X, sample_weight)
        labels = np.empty(pb.n, dtype=np.int32)
        min_dist = np.empty(pb.n, dtype=pb.dtype)
        k = centers.shape[0]
        sums = np.empty((k, pb.d), dtype=np.float64)
        counts = np.empty(k, dtype=np.float64)
        inertia = pb.assign(centers, labels, min_dist, sums, counts, False)
        return labels, inertia, scale

    @reads
    def predict(self, X: Any, sample_weight: Any = None) -> np.ndarray:
        """Index of the nearest centre of every row of ``X`` (int32, shape (n_samples,)).

        ``X`` must have the features seen in ``fit``; it is computed in the
        dtype of the centres.  Ties go to the smaller centre index.

        Raises
        ------
        NotFittedError
            When the model has not been fitted.
        """
        return self._labels_inertia(X, sample_weight)[0]

    @reads
    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances of every row of ``X`` to every centre.

        Returns
        -------
        ndarray of shape (n_samples, n_clusters), dtype of the centres

        Raises
        ------
        NotFittedError
            When the model has not been fitted.
        ValueError
            When a distance exceeds the largest value of that dtype (float32
            data near 1e38): fit on float64 data, or rescale X.
        """
        pb, centers, scale = self._problem(X)
        return scale.distances(np.sqrt(pb.sqdist(centers)))

    @reads
    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of ``X`` under the fitted centres.

        Higher is better, as scikit-learn's scorers expect.  Raises
        NotFittedError when the model has not been fitted, and a ValueError
        when float64 cannot hold the inertia (see ``fit``).
        """
        _, inertia, scale = self._labels_inertia(X, sample_weight)
        return -scale.inertia(inertia, "weighted inertia")
