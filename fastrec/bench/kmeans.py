"""``fastrec bench kmeans``: Lloyd k-means against scikit-learn and faiss.

Every contender clusters the same dense float32 user embeddings (a Gaussian
mixture of 64 segments, seed 0) from the same initial centres (k rows of X
picked with a fixed seed), runs 20 Lloyd iterations with ``tol=0`` and the same
thread count, and is timed per iteration.  The final inertia of every
contender is recomputed from its final centres by one common float64 routine,
so the column compares the same quantity.

OpenBLAS picks its kernels when it loads, from ``OPENBLAS_CORETYPE``: the peers
(whose distance step is a BLAS GEMM) run once per setting (``--coretypes``).
fastrec does not use a BLAS for this.  ``--simd avx2,avx512`` runs fastrec at
each SIMD level and the peers under the OpenBLAS core of the same instruction
set instead (Haswell for avx2, SkylakeX for avx512, Nehalem for baseline).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fastrec.bench import suite

NAME = "kmeans"
TITLE = "Lloyd k-means (time per iteration)"
UNIT = "s/iter"
# size -> (n, d, k)
SHAPES = {
    "XS": (2_000, 16, 16),
    "S": (50_000, 32, 64),
    "M": (200_000, 64, 256),
    "L": (1_000_000, 32, 256),
}
SIZES = {name: f"{n:,} x {d}, k={k}" for name, (n, d, k) in SHAPES.items()}
DEFAULT_SIZES = ("S", "M", "L")
CORETYPES = ("Haswell", "SkylakeX")
ITERATIONS = 20


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        n, d, k = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} must look like NxDxK, e.g. 200000x64x256") from None
    return n, d, k


def common_inertia(X: np.ndarray, centers: np.ndarray, block: int = 65536) -> float:
    """Sum of squared distances of the rows of X to their nearest centre, in float64."""
    c64 = centers.astype(np.float64)
    c_sq = np.einsum("ij,ij->i", c64, c64)
    total = 0.0
    for lo in range(0, X.shape[0], block):
        x = X[lo : lo + block].astype(np.float64)
        dist = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ c64.T) + c_sq[None, :]
        total += float(np.maximum(dist.min(axis=1), 0.0).sum())
    return total


# -- worker side: one contender, one timed fit, in a fresh process -------------


def _fit_fastrec(X, init, threads, backend):
    import fastrec

    def run(iterations):
        km = fastrec.KMeans(
            init.shape[0],
            init=init,
            n_init=1,
            max_iter=iterations,
            tol=0.0,
            n_threads=threads,
            backend=backend,
        )
        cpu, start = time.process_time(), time.perf_counter()
        km.fit(X)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return elapsed, km.n_iter_, km.cluster_centers_, cpu

    return run


def _fit_sklearn(X, init, threads):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    def run(iterations):
        km = KMeans(init.shape[0], init=init, n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd")
        with threadpool_limits(limits=threads):
            cpu, start = time.process_time(), time.perf_counter()
            km.fit(X)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
        return elapsed, km.n_iter_, km.cluster_centers_, cpu

    return run


def _fit_faiss(X, init, threads):
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)

    def run(iterations):
        n, d = X.shape
        # No subsampling (faiss keeps 256 points per centroid by default) and no
        # minimum-size warning: every contender clusters all of X.
        km = faiss.Kmeans(
            d,
            init.shape[0],
            niter=iterations,
            nredo=1,
            verbose=False,
            max_points_per_centroid=n,
            min_points_per_centroid=1,
            seed=1234,
        )
        with threadpool_limits(limits=threads):
            cpu, start = time.process_time(), time.perf_counter()
            km.train(X, init_centroids=init)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
        return elapsed, iterations, np.asarray(km.centroids), cpu

    return run


# --- the suite interface ---


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=_parse_shape,
        default=[],
        help="extra NxDxK shapes, run as sizes of that name",
    )
    parser.add_argument(
        "--iterations", type=int, default=ITERATIONS, help="Lloyd iterations per fit (default 20)"
    )
    parser.add_argument(
        "--coretypes",
        nargs="*",
        default=list(CORETYPES),
        help="OPENBLAS_CORETYPE settings the peers run under (default: "
        "%(default)s; none: the library's own choice)",
    )


def _shapes(options: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    shapes = dict(SHAPES)
    for n, d, k in options.get("shapes") or []:
        shapes[f"{n}x{d}x{k}"] = (n, d, k)
    return shapes


def sizes(options: dict[str, Any]) -> dict[str, str]:
    """The built-in sizes and the ``--shapes`` given."""
    return {name: f"{n:,} x {d}, k={k}" for name, (n, d, k) in _shapes(options).items()}


def default_sizes(options: dict[str, Any]) -> list[str]:
    """The ``--shapes`` given, else S, M and L."""
    custom = [f"{n}x{d}x{k}" for n, d, k in options.get("shapes") or []]
    return custom or list(DEFAULT_SIZES)


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's backends; scikit-learn and faiss under every ``OPENBLAS_CORETYPE``."""
    found = [suite.Contender(f"fastrec {b}", peer=False) for b in options["backends"]]
    if options["peers"]:
        coretypes = options.get("coretypes") or [None]
        for peer, module in (("sklearn", "sklearn"), ("faiss", "faiss")):
            if not suite.installed(module):
                continue
            for coretype in coretypes:
                label = peer if coretype is None else f"{peer} [{coretype}]"
                env = {} if coretype is None else {"OPENBLAS_CORETYPE": coretype}
                found.append(suite.Contender(label, key=peer, env=env, blas=True))
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Write X and the initial centres of ``size`` to ``folder``."""
    from fastrec.datasets import make_user_embeddings

    n, d, k = _shapes(options)[size]
    X, _ = make_user_embeddings(n, d, n_segments=64, seed=0)
    init = X[np.random.default_rng(0).choice(n, k, replace=False)]
    np.save(folder / "x.npy", X)
    np.save(folder / "init.npy", init)
    return {
        "x": str(folder / "x.npy"),
        "init": str(folder / "init.npy"),
        "iterations": options["iterations"],
        "shape": SIZES.get(size, size),
        "init_inertia": common_inertia(X, init),
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Warm up with 2 iterations, then time one fit of ``iterations`` iterations."""
    X = np.ascontiguousarray(np.load(data["x"]))
    init = np.load(data["init"])
    if contender == "sklearn":
        run = _fit_sklearn(X, init, threads)
    elif contender == "faiss":
        run = _fit_faiss(X, init, threads)
    else:
        run = _fit_fastrec(X, init, threads, contender.split(" ", 1)[1])
    run(2)  # warm-up: JIT compilation, thread pools, page faults
    elapsed, n_iter, centers, cpu = run(int(data["iterations"]))
    inertia = common_inertia(X, np.asarray(centers, dtype=np.float32))
    return {
        "seconds": elapsed / n_iter,
        "cpu_seconds": cpu / n_iter,
        "quality": {"iterations": int(n_iter), "final inertia": float(f"{inertia:.7e}")},
    }


def main(argv: list[str] | None = None, prog: str = "python -m fastrec.bench kmeans") -> int:
    """Run this benchmark alone (see ``--help``)."""
    return suite.main([NAME], sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
