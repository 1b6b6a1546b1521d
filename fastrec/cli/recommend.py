"""``fastrec recommend MODEL``: top-N recommendations of a saved model, written as CSV or Parquet.

One row per (user, rank): columns ``user``, ``rank`` (1 = best), ``item``,
``score``.  Without ``--out`` the CSV goes to standard output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.cli._parser import CliError


def add_parser(commands: Any) -> None:
    """Register the ``recommend`` subcommand."""
    from fastrec.cli.models import MODELS

    parser = commands.add_parser(
        "recommend",
        help="write top-N recommendations of a saved model",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    parser.add_argument("model", help="a model saved by `fastrec fit` (.npz)")
    parser.add_argument(
        "--users", "-u", help="comma-separated user ids (default: every user the model knows)"
    )
    parser.add_argument("--users-file", help="file with one user id per line")
    parser.add_argument("-n", type=int, default=10, help="recommendations per user (default 10)")
    parser.add_argument(
        "--include-seen", action="store_true", help="also recommend items the user rated in training"
    )
    parser.add_argument("--out", "-o", help="output file, .csv or .parquet (default: CSV on standard output)")
    parser.add_argument(
        "--model-type", choices=sorted(MODELS), help="model class (default: read from the file)"
    )
    parser.set_defaults(handler=run)


def _parse_ids(texts: list[str], known: np.ndarray) -> np.ndarray:
    """Ids typed on the command line, as integers when the model's ids are integers."""
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise CliError("no user ids given")
    if known.dtype.kind in "iu":
        try:
            return np.array([int(t) for t in texts], dtype=np.int64)
        except ValueError:
            bad = next(t for t in texts if not t.lstrip("-").isdigit())
            raise CliError(f"user id {bad!r} is not an integer, but the model's user ids are") from None
    return np.array(texts)


def run(args: argparse.Namespace) -> int:
    """Load the model, recommend, write the table."""
    import pandas as pd

    from fastrec.cli.models import model_for_file

    if args.n < 1:
        raise CliError(f"-n must be >= 1, got {args.n}")
    if not Path(args.model).is_file():
        raise CliError(f"{args.model!r} does not exist")
    if args.users and args.users_file:
        raise CliError("give either --users or --users-file, not both")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CliError(f"--out must end in .csv or .parquet, got {str(out)!r}")
    if out is not None and not out.parent.resolve().is_dir():
        raise CliError(f"cannot write {str(out)!r}: its folder does not exist")
    model = model_for_file(args.model, args.model_type)
    known = getattr(model, "user_ids_", None)
    if known is None:
        raise CliError(f"{type(model).__name__} does not list its users; pass --users")
    if args.users_file:
        try:
            texts = Path(args.users_file).read_text().splitlines()
        except OSError as exc:
            raise CliError(f"cannot read --users-file: {exc}") from exc
        users = _parse_ids(texts, known)
    elif args.users:
        users = _parse_ids(args.users.split(","), known)
    else:
        users = np.asarray(known)
    # Never more slots than items: the table is users x n, whatever -n asked for.
    options = {"n": min(args.n, max(len(model.item_ids_), 1)), "exclude_seen": not args.include_seen}
    items, scores = model.recommend(users, unknown="skip", **options)
    items, scores = np.asarray(items).reshape(len(users), -1), np.asarray(scores).reshape(len(users), -1)
    strangers = np.flatnonzero(np.isin(users, known, invert=True))
    if strangers.size:  # no interactions given: served by popularity, as cold users are
        empty = sp.csr_matrix((strangers.size, len(model.item_ids_)))
        items[strangers], scores[strangers] = model.recommend(
            np.asarray(users)[strangers], user_items=empty, **options
        )
    filled = np.isfinite(scores)
    table = pd.DataFrame(
        {
            "user": np.repeat(users, items.shape[1])[filled.ravel()],
            "rank": np.tile(np.arange(1, items.shape[1] + 1), len(users))[filled.ravel()],
            "item": items[filled],
            "score": scores[filled],
        }
    )
    unknown = int(np.sum(np.isin(users, known, invert=True))) if users is not known else 0
    if unknown:
        print(
            f"note: {unknown} of {len(users)} users are unknown to the model and get what it "
            "knows of item popularity",
            file=sys.stderr,
        )
    if out is None:
        table.to_csv(sys.stdout, index=False)
        return 0
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
    else:
        try:
            table.to_parquet(out, index=False)
        except ImportError as exc:
            raise CliError(f"writing Parquet needs pyarrow (pip install pyarrow): {exc}") from exc
    print(f"wrote {len(table):,} recommendations for {len(users):,} users to {out}", file=sys.stderr)
    return 0
