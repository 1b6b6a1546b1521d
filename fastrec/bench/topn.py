"""``fastrec bench topn``: top-N unseen items for every user of a factor model, beside its peers.

The task: the ``n`` (default 10) best items by ``U @ V.T`` for every user of a
synthetic ratings matrix (sizes M and L by default; XS is a smoke test), never
returning an item the user rated.  U and V are random float32 factors (f = 64,
seed 0); the ratings CSR is the exclusion.  Only the scoring is timed: the
factors are loaded and the peers' models built before it.

Contenders: fastrec ``topn`` on each backend; implicit's
``AlternatingLeastSquares.recommend`` over all users with
``filter_already_liked_items=True`` (``implicit.cpu.als`` with its factors set
to U and V; ``num_threads`` is the thread count and the BLAS is held to one
thread, as implicit asks); numpy, blocks of 2048 users: ``U_b @ V.T`` (BLAS
with the thread count), seen items set to -inf, ``argpartition`` and a sort of
the n survivors.

OpenBLAS picks its kernels when it loads, from ``OPENBLAS_CORETYPE``: the peers
run once per setting (``--coretypes``; ``default`` removes the variable, which
leaves the choice to OpenBLAS).  The "BLAS" column names the kernels a peer's
process loaded.  ``--simd avx2,avx512`` runs fastrec at each SIMD level and the
peers under the OpenBLAS core of the same instruction set instead (Haswell for
avx2, SkylakeX for avx512, Nehalem for baseline).

Accuracy, on a sample of users (``--check-sample``, 300 by default) compared
with exact float64 scores: "precision" is the fraction of the expected items
(n per user, fewer when fewer are unseen) that were returned and whose exact
score reaches the exact n-th best unseen score, less 1e-5 times the user's
largest score in magnitude (ties and float32 rounding); "seen returned" counts
returned items the user had rated.  They should read 1 and 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, make_size_ratings, shape_text

NAME = "topn"
TITLE = "top-N scoring of a factor model (the best unseen items of every user, f=64)"
UNIT = "s"
SIZES = dict(RATING_SIZES)
DEFAULT_SIZES = ("M", "L")
CORETYPES = ("default", "SkylakeX")
FACTORS = 64
TOP_N = 10
NUMPY_BLOCK = 2048  # users per BLAS call of the numpy contender

# A prepared run: zero arguments, returns (items, scores), each (n_users, n).
Run = Callable[[], tuple[np.ndarray, np.ndarray]]


def make_factors(
    n_users: int, n_items: int, factors: int = FACTORS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random user and item factors, N(0, 0.1^2).

    Returns
    -------
    U : ndarray of shape (n_users, factors), float32
    V : ndarray of shape (n_items, factors), float32
    """
    rng = np.random.default_rng(seed)
    U = (rng.normal(size=(n_users, factors)) * 0.1).astype(np.float32)
    V = (rng.normal(size=(n_items, factors)) * 0.1).astype(np.float32)
    return U, V


# --- contenders: (U, V, seen CSR, n, threads) -> a prepared Run ---


def _fastrec(backend: str) -> Callable[[np.ndarray, np.ndarray, sp.csr_matrix, int, int], Run]:
    def prepare(U: np.ndarray, V: np.ndarray, seen: sp.csr_matrix, n: int, threads: int) -> Run:
        import fastrec

        return lambda: fastrec.topn(U, V, n, exclude=seen, n_threads=threads, backend=backend)

    return prepare


def _implicit(U: np.ndarray, V: np.ndarray, seen: sp.csr_matrix, n: int, threads: int) -> Run:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # implicit checks the BLAS threads here
        model = AlternatingLeastSquares(factors=U.shape[1], num_threads=threads)
    model.user_factors = U
    model.item_factors = V
    users = np.arange(U.shape[0])

    def run() -> tuple[np.ndarray, np.ndarray]:
        with threadpool_limits(limits=1, user_api="blas"):
            return model.recommend(users, seen, N=n, filter_already_liked_items=True)

    return run


