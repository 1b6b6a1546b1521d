"""``python -m fastrec.bench mf``: SGD matrix factorization against Surprise and LIBMF.

Every contender fits the same synthetic train split (80% of the ratings of size
S, M or L from :func:`fastrec.datasets.make_benchmark_ratings`) with k=100
factors for 20 epochs, and is scored on the held-out 20%.  Contenders run
interleaved (repeat 1 of each, then repeat 2 of each, ...) so drifts in machine
speed hit all of them alike.  Reported: fit seconds (median and min), updates/s
= train ratings x epochs / median fit seconds, test RMSE, and each contender's
speed relative to fastrec cpp in the same run.

Peers, skipped when not installed:

* Surprise ``SVD`` (pure Cython, one thread) with its default lr 0.005 and reg 0.02;
  by default only on sizes S and M (``--surprise-sizes``), because on L it
  takes many minutes.
* LIBMF through the PyPI ``libmf`` package (built without SIMD), with LIBMF's
  own defaults (eta 0.1, L2 0.1) and no biases; its RMSE is computed from its
  P and Q factors.

``--accuracy`` runs :mod:`fastrec.bench.mf_accuracy` instead (MovieLens 100K).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench._common import Measurement, blas_threads, format_table, machine_summary


def split(R: sp.csr_matrix, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(train CSR, test array of user, item, rating rows): a random 80/20 split."""
    coo = R.tocoo()
    rng = np.random.default_rng(seed)
    test = rng.random(coo.nnz) < 0.2
    train = sp.csr_matrix((coo.data[~test], (coo.row[~test], coo.col[~test])), shape=R.shape)
    rows = np.column_stack([coo.row[test], coo.col[test], coo.data[test]]).astype(np.float64)
    return train, rows


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - truth) ** 2)))


def fastrec_contender(backend: str, threads: int, factors: int, epochs: int,
                      **params: Any) -> Callable:
    from fastrec import MatrixFactorization

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        model = MatrixFactorization(n_factors=factors, n_epochs=epochs, seed=0, n_threads=threads,
                                    backend=backend, **params)
        start = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - start
        return seconds, rmse(model.predict(test[:, 0].astype(np.int64),
                                           test[:, 1].astype(np.int64)), test[:, 2])

    return run


def surprise_contender(factors: int, epochs: int) -> Callable | None:
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader
    except ImportError:
        return None

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        coo = train.tocoo()
        frame = pd.DataFrame({"u": coo.row, "i": coo.col, "r": coo.data.astype(np.float64)})
        trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
        algo = SVD(n_factors=factors, n_epochs=epochs, random_state=0)
        start = time.perf_counter()  # the fit alone, as for every contender
        algo.fit(trainset)
        seconds = time.perf_counter() - start
        # vectorised scoring of the fitted parameters (algo.predict is a Python loop)
        inner_u = np.array([trainset._raw2inner_id_users.get(int(u), -1) for u in test[:, 0]])
        inner_i = np.array([trainset._raw2inner_id_items.get(int(i), -1) for i in test[:, 1]])
        known_u, known_i = inner_u >= 0, inner_i >= 0
        pred = np.full(test.shape[0], trainset.global_mean)
        pred[known_u] += algo.bu[inner_u[known_u]]
        pred[known_i] += algo.bi[inner_i[known_i]]
        both = known_u & known_i
        pred[both] += np.einsum("ij,ij->i", algo.pu[inner_u[both]], algo.qi[inner_i[both]])
        return seconds, rmse(np.clip(pred, 1, 5), test[:, 2])

    return run


