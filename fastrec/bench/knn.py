"""``fastrec bench knn``: ItemKNN and UserKNN, fit plus top-10 for every user, beside implicit.

Every contender starts from the same training split (a random 80% of the
ratings of the size) and is timed on fitting k=50 cosine neighbours and then
recommending 10 items to every user, training items excluded.  Its lists are
scored against the held-out 20% (every held-out rating relevant) with
``fastrec.metrics.ranking_metrics``, outside the timing: precision@10 and
NDCG@10.

Peer, skipped when not installed: implicit's ``CosineRecommender`` (item-item
with the same cosine, no shrink), beside ItemKNN.  Ratios are against fastrec's
ItemKNN on its first backend.

``--accuracy`` runs a MovieLens 100K check instead: precision, NDCG, MAP,
recall and coverage at 10 of ItemKNN, UserKNN and MatrixFactorization on the
GroupLens u1 split (u1.test is rows 1..20000 of ``u.data``, u1.base the rest;
every u1.test rating counts as relevant), a sanity check rather than a tuned
comparison.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import (
    RATING_SIZES,
    TINY,
    blas_threads,
    format_table,
    make_size_ratings,
    ml100k_path,
    ml100k_ratings,
    shape_text,
    sizes_with_ml100k,
)

NAME = "knn"
TITLE = "neighbourhood recommenders (fit + top-10 for every user)"
UNIT = "s"
SIZES = dict(RATING_SIZES)
DEFAULT_SIZES = ("S", "M", "ml-100k")
MODELS = ("ItemKNN", "UserKNN")
IMPLICIT = "implicit CosineRecommender"
TOP_N = 10


# --- contenders: each maps (train users x items CSR, k, threads) -> (users, 10) item table ---


def _fastrec(model: str, backend: str) -> Callable[[sp.csr_matrix, int, int], np.ndarray]:
    def run(train: sp.csr_matrix, k: int, threads: int) -> np.ndarray:
        import fastrec

        fitted = getattr(fastrec, model)(k=k, n_threads=threads, backend=backend).fit(train)
        return fitted.recommend(np.arange(train.shape[0]), n=TOP_N)[0]

    return run


def _implicit(train: sp.csr_matrix, k: int, threads: int) -> np.ndarray:
    import warnings

    from implicit.nearest_neighbours import CosineRecommender

    with warnings.catch_warnings():  # implicit warns about its own internal format conversions
        warnings.simplefilter("ignore")
        model = CosineRecommender(K=k, num_threads=threads)
        model.fit(train, show_progress=False)
        ids, _ = model.recommend(np.arange(train.shape[0]), train, N=TOP_N, filter_already_liked_items=True)
    return ids


def _runner(contender: str) -> Callable[[sp.csr_matrix, int, int], np.ndarray]:
    if contender == IMPLICIT:
        return _implicit
    _, model, backend = contender.split(" ")  # "fastrec ItemKNN cpp"
    return _fastrec(model, backend)


# --- the suite interface ---


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument("--k", type=int, default=50, help="neighbours per item / user (default 50)")
    parser.add_argument(
        "--ml100k",
        "--data",
        dest="ml100k",
        type=Path,
        default=None,
        help="MovieLens 100K folder or u.data, run as size 'ml-100k' and used by "
        "--accuracy (default: looked up in $FASTREC_DATA and ../shared/data)",
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="run the MovieLens 100K u1 accuracy check instead"
    )


def sizes(options: dict[str, Any]) -> dict[str, str]:
    """The synthetic sizes, and MovieLens 100K when it is on this machine."""
    return sizes_with_ml100k(SIZES, options)


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """ItemKNN then UserKNN on each fastrec backend, then implicit when installed."""
    found = [
        suite.Contender(f"fastrec {model} {backend}", peer=False)
        for model in MODELS
        for backend in options["backends"]
    ]
    if options["peers"] and suite.installed("implicit"):
        found.append(suite.Contender(IMPLICIT))
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Split the ratings of ``size`` 80/20 at random and write both parts to ``folder``."""
    from fastrec.datasets import train_test_split

    R = ml100k_ratings(options.get("ml100k")) if size == "ml-100k" else make_size_ratings(size)
    train, test = train_test_split(R.tocsr(), 0.2, seed=0)
    sp.save_npz(folder / "train.npz", train)
    sp.save_npz(folder / "test.npz", test)
    return {
        "train": str(folder / "train.npz"),
        "test": str(folder / "test.npz"),
        "k": options["k"],
        "shape": f"{shape_text(R)}; {train.nnz:,} train, {test.nnz:,} test",
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Warm up on tiny data, then time one fit + recommend-all and score its lists."""
    from fastrec.datasets import make_ratings
    from fastrec.metrics import ranking_metrics

    train = sp.load_npz(data["train"]).tocsr()
    test = sp.load_npz(data["test"]).tocsr()
    k = int(data["k"])
    run = _runner(contender)
    with blas_threads(threads):
        run(make_ratings(*TINY, seed=1), k, threads)  # JIT loading, thread pools
        seconds, cpu, recs = suite.timed(lambda: run(train, k, threads))
    scores = ranking_metrics(np.asarray(recs, dtype=np.int64), test, TOP_N)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": {
            f"precision@{TOP_N}": round(scores["precision"], 4),
            f"ndcg@{TOP_N}": round(scores["ndcg"], 4),
        },
    }


# --- MovieLens 100K accuracy (--accuracy) ---


def accuracy(path: Path, threads: int) -> str:
    """A Markdown table of the u1 split's ranking metrics of ItemKNN, UserKNN and MF."""
    import fastrec
    from fastrec.bench.mf_accuracy import load_ml100k

    table = load_ml100k(path)
    base, test = table[20_000:], table[:20_000]
    train = (base[:, 0], base[:, 1], base[:, 2].astype(np.float32))
    held = (test[:, 0], test[:, 1], test[:, 2].astype(np.float32))
    rows = []
    for model in (
        fastrec.ItemKNN(k=50, n_threads=threads),
        fastrec.UserKNN(k=50, n_threads=threads),
        fastrec.MatrixFactorization(random_state=0, n_threads=threads),
    ):
        start = time.perf_counter()
        result = fastrec.evaluate(model, train, held, k=10)
        rows.append(
            [
                type(model).__name__,
                result["precision@10"],
                result["ndcg@10"],
                result["map@10"],
                result["recall@10"],
                result["coverage@10"],
                result.get("rmse", float("nan")),
                result["n_users"],
                time.perf_counter() - start,
            ]
        )
    return format_table(
        [
            "model",
            "precision@10",
            "ndcg@10",
            "map@10",
            "recall@10",
            "coverage@10",
            "rmse",
            "users",
            "fit+eval s",
        ],
        rows,
    )


def accuracy_main(argv: Sequence[str], prog: str) -> int:
    """``--accuracy [--data PATH] [--threads N]``: print the u1 table."""
    import fastrec
    from fastrec.bench._common import Parser

    parser = Parser(prog=f"{prog} --accuracy", description=__doc__.split("\n\n")[-1])
    parser.add_argument(
        "--ml100k", "--data", dest="ml100k", default=None, help="MovieLens 100K folder or u.data"
    )
    parser.add_argument("--threads", type=int, default=fastrec.get_num_threads())
    args = parser.parse_args([a for a in argv if a != "--accuracy"])
    path = ml100k_path(args.ml100k)
    if path is None:
        where = (
            f"at {args.ml100k}"
            if args.ml100k is not None
            else "in $FASTREC_DATA or ../shared/data; pass --data PATH"
        )
        print(f"{prog}: error: no MovieLens 100K u.data {where}", file=sys.stderr)
        return 2
    print(f"# MovieLens 100K u1 split ({path}), {args.threads} threads\n")
    print(accuracy(path, args.threads))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench knn") -> int:
    """Run this benchmark alone; ``--accuracy`` runs the MovieLens 100K check instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--accuracy" in argv:
        return accuracy_main(argv, prog)
    return suite.main([NAME], argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
