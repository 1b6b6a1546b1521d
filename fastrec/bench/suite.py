"""The benchmark driver shared by every kernel: contenders, rounds, subprocesses, options.

A benchmark module (``fastrec.bench.cosine`` and its siblings) implements

``NAME``, ``TITLE``, ``UNIT``
    Registry name, report heading and what its seconds measure (e.g. "fit time").
``SIZES`` / ``DEFAULT_SIZES``
    Size name -> description, and the sizes run when none is asked for.
    Optional hooks ``sizes(options)`` and ``default_sizes(options)`` override
    them when they depend on options or on files found on the machine.
``contenders(options) -> list[Contender]``
    fastrec's backends and every installed peer.
``prepare(size, folder, options) -> dict``
    Build the data of one size once, write it under ``folder``, and return a
    JSON-serialisable description (paths, shape text); runs in the driver.
``measure(contender, data, threads) -> dict``
    Runs in a fresh worker process: load ``data``, warm up, time one run and
    return ``{"seconds": ..., "cpu_seconds": ..., "quality": {...}}`` (optional
    ``"threads"`` when the contender ignores the thread count, and optional
    ``"work": {"M updates/s": 16.0}``: the work of one run in the numerator's
    unit, which the report divides by the median time to give the rate).
``add_arguments(parser)`` (optional)
    Options of this benchmark only; they reach ``contenders``/``prepare`` in ``options``.
``tables(records, sizes, size_descriptions)`` and ``chart(records, path, title)`` (optional)
    The report section's Markdown tables and PNG chart, for results that are not
    times to compare (the roofline's ceilings); :mod:`fastrec.bench.report` finds
    them by the registered name.

``--simd LEVELS`` (every benchmark) runs fastrec's contenders once per SIMD level,
forced in the worker through ``FASTREC_SIMD``, and the peers that use OpenBLAS
(``Contender.blas``, or an ``OPENBLAS_CORETYPE`` in their environment) once per
level too, under the OpenBLAS core of the same instruction set
(:data:`SIMD_CORETYPES`), with faiss's own kernels pinned to the same level
(``FAISS_SIMD_LEVEL``).  Every record names its level.

:func:`run` times every contender on every size and thread count, one process
per measurement, interleaved round by round (contender order rotated each
round) so that drifts in machine speed hit all contenders alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fastrec.bench import BENCHMARKS, ORDER

SIMD_LEVELS = ("baseline", "avx2", "avx512")
# OpenBLAS core of each SIMD level, for the peers: the installed OpenBLAS has no
# kernels of its own for Prescott or Core2 (it falls back to the generic Katmai
# ones), so baseline uses Nehalem, its SSE core.
SIMD_CORETYPES = {"baseline": "Nehalem", "avx2": "Haswell", "avx512": "SkylakeX"}
# faiss dispatches its own distance kernels (not OpenBLAS's) by CPU at load time;
# FAISS_SIMD_LEVEL pins them to the same instruction set.
SIMD_FAISS_LEVELS = {"baseline": "NONE", "avx2": "AVX2", "avx512": "AVX512"}


@dataclass(frozen=True)
class Contender:
    """One implementation under test.

    Attributes
    ----------
    name : str
        Label in the report, e.g. ``"fastrec cpp"`` or ``"sklearn"``.
    key : str
        What the worker's ``measure`` dispatches on (default ``name``).
    env : dict of str to str or None
        Extra environment of its worker process (e.g. ``OPENBLAS_CORETYPE``);
        None removes a variable the driver has.
    sizes : tuple of str or None
        Sizes it runs on; ``None`` means all.
    peer : bool
        False for fastrec's own backends.
    blas : bool
        Whether the peer's time depends on OpenBLAS (its core follows ``--simd``).
    simd : str or None
        The SIMD level it runs at under ``--simd`` (None: the machine's own).
    """

    name: str
    key: str = ""
    env: dict[str, str | None] = field(default_factory=dict)
    sizes: tuple[str, ...] | None = None
    peer: bool = True
    blas: bool = False
    simd: str | None = None

    def runs_on(self, size: str) -> bool:
        return self.sizes is None or size in self.sizes

    @property
    def dispatch(self) -> str:
        return self.key or self.name


def module(name: str) -> ModuleType:
    """The benchmark module registered as ``name``."""
    return importlib.import_module(BENCHMARKS[name])


def installed(module_name: str) -> bool:
    """Whether ``module_name`` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def simd_contenders(found: Sequence[Contender], levels: Sequence[str]) -> list[Contender]:
    """``found`` expanded for ``--simd``: one copy per level of fastrec and of the BLAS peers.

    fastrec's compiled (``cpp``) contenders run with ``FASTREC_SIMD`` set to the
    level; a BLAS peer runs with ``OPENBLAS_CORETYPE`` set to the level's core
    and ``FAISS_SIMD_LEVEL`` to the level (its own coretype settings are
    replaced, and the copies that then coincide are merged).  fastrec's Numba and numpy
    backends, which the level does not reach, and peers that do not use OpenBLAS run
    once, as given.
    """
    out: list[Contender] = []
    seen: set[tuple[str, str]] = set()
    for contender in found:
        uses_blas = contender.blas or "OPENBLAS_CORETYPE" in contender.env
        compiled = not contender.peer and contender.dispatch.split()[-1] == "cpp"
        if (contender.peer and not uses_blas) or (not contender.peer and not compiled):
            out.append(contender)
            continue
        for level in levels:
            if not contender.peer:
                out.append(
                    Contender(
                        f"{contender.name} [{level}]",
                        key=contender.dispatch,
                        env={**contender.env, "FASTREC_SIMD": level},
                        sizes=contender.sizes,
                        peer=False,
                        simd=level,
                    )
                )
                continue
            if (contender.dispatch, level) in seen:
                continue
            seen.add((contender.dispatch, level))
            coretype = SIMD_CORETYPES[level]
            out.append(
                Contender(
                    f"{contender.dispatch} [{level}: {coretype}]",
                    key=contender.dispatch,
                    env={
                        **contender.env,
                        "OPENBLAS_CORETYPE": coretype,
                        "FAISS_SIMD_LEVEL": SIMD_FAISS_LEVELS[level],
                    },
                    sizes=contender.sizes,
                    peer=True,
                    blas=True,
                    simd=level,
                )
            )
    return out


def contenders_of(bench: ModuleType, options: dict[str, Any]) -> list[Contender]:
    """The contenders of ``bench``, expanded per SIMD level when ``options["simd"]`` asks."""
    found = bench.contenders(options)
    levels = options.get("simd") or []
    return simd_contenders(found, levels) if levels else found


def fastrec_backends(requested: Sequence[str] | None) -> list[str]:
    """The requested fastrec backends that exist here (default: the compiled ones)."""
    import fastrec

    available = fastrec.available_backends()
    if requested:
        return [b for b in requested if b in available]
    return [b for b in ("cpp", "numba") if b in available]


def timed(fn: Any) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result) of one call of ``fn``."""
    cpu, start = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


# --- worker side ---------------------------------------------------------------------


def worker_main(argv: Sequence[str]) -> int:
    """``python -m fastrec.bench.suite SPEC``: one measurement, printed as a JSON line."""
    spec = json.loads(argv[0])
    bench = importlib.import_module(spec["module"])
    result = bench.measure(spec["contender"], spec["data"], int(spec["threads"]))
    from fastrec._runtime import simd_level

    result.setdefault("simd", simd_level())  # the level fastrec's kernels ran at in this worker
    print(json.dumps(result))
    return 0


def worker_env(contender: Contender, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``contender``'s worker: ``base`` (default os.environ) and its own."""
    env = dict(os.environ if base is None else base)
    for key, value in contender.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _measure_in_subprocess(
    bench_module: str, contender: Contender, data: dict, threads: int, timeout: float | None
) -> dict:
    env = worker_env(contender)
    spec = {"module": bench_module, "contender": contender.dispatch, "data": data, "threads": threads}
    cmd = [sys.executable, "-m", "fastrec.bench.suite", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit code {done.returncode}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": "no result printed"}


# --- driver side ----------------------------------------------------------------------


def run(
    name: str,
    sizes: Sequence[str],
    threads: Sequence[int],
    repeats: int,
    options: dict[str, Any],
    *,
    timeout: float | None = None,
    log: Any = sys.stderr,
) -> list[dict[str, Any]]:
    """Measure every contender of benchmark ``name`` on ``sizes`` x ``threads``.

    Returns
    -------
    list of dict
        One record per (size, threads, contender): ``kernel``, ``size``,
        ``shape``, ``contender``, ``peer``, ``threads``, ``times``,
        ``cpu_times``, ``quality``, ``errors`` (messages of failed runs), ``simd``
        (the level fastrec ran at, or the level a peer's OpenBLAS core was matched
        to; None for a peer left alone) and ``openblas_coretype``.
    """
    bench = module(name)
    found = contenders_of(bench, options)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"fastrec-bench-{name}-") as tmp:
        for size in sizes:
            folder = Path(tmp) / size
            folder.mkdir()
            data = bench.prepare(size, folder, options)
            active = [c for c in found if c.runs_on(size)]
            for n_threads in threads:
                by_name = {c.name: _record(name, size, data, c, n_threads) for c in active}
                for round_ in range(repeats):
                    shift = round_ % max(len(active), 1)
                    for contender in active[shift:] + active[:shift]:
                        out = _measure_in_subprocess(bench.__name__, contender, data, n_threads, timeout)
                        record = by_name[contender.name]
                        if "error" in out:
                            record["errors"].append(out["error"])
                            print(
                                f"  {name} {size} {n_threads} thr round {round_ + 1}: "
                                f"{contender.name} FAILED: {out['error']}",
                                file=log,
                                flush=True,
                            )
                            continue
                        record["times"].append(out["seconds"])
                        record["cpu_times"].append(out.get("cpu_seconds"))
                        record["quality"] = out.get("quality", {})
                        record["work"] = out.get("work", {})
                        record["threads"] = out.get("threads", n_threads)
                        if not contender.peer:
                            record["simd"] = out.get("simd", contender.simd)
                        print(
                            f"  {name} {size} {n_threads} thr round {round_ + 1}: "
                            f"{contender.name} {out['seconds']:.4g} s",
                            file=log,
                            flush=True,
                        )
                records.extend(by_name.values())
    return records


