"""``fastrec info``: version, backends, SIMD path, threads and BLAS (``fastrec.show_config()``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Register the ``info`` subcommand."""
    parser = commands.add_parser(
        "info", help="version, backends, SIMD, threads and BLAS", description=__doc__.replace("``", "")
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print :func:`fastrec.show_config`."""
    import fastrec

    fastrec.show_config()
    return 0
