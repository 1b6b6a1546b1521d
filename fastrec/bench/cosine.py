"""``python -m fastrec.bench cosine``: item-item cosine top-k, fastrec beside its peers.

Every contender starts from the same users x items CSR (float32 ratings) and
ends with each item's top-k neighbours, the item itself included (as
sparse_dot_topn and implicit return it, so fastrec runs with
``exclude_self=False``).  Normalisation and transposes are inside the timing.
Contenders run interleaved, repeat by repeat, with the same thread count given
to threadpoolctl and to each library's own setting.

Peers, each skipped when not installed:

* sparse_dot_topn ``sp_matmul_topn`` on L2-normalised rows (its OpenMP kernel);
* implicit ``CosineRecommender(K=k).fit``;
* scikit-learn ``cosine_similarity`` (sparse in, dense out) + per-row argpartition.

Each contender's lists are checked against exact float64 scores on a sample of
items ("agree": the fraction of sampled rows whose list is a valid top-k up to
ties within 1e-5).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench._common import (
    Measurement,
    blas_threads,
    format_table,
    machine_summary,
    time_call,
)

DEFAULT_ML100K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ml-100k" / "u.data"


# --- contenders: each maps (R users x items CSR, k, threads) -> items x items CSR top-k ---


def _fastrec(backend: str) -> Callable[[sp.csr_matrix, int, int], sp.csr_matrix]:
    def run(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
        import fastrec

        return fastrec.cosine_topk(R.T, k=k, exclude_self=False, n_threads=threads, backend=backend)

    return run


def _l2_normalised_items(R: sp.csr_matrix) -> sp.csr_matrix:
    items = R.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags((1.0 / norms).astype(np.float32)) @ items


def _sparse_dot_topn(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
    from sparse_dot_topn import sp_matmul_topn

    items = _l2_normalised_items(R)
    return sp_matmul_topn(items, items.T.tocsr(), top_n=k, sort=True, n_threads=threads)


def _implicit(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=k, num_threads=threads)
    model.fit(R, show_progress=False)
    return model.similarity.tocsr()


def _sklearn(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
    from sklearn.metrics.pairwise import cosine_similarity

    items = R.T.tocsr()
    dense = cosine_similarity(items, dense_output=True)
    top = np.argpartition(-dense, min(k, dense.shape[1] - 1), axis=1)[:, :k]
    rows = np.repeat(np.arange(dense.shape[0]), top.shape[1])
    values = dense[rows, top.ravel()]
    keep = values != 0
    return sp.csr_matrix(
        (values[keep], (rows[keep], top.ravel()[keep])), shape=dense.shape
    )


def contenders(backends: list[str], peers: bool) -> dict[str, Callable]:
    """Name -> callable, for fastrec's backends and every installed peer."""
    found: dict[str, Callable] = {f"fastrec {b}": _fastrec(b) for b in backends}
    if not peers:
        return found
    for name, module, fn in (
        ("sparse_dot_topn", "sparse_dot_topn", _sparse_dot_topn),
        ("implicit CosineRecommender", "implicit", _implicit),
        ("sklearn cosine_similarity", "sklearn", _sklearn),
    ):
        try:
            __import__(module)
        except ImportError:
            continue
        found[name] = fn
    return found


# --- data and accuracy ---


def load_ml100k(path: Path) -> sp.csr_matrix:
    """MovieLens 100K ``u.data`` as a users x items float32 CSR (ids are 1-based)."""
    raw = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2))
    users, items, ratings = raw[:, 0] - 1, raw[:, 1] - 1, raw[:, 2].astype(np.float32)
    return sp.csr_matrix((ratings, (users, items)), shape=(users.max() + 1, items.max() + 1))


def agreement(R: sp.csr_matrix, result: sp.csr_matrix, k: int, sample: np.ndarray) -> float:
    """Fraction of sampled items whose list is a valid top-k of the exact scores.

    Valid means: every listed item scores within 1e-5 of at least the k-th best
    exact score, and no unlisted item beats the k-th best by more than 1e-5.
    """
    items = R.T.tocsr().astype(np.float64)
    norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
    exact = (items[sample] @ items.T).toarray()
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(exact != 0, exact / np.outer(norms[sample], norms), 0.0)
    result = result.tocsr()
    good = 0
    for row, item in enumerate(sample):
        scores = exact[row]
        listed = result.indices[result.indptr[item] : result.indptr[item + 1]]
        n_positive = int((scores > 0).sum())
        kth = np.sort(scores)[::-1][min(k, n_positive) - 1] if n_positive else 0.0
        listed_ok = listed.size == min(k, n_positive) and np.all(scores[listed] >= kth - 1e-5)
        unlisted = np.ones(scores.size, dtype=bool)
        unlisted[listed] = False
        missing_ok = not np.any(scores[unlisted] > kth + 1e-5)
        good += bool(listed_ok and missing_ok)
    return good / len(sample)


