"""Benchmark reports: machine details, Markdown tables, a JSON file and PNG charts."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastrec.bench._common import format_table

# Distributions whose versions the report records when installed.
PACKAGES = (
    "numpy",
    "scipy",
    "numba",
    "threadpoolctl",
    "scikit-learn",
    "implicit",
    "lightfm",
    "sparse-dot-topn",
    "scikit-surprise",
    "faiss-cpu",
    "libmf",
    "pandas",
)


@dataclass
class Section:
    """The results of one benchmark (kernel)."""

    name: str
    title: str
    unit: str
    description: str
    sizes: list[str]
    size_descriptions: dict[str, str]
    records: list[dict[str, Any]] = field(default_factory=list)


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(threads: Sequence[int]) -> dict[str, Any]:
    """CPU, cores, SIMD level, threads, BLAS, OS and package versions, as a dictionary."""
    from importlib import metadata

    import fastrec
    from fastrec import _runtime

    config = _runtime.config()
    versions = {"python": platform.python_version(), "fastrec": fastrec.__version__}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "logical_cpus": os.cpu_count(),
        "usable_cores": config["usable_cores"],
        "simd": config["simd"],
        "simd_detected": config["simd_detected"],
        "threads": list(threads),
        "openmp": config["openmp_version"],
        "blas": config["blas"],
        "openblas_coretype": config["OPENBLAS_CORETYPE"],
        "versions": versions,
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One line: CPU, cores, SIMD, threads."""
    return (
        f"{machine['cpu']}; {machine['usable_cores']} usable cores; fastrec "
        f"{machine['versions']['fastrec']} SIMD {machine['simd']}; threads "
        f"{', '.join(map(str, machine['threads']))}"
    )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def reference_name(records: Sequence[dict[str, Any]]) -> str | None:
    """The contender every ratio is taken against: fastrec cpp, else the first fastrec backend.

    Under ``--simd`` (contenders named ``fastrec cpp [level]``) each record is compared
    with fastrec cpp at its own level (see :func:`ratios`); the name returned then reads
    ``fastrec cpp [same level]``.
    """
    names = [r["contender"] for r in records if not r["peer"]]
    if "fastrec cpp" in names:
        return "fastrec cpp"
    if any(name.startswith("fastrec cpp [") for name in names):
        return "fastrec cpp [same level]"
    return names[0] if names else None


def _reference_of(record: dict[str, Any], reference: str | None) -> str | None:
    if reference == "fastrec cpp [same level]":
        return f"fastrec cpp [{record.get('simd')}]"
    return reference


def ratios(records: Sequence[dict[str, Any]]) -> dict[tuple[str, int, str], float]:
    """(size, threads, contender) -> median time / the reference's median time (same size,
    threads, and under ``--simd`` the same SIMD level)."""
    reference = reference_name(records)
    medians = {(r["size"], r["threads"], r["contender"]): _median(r["times"]) for r in records if r["times"]}
    out = {}
    for r in records:
        ref = medians.get((r["size"], r["threads"], _reference_of(r, reference)))
        median = _median(r["times"])
        if ref and median is not None:
            out[(r["size"], r["threads"], r["contender"])] = median / ref
    return out


def rates(record: dict[str, Any]) -> dict[str, float]:
    """The record's rates (``"M updates/s"``, ``"GFLOP/s"``): its work per run / its median time.

    A rate taken from one round would disagree with the median time beside it.
    """
    median = _median(record["times"])
    if not median:
        return {}
    return {name: float(f"{work / median:.4g}") for name, work in record.get("work", {}).items()}


def _quality_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _own_report(section: Section) -> Any:
    """The section's benchmark module when it draws its own tables and chart, else None.

    The module is found by its registered name, so the report imports no benchmark
    (each benchmark's driver imports the report).
    """
    import importlib

    from fastrec.bench import BENCHMARKS

    if section.name not in BENCHMARKS:
        return None
    bench = importlib.import_module(BENCHMARKS[section.name])
    return bench if hasattr(bench, "tables") and hasattr(bench, "chart") else None


def section_tables(section: Section) -> str:
    """Markdown tables of one section: one per size."""
    own = _own_report(section)
    if own is not None:  # e.g. the roofline: ceilings and fractions of them, not time ratios
        return str(own.tables(section.records, section.sizes, section.size_descriptions))
    reference = reference_name(section.records)
    ratio = ratios(section.records)
    quality_keys: list[str] = []
    for r in section.records:
        quality_keys += [k for k in [*r["quality"], *r.get("work", {})] if k not in quality_keys]
    parts = []
    for size in section.sizes:
        rows = []
        for r in (r for r in section.records if r["size"] == size):
            median, best = _median(r["times"]), min(r["times"]) if r["times"] else None
            cpu = _median([c for c in r["cpu_times"] if c is not None])
            key = (size, r["threads"], r["contender"])
            rows.append(
                [
                    r["contender"],
                    r["threads"],
                    "failed" if median is None else f"{median:.4g}",
                    "-" if best is None else f"{best:.4g}",
                    "-" if cpu is None else f"{cpu:.4g}",
                    f"{ratio[key]:.2f}x" if key in ratio else "-",
                    *[_quality_cell({**r["quality"], **rates(r)}.get(k, "-")) for k in quality_keys],
                    ", ".join(f"{t:.3g}" for t in r["times"])
                    + (f" ({len(r['errors'])} failed: {r['errors'][-1]})" if r["errors"] else ""),
                ]
            )
        header = [
            "contender",
            "threads",
            f"median {section.unit}",
            "min",
            "CPU (median)",
            f"time / {reference}",
            *quality_keys,
            "all rounds",
        ]
        parts.append(
            f"### {size}: {section.size_descriptions.get(size, '')}\n\n" + format_table(header, rows)
        )
    return "\n\n".join(parts)


