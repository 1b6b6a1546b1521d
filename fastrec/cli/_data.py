"""Reading a ratings file or folder given on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastrec.cli._parser import CliError

MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv")
# The HetRec 2011 Last.fm release: play counts per (user, artist), artist names beside them.
LASTFM_PLAYS, LASTFM_ARTISTS = "user_artists.dat", "artists.dat"
TRANSFORMS = ("none", "log1p")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read a ratings file."""
    group = parser.add_argument_group("reading the ratings")
    group.add_argument(
        "--format",
        choices=["auto", "movielens", "table"],
        default="auto",
        help="'movielens' for a MovieLens folder or ratings file, 'table' for any "
        "CSV/TSV/Parquet file with named columns (default: auto)",
    )
    group.add_argument("--sep", help="field separator of a text file (default: sniffed)")
    group.add_argument("--user-col", help="column of the user ids (name, or position with --no-header)")
    group.add_argument("--item-col", help="column of the item ids")
    group.add_argument("--rating-col", help="column of the ratings")
    group.add_argument("--timestamp-col", help="column of the times")
    group.add_argument("--no-header", action="store_true", help="the text file has no header line")
    group.add_argument("--implicit", action="store_true", help="ignore ratings: every interaction counts 1")
    group.add_argument(
        "--transform",
        choices=TRANSFORMS,
        help="rescale the values before fitting: log1p fits on log(1 + value), "
        "for play counts and clicks; none fits the values as they are "
        "(default: as they are, but --model mf stops on values that look "
        "like counts rather than ratings)",
    )


def _column(value: str | None, positional: bool) -> Any:
    if value is not None and positional:
        try:
            return int(value)
        except ValueError:
            raise CliError(f"with --no-header columns are positions (0, 1, ...), got {value!r}") from None
    return value


def load(path: str | Path, args: argparse.Namespace) -> Any:
    """The ratings at ``path`` as :class:`fastrec.datasets.Interactions`."""
    from fastrec.datasets import load_interactions, load_movielens

    path = Path(path)
    if not path.exists():
        raise CliError(f"{str(path)!r} does not exist")
    columns_given = any(
        getattr(args, name, None) is not None
        for name in ("user_col", "item_col", "rating_col", "timestamp_col", "sep")
    )
    if (
        args.format == "auto"
        and not columns_given
        and not args.no_header
        and (
            path.name == LASTFM_PLAYS
            or (
                path.is_dir()
                and (path / LASTFM_PLAYS).is_file()
                and not any((path / name).exists() for name in MOVIELENS_FILES)
            )
        )
    ):
        return _lastfm(path if path.is_dir() else path.parent, args)
    movielens = args.format == "movielens" or (
        args.format == "auto"
        and not columns_given
        and not args.no_header
        and (path.is_dir() or path.name in MOVIELENS_FILES)
    )
    if movielens:
        data = load_movielens(path)
    else:
        positional = bool(args.no_header)
        data = load_interactions(
            path,
            _column(args.user_col, positional),
            _column(args.item_col, positional),
            _column(args.rating_col, positional),
            _column(args.timestamp_col, positional),
            sep=args.sep,
            header=False if args.no_header else None,
            implicit=args.implicit,
        )
    if args.implicit and movielens:
        data.matrix.data[:] = 1.0
    return data


def _lastfm(folder: Path, args: argparse.Namespace) -> Any:
    """A HetRec Last.fm folder: its play counts, artists named from ``artists.dat`` when present."""
    import csv

    import pandas as pd

    from fastrec.datasets import Interactions, load_interactions

    data = load_interactions(folder / LASTFM_PLAYS, "userID", "artistID", "weight", implicit=args.implicit)
    names = folder / LASTFM_ARTISTS
    if not names.is_file():
        return data
    try:
        table = pd.read_csv(
            names,
            sep="\t",
            usecols=["id", "name"],
            quoting=csv.QUOTE_NONE,
            encoding="utf-8",
            encoding_errors="replace",
        )
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the artist names in {str(names)!r}: {exc}") from exc
    titles = pd.Series(table["name"].to_numpy(), index=table["id"].to_numpy())
    titles = titles[~titles.index.duplicated()].reindex(data.item_ids)
    return Interactions(
        data.matrix,
        data.user_ids,
        data.item_ids,
        timestamps=data.timestamps,
        items=pd.DataFrame({"title": titles.to_numpy()}),
        name=folder.name,
    )


def count_like(values: Any) -> str | None:
    """Why ``values`` look like counts (plays, clicks) rather than ratings, or None if they do not.

    Rating scales are short (1-5, 0.5-5, 1-10, 0-100) and their values sit near the
    middle; counts run to hundreds or more, with a long tail far above the median.
    """
    import numpy as np

    values = np.asarray(values)
    if values.size == 0 or values.min() < 0:
        return None
    high, median = float(values.max()), float(np.median(values))
    if high > 100 or (high >= 20 and high > 20 * max(median, 1e-12)):
        return (
            f"the values run from {values.min():g} to {high:,.0f} with median {median:g}: "
            "they look like play counts or clicks, not ratings"
        )
    return None


def transform(data: Any, name: str | None) -> str | None:
    """Apply ``--transform`` to ``data``'s values in place; a note of what was done, or None."""
    import numpy as np

    if name != "log1p":
        return None
    if data.matrix.data.size and data.matrix.data.min() <= -1:
        raise CliError(f"--transform log1p needs values > -1, got {float(data.matrix.data.min()):g}")
    np.log1p(data.matrix.data, out=data.matrix.data)
    values = data.matrix.data
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    return f"fitting on log1p(value): values now {low:.3g} to {high:.3g}"
