"""Reading a ratings file or folder given on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastrec.cli._parser import CliError

MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv")
# The HetRec 2011 Last.fm release: play counts per (user, artist), artist names beside them.
LASTFM_PLAYS, LASTFM_ARTISTS = "user_artists.dat", "artists.dat"
# Models that fit rating values, and the ones made for plays, clicks and other behaviour data.
RATING_MODELS = ("mf",)
BEHAVIOUR_MODELS = ("als", "bpr", "warp")
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
        "--duplicates",
        choices=["last", "sum", "error"],
        default="last",
        help="rows repeating a (user, item) pair: keep the last (default), sum them "
        "(an event log of plays or clicks, with --implicit: one per row, so counts), "
        "or stop",
    )
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
        data = _lastfm(path if path.is_dir() else path.parent, args)
        check_model_for_values(data, args, "the file holds Last.fm play counts, not ratings")
        return data
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
            duplicates=getattr(args, "duplicates", "last"),
        )
    if args.implicit and movielens:
        data.matrix.data[:] = 1.0
    check_model_for_values(data, args)
    return data


def check_model_for_values(data: Any, args: argparse.Namespace, counts: str | None = None) -> None:
    """Stop a rating model (``--model mf``) on play counts or clicks, naming the models for them.

    ``counts`` is the loader's word that the values are counts (Last.fm's plays),
    whatever their range (unless ``--implicit`` made them ones); otherwise
    :func:`count_like` decides from the values, which ``--implicit
    --duplicates sum`` turns into counts again.  Nothing is checked under
    ``--transform`` (the values are then rescaled), nor for commands without
    ``--model``.
    """
    model = getattr(args, "model", None)
    if model not in RATING_MODELS or getattr(args, "transform", None) is not None:
        return
    why = count_like(data.matrix.data) if data.nnz else None
    if why is None and not getattr(args, "implicit", False):  # --implicit made the counts ones
        why = counts
    if why is None:
        return
    from fastrec.cli.models import available

    ready = [name for name in BEHAVIOUR_MODELS if available(name)]
    if ready:
        names = ", ".join(ready[:-1]) + " or " + ready[-1] if len(ready) > 1 else ready[0]
        behaviour = f"use --model {names} for plays and clicks"
    else:
        behaviour = "the models for plays and clicks (als, bpr, warp) are not available in this installation"
    # one line on the terminal (fastrec.cli._parser.MAX_MESSAGE): the reason, then the ways out
    raise CliError(
        f"{why}. --model {model} fits rating values and diverges on counts: {behaviour}; or pass "
        "--transform log1p (MF on log(1 + value)), --model itemknn, or --transform none to fit them anyway"
    )


def _lastfm(folder: Path, args: argparse.Namespace) -> Any:
    """A HetRec Last.fm folder: its play counts, artists named from ``artists.dat`` when present."""
    from fastrec.datasets import load_lastfm

    data = load_lastfm(folder)
    if args.implicit:
        data.matrix.data[:] = 1.0
    return data


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
