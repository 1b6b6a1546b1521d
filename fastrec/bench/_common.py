"""Timing, peer isolation and table printing shared by the benchmark modules."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measurement:
    """Wall-clock times of one contender on one task, in seconds."""

    contender: str
    task: str
    threads: int
    times: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[list[float], Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return (times, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def blas_threads(n_threads: int):
    """Context manager holding every BLAS / OpenMP pool to ``n_threads`` (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats get 3 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_summary() -> str:
    """One line on the CPU, SIMD level, cores and OPENBLAS_CORETYPE in force."""
    import fastrec

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}; fastrec {fastrec.__version__} SIMD {fastrec.simd_level()}; "
        f"{os.cpu_count()} cores; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )


# --- sizes shared by the benchmarks on ratings ---

# XS is a smoke-test size (seconds for a whole suite); S, M and L follow the
# MovieLens 100K, 1M and 10M shapes (fastrec.datasets.SIZES).
TINY = (300, 400, 6_000)
RATING_SIZES = {
    "XS": f"{TINY[0]} x {TINY[1]}, {TINY[2]:,} ratings (smoke test)",
    "S": "943 x 1,682, 100,000 ratings (MovieLens 100K shape)",
    "M": "6,040 x 3,706, 1,000,000 ratings (MovieLens 1M shape)",
    "L": "69,878 x 10,677, 10,000,000 ratings (MovieLens 10M shape)",
}


def make_size_ratings(size: str, seed: int = 0):
    """The synthetic users x items ratings of benchmark size ``size`` (see RATING_SIZES)."""
    from fastrec.datasets import make_benchmark_ratings, make_ratings

    if size == "XS":
        return make_ratings(*TINY, seed=seed)
    return make_benchmark_ratings(size, seed=seed)


def shape_text(R) -> str:
    """``"943 x 1,682, 100,000 ratings"``."""
    return f"{R.shape[0]:,} x {R.shape[1]:,}, {R.nnz:,} ratings"
