"""Synthetic rating data with power-law activity and popularity and a low-rank signal."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V

# The three benchmark sizes (users, items, ratings): MovieLens 100K, 1M and 10M shapes.
SIZES = {
    "S": (943, 1_682, 100_000),
    "M": (6_040, 3_706, 1_000_000),
    "L": (69_878, 10_677, 10_000_000),
}


class _PowerLaw:
    """Draws ids whose probability is proportional to (rank + 10) ** -exponent.

    Ranks are drawn by inverting the continuous power law's CDF (fast and
    vectorised) and mapped to ids through a random permutation, so popularity is
    not tied to id order.
    """

    OFFSET = 10.0

    def __init__(self, n: int, exponent: float, rng: np.random.Generator):
        self.n = n
        self.exponent = exponent
        self.ids = rng.permutation(n)

    def _cdf_scale(self, x: np.ndarray | float) -> np.ndarray | float:
        if abs(self.exponent - 1.0) < 1e-12:
            return np.log(x)
        return x ** (1.0 - self.exponent)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        lo = self._cdf_scale(self.OFFSET)
        hi = self._cdf_scale(self.n + self.OFFSET)
        u = lo + rng.random(size) * (hi - lo)
        if abs(self.exponent - 1.0) < 1e-12:
            x = np.exp(u)
        else:
            x = u ** (1.0 / (1.0 - self.exponent))
        ranks = np.minimum((x - self.OFFSET).astype(np.int64), self.n - 1)
        return self.ids[ranks]


def make_ratings(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    rank: int = 10,
    noise: float = 0.75,
    user_exponent: float = 0.75,
    item_exponent: float = 1.0,
    seed: int = 0,
    dtype: type = np.float32,
) -> sp.csr_matrix:
    r"""A users x items CSR matrix of explicit ratings on the 1-5 star scale.

    Who rated what follows power laws: the probability that user ``u`` (item
    ``i``) takes part in a rating is proportional to ``(rank + 10) ** -exponent``
    of its activity (popularity) rank, with ranks assigned to ids at random.
    Pairs are distinct (popular pairs drawn twice are kept once, which flattens
    the very top of the curves a little).  Values are

    .. math:: r_{ui} = \mathrm{clip}(\mathrm{round}(3.55 + b_u + b_i + p_u \cdot q_i + \varepsilon), 1, 5)

    with :math:`b_u \sim N(0, 0.35^2)`, :math:`b_i \sim N(0, 0.45^2)`,
    :math:`p_u, q_i \sim N(0, (0.8/\sqrt{\mathrm{rank}})^2 I)` and
    :math:`\varepsilon \sim N(0, \mathrm{noise}^2)`.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        Shape and number of stored ratings (at most ``n_users * n_items``).
    rank : int, default 10
        Rank of the interaction signal ``p_u . q_i``.
    noise : float, default 0.75
        Standard deviation of the noise before rounding.
    user_exponent, item_exponent : float
        Power-law exponents of user activity and item popularity.
    seed : int, default 0
        Same seed, same matrix.
    dtype : float32 or float64

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_users, n_items)
        Canonical CSR (sorted indices, no duplicates) with ``n_ratings`` entries.
    """
    n_users = V.check_int(n_users, "n_users", minimum=1)
    n_items = V.check_int(n_items, "n_items", minimum=1)
    n_ratings = V.check_int(n_ratings, "n_ratings", minimum=0)
    rank = V.check_int(rank, "rank", minimum=1)
    noise = V.check_float(noise, "noise", minimum=0.0)
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} exceeds n_users * n_items = {n_users * n_items}; "
            "lower n_ratings or enlarge the matrix."
        )
    rng = np.random.default_rng(seed)
    user_law = _PowerLaw(n_users, user_exponent, rng)
    item_law = _PowerLaw(n_items, item_exponent, rng)

    # Oversample pairs and keep the distinct ones; top up with draws sized by the
    # fraction of fresh pairs the last draw gave (popular pairs saturate), then
    # keep a random subset of exactly n_ratings.
    def distinct(values: np.ndarray) -> np.ndarray:  # sorted; faster than np.unique here
        values = np.sort(values)
        return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values

    def draw_keys(count: int) -> np.ndarray:
        users = user_law.draw(count, rng)
        return distinct(users * np.int64(n_items) + item_law.draw(count, rng))

    def not_in(sorted_keys: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(sorted_keys, candidates)
        pos[pos == sorted_keys.size] = 0
        return candidates[sorted_keys[pos] != candidates] if sorted_keys.size else candidates

    keys = draw_keys(max(1024, int(n_ratings * 1.25)))
    found, gain = keys.size, keys.size / max(1024, int(n_ratings * 1.25))
    extra: list[np.ndarray] = []
    for _ in range(200):
        missing = n_ratings - found
        if missing <= 0:
            break
        fresh = not_in(keys, draw_keys(max(4096, int(1.5 * missing / max(gain, 1e-3)))))
        for earlier in extra:
            fresh = not_in(earlier, fresh)
        gain = max(fresh.size, 1) / max(4096, int(1.5 * missing / max(gain, 1e-3)))
        extra.append(fresh)
        found += fresh.size
    else:  # pragma: no cover - only for extreme exponents on tiny matrices
        raise ValueError("could not draw enough distinct pairs; lower the exponents or n_ratings.")
    if extra:
        keys = np.sort(np.concatenate([keys, *extra]))  # the parts are disjoint
    if keys.size > n_ratings:
        keys = np.sort(keys[rng.permutation(keys.size)[:n_ratings]])
    users, items = np.divmod(keys, n_items)

    scale = 0.8 / np.sqrt(rank)
    user_factors = rng.normal(0.0, scale, size=(n_users, rank))
    item_factors = rng.normal(0.0, scale, size=(n_items, rank))
    user_bias = rng.normal(0.0, 0.35, size=n_users)
    item_bias = rng.normal(0.0, 0.45, size=n_items)
    signal = np.einsum("ij,ij->i", user_factors[users], item_factors[items])
    values = 3.55 + user_bias[users] + item_bias[items] + signal
    values += rng.normal(0.0, noise, size=values.size)
    values = np.clip(np.round(values), 1, 5).astype(dtype)

    # keys are sorted and distinct, so (users, items) is already in CSR order
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    index_dtype = V.index_dtype_for(n_items, n_ratings)
    return sp.csr_matrix(
        (values, items.astype(index_dtype), indptr.astype(index_dtype)), shape=(n_users, n_items)
    )


def make_benchmark_ratings(size: str, seed: int = 0) -> sp.csr_matrix:
    """The ratings matrix of benchmark size ``"S"``, ``"M"`` or ``"L"`` (see ``SIZES``)."""
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {sorted(SIZES)}.")
    n_users, n_items, n_ratings = SIZES[size]
    return make_ratings(n_users, n_items, n_ratings, seed=seed)


def make_user_embeddings(
    n_users: int,
    n_features: int,
    n_segments: int = 8,
    *,
    cluster_std: float = 1.0,
    center_spread: float = 4.0,
    seed: int = 0,
    dtype: type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """User embeddings drawn from a Gaussian mixture (a ``make_blobs`` for segmentation).

    Segment centres are drawn from ``N(0, center_spread^2 I)``; segment sizes
    from a Dirichlet(2, ..., 2) split of the users (so segments are unequal but
    none is tiny); every user is its segment's centre plus ``N(0, cluster_std^2 I)``.

    Parameters
    ----------
    n_users, n_features : int
        Shape of the embedding matrix.
    n_segments : int, default 8
        Number of true segments (mixture components).
    cluster_std : float, default 1.0
        Standard deviation of the users around their segment centre.
    center_spread : float, default 4.0
        Standard deviation of the segment centres around the origin.
    seed : int, default 0
        Same seed, same data.
    dtype : float32 or float64

    Returns
    -------
    X : ndarray, shape (n_users, n_features), of ``dtype``
    segments : ndarray of int64, shape (n_users,)
        The true segment of every user.
    """
    n_users = V.check_int(n_users, "n_users", minimum=1)
    n_features = V.check_int(n_features, "n_features", minimum=1)
    n_segments = V.check_int(n_segments, "n_segments", minimum=1)
    cluster_std = V.check_float(cluster_std, "cluster_std", minimum=0.0)
    center_spread = V.check_float(center_spread, "center_spread", minimum=0.0)
    if np.dtype(dtype) not in V.FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}.")
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, center_spread, size=(n_segments, n_features))
    shares = rng.dirichlet(np.full(n_segments, 2.0))
    segments = rng.choice(n_segments, size=n_users, p=shares)
    X = centers[segments] + rng.normal(0.0, cluster_std, size=(n_users, n_features))
    return X.astype(dtype), segments.astype(np.int64)
