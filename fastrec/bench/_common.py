"""Timing, peer isolation, table printing and option parsing shared by the benchmark modules."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

# Exit code of a usage mistake, for the benchmarks and the ``fastrec`` command line alike.
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2.

    The benchmarks parse their own options with it, and the ``fastrec`` command
    line (which runs them) builds every subcommand's parser on it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


# --- MovieLens 100K, run as the extra size "ml-100k" where it is on this machine ---

DEFAULT_ML100K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ml-100k"
ML100K_SIZE = "MovieLens 100K (943 x 1,682, 100,000 ratings)"


def u_data_in(root: str | os.PathLike) -> Path | None:
    """``u.data`` in ``root``: a folder holding ``ml-100k/``, the ``ml-100k`` folder or the file itself."""
    root = Path(root)
    for candidate in (root / "ml-100k" / "u.data", root / "u.data", root):
        if candidate.is_file() and candidate.name == "u.data":
            return candidate
    return None


def find_ml100k(data: str | None = None) -> Path | None:
    """The ``u.data`` file of MovieLens 100K, or None when it is not on this machine."""
    roots = [data] if data else []
    roots += [os.environ.get("FASTREC_DATA", ""), "../shared/data", "shared/data"]
    for root in roots:
        found = u_data_in(root) if root else None
        if found is not None:
            return found
    return None


def ml100k_path(given: Any = None) -> Path | None:
    """``u.data`` of MovieLens 100K, or None when it is not on this machine.

    ``given`` (a folder holding ``ml-100k/``, the ``ml-100k`` folder or ``u.data``
    itself) is the only place looked at when it is not None; otherwise
    $FASTREC_DATA, ../shared/data and shared/data are searched.
    """
    if given is not None:
        return u_data_in(given)
    found = find_ml100k(None)
    if found is None and (DEFAULT_ML100K / "u.data").is_file():
        found = DEFAULT_ML100K / "u.data"
    return found


def sizes_with_ml100k(sizes: dict[str, str], options: dict[str, Any]) -> dict[str, str]:
    """``sizes``, plus MovieLens 100K when it is on this machine (``options["ml100k"]``)."""
    found = dict(sizes)
    if ml100k_path(options.get("ml100k")) is not None:
        found["ml-100k"] = ML100K_SIZE
    return found


def ml100k_ratings(given: Any = None):
    """The users x items CSR of MovieLens 100K (see :func:`ml100k_path`)."""
    from fastrec.datasets import load_ml100k

    path = ml100k_path(given)
    if path is None:
        raise FileNotFoundError("MovieLens 100K u.data is not on this machine; pass its folder.")
    return load_ml100k(path).matrix
