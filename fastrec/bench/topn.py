"""``python -m fastrec.bench topn``: top-N unseen items for every user, fastrec beside its peers.

The task: the ``n`` (default 10) best items by ``U @ V.T`` for every user of a
synthetic ratings matrix (``make_benchmark_ratings``, sizes M and L by
default), never returning an item the user rated.  U and V are random float32
factors (f = 64, seed 0); the ratings CSR is the exclusion.  Contenders:

* fastrec ``topn`` (backends cpp and numba);
* implicit's ``AlternatingLeastSquares.recommend`` over all users with
  ``filter_already_liked_items=True`` (``implicit.cpu.als``, factors set to U
  and V; its ``num_threads`` is the thread count, the BLAS held to one thread);
* numpy: blocks of users, ``U_b @ V.T`` (BLAS with the thread count), seen
  items set to -inf, ``argpartition`` and a sort of the n survivors.

OpenBLAS picks its kernels when it loads, from ``OPENBLAS_CORETYPE``, so
every contender runs in its own subprocess, the peers once per setting (unset,
that is OpenBLAS's own choice, and SkylakeX by default).  Rounds interleave all
contenders, so machine noise hits them alike; each subprocess runs the task
once untimed (JIT, page faults) and once timed.

Agreement: on a sample of users (300 by default) every contender's list is
compared with exact float64 scores: "precision" is the fraction of returned
items whose exact score reaches the exact n-th best unseen score (less 1e-5
relative, for ties and float32 rounding), "seen" counts returned items the
user had rated.  Both must be 1.0 and 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from fastrec.bench._common import format_table, machine_summary

DEFAULT_SIZES = ("M", "L")
CORETYPES = ("default", "SkylakeX")
FACTORS = 64
NUMPY_BLOCK = 2048  # users per BLAS call of the numpy contender


def make_factors(n_users: int, n_items: int, factors: int = FACTORS, seed: int = 0):
    """Random float32 user and item factors, N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    U = (rng.normal(size=(n_users, factors)) * 0.1).astype(np.float32)
    V = (rng.normal(size=(n_items, factors)) * 0.1).astype(np.float32)
    return U, V


# -- contenders: (U, V, seen CSR, n, threads) -> prepared zero-argument call returning (items, scores) --


def _fastrec(backend: str):
    def prepare(U, V, seen, n, threads):
        import fastrec

        return lambda: fastrec.topn(U, V, n, exclude=seen, n_threads=threads, backend=backend)

    return prepare


def _implicit(U, V, seen, n, threads):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # implicit checks the BLAS threads here
        model = AlternatingLeastSquares(factors=U.shape[1], num_threads=threads)
    model.user_factors = U
    model.item_factors = V
    users = np.arange(U.shape[0])

    def run():
        with threadpool_limits(limits=1, user_api="blas"):
            return model.recommend(users, seen, N=n, filter_already_liked_items=True)

    return run


def _numpy(U, V, seen, n, threads):
    from threadpoolctl import threadpool_limits

    VT = np.ascontiguousarray(V.T)

    def run():
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
                order = np.lexsort((top, -top_scores), axis=1)
                ids[lo:hi] = np.take_along_axis(top, order, axis=1)
                scores[lo:hi] = np.take_along_axis(top_scores, order, axis=1)
        return ids, scores

    return run


CONTENDERS = {
    "fastrec-cpp": _fastrec("cpp"),
    "fastrec-numba": _fastrec("numba"),
    "implicit": _implicit,
    "numpy": _numpy,
}
PEERS = ("implicit", "numpy")


def agreement(U, V, seen, sample, ids, n, rel_tol=1e-5):
    """(precision, seen items returned) of the lists ``ids`` of the users ``sample``.

    A returned item is correct when its exact (float64) score reaches the exact
    n-th best score among the user's unseen items, less ``rel_tol`` times the
    user's largest score in magnitude (ties and float32 rounding).
    """
    S = U[sample].astype(np.float64) @ V.astype(np.float64).T
    scale = np.abs(S).max(axis=1, keepdims=True)
    rows = seen[sample]
    mask = np.zeros(S.shape, dtype=bool)
    mask[np.repeat(np.arange(sample.size), np.diff(rows.indptr)), rows.indices] = True
    masked = np.where(mask, -np.inf, S)
    nth = -np.sort(-masked, axis=1)[:, n - 1 : n]  # the exact n-th best unseen score
    got = np.asarray(ids)
    valid = got >= 0
    got_scores = np.take_along_axis(S, np.maximum(got, 0), axis=1)
    correct = valid & (got_scores >= nth - rel_tol * scale)
    seen_returned = int((valid & np.take_along_axis(mask, np.maximum(got, 0), axis=1)).sum())
    return float(correct.sum() / got.size), seen_returned


# -- worker side: one contender, one timed run, in a fresh process ------------