def _numpy(U: np.ndarray, V: np.ndarray, seen: sp.csr_matrix, n: int, threads: int) -> Run:
    from threadpoolctl import threadpool_limits

    VT = np.ascontiguousarray(V.T)

    def run() -> tuple[np.ndarray, np.ndarray]:
        n_users = U.shape[0]
        ids = np.empty((n_users, n), dtype=np.int64)
        scores = np.empty((n_users, n), dtype=U.dtype)
        with threadpool_limits(limits=threads, user_api="blas"):
            for lo in range(0, n_users, NUMPY_BLOCK):
                hi = min(lo + NUMPY_BLOCK, n_users)
                S = U[lo:hi] @ VT
                block = seen[lo:hi]
                S[np.repeat(np.arange(hi - lo), np.diff(block.indptr)), block.indices] = -np.inf
                top = np.argpartition(-S, n - 1, axis=1)[:, :n]
                top_scores = np.take_along_axis(S, top, axis=1)
                order = np.lexsort((top, -top_scores), axis=1)  # best first, ties to the smaller id
                ids[lo:hi] = np.take_along_axis(top, order, axis=1)
                scores[lo:hi] = np.take_along_axis(top_scores, order, axis=1)
        return ids, scores

    return run


CONTENDERS = {  # dispatch key -> (U, V, seen, n, threads) -> Run
    "fastrec cpp": _fastrec("cpp"),
    "fastrec numba": _fastrec("numba"),
    "fastrec numpy": _fastrec("numpy"),
    "implicit": _implicit,
    "numpy": _numpy,
}
PEERS = {"implicit": "implicit", "numpy": "numpy"}  # peer -> module that must be installed


def agreement(
    U: np.ndarray,
    V: np.ndarray,
    seen: sp.csr_matrix,
    sample: np.ndarray,
    ids: np.ndarray,
    n: int,
    scores: np.ndarray | None = None,
    rel_tol: float = 1e-5,
) -> tuple[float, int]:
    """(precision, seen items returned) of the lists ``ids`` of the users ``sample``.

    Parameters
    ----------
    U, V : ndarray of shape (n_users, f) and (n_items, f)
        The factors scored.
    seen : csr_matrix of shape (n_users, n_items)
        The excluded items of every user.
    sample : ndarray of shape (s,), int
        The users checked.
    ids : ndarray of shape (s, n), int
        Their returned lists; -1 is an empty slot.
    n : int
        Items asked for per user.
    scores : ndarray of shape (s, n), optional
        The returned scores; a slot scored -inf counts as empty.
    rel_tol : float
        Slack for ties and float32 rounding, relative to the user's largest score.

    Returns
    -------
    precision : float
        Correct distinct returned items over the items expected (n per user, or
        the user's unseen count when smaller).  An item is correct when it is
        unseen and its exact float64 score reaches the exact n-th best unseen
        score less ``rel_tol`` times the user's largest score in magnitude.
    seen_returned : int
        Returned items that the user had rated.
    """
    S = U[sample].astype(np.float64) @ V.astype(np.float64).T
    scale = np.abs(S).max(axis=1, keepdims=True)
    rows = seen[sample]
    mask = np.zeros(S.shape, dtype=bool)
    mask[np.repeat(np.arange(sample.size), np.diff(rows.indptr)), rows.indices] = True
    expected = np.minimum(n, S.shape[1] - mask.sum(axis=1))
    ranked = -np.sort(-np.where(mask, -np.inf, S), axis=1)
    # the exact k-th best unseen score, k = expected; +inf where nothing is expected
    nth = np.where(expected > 0, ranked[np.arange(sample.size), np.maximum(expected - 1, 0)], np.inf)[:, None]
    got = np.asarray(ids, dtype=np.int64)
    valid = got >= 0
    if scores is not None:
        valid &= np.asarray(scores) > -np.inf
    safe = np.maximum(got, 0)
    seen_hit = valid & np.take_along_axis(mask, safe, axis=1)
    correct = valid & ~seen_hit & (np.take_along_axis(S, safe, axis=1) >= nth - rel_tol * scale)
    ordered = np.sort(np.where(correct, got, -1), axis=1)  # a repeated correct item counts once
    repeats = int(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).sum())
    total = int(expected.sum())
    precision = (int(correct.sum()) - repeats) / total if total else 1.0
    return float(precision), int(seen_hit.sum())