def _record(kernel: str, size: str, data: dict, contender: Contender, threads: int) -> dict:
    return {
        "kernel": kernel,
        "size": size,
        "shape": data.get("shape", ""),
        "contender": contender.name,
        "peer": contender.peer,
        "threads": threads,
        "times": [],
        "cpu_times": [],
        "quality": {},
        "work": {},
        "errors": [],
        "simd": contender.simd,
        "openblas_coretype": worker_env(contender).get("OPENBLAS_CORETYPE"),
    }


# --- command line ---------------------------------------------------------------------


def _split_list(values: Sequence[str] | None) -> list[str]:
    """``["S,M", "L"]`` -> ``["S", "M", "L"]``."""
    out: list[str] = []
    for value in values or []:
        out += [part.strip() for part in str(value).split(",") if part.strip()]
    return out


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark (and ``all``) takes."""
    parser.add_argument(
        "--size",
        "--sizes",
        dest="sizes",
        nargs="+",
        metavar="SIZE",
        help="sizes to run, e.g. S or S,M,L (default: the benchmark's defaults)",
    )
    parser.add_argument(
        "--threads", nargs="+", metavar="N", help="thread counts, e.g. 2 or 1,2 (default: every usable core)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds; each runs every contender once (default 3)"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        metavar="BACKEND",
        help="fastrec backends, e.g. cpp,numba (default: the compiled ones)",
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the installed peer libraries (default: yes)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for report.md, results.json and PNG charts (a path ending "
        "in .md names the report itself)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds one measurement may take before it counts as failed",
    )
    parser.add_argument(
        "--simd",
        nargs="+",
        metavar="LEVEL",
        help="run fastrec at each SIMD level, e.g. avx2,avx512 (baseline, avx2, "
        "avx512; each in its own process through FASTREC_SIMD), and the "
        "OpenBLAS peers under the matching OPENBLAS_CORETYPE "
        "(Nehalem, Haswell, SkylakeX); default: the machine's widest level "
        "and each benchmark's own coretypes",
    )


def module_options(bench: ModuleType, args: argparse.Namespace | None) -> dict[str, Any]:
    """The benchmark's own options: from ``args`` when given, else their defaults."""
    own = argparse.ArgumentParser(add_help=False)
    if hasattr(bench, "add_arguments"):
        bench.add_arguments(own)
    defaults = vars(own.parse_args([]))
    if args is not None:
        defaults.update({k: getattr(args, k) for k in defaults if hasattr(args, k)})
    return defaults


