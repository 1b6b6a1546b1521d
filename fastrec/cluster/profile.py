"""Readable summaries of user segments: ``fastrec.cluster.profile``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec.cluster._checks import check_cluster_data, check_labels


@dataclass
class ClusterProfile:
    """Summary of one cluster (user segment).

    Attributes
    ----------
    cluster : int
        Cluster id (the label).
    size : int
        Number of rows (users) in the cluster.
    share : float
        ``size`` divided by the number of rows.
    top : list of (name, value, score)
        Dense X: the features whose centroid value is highest relative to the
        whole population, as ``(feature, centroid value, z)`` with
        ``z = (centroid - overall mean) / overall std`` (0 for constant
        features), by decreasing ``z``.  Sparse interactions: the most
        over-represented items, as ``(item, users in the cluster with the
        item, lift)`` with ``lift = (count + 1) / (size * overall rate + 1)``:
        observed over expected count with add-one smoothing, so that one
        user's rare item does not top the list.  By decreasing score, ties to
        the smaller feature index.
    side_means : dict of str to float
        Mean of every numeric side column over the cluster (NaN ignored).
    kind : {"features", "items"}
        Whether ``top`` ranks features of dense X or items of interactions.
    """

    cluster: int
    size: int
    share: float
    top: list[tuple[str, float, float]] = field(default_factory=list)
    side_means: dict[str, float] = field(default_factory=dict)
    kind: str = "features"

    def summary(self) -> str:
        """One readable line, e.g. ``cluster 2: 310 users (31.0%); items: a (lift 3.2), ...``."""
        parts = [f"cluster {self.cluster}: {self.size} users ({100 * self.share:.1f}%)"]
        if self.top:
            if self.kind == "items":
                shown = ", ".join(f"{name} (lift {score:.2f})" for name, _, score in self.top)
                parts.append(f"over-represented items: {shown}")
            else:
                shown = ", ".join(f"{name} ({value:.3g}, z {score:+.2f})" for name, value, score in self.top)
                parts.append(f"strongest features: {shown}")
        if self.side_means:
            parts.append(", ".join(f"mean {k} {v:.3g}" for k, v in self.side_means.items()))
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()


def _side_columns(side: Any, n: int) -> dict[str, np.ndarray]:
    if side is None:
        return {}
    if not isinstance(side, Mapping) and not callable(getattr(side, "items", None)):
        raise TypeError(
            "side must be a mapping of column name to values (a dict or a pandas DataFrame), "
            f"got {type(side).__name__}."
        )
    columns = {}
    for name, values in side.items():
        array = np.asarray(values)
        if array.shape != (n,):
            raise ValueError(
                f"side column {name!r} has shape {array.shape}; it must hold one value per row of X ({n},)."
            )
        if array.dtype.kind not in "biuf":
            continue  # text and categorical columns have no mean
        columns[str(name)] = array.astype(np.float64)
    return columns


def _names(feature_names: Sequence[Any] | None, d: int) -> list[str]:
    if feature_names is None:
        return [str(j) for j in range(d)]
    names = [str(name) for name in feature_names]
    if len(names) != d:
        raise ValueError(
            f"feature_names has {len(names)} entries but X has {d} columns; pass one name per column."
        )
    return names


def _top(scores: np.ndarray, top: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``top`` largest scores, ties to the smaller index."""
    idx = np.arange(scores.shape[0]) if mask is None else np.flatnonzero(mask)
    order = np.lexsort((idx, -scores[idx]))
    return idx[order[:top]]


def profile(
    labels: Any,
    X_or_interactions: Any,
    feature_names: Sequence[Any] | None = None,
    top: int = 10,
    *,
    side: Any = None,
) -> list[ClusterProfile]:
    """Describe every cluster: its size, what sets it apart, its side-column means.

    Parameters
    ----------
    labels : array-like of int, shape (n_users,)
        Cluster of every row, e.g. ``KMeans.labels_``.  Clusters are
        ``0 .. labels.max()``; an id with no rows gets a profile of size 0.
    X_or_interactions : array-like (n_users, n_features) or scipy sparse (n_users, n_items)
        Dense: the features that were clustered (embeddings, say); each
        cluster lists its strongest features (highest centroid z-score).
        Sparse: user x item interactions; each cluster lists its most
        over-represented items (smoothed lift, a stored non-zero counts as an
        interaction).
    feature_names : sequence of str, optional
        Names of the columns (features or items); default their indices.
    top : int, default 10
        Features or items listed per cluster.
    side : mapping of str to array-like (n_users,), optional
        Numeric side columns such as age; a dict or a pandas DataFrame.
        Non-numeric columns are skipped.

    Returns
    -------
    list of ClusterProfile
        One per cluster id, in id order; ``str(p)`` is a readable summary.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrec.cluster import profile
    >>> X = np.array([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0]])
    >>> print(profile([0, 0, 1], X, ["sport", "news"], top=1)[1])
    cluster 1: 1 users (33.3%); strongest features: news (1, z +1.39)
    """
    top = V.check_int(top, "top", minimum=0)
    if sp.issparse(X_or_interactions):
        X = V.canonical_csr(V.as_sparse_2d(X_or_interactions, "X_or_interactions"), "X_or_interactions")
        dense = None
    else:
        dense = check_cluster_data(X_or_interactions, "X_or_interactions").dense
        X = None
    n, d = (X if dense is None else dense).shape
    labels = check_labels(labels, n)
    names = _names(feature_names, d)
    side_columns = _side_columns(side, n)
    n_clusters = int(labels.max()) + 1 if n else 0
    sizes = np.bincount(labels, minlength=n_clusters)
    members = sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(n_clusters, n))

    if dense is None:
        binary = X.copy()
        binary.data = np.ones_like(binary.data, dtype=np.float64)
        per_cluster = np.asarray((members @ binary).todense())  # users with each item
        rate = per_cluster.sum(axis=0) / max(n, 1)
        scores = (per_cluster + 1.0) / (sizes[:, None] * rate[None, :] + 1.0)
        values = per_cluster
    else:
        x64 = dense.astype(np.float64)
        # z-scores do not change when X is scaled by a power of two (exact): bring
        # extreme float64 data near 1 so that the variance neither overflows nor underflows.
        largest = float(np.max(np.abs(x64))) if x64.size else 0.0
        exponent = 0 if largest == 0.0 or 2.0**-256 <= largest <= 2.0**256 else math.frexp(largest)[1]
        if exponent:
            x64 = np.ldexp(x64, -exponent)
        centroid = np.asarray(members @ x64) / np.maximum(sizes, 1)[:, None]
        mean, std = x64.mean(axis=0), x64.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        scores = np.where(std > 0, (centroid - mean) / scale, 0.0)
        values = np.ldexp(centroid, exponent) if exponent else centroid

    profiles = []
    for c in range(n_clusters):
        mask = per_cluster[c] > 0 if dense is None else None  # items nobody in c has are no signal
        chosen = _top(scores[c], top, mask) if sizes[c] else np.array([], dtype=np.int64)
        rows = labels == c
        side_means = {}
        for name, column in side_columns.items():
            picked = column[rows]
            picked = picked[~np.isnan(picked)]
            side_means[name] = float(picked.mean()) if picked.size else float("nan")
        profiles.append(
            ClusterProfile(
                cluster=c,
                size=int(sizes[c]),
                share=float(sizes[c] / n),
                top=[(names[j], float(values[c, j]), float(scores[c, j])) for j in chosen],
                side_means=side_means,
                kind="items" if dense is None else "features",
            )
        )
    return profiles
