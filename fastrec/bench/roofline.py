"""``fastrec bench roofline``: how close each compiled kernel comes to the machine's limits.

One run measures the machine's ceilings and fastrec's kernels with the same
thread count, each in its own process:

- FMA peak: a register-resident loop of independent float32 multiply-adds at
  every SIMD level the CPU runs (baseline SSE2, AVX2 + FMA, AVX-512), enough
  accumulators to cover the FMA latency; 2 flops per lane per update.
- SGEMM: numpy's float32 matmul of two square matrices (``--gemm-size``,
  default 4096), the BLAS held to the thread count; 2 n^3 flops.  What a tuned
  BLAS reaches with the same FMA units: the practical compute ceiling.  OpenBLAS
  picks its kernels from ``OPENBLAS_CORETYPE`` when it loads, so it runs once
  per ``--coretypes`` setting and the fastest is the ceiling (under ``--simd``,
  the one of the kernel's level).
- stream: STREAM copy and triad over arrays much larger than the last-level
  cache (``--stream-mib`` per array, default 4x the L3); copy counts 8 bytes per
  element, triad 12.  The best of 5 passes is kept, as STREAM does.

Kernels (the C++ backend at its active SIMD level), each with its work model:
flops, and the bytes it must move from memory at the least.

- KMeans, per Lloyd iteration: flops 2 n k d (the distance GEMM); bytes: X read
  once (4 n d).
- top-N of a factor model, f=64: flops 2 users x items x f; bytes: U and V read
  once, the exclusion CSR's indices, the n best (id and score) written.
- cosine top-k, item-item: flops 2 per multiply-add of the sparse product R^T R,
  each item pair once (the kernel's symmetric mode): the sum over users of
  d(d + 1)/2 for a user with d ratings; bytes: 8 per multiply-add, the index and
  value of the streamed sparse entry (the dense accumulator row stays in cache).
- MF SGD, per epoch, k=100: flops 8 k per rating (dot product 2 k, each row's
  update 3 k); bytes: both factor rows read and written (16 k) plus the rating
  (12).

A kernel whose arithmetic intensity (flops / bytes) is below the ridge point
(FMA peak / triad bandwidth) is memory-bound: its rate is reported as a fraction
of the triad bandwidth; otherwise it is compute-bound and its rate is a fraction
of the same run's SGEMM rate and of the FMA peak at its SIMD level.  A memory
fraction above 1 means the kernel's bytes came from cache rather than memory.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, make_size_ratings, shape_text

NAME = "roofline"
TITLE = "how close to the machine (roofline)"
UNIT = "s"
# size -> (KMeans sizes of fastrec.bench.kmeans, ratings size of the sparse kernels)
CASES = {
    "XS": (("XS",), "XS"),
    "S": (("S",), "S"),
    "M": (("M",), "M"),
    "L": (("M", "L"), "L"),
}
SIZES = {
    "XS": "smoke test (SGEMM at most 1024^2, FMA peaks 0.05 s): KMeans 2,000 x 16, k=16; "
    "ratings " + RATING_SIZES["XS"],
    "S": "KMeans 50,000 x 32, k=64; ratings " + RATING_SIZES["S"],
    "M": "KMeans 200,000 x 64, k=256; ratings " + RATING_SIZES["M"],
    "L": "KMeans 200,000 x 64 and 1,000,000 x 32, k=256; ratings " + RATING_SIZES["L"],
}
DEFAULT_SIZES = ("L",)
LEVELS = ("baseline", "avx2", "avx512")
TOP_N = 10
TOPN_FACTORS = 64
COSINE_K = 50
MF_FACTORS = 100
FMA_WORK = 1e11  # flops every FMA-peak round is scaled to, so that rounds compare
STREAM_PASSES = 5
CORETYPES = ("default", "SkylakeX")

GFLOPS = "GFLOP/s"
GBS = "GB/s"


# --- the ceilings (worker side) ---


def fma_peak(level: str, threads: int, seconds: float = 0.5) -> dict[str, float]:
    """Run the FMA loop at SIMD level ``level`` for about ``seconds``.

    Parameters
    ----------
    level : str
        ``"baseline"``, ``"avx2"`` or ``"avx512"``; the CPU must support it.
    threads : int
        OpenMP threads, each with its own accumulators.
    seconds : float
        Target duration of the timed run; the trip count is calibrated to it.

    Returns
    -------
    dict
        ``seconds`` (timed run), ``flops`` (performed), ``lanes`` (float32 lanes
        per vector), ``accumulators`` (independent chains per thread),
        ``iterations`` (trips per thread) and ``checksum`` (sum of the final
        accumulators).
    """
    from fastrec._runtime import _cpp

    if _cpp is None:
        raise RuntimeError("the FMA peak needs fastrec's compiled core (fastrec._cpp)")
    probe = 20_000
    start = time.perf_counter()
    _cpp.roofline_fma_peak(level, probe, threads)  # also starts the thread pool
    elapsed = max(time.perf_counter() - start, 1e-6)
    iterations = max(probe, int(probe * seconds / elapsed))
    start = time.perf_counter()
    flops, checksum, lanes = _cpp.roofline_fma_peak(level, iterations, threads)
    elapsed = time.perf_counter() - start
    accumulators = round(flops / (2.0 * lanes * iterations * threads))
    return {
        "seconds": elapsed,
        "flops": flops,
        "lanes": lanes,
        "accumulators": accumulators,
        "iterations": iterations,
        "checksum": checksum,
    }


def sgemm(n: int, threads: int) -> dict[str, float]:
    """Time numpy's float32 ``A @ B`` of two ``n x n`` matrices, the BLAS held to ``threads``.

    Returns
    -------
    dict
        ``seconds`` (one product, after one untimed) and ``flops`` (2 n^3).
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):  # restored on exit
        np.matmul(A, B, out=C)
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "flops": 2.0 * n**3}