def _blas_kernels() -> str:
    """The BLAS libraries this process loaded and the kernels each picked."""
    from threadpoolctl import threadpool_info

    return (
        "; ".join(
            f"{i.get('internal_api')} {i.get('architecture')}"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
        or "-"
    )


# --- the suite interface ---


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument("--n", type=_positive, default=TOP_N, help="items per user (default 10)")
    parser.add_argument(
        "--check-sample",
        "--sample",
        dest="check_sample",
        type=_positive,
        default=300,
        help="users whose lists are checked against exact scores (default 300)",
    )
    parser.add_argument(
        "--coretypes",
        nargs="*",
        default=list(CORETYPES),
        help="OPENBLAS_CORETYPE settings the peers run under; 'default' removes "
        "the variable (default: %(default)s; none: inherit it)",
    )


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's backends; implicit and numpy under every ``OPENBLAS_CORETYPE``."""
    found = [suite.Contender(f"fastrec {b}", peer=False) for b in options["backends"]]
    if options["peers"]:
        coretypes = options.get("coretypes") or [None]
        for peer, module in PEERS.items():
            if not suite.installed(module):
                continue
            for coretype in coretypes:
                label = peer if coretype is None else f"{peer} [{coretype}]"
                value = None if coretype == "default" else coretype
                env = {} if coretype is None else {"OPENBLAS_CORETYPE": value}
                found.append(suite.Contender(label, key=peer, env=env, blas=True))
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Write the factors and the ratings (the exclusion) of ``size``; draw the users checked."""
    seen = make_size_ratings(size).tocsr()
    U, V = make_factors(*seen.shape)
    np.save(folder / "u.npy", U)
    np.save(folder / "v.npy", V)
    sp.save_npz(folder / "seen.npz", seen)
    n_users = seen.shape[0]
    sample = np.sort(
        np.random.default_rng(1).choice(n_users, min(options["check_sample"], n_users), replace=False)
    )
    return {
        "u": str(folder / "u.npy"),
        "v": str(folder / "v.npy"),
        "seen": str(folder / "seen.npz"),
        "n": options["n"],
        "sample": sample.tolist(),
        "shape": f"{shape_text(seen)} (excluded); f={FACTORS}, top-{options['n']}",
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run once untimed (JIT, thread pools, page faults), time one run, check the sample."""
    U, V = np.load(data["u"]), np.load(data["v"])
    seen = sp.load_npz(data["seen"]).tocsr()
    n = int(data["n"])
    run = CONTENDERS[contender](U, V, seen, n, threads)
    run()
    seconds, cpu, (ids, scores) = suite.timed(run)
    sample = np.asarray(data["sample"], dtype=np.int64)
    precision, seen_returned = agreement(
        U, V, seen, sample, np.asarray(ids)[sample], n, np.asarray(scores)[sample]
    )
    quality: dict[str, Any] = {"precision": round(precision, 4), "seen returned": seen_returned}
    if not contender.startswith("fastrec "):  # fastrec does not call a BLAS here
        quality["BLAS"] = _blas_kernels()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": quality,
        "work": {"GFLOP/s": 2.0 * U.shape[0] * V.shape[0] * U.shape[1] / 1e9},
    }


def main(argv: list[str] | None = None, prog: str = "python -m fastrec.bench topn") -> int:
    """Run this benchmark alone (see ``--help``)."""
    return suite.main([NAME], sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