def _worker(spec: dict) -> int:
    data = np.load(spec["data"])
    U, V = data["U"], data["V"]
    seen = sp.csr_matrix((data["seen_data"], data["seen_indices"], data["seen_indptr"]),
                         shape=(U.shape[0], V.shape[0]))
    run = CONTENDERS[spec["contender"]](U, V, seen, spec["n"], spec["threads"])
    run()  # untimed: JIT compilation, thread pools, page faults
    cpu, start = time.process_time(), time.perf_counter()
    ids, _ = run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    sample = np.asarray(spec["sample"], dtype=np.int64)
    np.save(spec["ids_out"], np.asarray(ids)[sample].astype(np.int64))
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(f"{i.get('internal_api')} {i.get('architecture')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "blas": blas}))
    return 0


# -- driver side -------------------------------------------------------------------


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run_worker(spec: dict, coretype: str | None) -> dict:
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype not in (None, "default"):
        env["OPENBLAS_CORETYPE"] = coretype
    cmd = [sys.executable, "-m", "fastrec.bench", "topn", "--worker", json.dumps(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['contender']} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _label(contender: str, coretype: str | None) -> str:
    return contender if coretype is None else f"{contender} [{coretype}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastrec.bench topn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), choices=["S", "M", "L"],
                        help="make_benchmark_ratings sizes (default: %(default)s)")
    parser.add_argument("--n", type=int, default=10, help="items per user (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every contender")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--sample", type=int, default=300, help="users checked for agreement")
    parser.add_argument("--no-peers", action="store_true", help="time fastrec only")
    parser.add_argument("--no-numba", action="store_true", help="skip the Numba backend")
    parser.add_argument("--coretypes", nargs="+", default=list(CORETYPES),
                        help="OPENBLAS_CORETYPE settings for the peers; 'default' leaves it unset "
                             "(default: %(default)s)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker))

    contenders: list[tuple[str, str | None]] = [("fastrec-cpp", None)]
    if not args.no_numba:
        contenders.append(("fastrec-numba", None))
    if not args.no_peers:
        for peer in PEERS:
            if peer != "numpy" and not _available(peer):
                print(f"note: {peer} is not installed; skipped", file=sys.stderr)
                continue
            contenders += [(peer, coretype) for coretype in args.coretypes]

    print(machine_summary())
    print(f"Top-{args.n} unseen items for every user: f={FACTORS} float32 factors (seed 0), the "
          f"ratings CSR as exclusion, {args.threads} threads; one untimed and one timed run per "
          f"subprocess, {args.repeats} interleaved rounds.\n")
    from fastrec.datasets import make_benchmark_ratings

    results = []
    with tempfile.TemporaryDirectory(prefix="fastrec-bench-topn-") as tmp:
        for size in args.sizes:
            seen = make_benchmark_ratings(size)
            n_users, n_items = seen.shape
            U, V = make_factors(n_users, n_items)
            data_path = os.path.join(tmp, "data.npz")
            np.savez(data_path, U=U, V=V, seen_data=seen.data, seen_indices=seen.indices,
                     seen_indptr=seen.indptr)
            sample = np.sort(np.random.default_rng(1).choice(n_users, min(args.sample, n_users),
                                                              replace=False))
            runs: dict[tuple[str, str | None], list[dict]] = {c: [] for c in contenders}
            for round_ in range(args.repeats):
                for contender, coretype in contenders:
                    spec = {"data": data_path, "contender": contender, "threads": args.threads,
                            "n": args.n, "sample": sample.tolist(),
                            "ids_out": os.path.join(tmp, "ids.npy")}
                    out = _run_worker(spec, coretype)
                    out["precision"], out["seen"] = agreement(U, V, seen, sample,
                                                              np.load(spec["ids_out"]), args.n)
                    runs[(contender, coretype)].append(out)
                    print(f"  {size} round {round_ + 1}: {_label(contender, coretype)} "
                          f"{out['seconds']:.3f} s", file=sys.stderr)
            flops = 2.0 * n_users * n_items * FACTORS
            medians = {c: statistics.median(o["seconds"] for o in outs) for c, outs in runs.items()}
            rows = []
            for (contender, coretype), outs in runs.items():
                times = sorted(o["seconds"] for o in outs)
                median = medians[(contender, coretype)]
                rows.append([contender, coretype or "-", median, times[0], times[-1] / times[0],
                             statistics.median(o["cpu_seconds"] for o in outs),
                             flops / median / 1e9, min(o["precision"] for o in outs),
                             max(o["seen"] for o in outs), ", ".join(f"{t:.3f}" for t in times),
                             outs[-1]["blas"] or "-"])
                results.append({"size": size, "shape": [n_users, n_items], "contender": contender,
                                "coretype": coretype, "seconds": times,
                                "cpu_seconds": [o["cpu_seconds"] for o in outs],
                                "precision": [o["precision"] for o in outs],
                                "seen": [o["seen"] for o in outs]})
            print(f"## {size}: {n_users} users x {n_items} items, {seen.nnz} seen\n")
            print(format_table(
                ["contender", "OPENBLAS_CORETYPE", "median s", "min s", "max/min", "median CPU s",
                 "GFLOP/s (median)", "precision", "seen returned", "s, all rounds", "BLAS"], rows))
            cpp = medians[("fastrec-cpp", None)]
            ratio_rows = [[contender, coretype or "-", median / cpp]
                          for (contender, coretype), median in medians.items()
                          if contender != "fastrec-cpp"]
            print("\nMedian time relative to fastrec-cpp (> 1: slower than fastrec-cpp):\n")
            print(format_table(["contender", "OPENBLAS_CORETYPE", "median s / fastrec-cpp median s"],
                               ratio_rows))
            print()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0