def stream(kind: str, n: int, threads: int, passes: int = STREAM_PASSES) -> dict[str, float]:
    """Best of ``passes`` STREAM ``kind`` ("copy" or "triad") passes over arrays of ``n`` float32.

    Returns
    -------
    dict
        ``seconds`` (the fastest pass) and ``bytes`` (what STREAM counts per pass).
    """
    from fastrec._runtime import _cpp

    if _cpp is None:
        raise RuntimeError("the stream bandwidth needs fastrec's compiled core (fastrec._cpp)")
    if kind not in ("copy", "triad"):
        raise ValueError(f"kind={kind!r} must be 'copy' or 'triad'")
    level = _cpp.detected_simd_level()
    a = np.zeros(n, dtype=np.float32)  # written once here: no page faults in the timed passes
    b = np.full(n, 1.0, dtype=np.float32)
    c = np.full(n, 2.0, dtype=np.float32)
    triad = kind == "triad"
    _cpp.roofline_stream(level, a, b, c, 3.0, triad, threads)
    best, nbytes = math.inf, 0.0
    for _ in range(passes):
        start = time.perf_counter()
        nbytes = _cpp.roofline_stream(level, a, b, c, 3.0, triad, threads)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "bytes": nbytes}


def l3_bytes() -> int:
    """The last-level cache of CPU 0 in bytes (32 MiB when Linux does not say)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    found = 0
    for index in sorted(base.glob("index*")):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            found = max(found, int(digits) * scale)
    return found or 32 << 20


# --- the kernels' work models ---


def kmeans_work(n: int, d: int, k: int) -> tuple[float, float]:
    """(flops, bytes) of one Lloyd iteration: the distance GEMM, X read once."""
    return 2.0 * n * k * d, 4.0 * n * d


def topn_work(n_users: int, n_items: int, factors: int, nnz: int, n: int) -> tuple[float, float]:
    """(flops, bytes) of top-``n`` for every user: U V^T; U, V, exclusion indices, result."""
    return (
        2.0 * n_users * n_items * factors,
        4.0 * factors * (n_users + n_items) + 4.0 * nnz + 12.0 * n_users * n,
    )


def cosine_work(R: sp.csr_matrix) -> tuple[float, float]:
    """(flops, bytes) of the item-item product R^T R, each pair once; 8 bytes per multiply-add."""
    degrees = np.diff(R.tocsr().indptr).astype(np.float64)
    multiply_adds = float(np.sum(degrees * (degrees + 1.0) / 2.0))
    return 2.0 * multiply_adds, 8.0 * multiply_adds


def mf_work(n_ratings: int, factors: int) -> tuple[float, float]:
    """(flops, bytes) of one SGD epoch: per rating 8 k flops; two rows read and written + the rating."""
    return 8.0 * factors * n_ratings, (16.0 * factors + 12.0) * n_ratings


# --- kernels (worker side) ---


def _time_kmeans(case: dict[str, Any], threads: int) -> tuple[float, float, dict]:
    import fastrec

    X = np.load(case["x"])
    init = np.load(case["init"])
    iterations = int(case["iterations"])

    def fit(n_iter: int) -> tuple[float, float, int]:
        km = fastrec.KMeans(
            init.shape[0], init=init, n_init=1, max_iter=n_iter, tol=0.0, n_threads=threads, backend="cpp"
        )
        seconds, cpu, _ = suite.timed(lambda: km.fit(X))
        return seconds, cpu, km.n_iter_

    fit(2)  # warm-up: thread pool, page faults
    seconds, cpu, n_iter = fit(iterations)
    return seconds / n_iter, cpu / n_iter, {"iterations": int(n_iter)}


def _time_topn(case: dict[str, Any], threads: int) -> tuple[float, float, dict]:
    import fastrec

    U, V = np.load(case["u"]), np.load(case["v"])
    seen = sp.load_npz(case["ratings"]).tocsr()

    def run() -> Any:
        return fastrec.topn(U, V, TOP_N, exclude=seen, n_threads=threads, backend="cpp")

    run()
    seconds, cpu, _ = suite.timed(run)
    return seconds, cpu, {}


def _time_cosine(case: dict[str, Any], threads: int) -> tuple[float, float, dict]:
    import fastrec

    R = sp.load_npz(case["ratings"]).tocsr()

    def run() -> Any:
        return fastrec.cosine_topk(R.T, k=COSINE_K, exclude_self=False, n_threads=threads, backend="cpp")

    run()
    seconds, cpu, _ = suite.timed(run)
    return seconds, cpu, {}


def _time_mf(case: dict[str, Any], threads: int) -> tuple[float, float, dict]:
    from fastrec import MatrixFactorization

    R = sp.load_npz(case["ratings"]).tocsr()
    epochs = int(case["epochs"])
    MatrixFactorization(n_factors=8, n_epochs=1, random_state=0, n_threads=threads, backend="cpp").fit(
        R
    )  # warm-up
    model = MatrixFactorization(
        n_factors=MF_FACTORS, n_epochs=epochs, random_state=0, n_threads=threads, backend="cpp"
    )
    seconds, cpu, _ = suite.timed(lambda: model.fit(R))
    return seconds / epochs, cpu / epochs, {"epochs": epochs}


KERNELS = {"kmeans": _time_kmeans, "topn": _time_topn, "cosine": _time_cosine, "mf": _time_mf}


# --- the suite interface ---


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument(
        "--gemm-size", type=_positive_int, default=4096, help="n of the n x n SGEMM ceiling (default 4096)"
    )
    parser.add_argument(
        "--coretypes",
        nargs="*",
        default=list(CORETYPES),
        help="OPENBLAS_CORETYPE settings the SGEMM ceiling runs under; 'default' "
        "removes the variable (default: %(default)s; none: inherit it); "
        "the fastest is the ceiling",
    )
    parser.add_argument(
        "--stream-mib",
        type=_positive_float,
        default=None,
        help="MiB per stream array (default: 4x the last-level cache, at least 64)",
    )
    parser.add_argument(
        "--peak-seconds",
        type=_positive_float,
        default=0.5,
        help="duration of each FMA-peak run (default 0.5)",
    )
    parser.add_argument(
        "--kmeans-iterations",
        type=_positive_int,
        default=10,
        help="Lloyd iterations timed per KMeans fit (default 10)",
    )
    parser.add_argument(
        "--mf-epochs", type=_positive_int, default=3, help="SGD epochs timed per MF fit (default 3)"
    )


def _kmeans_shape(size: str) -> tuple[int, int, int]:
    from fastrec.bench import kmeans

    return kmeans.SHAPES[size]


def _kernel_labels(size: str) -> list[tuple[str, str]]:
    """(dispatch key, label) of every kernel case of roofline size ``size``."""
    kmeans_sizes, ratings = CASES[size]
    out = []
    for ks in kmeans_sizes:
        n, d, k = _kmeans_shape(ks)
        out.append((f"kmeans:{ks} cpp", f"KMeans {n:,} x {d}, k={k} (per iteration)"))
    out += [
        (f"topn:{ratings} cpp", f"top-{TOP_N} scoring {ratings}, f={TOPN_FACTORS}"),
        (f"cosine:{ratings} cpp", f"cosine top-{COSINE_K} item-item {ratings}"),
        (f"mf:{ratings} cpp", f"MF SGD {ratings}, k={MF_FACTORS} (per epoch)"),
    ]
    return out


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """The ceilings (always; they are not peers) and fastrec's C++ kernels."""
    from fastrec._runtime import available_simd_levels

    found = [suite.Contender(f"FMA peak {level}", key=f"fma:{level}") for level in available_simd_levels()]
    gemm = "SGEMM (numpy)"
    for coretype in options.get("coretypes") or [None]:
        label = gemm if coretype in (None, "default") else f"{gemm} [{coretype}]"
        env = {} if coretype is None else {"OPENBLAS_CORETYPE": None if coretype == "default" else coretype}
        found.append(suite.Contender(label, key="sgemm", env=env, blas=True))
    if available_simd_levels():
        found += [
            suite.Contender("stream copy", key="stream:copy"),
            suite.Contender("stream triad", key="stream:triad"),
        ]
    if "cpp" in options["backends"]:
        where: dict[tuple[str, str], list[str]] = {}
        for size in CASES:
            for key, label in _kernel_labels(size):
                where.setdefault((key, label), []).append(size)
        found += [
            suite.Contender(label, key=key, sizes=tuple(sizes), peer=False)
            for (key, label), sizes in where.items()
        ]
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Write every kernel's data for ``size``; return the ceilings' settings and the cases."""
    from fastrec.bench.topn import make_factors
    from fastrec.datasets import make_user_embeddings

    mib = options.get("stream_mib") or max(64.0, 4.0 * l3_bytes() / (1 << 20))
    gemm, seconds = int(options["gemm_size"]), float(options["peak_seconds"])
    if size == "XS":  # a smoke test: lighter compute ceilings
        gemm, seconds = min(gemm, 1024), min(seconds, 0.05)
    data: dict[str, Any] = {
        "shape": SIZES[size],
        "gemm_size": gemm,
        "peak_seconds": seconds,
        "stream_elements": int(mib * (1 << 20) // 4),
        "kmeans": {},
        "work": {},
    }
    kmeans_sizes, ratings_size = CASES[size]
    for ks in kmeans_sizes:
        n, d, k = _kmeans_shape(ks)
        X, _ = make_user_embeddings(n, d, n_segments=64, seed=0)  # as fastrec.bench.kmeans
        init = X[np.random.default_rng(0).choice(n, k, replace=False)]
        np.save(folder / f"x-{ks}.npy", X)
        np.save(folder / f"init-{ks}.npy", init)
        data["kmeans"][ks] = {
            "x": str(folder / f"x-{ks}.npy"),
            "init": str(folder / f"init-{ks}.npy"),
            "iterations": int(options["kmeans_iterations"]),
        }
        data["work"][f"kmeans:{ks}"] = kmeans_work(n, d, k)
    R = make_size_ratings(ratings_size).tocsr()
    sp.save_npz(folder / "ratings.npz", R, compressed=False)
    n_users, n_items = R.shape
    U, V = make_factors(n_users, n_items, factors=TOPN_FACTORS)
    np.save(folder / "u.npy", U)
    np.save(folder / "v.npy", V)
    data["ratings"] = {
        "ratings": str(folder / "ratings.npz"),
        "u": str(folder / "u.npy"),
        "v": str(folder / "v.npy"),
        "epochs": int(options["mf_epochs"]),
        "shape": shape_text(R),
    }
    data["work"][f"topn:{ratings_size}"] = topn_work(R.shape[0], R.shape[1], TOPN_FACTORS, R.nnz, TOP_N)
    data["work"][f"cosine:{ratings_size}"] = cosine_work(R)
    data["work"][f"mf:{ratings_size}"] = mf_work(R.nnz, MF_FACTORS)
    return data


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Time one ceiling or one kernel (in a worker process) and return its work."""
    what, _, arg = contender.partition(":")
    if what == "fma":
        out = fma_peak(arg, threads, float(data["peak_seconds"]))
        # each round calibrates its own trip count, but a record carries one work
        # figure for all its rounds: report every round as the time of FMA_WORK flops
        scaled = out["seconds"] * FMA_WORK / out["flops"]
        return {
            "seconds": scaled,
            "work": {GFLOPS: FMA_WORK / 1e9},
            "quality": {"lanes": out["lanes"], "accumulators": out["accumulators"]},
        }
    if what == "sgemm":
        out = sgemm(int(data["gemm_size"]), threads)
        return {
            "seconds": out["seconds"],
            "work": {GFLOPS: out["flops"] / 1e9},
            "quality": {"n": int(data["gemm_size"]), "BLAS": _blas_kernels()},
        }
    if what == "stream":
        out = stream(arg, int(data["stream_elements"]), threads)
        return {
            "seconds": out["seconds"],
            "work": {GBS: out["bytes"] / 1e9},
            "quality": {"MiB per array": round(int(data["stream_elements"]) * 4 / 2**20)},
        }
    case_id = arg.split()[0]  # "M cpp" -> "M"
    case = data["kmeans"][case_id] if what == "kmeans" else data["ratings"]
    seconds, cpu, quality = KERNELS[what](case, threads)
    flops, nbytes = data["work"][f"{what}:{case_id}"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": quality,
        "work": {GFLOPS: flops / 1e9, GBS: nbytes / 1e9},
    }


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


