"""``fastrec bench metrics``: every ranking metric at 10 of a top-10 table for every user.

``fastrec.metrics.ranking_metrics`` (precision, recall, F1, NDCG, MAP, hit rate
and coverage in one pass) of a recommendation table with one row of 10 items
per user of the size, against a leave-2-out test split (2 held-out ratings per
user).  The lists are popularity-biased draws, so that a realistic share of
them hit.  The contenders are fastrec's backends (``--backends numpy`` adds the
reference); no peer computes these metrics in one call.  Every backend must
report the same NDCG@10.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, make_size_ratings, shape_text

NAME = "metrics"
TITLE = "ranking metrics at 10 of a table for every user"
UNIT = "s"
SIZES = dict(RATING_SIZES)
DEFAULT_SIZES = ("M", "L")
TOP_N = 10


def popular_lists(R: sp.csr_matrix, n: int, seed: int = 0) -> np.ndarray:
    """(users, n) int64 table: each user's first ``n`` distinct items of 4n popularity-weighted draws.

    Rows with fewer distinct draws are padded with -1.
    """
    rng = np.random.default_rng(seed)
    popularity = np.bincount(R.indices, minlength=R.shape[1]).astype(np.float64) + 1.0
    draws = np.sort(rng.choice(R.shape[1], size=(R.shape[0], 4 * n), p=popularity / popularity.sum()), axis=1)
    fresh = np.concatenate([np.ones((R.shape[0], 1), bool), draws[:, 1:] != draws[:, :-1]], axis=1)
    draws[~fresh] = -1
    order = np.argsort(~fresh, axis=1, kind="stable")[:, :n]  # distinct draws first
    return np.take_along_axis(draws, order, axis=1).astype(np.int64)


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's backends."""
    return [suite.Contender(f"fastrec {b}", peer=False) for b in options["backends"]]


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Write the leave-2-out test matrix of ``size`` and the table of lists to ``folder``."""
    from fastrec.datasets import train_test_split

    R = make_size_ratings(size).tocsr()
    _, test = train_test_split(R, method="leave_k_out", k=2, seed=0)
    recs = popular_lists(R, TOP_N)
    sp.save_npz(folder / "test.npz", test)
    np.save(folder / "recs.npy", recs)
    return {
        "test": str(folder / "test.npz"),
        "recs": str(folder / "recs.npy"),
        "shape": f"{shape_text(R)}; a {recs.shape[0]:,} x {TOP_N} table, {test.nnz:,} test items",
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Warm up on a few rows, then time one ``ranking_metrics`` call over every user."""
    from fastrec.metrics import ranking_metrics

    test = sp.load_npz(data["test"]).tocsr()
    recs = np.load(data["recs"])
    backend = contender.split(" ", 1)[1]
    ranking_metrics(recs[:100], test[:100], TOP_N, n_threads=threads, backend=backend)  # warm-up
    seconds, cpu, result = suite.timed(
        lambda: ranking_metrics(recs, test, TOP_N, n_threads=threads, backend=backend)
    )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": {f"ndcg@{TOP_N}": round(result["ndcg"], 6), "users": result["n_users"]},
    }


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench metrics") -> int:
    """Run this benchmark alone (see ``--help``)."""
    return suite.main([NAME], sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
