"""Item features for ``fastrec fit --model content``: a table file, or a MovieLens folder's genres.

A features table has one row per item: a column of item ids (the same ids as
the ratings) and feature columns.  Numeric columns are used as they are; text
columns are read as ``|``-separated tags (``Comedy|Drama``), one 0/1 feature per
distinct tag, which is how MovieLens writes genres.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.cli._parser import CliError

TAG_SEPARATOR = "|"


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say where the item features of ``--model content`` come from."""
    group = parser.add_argument_group("item features (--model content)")
    group.add_argument(
        "--features",
        metavar="FILE",
        help="item features (CSV, TSV or Parquet): one row per item, an item id "
        "column and feature columns; numbers are used as they are, text as "
        "'|'-separated tags such as genres (default for MovieLens: its genres)",
    )
    group.add_argument(
        "--feature-item-col",
        metavar="COL",
        help="column of the item ids in --features (default: found by name, e.g. item, item_id, movieId)",
    )
    group.add_argument(
        "--feature-cols",
        metavar="COL,COL",
        help="feature columns of --features (default: every other column)",
    )


def _read(path: Path) -> Any:
    """The table at ``path`` as a DataFrame (Parquet, or text with a sniffed separator)."""
    from fastrec.datasets import loaders

    pd = loaders._pandas()
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise CliError(f"reading Parquet needs pyarrow (pip install pyarrow): {exc}") from exc
    separator = loaders._sniff_separator(path)
    options: dict[str, Any] = {"sep": separator}
    if len(separator) > 1:
        options["engine"] = "python"
    what = f"a features table separated by {separator!r}"
    try:
        return loaders._read_table(path, what, encoding="utf-8", **options)
    except ValueError as exc:
        if not isinstance(exc.__cause__, UnicodeDecodeError):
            raise
        return loaders._read_table(path, what, encoding="latin-1", **options)


def _column_features(values: Any, name: str) -> tuple[sp.csr_matrix, list[str]]:
    """One numeric column as itself, or one text column as 0/1 columns of its tags."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=0.0)
        if not np.all(np.isfinite(numbers)):
            raise CliError(f"--features column {name!r} holds inf values")
        return sp.csr_matrix(numbers.reshape(-1, 1)), [name]
    tags = values.fillna("").astype(str).str.get_dummies(sep=TAG_SEPARATOR)
    return sp.csr_matrix(tags.to_numpy(dtype=np.float32)), [f"{name}={t}" for t in tags.columns]


def from_table(
    path: str | Path, item_col: str | None, feature_cols: str | None
) -> tuple[sp.csr_matrix, np.ndarray, str]:
    """(items x features CSR, item id of every row, one-line description) of a features file."""
    from fastrec import _validation as V
    from fastrec.datasets._checks import pick_column
    from fastrec.datasets.loaders import ITEM_COLUMNS

    path = Path(path)
    if not path.is_file():
        raise CliError(f"--features {str(path)!r} does not exist")
    frame = _read(path)
    columns = list(frame.columns)
    source = repr(str(path))
    item = pick_column(columns, item_col, ITEM_COLUMNS, "item", source, "--feature-item-col")
    if feature_cols:
        chosen = [c.strip() for c in feature_cols.split(",") if c.strip()]
        missing = [c for c in chosen if c not in columns]
        if missing:
            raise CliError(
                f"--feature-cols: {missing[0]!r} is not a column of {source}; its columns are {columns}"
            )
        if item in chosen:
            raise CliError(f"--feature-cols names the item id column {item!r}")
    else:
        chosen = [c for c in columns if c != item]
    if not chosen:
        raise CliError(f"{source} has no feature column besides the item ids {item!r}")
    blocks, names = [], []
    for column in chosen:
        block, labels = _column_features(frame[column], str(column))
        blocks.append(block)
        names += labels
    features = sp.hstack(blocks, format="csr")
    ids = V.id_array(frame[item].to_numpy(), "the item id column of --features")
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return features, ids, f"{features.shape[0]:,} items x {features.shape[1]:,} features ({shown})"


def from_genres(data: Any) -> tuple[sp.csr_matrix, np.ndarray, str]:
    """The genres of an Interactions' item table (MovieLens) as 0/1 features."""
    items = data.items
    if items is None or "genres" not in items.columns:
        raise CliError(
            "--model content needs item features: pass --features FILE (one row per "
            "item: an item id column and feature columns)"
        )
    features, names = _column_features(items["genres"], "genres")
    return (
        features,
        data.item_ids,
        (f"{features.shape[0]:,} items x {features.shape[1]:,} genres of the MovieLens item table"),
    )


def load(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """``features`` and ``item_ids`` of a content model, checked against the ratings' items."""
    if args.features is not None:
        features, ids, about = from_table(args.features, args.feature_item_col, args.feature_cols)
    else:
        features, ids, about = from_genres(data)
    known = np.isin(ids, data.item_ids)
    if not known.any():
        raise CliError(
            f"none of the {ids.size:,} item ids of the features appears in the "
            f"ratings (features ids look like {ids[:3].tolist()}, ratings ids like "
            f"{data.item_ids[:3].tolist()}); check --feature-item-col"
        )
    print(f"features: {about}; {int(known.sum()):,} of {data.n_items:,} rated items have a row", flush=True)
    return {"features": features, "item_ids": ids}