def chart(section: Section, path: Path) -> Path:
    """PNG with two panels: median time by size, and time relative to the reference.

    A benchmark with its own ``chart`` draws that instead (the roofline: intensity
    against GFLOP/s).
    """
    own = _own_report(section)
    if own is not None:
        return Path(own.chart(section.records, path, section.title))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in section.records})
    series: dict[str, dict[str, float]] = {}
    ratio_series: dict[str, dict[str, float]] = {}
    ratio = ratios(section.records)
    for r in section.records:
        label = r["contender"] if len(threads) == 1 else f"{r['contender']} ({r['threads']} thr)"
        median = _median(r["times"])
        if median is not None:
            series.setdefault(label, {})[r["size"]] = median
        key = (r["size"], r["threads"], r["contender"])
        if key in ratio:
            ratio_series.setdefault(label, {})[r["size"]] = ratio[key]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    sizes = section.sizes
    positions = {size: k for k, size in enumerate(sizes)}
    for label, values in series.items():  # times span decades across sizes: lines, log scale
        shown = [s for s in sizes if s in values]
        left.plot([positions[s] for s in shown], [values[s] for s in shown], marker="o", label=label)
    if series:
        left.set_yscale("log")
    left.set_ylabel(f"median {section.unit} (log scale)")
    width = 0.8 / max(len(ratio_series), 1)
    for n, (label, values) in enumerate(ratio_series.items()):
        shown = [s for s in sizes if s in values]
        offset = (n - (len(ratio_series) - 1) / 2) * width
        right.bar([positions[s] + offset for s in shown], [values[s] for s in shown], width, label=label)
    right.set_ylabel(f"time / {reference_name(section.records)} (lower is faster)")
    for panel in (left, right):
        panel.set_xticks(range(len(sizes)))
        panel.set_xticklabels(sizes)
        panel.set_xlim(-0.6, len(sizes) - 0.4)
        panel.set_xlabel("size")
        panel.grid(axis="y", alpha=0.3)
    right.axhline(1.0, color="black", linewidth=0.8)
    left.legend(fontsize=8)
    fig.suptitle(section.title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def machine_table(machine: dict[str, Any]) -> str:
    rows = [
        ["CPU", machine["cpu"]],
        ["cores", f"{machine['usable_cores']} usable ({machine['logical_cpus']} logical)"],
        ["SIMD path", f"{machine['simd']} (CPU supports {machine['simd_detected']})"],
        ["threads", ", ".join(map(str, machine["threads"]))],
        ["OpenMP", str(machine["openmp"])],
        ["BLAS", "; ".join(machine["blas"]) or "none loaded"],
        ["OPENBLAS_CORETYPE", machine["openblas_coretype"] or "(unset)"],
        ["OS", f"{machine['os']} ({machine['machine']})"],
        ["versions", ", ".join(f"{k} {v}" for k, v in machine["versions"].items())],
        ["date", machine["date"]],
    ]
    return format_table(["", ""], rows)


def markdown(
    sections: Sequence[Section], machine: dict[str, Any], settings: dict[str, Any], charts: dict[str, str]
) -> str:
    """The whole report as Markdown."""
    reference = "fastrec cpp"
    lines = [
        "# fastrec benchmarks",
        "",
        f"Generated by `fastrec bench {' '.join(settings['benchmarks'])}`: every contender runs "
        "in its own process on the same data, interleaved round by round (the order rotates "
        f"each round); {settings['repeats']} rounds. Times are medians over rounds; "
        f"'time / {reference}' above 1 means slower than fastrec's C++ backend. Peers: "
        f"{'every installed peer' if settings['peers'] else 'none (--no-peers)'}.",
        "",
        "## Machine",
        "",
        machine_table(machine),
    ]
    for section in sections:
        lines += ["", f"## {section.name}: {section.title}", ""]
        if section.description:
            lines += [section.description.replace("``", "`"), ""]
        lines.append(section_tables(section))
        if section.name in charts:
            lines += ["", f"![{section.name}]({charts[section.name]})"]
    return "\n".join(lines) + "\n"


def write(
    out: Path, sections: Sequence[Section], machine: dict[str, Any], settings: dict[str, Any]
) -> list[Path]:
    """Write the Markdown report, the JSON results and one PNG per section.

    Parameters
    ----------
    out : Path
        A folder (created) that receives ``report.md``, ``results.json`` and
        ``<name>.png``; or a path ending in ``.md``, the report itself, with
        the other files beside it.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    folder, report_path = (out.parent, out) if out.suffix == ".md" else (out, out / "report.md")
    folder.mkdir(parents=True, exist_ok=True)
    stem = "" if report_path.name == "report.md" else report_path.stem + "-"
    written = []
    charts = {}
    try:
        import matplotlib  # noqa: F401

        plotting = True
    except ImportError:
        plotting = False
        print("note: matplotlib is not installed; no charts (pip install matplotlib)", file=sys.stderr)
    for section in sections:
        if plotting and any(r["times"] for r in section.records):
            png = chart(section, folder / f"{stem}{section.name}.png")
            charts[section.name] = png.name
            written.append(png)
    report_path.write_text(markdown(sections, machine, settings, charts))
    json_path = folder / f"{stem}results.json"
    payload = {
        "machine": machine,
        "settings": settings,
        "results": [dict(r, rates=rates(r)) for s in sections for r in s.records],
        "ratios": [
            {"kernel": s.name, "size": k[0], "threads": k[1], "contender": k[2], "time_ratio": v}
            for s in sections
            for k, v in ratios(s.records).items()
        ],
    }
    json_path.write_text(json.dumps(payload, indent=1))
    return [report_path, json_path, *written]
