"""``python -m fastrec.bench knn``: neighbourhood recommenders and ranking metrics, timed and checked.

Three parts:

* **fit + recommend-all**: ItemKNN and UserKNN (k=50 neighbours, 10 items per
  user, training items excluded) on synthetic data of the given sizes and on
  MovieLens 100K, with implicit's ``CosineRecommender`` (item-item, the same
  cosine without shrink) beside ItemKNN when installed.  Contenders run
  interleaved, repeat by repeat.
* **metrics**: ``ranking_metrics`` (all six metrics and coverage at 10) of a
  recommendation table for every user of size L (about 70k users) against a
  leave-2-out test split, per backend.
* **accuracy** (``--accuracy``): precision@10 and NDCG@10 of ItemKNN, UserKNN and
  MatrixFactorization on the GroupLens u1 split of MovieLens 100K (u1.test is
  rows 1..20000 of ``u.data``, u1.base the rest; every u1.test rating counts
  as relevant), a sanity check rather than a tuned comparison.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench._common import Measurement, blas_threads, format_table, machine_summary
from fastrec.bench.mf_accuracy import find_ml100k, load_ml100k


def _fastrec(cls_name: str, backend: str) -> Callable[[sp.csr_matrix, int, int], Any]:
    def run(R: sp.csr_matrix, k: int, threads: int) -> Any:
        import fastrec

        model = getattr(fastrec, cls_name)(k=k, n_threads=threads, backend=backend).fit(R)
        return model.recommend(np.arange(R.shape[0]), n=10)[0]

    return run


def _implicit(R: sp.csr_matrix, k: int, threads: int) -> Any:
    import warnings

    from implicit.nearest_neighbours import CosineRecommender

    with warnings.catch_warnings():  # implicit warns about its own internal format conversions
        warnings.simplefilter("ignore")
        model = CosineRecommender(K=k, num_threads=threads)
        model.fit(R, show_progress=False)
        ids, _ = model.recommend(np.arange(R.shape[0]), R, N=10, filter_already_liked_items=True)
    return ids


def contenders(backends: list[str], peers: bool) -> dict[str, Callable]:
    found: dict[str, Callable] = {}
    for cls_name in ("ItemKNN", "UserKNN"):
        for backend in backends:
            found[f"fastrec {cls_name} {backend}"] = _fastrec(cls_name, backend)
    if peers:
        try:
            import implicit  # noqa: F401

            found["implicit CosineRecommender"] = _implicit
        except ImportError:
            pass
    return found


def ml100k_matrix(path: Path) -> sp.csr_matrix:
    table = load_ml100k(path)
    return sp.csr_matrix((table[:, 2].astype(np.float32), (table[:, 0] - 1, table[:, 1] - 1)))


def time_recommenders(sizes: list[str], threads: int, repeats: int, backends: list[str], peers: bool,
                      ml100k: Path | None) -> list[Measurement]:
    from fastrec.datasets import make_benchmark_ratings

    data = [(size, make_benchmark_ratings(size)) for size in sizes]
    if ml100k is not None:
        data.append(("ml-100k", ml100k_matrix(ml100k)))
    found = contenders(backends, peers)
    out = []
    for name, R in data:
        results = {c: Measurement(c, name, threads, []) for c in found}
        with blas_threads(threads):
            for fn in found.values():  # warm-up: JIT compilation, first-touch allocations
                fn(R, 50, threads)
            for rep in range(repeats):
                names = list(found)
                names = names[rep % len(names):] + names[: rep % len(names)]
                for contender in names:
                    start = time.perf_counter()
                    found[contender](R, 50, threads)
                    results[contender].times.append(time.perf_counter() - start)
        for m in results.values():
            m.extra["shape"] = f"{R.shape[0]}x{R.shape[1]}, nnz {R.nnz}"
            print(f"  {name:8s} {m.contender:32s} median {m.median:7.3f} s", flush=True)
            out.append(m)
    return out


def time_metrics(threads: int, repeats: int, backends: list[str]) -> list[Measurement]:
    from fastrec.datasets import make_benchmark_ratings, train_test_split
    from fastrec.metrics import ranking_metrics

    R = make_benchmark_ratings("L")
    _, test = train_test_split(R, method="leave_k_out", k=2, seed=0)
    rng = np.random.default_rng(0)
    # Popularity-biased lists: the first 10 distinct items of 40 weighted draws per user.
    popularity = np.bincount(R.indices, minlength=R.shape[1]).astype(np.float64) + 1.0
    draws = np.sort(rng.choice(R.shape[1], size=(R.shape[0], 40), p=popularity / popularity.sum()), axis=1)
    fresh = np.concatenate([np.ones((R.shape[0], 1), bool), draws[:, 1:] != draws[:, :-1]], axis=1)
    draws[~fresh] = -1
    order = np.argsort(~fresh, axis=1, kind="stable")[:, :10]
    recs = np.take_along_axis(draws, order, axis=1)
    out = []
    for backend in backends:
        m = Measurement(f"ranking_metrics {backend}", f"L ({R.shape[0]} users)", threads, [])
        ranking_metrics(recs, test, 10, n_threads=threads, backend=backend)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            result = ranking_metrics(recs, test, 10, n_threads=threads, backend=backend)
            m.times.append(time.perf_counter() - start)
        m.extra["shape"] = f"{recs.shape[0]}x10 table, {test.nnz} test items"
        print(f"  {m.task:20s} {m.contender:32s} median {m.median:7.3f} s  ({result['n_users']} users)",
              flush=True)
        out.append(m)
    return out


def accuracy(path: Path, threads: int) -> str:
    import fastrec

    table = load_ml100k(path)
    base, test = table[20_000:], table[:20_000]
    train = (base[:, 0], base[:, 1], base[:, 2].astype(np.float32))
    held = (test[:, 0], test[:, 1], test[:, 2].astype(np.float32))
    rows = []
    for model in (fastrec.ItemKNN(k=50, n_threads=threads), fastrec.UserKNN(k=50, n_threads=threads),
                  fastrec.MatrixFactorization(seed=0, n_threads=threads)):
        start = time.perf_counter()
        result = fastrec.evaluate(model, train, held, k=10)
        rows.append([type(model).__name__, result["precision@10"], result["ndcg@10"],
                     result["map@10"], result["recall@10"], result["coverage@10"],
                     result.get("rmse", float("nan")), result["n_users"], time.perf_counter() - start])
    return format_table(["model", "precision@10", "ndcg@10", "map@10", "recall@10", "coverage@10",
                         "rmse", "users", "fit+eval s"], rows)


def report(measurements: list[Measurement]) -> str:
    rows = [[m.task, m.extra["shape"], m.threads, m.contender, m.median, m.best,
             ", ".join(f"{t:.3g}" for t in m.times)] for m in measurements]
    return format_table(["data", "shape", "threads", "contender", "median s", "min s", "times"], rows)


def main(argv: list[str] | None = None) -> int:
    import fastrec

    parser = argparse.ArgumentParser(prog="python -m fastrec.bench knn",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=["M"], choices=["S", "M", "L"])
    parser.add_argument("--threads", type=int, default=fastrec.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=None, choices=["cpp", "numba", "numpy"])
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false")
    parser.add_argument("--accuracy", action="store_true", help="also report u1 precision/NDCG@10")
    parser.add_argument("--data", default=None, help="folder or u.data of MovieLens 100K")
    args = parser.parse_args(argv)
    backends = args.backends or [b for b in ("cpp", "numba") if b in fastrec.available_backends()]
    path = find_ml100k(args.data)

    print(f"# knn recommenders, {args.threads} threads: {machine_summary()}", flush=True)
    measurements = time_recommenders(args.sizes, args.threads, args.repeats, backends, args.peers, path)
    if args.metrics:
        measurements += time_metrics(args.threads, args.repeats, backends)
    print()
    print(report(measurements))
    if args.accuracy:
        if path is None:
            print("\nMovieLens 100K not found (--data, $FASTREC_DATA, ../shared/data): no accuracy run.")
        else:
            print(f"\n# MovieLens 100K u1 split ({path})\n")
            print(accuracy(path, args.threads))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(os.sys.argv[1:]))
