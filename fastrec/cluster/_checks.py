"""Input checks of the clustering estimators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._validation import (
    as_2d_array,
    canonical_csr,
    check_finite,
    check_int,
    check_sparse_structure,
    float_dtype_for,
)


@dataclass(frozen=True)
class ClusterData:
    """Canonical clustering input: a C-contiguous dense array or a canonical CSR matrix."""

    dense: np.ndarray | None  # float32/float64 (n, d), C-contiguous; None for sparse input
    csr: sp.csr_matrix | None  # canonical CSR; None for dense input
    n_samples: int
    n_features: int
    dtype: np.dtype

    @property
    def is_sparse(self) -> bool:
        return self.csr is not None


def check_cluster_data(X: Any, name: str = "X", dtype: np.dtype | None = None) -> ClusterData:
    """``X`` as dense float32/float64 rows (kept in its dtype) or canonical CSR.

    Integer and boolean input computes in float32.  ``dtype`` forces a dtype
    (``predict`` uses the dtype of the fitted centres).  Raises for 1-D or 3-D
    input, NaN or infinity, and empty input.  The caller's array is never
    modified; it is copied only when its dtype or layout must change.
    """
    if sp.issparse(X):
        csr = canonical_csr(check_sparse_structure(X, name), name, dtype)
        n, d = csr.shape
        result = ClusterData(None, csr, int(n), int(d), csr.dtype)
    else:
        array = as_2d_array(X, name, "samples x features")
        own = float_dtype_for(array.dtype, name)  # refuses complex, object and string data
        target = own if dtype is None else np.dtype(dtype)
        array = np.ascontiguousarray(array, dtype=target)
        check_finite(array, name)
        result = ClusterData(array, None, int(array.shape[0]), int(array.shape[1]), array.dtype)
    if result.n_samples < 1 or result.n_features < 1:
        raise ValueError(
            f"{name} has shape ({result.n_samples}, {result.n_features}); it needs at least "
            "one sample and one feature."
        )
    return result


def check_n_clusters(n_clusters: Any, n_samples: int) -> int:
    """``n_clusters`` as an int in [1, n_samples]."""
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} is greater than the number of samples ({n_samples}). "
            "Use at most as many clusters as samples."
        )
    return n_clusters


def check_cluster_init(init: Any, n_clusters: int, n_features: int, dtype: np.dtype):
    """``init`` as ``"k-means++"``, ``"random"`` or a new (n_clusters, n_features) array."""
    if isinstance(init, str):
        if init not in ("k-means++", "random"):
            raise ValueError(
                f"init={init!r} is not one of 'k-means++', 'random' or an array of initial centres."
            )
        return init
    if callable(init) or init is None:
        raise TypeError(
            f"init must be 'k-means++', 'random' or an array of shape ({n_clusters}, "
            f"{n_features}), got {type(init).__name__}."
        )
    centers = np.asarray(init)
    if centers.dtype == object or centers.dtype.kind not in "biuf":
        raise TypeError(f"init must be a numeric array, got dtype {centers.dtype}.")
    if centers.shape != (n_clusters, n_features):
        raise ValueError(
            f"init has shape {centers.shape}, but it must be (n_clusters, n_features) = "
            f"({n_clusters}, {n_features}): one initial centre per cluster, one column per "
            "feature of X."
        )
    centers = np.array(centers, dtype=dtype, order="C", copy=True)
    check_finite(centers, "init")
    return centers


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Sample weights as a new float array of length n_samples (ones when None)."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    weight = np.asarray(sample_weight)
    if weight.dtype == object or weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {weight.dtype}.")
    if weight.ndim == 0:
        weight = np.full(n_samples, weight)
    if weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {weight.shape}; it must be 1-D with one weight per "
            f"sample ({n_samples},)."
        )
    weight = np.array(weight, dtype=dtype, copy=True)
    check_finite(weight, "sample_weight")
    if (weight < 0).any():
        raise ValueError(
            f"sample_weight contains negative values (smallest {weight.min()}); weights must be >= 0."
        )
    if not weight.any():
        raise ValueError("sample_weight is zero everywhere; at least one weight must be > 0.")
    return weight


def check_labels(labels: Any, n_samples: int) -> np.ndarray:
    """Cluster labels as a new int64 array of length n_samples, all >= 0."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise ValueError(
            f"labels has shape {array.shape}; it must be 1-D with one label per row of X ({n_samples},)."
        )
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integers (cluster ids such as KMeans.labels_), got dtype {array.dtype}."
        )
    if array.size and array.min() < 0:
        raise ValueError(f"labels must be >= 0, got {array.min()}.")
    return array.astype(np.int64)