def _error(parser: argparse.ArgumentParser, message: str) -> None:
    parser.error(message)


def main(names: Sequence[str], argv: Sequence[str], prog: str) -> int:
    """Parse the common (and, for one benchmark, its own) options; run; report.

    Parameters
    ----------
    names : sequence of str
        Registered benchmark names to run (one, or every one for ``all``).
    argv : sequence of str
        Options after the benchmark name.
    prog : str
        Program name for the usage line.
    """
    from fastrec.bench import report
    from fastrec.bench._common import Parser

    single = len(names) == 1
    bench_modules = {name: module(name) for name in names}
    first = bench_modules[names[0]]
    description = (
        (first.__doc__ or "").split("\n\n")[0].replace("``", "")
        if single
        else f"every registered benchmark in turn: {', '.join(names)}"
    )
    parser = Parser(prog=prog, description=description)
    add_common_arguments(parser)
    if single and hasattr(first, "add_arguments"):
        first.add_arguments(parser.add_argument_group(f"{names[0]} options"))
    args = parser.parse_args(list(argv))

    from fastrec._runtime import usable_cores

    try:
        threads = [int(t) for t in _split_list(args.threads)] or [usable_cores()]
    except ValueError:
        _error(parser, f"--threads takes whole numbers, got {' '.join(args.threads)!r}")
    if any(t < 1 for t in threads):
        _error(parser, "--threads must be >= 1")
    if args.repeats < 1:
        _error(parser, "--repeats must be >= 1")
    backends = _split_list(args.backends)
    for backend in backends:
        if backend not in ("cpp", "numba", "numpy"):
            _error(parser, f"--backends: {backend!r} is not one of cpp, numba, numpy")
    requested_sizes = _split_list(args.sizes)
    from fastrec._runtime import available_simd_levels

    simd = list(dict.fromkeys(s.lower() for s in _split_list(args.simd)))
    for level in simd:
        if level not in SIMD_LEVELS:
            _error(parser, f"--simd: {level!r} is not one of {', '.join(SIMD_LEVELS)}")
        if level not in available_simd_levels():
            _error(
                parser,
                f"--simd: this CPU cannot run {level!r}; it runs "
                f"{', '.join(available_simd_levels()) or 'no compiled level'}",
            )

    plan = []
    for name, bench in bench_modules.items():
        options = module_options(bench, args if single else None)
        options.update(peers=args.peers, backends=fastrec_backends(backends), simd=simd)
        available = bench.SIZES if not hasattr(bench, "sizes") else bench.sizes(options)
        if requested_sizes:
            sizes = requested_sizes
        else:  # the defaults that exist here (e.g. MovieLens only when it is on this machine)
            defaults = (
                bench.default_sizes(options) if hasattr(bench, "default_sizes") else bench.DEFAULT_SIZES
            )
            sizes = [s for s in defaults if s in available]
        unknown = [s for s in sizes if s not in available]
        if unknown and single:
            _error(parser, f"size {unknown[0]!r} is not one of {', '.join(available)} for {name}")
        plan.append((name, bench, [s for s in sizes if s in available], options, available))
    if not any(sizes for _, _, sizes, _, _ in plan):
        _error(parser, f"none of the sizes {requested_sizes} exists for {', '.join(names)}")

    machine = report.machine_info(threads)
    print(report.machine_line(machine), flush=True)
    records: list[dict[str, Any]] = []
    sections = []
    for name, bench, sizes, options, available in plan:
        if not sizes:
            print(f"{name}: skipped (no size among {requested_sizes})", file=sys.stderr)
            continue
        contenders = [c.name for c in contenders_of(bench, options)]
        print(
            f"# {bench.TITLE}: {', '.join(contenders)}; sizes {', '.join(sizes)}; "
            f"threads {', '.join(map(str, threads))}; {args.repeats} rounds",
            flush=True,
        )
        found = run(name, sizes, threads, args.repeats, options, timeout=args.timeout)
        records += found
        section = report.Section(
            name, bench.TITLE, bench.UNIT, _summary(bench), sizes, {s: available[s] for s in sizes}, found
        )
        sections.append(section)
        print(report.section_tables(section), flush=True)
    settings = {
        "benchmarks": [n for n, _, s, _, _ in plan if s],
        "threads": threads,
        "repeats": args.repeats,
        "peers": args.peers,
        "backends": fastrec_backends(backends),
        "simd": simd,
    }
    if args.out is not None:
        written = report.write(args.out, sections, machine, settings)
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def _summary(bench: ModuleType) -> str:
    """The module docstring without its first line (the command), as one paragraph per block."""
    doc = (bench.__doc__ or "").strip().split("\n\n")
    return "\n\n".join(doc[1:]).strip()


def registered(names: Sequence[str] = ORDER) -> list[str]:
    """The names of ``names`` that are registered, in order (``all`` skips the others)."""
    return [n for n in names if n in BENCHMARKS] + [n for n in BENCHMARKS if n not in names]


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