def libmf_contender(threads: int, factors: int, epochs: int) -> Callable | None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on import
            from libmf import mf as libmf
    except (ImportError, OSError):
        return None

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        coo = train.tocoo()
        data = np.column_stack([coo.row, coo.col, coo.data]).astype(np.float32)
        engine = libmf.MF(k=factors, nr_threads=threads, nr_iters=epochs, eta=0.1,
                          lambda_p2=0.1, lambda_q2=0.1, lambda_p1=0.0, lambda_q1=0.0, quiet=True)
        start = time.perf_counter()
        engine.fit(data)
        seconds = time.perf_counter() - start
        P, Q = engine.p_factors(), engine.q_factors()
        u, i = test[:, 0].astype(np.int64), test[:, 1].astype(np.int64)
        known = (u < P.shape[0]) & (i < Q.shape[0])
        pred = np.full(u.size, float(coo.data.mean()))
        pred[known] = np.einsum("ij,ij->i", P[u[known]], Q[i[known]])
        return seconds, rmse(np.clip(pred, 1, 5), test[:, 2])

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastrec.bench mf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="M,L", help="comma-separated S, M, L (default M,L)")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--factors", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backends", default="cpp,numba")
    parser.add_argument("--no-peers", action="store_true", help="fastrec only")
    parser.add_argument("--surprise-sizes", default="S,M",
                        help="sizes Surprise runs on (default S,M: it needs minutes on L)")
    parser.add_argument("--accuracy", action="store_true",
                        help="run the MovieLens 100K accuracy comparison instead")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--accuracy" in argv:
        from fastrec.bench import mf_accuracy

        # every other option (--data, --threads, --seed, --no-peers) is the accuracy run's
        return mf_accuracy.main([a for a in argv if a != "--accuracy"])
    args = parser.parse_args(argv)

    from fastrec import MatrixFactorization
    from fastrec.datasets import make_benchmark_ratings

    print("# SGD matrix factorization: fit time and test RMSE, k="
          f"{args.factors}, {args.epochs} epochs")
    print(machine_summary())
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    thread_counts = [int(t) for t in args.threads.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    surprise_sizes = {s.strip() for s in args.surprise_sizes.split(",")}

    # Compile the Numba kernels and warm the caches outside the timings.
    warm = make_benchmark_ratings("S")
    for backend in backends:
        MatrixFactorization(n_factors=8, n_epochs=1, seed=0, backend=backend).fit(warm)

    rows = []
    for size in sizes:
        train, test = split(make_benchmark_ratings(size))
        updates = train.nnz * args.epochs
        for threads in thread_counts:
            contenders: dict[str, Callable] = {}
            for backend in backends:
                contenders[f"fastrec {backend}"] = fastrec_contender(
                    backend, threads, args.factors, args.epochs)
            if not args.no_peers:
                lib = libmf_contender(threads, args.factors, args.epochs)
                if lib is not None:
                    contenders["libmf (PyPI, no SIMD)"] = lib
                if size in surprise_sizes and threads == thread_counts[0]:
                    sur = surprise_contender(args.factors, args.epochs)
                    if sur is not None:
                        contenders["Surprise SVD (1 thread)"] = sur
            results = {name: Measurement(name, size, threads, []) for name in contenders}
            errors: dict[str, float] = {}
            with blas_threads(threads):
                for _ in range(args.repeats):  # interleaved repeats
                    for name, run in contenders.items():
                        seconds, error = run(train, test)
                        results[name].times.append(seconds)
                        errors[name] = error
            reference = results.get(f"fastrec {backends[0]}")
            for name, m in results.items():
                ratio = (f"{m.median / reference.median:.1f}x slower"
                         if reference is not None and m is not reference else "-")
                rows.append([size, name, 1 if "Surprise" in name else threads, m.median, m.best,
                             f"{updates / m.median / 1e6:.1f}", f"{errors[name]:.4f}", ratio,
                             ", ".join(f"{t:.3g}" for t in m.times)])
            print(format_table(["size", "contender", "threads", "median s", "min s",
                                "M updates/s", "test RMSE", f"vs fastrec {backends[0]}",
                                "times"], rows[-len(results):]), flush=True)
    print()
    print(format_table(["size", "contender", "threads", "median s", "min s", "M updates/s",
                        "test RMSE", f"vs fastrec {backends[0]}", "times"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
