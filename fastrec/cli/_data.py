"""Reading a ratings file or folder given on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastrec.cli._parser import CliError

MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read a ratings file."""
    group = parser.add_argument_group("reading the ratings")
    group.add_argument("--format", choices=["auto", "movielens", "table"], default="auto",
                       help="'movielens' for a MovieLens folder or ratings file, 'table' for any "
                            "CSV/TSV/Parquet file with named columns (default: auto)")
    group.add_argument("--sep", help="field separator of a text file (default: sniffed)")
    group.add_argument("--user-col", help="column of the user ids (name, or position with "
                                          "--no-header)")
    group.add_argument("--item-col", help="column of the item ids")
    group.add_argument("--rating-col", help="column of the ratings")
    group.add_argument("--timestamp-col", help="column of the times")
    group.add_argument("--no-header", action="store_true", help="the text file has no header line")
    group.add_argument("--implicit", action="store_true",
                       help="ignore ratings: every interaction counts 1")


def _column(value: str | None, positional: bool) -> Any:
    if value is not None and positional:
        try:
            return int(value)
        except ValueError:
            raise CliError(f"with --no-header columns are positions (0, 1, ...), got {value!r}") \
                from None
    return value


def load(path: str | Path, args: argparse.Namespace) -> Any:
    """The ratings at ``path`` as :class:`fastrec.datasets.Interactions`."""
    from fastrec.datasets import load_interactions, load_movielens

    path = Path(path)
    if not path.exists():
        raise CliError(f"{str(path)!r} does not exist")
    columns_given = any(getattr(args, name, None) is not None for name in
                        ("user_col", "item_col", "rating_col", "timestamp_col", "sep"))
    movielens = args.format == "movielens" or (
        args.format == "auto" and not columns_given and not args.no_header
        and (path.is_dir() or path.name in MOVIELENS_FILES))
    if movielens:
        data = load_movielens(path)
    else:
        positional = bool(args.no_header)
        data = load_interactions(
            path, _column(args.user_col, positional), _column(args.item_col, positional),
            _column(args.rating_col, positional), _column(args.timestamp_col, positional),
            sep=args.sep, header=not args.no_header, implicit=args.implicit)
    if args.implicit and movielens:
        data.matrix.data[:] = 1.0
    return data
