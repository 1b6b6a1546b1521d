"""``python -m fastrec.bench kmeans``: Lloyd k-means against scikit-learn and faiss.

Every contender starts from the same initial centres (k rows of X picked with
a fixed seed), runs 20 Lloyd iterations with ``tol=0`` and the same thread
count, and is timed per iteration.  The final inertia of every contender is
recomputed from its final centres by one common float64 routine, so the
columns compare the same quantity.

OpenBLAS picks its kernels when it loads, from ``OPENBLAS_CORETYPE``; the
peers (whose distance step is a BLAS GEMM) therefore run in subprocesses, one
per setting, and the settings and contenders are interleaved round by round so
that machine noise hits them alike.  fastrec does not use a BLAS for this.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastrec.bench._common import format_table, machine_summary

DEFAULT_SHAPES = ("200000x64x256", "1000000x32x256")
CORETYPES = ("Haswell", "SkylakeX")
ITERATIONS = 20


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        n, d, k = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape {text!r} must look like NxDxK, e.g. 200000x64x256"
        ) from None
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
        km = fastrec.KMeans(init.shape[0], init=init, n_init=1, max_iter=iterations, tol=0.0,
                            n_threads=threads, backend=backend)
        cpu, start = time.process_time(), time.perf_counter()
        km.fit(X)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return elapsed, km.n_iter_, km.cluster_centers_, cpu

    return run


def _fit_sklearn(X, init, threads):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    def run(iterations):
        km = KMeans(init.shape[0], init=init, n_init=1, max_iter=iterations, tol=0.0,
                    algorithm="lloyd")
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
        km = faiss.Kmeans(d, init.shape[0], niter=iterations, nredo=1, verbose=False,
                          max_points_per_centroid=n, min_points_per_centroid=1, seed=1234)
        with threadpool_limits(limits=threads):
            cpu, start = time.process_time(), time.perf_counter()
            km.train(X, init_centroids=init)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
        return elapsed, iterations, np.asarray(km.centroids), cpu

    return run


def _worker(spec: dict) -> int:
    X = np.load(spec["x"], mmap_mode="r")
    X = np.ascontiguousarray(X)
    init = np.load(spec["init"])
    name, threads = spec["contender"], spec["threads"]
    if name == "sklearn":
        run = _fit_sklearn(X, init, threads)
    elif name == "faiss":
        run = _fit_faiss(X, init, threads)
    else:
        run = _fit_fastrec(X, init, threads, name.split("-", 1)[1])
    run(2)  # warm-up: JIT compilation, thread pools, page faults
    elapsed, n_iter, centers, cpu = run(spec["iterations"])
    np.save(spec["centers_out"], np.asarray(centers, dtype=np.float32))
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i.get('internal_api')} {i.get('architecture')}"
            for i in threadpool_info() if i.get("user_api") == "blas"
        )
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "n_iter": int(n_iter),
                      "blas": blas}))
    return 0


# -- driver side -------------------------------------------------------------------


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run_worker(spec: dict, coretype: str | None) -> dict:
    env = dict(os.environ)
    if coretype is None:
        env.pop("OPENBLAS_CORETYPE", None)
    else:
        env["OPENBLAS_CORETYPE"] = coretype
    cmd = [sys.executable, "-m", "fastrec.bench", "kmeans", "--worker", json.dumps(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['contender']} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastrec.bench kmeans", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", type=_parse_shape,
                        default=[_parse_shape(s) for s in DEFAULT_SHAPES],
                        help="NxDxK shapes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every contender")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per contender")
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--no-peers", action="store_true", help="time fastrec only")
    parser.add_argument("--no-numba", action="store_true", help="skip the Numba backend")
    parser.add_argument("--coretypes", nargs="+", default=list(CORETYPES),
                        help="OPENBLAS_CORETYPE settings for the peers (default: %(default)s)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker))

    contenders: list[tuple[str, str | None]] = [("fastrec-cpp", None)]
    if not args.no_numba:
        contenders.append(("fastrec-numba", None))
    if not args.no_peers:
        for coretype in args.coretypes:
            for peer in ("sklearn", "faiss"):
                if _available(peer):
                    contenders.append((peer, coretype))
                else:
                    print(f"note: {peer} is not installed; skipped", file=sys.stderr)

    print(machine_summary())
    print(f"Lloyd k-means, dense float32, {args.iterations} iterations, tol=0, same initial "
          f"centres (k rows of X, seed 0), {args.threads} threads; s/iter = fit time / "
          "iterations; inertia from the final centres by one float64 routine.")
    print("Data: make_user_embeddings (Gaussian mixture, 64 segments, seed 0).\n")
    from fastrec.datasets import make_user_embeddings

    results = []
    with tempfile.TemporaryDirectory(prefix="fastrec-bench-kmeans-") as tmp:
        for n, d, k in args.shapes:
            X, _ = make_user_embeddings(n, d, n_segments=64, seed=0)
            init = X[np.random.default_rng(0).choice(n, k, replace=False)]
            x_path, init_path = os.path.join(tmp, "x.npy"), os.path.join(tmp, "init.npy")
            np.save(x_path, X)
            np.save(init_path, init)
            init_inertia = common_inertia(X, init)
            runs: dict[tuple[str, str | None], list[dict]] = {c: [] for c in contenders}
            for round_ in range(args.repeats):
                for contender, coretype in contenders:
                    spec = {"x": x_path, "init": init_path, "contender": contender,
                            "threads": args.threads, "iterations": args.iterations,
                            "centers_out": os.path.join(tmp, "centers.npy")}
                    out = _run_worker(spec, coretype)
                    out["inertia"] = common_inertia(X, np.load(spec["centers_out"]))
                    runs[(contender, coretype)].append(out)
                    print(f"  {n}x{d} k={k} round {round_ + 1}: {contender}"
                          f"{'' if coretype is None else ' [' + coretype + ']'} "
                          f"{out['seconds'] / out['n_iter'] * 1e3:.1f} ms/iter", file=sys.stderr)
            flops = 2.0 * n * k * d
            rows = []
            per_iter = {}
            for (contender, coretype), outs in runs.items():
                times = sorted(o["seconds"] / o["n_iter"] for o in outs)
                median = times[len(times) // 2]
                per_iter[(contender, coretype)] = median
                inertia = outs[-1]["inertia"]
                cpu = sorted(o["cpu_seconds"] / o["n_iter"] for o in outs)
                rows.append([contender, coretype or "-", outs[-1]["n_iter"], median * 1e3,
                             times[0] * 1e3, cpu[len(cpu) // 2] * 1e3,
                             flops / median / 1e9, f"{inertia:.7e}",
                             ", ".join(f"{t * 1e3:.1f}" for t in times), outs[-1]["blas"] or "-"])
                results.append({"shape": [n, d, k], "contender": contender,
                                "coretype": coretype, "s_per_iter": times,
                                "n_iter": outs[-1]["n_iter"], "inertia": inertia,
                                "init_inertia": init_inertia})
            print(f"## {n} x {d}, k={k}  (init inertia {init_inertia:.4e})\n")
            print(format_table(
                ["contender", "OPENBLAS_CORETYPE", "iters", "median ms/iter", "min ms/iter",
                 "median CPU ms/iter (all threads)", "GFLOP/s (median)", "final inertia",
                 "ms/iter, all rounds", "BLAS"], rows))
            cpp = per_iter[("fastrec-cpp", None)]
            cpp_inertia = runs[("fastrec-cpp", None)][-1]["inertia"]
            best_cpp = min(o["seconds"] / o["n_iter"] for o in runs[("fastrec-cpp", None)])
            ratio_rows = []
            for (contender, coretype), median in per_iter.items():
                if contender == "fastrec-cpp":
                    continue
                outs = runs[(contender, coretype)]
                inertia = outs[-1]["inertia"]
                best = min(o["seconds"] / o["n_iter"] for o in outs)
                ratio_rows.append([contender, coretype or "-", median / cpp, best / best_cpp,
                                   f"{abs(inertia - cpp_inertia) / inertia:.1e}"])
            print("\nfastrec-cpp speed-up (contender s/iter / fastrec-cpp s/iter, medians and "
                  "minima over rounds) and relative inertia difference:\n")
            print(format_table(["contender", "OPENBLAS_CORETYPE", "speed-up (medians)",
                                "speed-up (minima)", "|inertia - cpp| / inertia"], ratio_rows))
            print()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0