# --- the report: ceilings, fractions, chart ---


def _median(values: Sequence[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def _rate(record: dict[str, Any], unit: str) -> float | None:
    median = _median(record.get("times") or [])
    work = record.get("work", {}).get(unit)
    return work / median if median and work is not None else None


def _kind(record: dict[str, Any]) -> str:
    """ "fma", "sgemm", "stream" or "kernel" from a record's contender name."""
    name = record["contender"]
    if name.startswith("FMA peak "):
        return "fma"
    if name.lower().startswith("sgemm"):  # "sgemm [avx2: Haswell]" under --simd
        return "sgemm"
    if name.startswith("stream "):
        return "stream"
    return "kernel"


def _fma_level(record: dict[str, Any]) -> str:
    return record["contender"].split()[2]


def fractions(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each kernel's rates and its fractions of the ceilings measured beside it.

    Parameters
    ----------
    records : sequence of dict
        The suite's records of one roofline run (``contender``, ``size``,
        ``threads``, ``times``, ``work``, ``simd``).  Ceilings and kernels of
        the same size and thread count are compared.

    Returns
    -------
    list of dict
        One per kernel record with a time: ``kernel``, ``size``, ``threads``,
        ``simd``, ``seconds`` (median), ``gflops`` and ``gbs`` (rates),
        ``intensity`` (flops per byte), ``bound`` ("compute" or "memory": the
        intensity against the ridge point FMA peak / triad bandwidth; "compute"
        when a ceiling is missing), ``of_sgemm``, ``of_fma`` and ``of_stream``
        (fractions; None where not the kernel's bound or not measured),
        ``fma`` / ``sgemm`` / ``triad`` (the ceilings used) and ``roof``
        (min(FMA peak, intensity x triad), the classic roofline).
    """
    out = []
    for r in records:
        if _kind(r) != "kernel" or not r.get("times"):
            continue
        same = [c for c in records if c["size"] == r["size"] and c["threads"] == r["threads"]]
        simd = r.get("simd")
        fma = {_fma_level(c): _rate(c, GFLOPS) for c in same if _kind(c) == "fma"}
        gemms = [c for c in same if _kind(c) == "sgemm" and _rate(c, GFLOPS)]
        # under --simd the SGEMM of the kernel's own level; else the fastest coretype
        gemm = next((c for c in gemms if c.get("simd") is not None and c.get("simd") == simd), None) or max(
            (c for c in gemms if c.get("simd") is None), key=lambda c: _rate(c, GFLOPS) or 0.0, default=None
        )
        triad = next((_rate(c, GBS) for c in same if c["contender"] == "stream triad"), None)
        peak = fma.get(simd) if simd is not None else None
        sgemm_rate = _rate(gemm, GFLOPS) if gemm is not None else None
        gflops, gbs = _rate(r, GFLOPS), _rate(r, GBS)
        intensity = (
            r["work"][GFLOPS] / r["work"][GBS]
            if r["work"].get(GBS) and r["work"].get(GFLOPS) is not None
            else None
        )
        bound = "compute"
        if peak and triad and intensity is not None and intensity < peak / triad:
            bound = "memory"
        roof = min(peak, intensity * triad) if peak and triad and intensity is not None else None
        compute = bound == "compute"
        out.append(
            {
                "kernel": r["contender"],
                "size": r["size"],
                "threads": r["threads"],
                "simd": simd,
                "seconds": _median(r["times"]),
                "gflops": gflops,
                "gbs": gbs,
                "intensity": intensity,
                "bound": bound,
                "of_sgemm": gflops / sgemm_rate if compute and gflops and sgemm_rate else None,
                "of_fma": gflops / peak if compute and gflops and peak else None,
                "of_stream": gbs / triad if not compute and gbs and triad else None,
                "fma": peak,
                "sgemm": sgemm_rate,
                "triad": triad,
                "roof": roof,
            }
        )
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.0f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def tables(records: Sequence[dict[str, Any]], sizes: Sequence[str], size_descriptions: dict[str, str]) -> str:
    """Markdown: per size, the ceilings measured and each kernel's fractions of them."""
    from fastrec.bench._common import format_table

    rows_by_kernel = fractions(records)
    parts = []
    for size in sizes:
        ceilings = []
        for r in records:
            if r["size"] != size or _kind(r) == "kernel":
                continue
            unit = GBS if _kind(r) == "stream" else GFLOPS
            rate = _rate(r, unit)
            detail = ", ".join(f"{k} {v}" for k, v in r.get("quality", {}).items())
            ceilings.append(
                [
                    r["contender"],
                    r["threads"],
                    _num(_median(r["times"])),
                    "failed" if rate is None else f"{rate:.4g} {unit}",
                    detail,
                ]
            )
        kernels = [
            [
                f["kernel"],
                f["threads"],
                f["simd"] or "-",
                _num(f["seconds"]),
                _num(f["gflops"]),
                _num(f["gbs"]),
                _num(f["intensity"]),
                f["bound"],
                _pct(f["of_sgemm"]),
                _pct(f["of_fma"]),
                _pct(f["of_stream"]),
            ]
            for f in rows_by_kernel
            if f["size"] == size
        ]
        text = f"### {size}: {size_descriptions.get(size, '')}\n\nCeilings:\n\n" + format_table(
            ["ceiling", "threads", "median s", "rate", "details"], ceilings
        )
        if kernels:
            text += "\n\nKernels:\n\n" + format_table(
                [
                    "kernel",
                    "threads",
                    "SIMD",
                    "median s",
                    GFLOPS,
                    GBS,
                    "flop/B",
                    "bound",
                    "of SGEMM",
                    "of FMA peak",
                    "of stream triad",
                ],
                kernels,
            )
        parts.append(text)
    return "\n\n".join(parts)


def chart(records: Sequence[dict[str, Any]], path: Path, title: str = TITLE) -> Path:
    """A roofline PNG: arithmetic intensity against GFLOP/s, the ceilings and every kernel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = fractions(records)
    threads = sorted({r["threads"] for r in records})
    sizes = list(dict.fromkeys(r["size"] for r in records))
    # one panel: the largest size at the most threads (the figures the report leads with)
    size, n_threads = sizes[-1], threads[-1]
    same = [r for r in records if r["size"] == size and r["threads"] == n_threads]
    shown = [
        p
        for p in points
        if p["size"] == size and p["threads"] == n_threads and p["gflops"] and p["intensity"]
    ]
    triad = next((_rate(r, GBS) for r in same if r["contender"] == "stream triad"), None)
    intensities = [p["intensity"] for p in shown] or [1.0]
    # room on the right for the labels of the most intense kernels
    x = np.logspace(np.log10(min(intensities + [0.05]) / 2), np.log10(max(intensities + [100.0]) * 30), 200)
    fig, ax = plt.subplots(figsize=(9, 6))
    for r in same:
        if _kind(r) in ("fma", "sgemm"):
            rate = _rate(r, GFLOPS)
            if rate is None:
                continue
            roof = np.minimum(rate, x * triad) if triad else np.full_like(x, rate)
            style = "-" if _kind(r) == "fma" else "--"
            ax.plot(x, roof, style, linewidth=1.2, label=f"{r['contender']}: {rate:.0f} GFLOP/s")
    if triad:  # the bandwidth slope, up to the highest ceiling
        top = max([_rate(r, GFLOPS) or 0.0 for r in same if _kind(r) in ("fma", "sgemm")] or [0.0])
        slope = x[x * triad <= top] if top else x
        ax.plot(slope, slope * triad, ":", color="grey", linewidth=1, label=f"stream triad: {triad:.0f} GB/s")
    for p in shown:
        ax.plot(p["intensity"], p["gflops"], "o", markersize=7)
        ax.annotate(
            f"{p['kernel']}" + (f" [{p['simd']}]" if p["simd"] else ""),
            (p["intensity"], p["gflops"]),
            textcoords="offset points",
            xytext=(6, -3),
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flops per byte of the kernel's memory model)")
    ax.set_ylabel("GFLOP/s")
    ax.grid(which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{title}: size {size}, {n_threads} thread{'s' if n_threads != 1 else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None, prog: str = "python -m fastrec.bench roofline") -> int:
    """Run this benchmark alone (see ``--help``)."""
    return suite.main([NAME], sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
