"""Reference k-means kernels: plain vectorised numpy that defines the correct answer.

Same names and argument order as the C++ and Numba kernels.  Distances are
formed in float64 as ``||x||^2 - 2 x.c + ||c||^2``, a block of rows at a time
so memory stays bounded; labels are the first minimum (``np.argmin``); sums
are a weighted sparse "label x row" matrix times X in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_BLOCK_ROWS = 4096


def _assign(x_rows, n, x_sqnorm, sample_weight, centers, labels, min_dist, inertia):
    """Labels, distances and inertia; ``x_rows(lo, hi)`` gives float64 rows lo..hi."""
    c64 = centers.astype(np.float64)
    c_sq = np.einsum("ij,ij->i", c64, c64)
    total = 0.0
    for lo in range(0, n, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, n)
        partial = np.asarray(x_rows(lo, hi) @ c64.T)
        partial *= -2.0
        partial += c_sq[None, :]
        best = np.argmin(partial, axis=1)
        dist = np.maximum(x_sqnorm[lo:hi].astype(np.float64) + partial[np.arange(hi - lo), best], 0)
        labels[lo:hi] = best
        min_dist[lo:hi] = dist
        total += float(np.dot(sample_weight[lo:hi].astype(np.float64), dist))
    inertia[0] = total


def _sums(x, labels, sample_weight, sums, counts):
    n = labels.shape[0]
    k = sums.shape[0]
    w = sample_weight.astype(np.float64)
    members = sp.csr_matrix((w, (labels, np.arange(n))), shape=(k, n))
    product = members @ x
    sums[...] = product.toarray() if sp.issparse(product) else product
    counts[...] = np.bincount(labels, weights=w, minlength=k)


def kmeans_assign_dense(
    x,
    x_sqnorm,
    sample_weight,  # IN  (n, d) rows, (n,) ||x||^2, (n,) weights
    centers,  # IN  (k, d)
    labels,
    min_dist,  # OUT (n,) int32 nearest centre, (n,) squared distance to it
    sums,
    counts,  # OUT (k, d) float64 weighted row sums per cluster, (k,) float64 weights
    inertia,  # OUT (1,) float64 sum of weight * min_dist
    compute_sums,  # IN  False skips sums and counts
    n_threads,  # IN  unused: the reference runs numpy as it is
):
    _assign(
        lambda lo, hi: x[lo:hi].astype(np.float64),
        x.shape[0],
        x_sqnorm,
        sample_weight,
        centers,
        labels,
        min_dist,
        inertia,
    )
    if compute_sums:
        _sums(x.astype(np.float64), labels, sample_weight, sums, counts)


def kmeans_assign_csr(
    indptr,
    indices,
    data,
    n_features,  # IN  CSR rows (n, d)
    x_sqnorm,
    sample_weight,
    centers,  # IN  as in kmeans_assign_dense
    labels,
    min_dist,
    sums,
    counts,
    inertia,  # OUT as in kmeans_assign_dense
    compute_sums,
    n_threads,  # IN
):
    x = sp.csr_matrix((data.astype(np.float64), indices, indptr), shape=(indptr.shape[0] - 1, n_features))
    _assign(lambda lo, hi: x[lo:hi], x.shape[0], x_sqnorm, sample_weight, centers, labels, min_dist, inertia)
    if compute_sums:
        _sums(x, labels, sample_weight, sums, counts)


def sqdist_dense(
    x,
    x_sqnorm,  # IN  (n, d) rows, (n,) ||x||^2
    y,  # IN  (m, d)
    out,  # OUT (n, m) squared distances, clamped at 0
    n_threads,  # IN  unused
):
    y64 = y.astype(np.float64)
    y_sq = np.einsum("ij,ij->i", y64, y64)
    d = x_sqnorm.astype(np.float64)[:, None] - 2.0 * (x.astype(np.float64) @ y64.T) + y_sq[None, :]
    out[...] = np.maximum(d, 0.0)