def datasets(sizes: list[str], ml100k: Path | None) -> list[tuple[str, sp.csr_matrix]]:
    from fastrec.datasets import make_benchmark_ratings

    data = [(size, make_benchmark_ratings(size)) for size in sizes]
    if ml100k is not None and ml100k.exists():
        data.append(("ml-100k", load_ml100k(ml100k)))
    return data


# --- driver ---


def run(
    sizes: list[str],
    threads: list[int],
    k: int = 50,
    repeats: int = 3,
    backends: list[str] | None = None,
    peers: bool = True,
    ml100k: Path | None = DEFAULT_ML100K,
    check_sample: int = 200,
) -> list[Measurement]:
    """Time every contender on every dataset and thread count; returns the measurements."""
    import fastrec

    backends = backends or [b for b in ("cpp", "numba") if b in fastrec.available_backends()]
    found = contenders(backends, peers)
    measurements: list[Measurement] = []
    rng = np.random.default_rng(0)
    for name, R in datasets(sizes, ml100k):
        sample = rng.choice(R.shape[1], size=min(check_sample, R.shape[1]), replace=False)
        for n_threads in threads:
            results: dict[str, Measurement] = {}
            outputs: dict[str, Any] = {}
            with blas_threads(n_threads):
                for contender, fn in found.items():  # warm-up (JIT, allocations) and output
                    outputs[contender] = fn(R, k, n_threads)
                    results[contender] = Measurement(contender, name, n_threads, [])
                for rep in range(repeats):  # interleave: rotate the order each repeat
                    names = list(found)
                    names = names[rep % len(names) :] + names[: rep % len(names)]
                    for contender in names:
                        times, _ = time_call(
                            lambda c=contender, R=R, t=n_threads: found[c](R, k, t), 1, 0
                        )
                        results[contender].times.extend(times)
            for contender, measurement in results.items():
                measurement.extra["agree"] = agreement(R, outputs[contender], k, sample)
                measurement.extra["shape"] = f"{R.shape[0]}x{R.shape[1]}, nnz {R.nnz}"
                measurements.append(measurement)
                print(
                    f"  {name:8s} {n_threads} thr  {contender:28s} median {measurement.median:8.3f} s"
                    f"  agree {measurement.extra['agree']:.3f}",
                    flush=True,
                )
    return measurements


def report(measurements: list[Measurement]) -> str:
    """Markdown table with each contender's median and its ratio to fastrec cpp (same task, threads)."""
    reference = {
        (m.task, m.threads): m.median for m in measurements if m.contender == "fastrec cpp"
    }
    rows = []
    for m in measurements:
        ref = reference.get((m.task, m.threads))
        ratio = f"{m.median / ref:.2f}x" if ref else "-"
        rows.append(
            [m.task, m.extra["shape"], m.threads, m.contender, m.median, m.best,
             ratio, f"{m.extra['agree']:.3f}", ", ".join(f"{t:.3g}" for t in m.times)]
        )
    header = ["data", "shape", "threads", "contender", "median s", "min s",
              "time / fastrec cpp", "agree", "times"]
    return format_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastrec.bench cosine", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", nargs="+", default=["S", "M", "L"], choices=["S", "M", "L"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=None, choices=["cpp", "numba", "numpy"])
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--ml100k", type=Path, default=DEFAULT_ML100K,
                        help="path to MovieLens 100K u.data (skipped when absent)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    args = parser.parse_args(argv)

    print(f"# cosine top-{args.k}, item-item: {machine_summary()}", flush=True)
    measurements = run(args.sizes, args.threads, args.k, args.repeats, args.backends,
                       args.peers, args.ml100k)
    table = report(measurements)
    print()
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# cosine top-{args.k}, item-item\n\n{machine_summary()}\n\n{table}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(os.sys.argv[1:]))
