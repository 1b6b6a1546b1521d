"""``fastrec bench [NAME|all]``: fastrec beside every installed peer, with a report.

The options are those of ``python -m fastrec.bench``: ``--size S,M,L``,
``--threads N``, ``--peers/--no-peers``, ``--out DIR`` (Markdown report, JSON
and PNG charts) and each benchmark's own (``fastrec bench cosine --help``).
``fastrec bench dask`` (fastrec.dask beside Spark MLlib ALS and dask-ml KMeans,
and a scaling run) adds ``--only mf,kmeans,scale``, ``--quick``, ``--data-dir``
and ``--workers``; ``all`` leaves it out.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Register the ``bench`` subcommand (its options are parsed by fastrec.bench)."""
    from fastrec.bench import BENCHMARKS

    names = ", ".join([*sorted(BENCHMARKS), "all"])
    parser = commands.add_parser(
        "bench",
        help=f"side-by-side benchmarks against peers ({names})",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Hand the arguments to :func:`fastrec.bench.__main__.main`."""
    from fastrec.bench.__main__ import main

    rest = list(args.rest)
    return main(rest or ["all"], prog="fastrec bench")
