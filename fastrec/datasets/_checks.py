"""Input checks of the datasets: containers, loaders and splits."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec._idmap import IdMap
from fastrec._validation import check_finite, check_sparse_structure, id_array


def check_test_size(test_size: Any, n: int) -> int:
    """``test_size`` (a fraction in (0, 1) or a count in [1, n)) as a count of ratings."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a fraction in (0, 1) or a number of ratings, got {test_size!r}.")
    if isinstance(test_size, numbers.Integral):
        count = int(test_size)
        if not 1 <= count < n:
            raise ValueError(f"test_size={count} must leave ratings on both sides: use 1 <= test_size < {n}.")
        return count
    fraction = float(test_size)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_size={fraction} must be a fraction strictly between 0 and 1.")
    return min(max(int(round(fraction * n)), 1), n - 1)  # at least one rating on each side


def check_timestamps(timestamps: Any, n: int, pattern: sp.csr_matrix | None = None) -> np.ndarray:
    """Timestamps of ``n`` ratings as a numeric 1-D array aligned with the ratings.

    ``pattern`` is the CSR ratings matrix when the ratings were given as one; the
    timestamps may then be a CSR matrix with exactly the same stored pattern.
    """
    if sp.issparse(timestamps):
        if pattern is None:
            raise TypeError(
                "timestamps is a sparse matrix but the ratings are not; pass an array aligned "
                "with the ratings."
            )
        stamps = sp.csr_matrix(check_sparse_structure(timestamps, "timestamps"))
        if (
            stamps.shape != pattern.shape
            or stamps.nnz != pattern.nnz
            or not np.array_equal(stamps.indptr, pattern.indptr)
            or not np.array_equal(stamps.indices, pattern.indices)
        ):
            raise ValueError(
                "timestamps must have the same shape and stored pattern as the ratings matrix "
                "(same indptr and indices), or be an array aligned with its stored entries."
            )
        values = np.asarray(stamps.data)
    else:
        values = np.asarray(timestamps)
        if values.dtype.kind == "M":  # datetime64: order is what matters
            values = values.astype(np.int64)
    if values.ndim != 1 or values.size != n:
        raise ValueError(f"timestamps must be 1-D with one value per rating ({n}), got shape {values.shape}.")
    if values.dtype == object or values.dtype.kind not in "biuf":
        raise TypeError(f"timestamps must be numbers or datetime64, got dtype {values.dtype}.")
    if values.dtype.kind == "f":
        check_finite(values, "timestamps")
    return values


def check_interactions_have_timestamps(data: Any, method: str) -> None:
    """Raise if ``method`` needs times and the Interactions ``data`` carries none."""
    if data.timestamps is None:
        raise ValueError(
            f"method={method!r} needs timestamps, and these Interactions have none: load a file "
            "with a timestamp column (timestamp_col=...) or pass timestamps=... aligned with the "
            "ratings (the order of Interactions.to_triples())."
        )


DUPLICATE_POLICIES = ("last", "sum", "error")


def check_duplicates_policy(duplicates: Any) -> str:
    """``duplicates`` as one of :data:`DUPLICATE_POLICIES`."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"duplicates={duplicates!r} is not one of {list(DUPLICATE_POLICIES)}: 'last' keeps the "
            "most recent rating of a (user, item) pair, 'sum' adds them up, 'error' refuses them."
        )
    return duplicates


def check_data_path(path: Any, what: str) -> Any:
    """``path`` as a ``pathlib.Path`` that exists, or raise naming ``what`` it should hold."""

    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path must be a file or folder path, got {type(path).__name__}.")
    resolved = Path(path.decode() if isinstance(path, bytes) else path).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(f"{str(resolved)!r} does not exist; pass the path of {what}.")
    return resolved


def check_file_name(path: Any, names: tuple[str, ...], what: str, hint: str) -> None:
    """Raise unless the file ``path`` is called one of ``names``."""
    if path.name not in names:
        raise ValueError(f"{str(path)!r} is not {what} ({', '.join(names)}); {hint}.")


def check_is_file(path: Any, hint: str) -> None:
    """Raise when ``path`` is a folder where a file is expected."""
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; {hint}.")


def find_data_file(path: Any, names: tuple[str, ...], what: str) -> Any:
    """The first of ``names`` inside folder ``path``, or ``path`` itself when it is such a file."""
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{str(path)!r} holds none of {list(names)}; pass the folder of {what} or the "
            "ratings file itself."
        )
    return path


def pick_column(
    columns: list[Any],
    given: Any,
    candidates: tuple[str, ...],
    role: str,
    source: str,
    argument: str,
    required: bool = True,
) -> Any:
    """The column of a table that holds ``role`` (user, item, rating or timestamp).

    ``given`` is a name or a position; ``None`` looks for one of ``candidates``
    (case-insensitive).  Raises naming ``argument`` when ``given`` is not a
    column, or when a required column cannot be found.
    """
    if given is not None:
        if isinstance(given, numbers.Integral) and not isinstance(given, bool) and given not in columns:
            if 0 <= int(given) < len(columns):
                return columns[int(given)]
        if given in columns:
            return given
        raise ValueError(f"{argument}={given!r} is not a column of {source}; its columns are {columns}.")
    by_lower = {str(c).lower(): c for c in columns}
    for name in candidates:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    if required:
        raise ValueError(
            f"Could not find the {role} column of {source} (columns {columns}); pass "
            f"{argument}=<column name>."
        )
    return None


def check_separate_columns(chosen: dict[str, Any]) -> None:
    """Raise when two roles (user, item, rating, timestamp) were given the same column."""
    seen: dict[Any, str] = {}
    for argument, column in chosen.items():
        if column is None:
            continue
        if column in seen:
            raise ValueError(
                f"{seen[column]} and {argument} both name the column {column!r}; each role "
                "needs its own column."
            )
        seen[column] = argument


def check_side_table(table: Any, n: int, name: str) -> None:
    """Raise unless ``table`` is None or a DataFrame with one row per user (item)."""
    if table is None:
        return
    if not (hasattr(table, "columns") and hasattr(table, "iloc")):
        raise TypeError(f"{name} must be a pandas DataFrame or None, got {type(table).__name__}.")
    if len(table) != n:
        raise ValueError(
            f"{name} has {len(table)} rows but there are {n} ids; align it with "
            f"table.reindex(ids) so that row k describes id k."
        )


def check_same_pattern(matrix: sp.csr_matrix, other: Any, name: str) -> sp.csr_matrix:
    """``other`` as CSR with exactly the sparsity pattern of ``matrix``."""
    if not sp.issparse(other):
        raise TypeError(f"{name} must be a scipy sparse matrix, got {type(other).__name__}.")
    other = sp.csr_matrix(check_sparse_structure(other, name))
    if (
        other.shape != matrix.shape
        or other.nnz != matrix.nnz
        or not np.array_equal(other.indptr, matrix.indptr)
        or not np.array_equal(other.indices, matrix.indices)
    ):
        raise ValueError(
            f"{name} must have the same shape and stored entries as matrix (one value per "
            "rating); build both from the same (user, item) pairs."
        )
    return other


def check_id_lookup(inner: np.ndarray, ids: np.ndarray, name: str) -> None:
    """Raise naming the first id of ``ids`` whose inner index is -1 (unknown)."""
    missing = inner < 0
    if missing.any():
        first = ids[int(np.argmax(missing))]
        first = first.item() if isinstance(first, np.generic) else first
        raise ValueError(
            f"{name} contains {first!r}, which is not a known id ({int(missing.sum())} unknown "
            "in all); pass strict=False to get -1 for unknown ids."
        )


def check_sparse_matrix(matrix: Any, name: str) -> None:
    """Raise unless ``matrix`` is a scipy sparse matrix with a valid structure."""
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse matrix, got {type(matrix).__name__}.")
    check_sparse_structure(matrix, name)


def check_axis_ids(ids: Any, n: int, name: str, axis: str) -> np.ndarray:
    """``ids`` as a 1-D array of ``n`` distinct raw ids (one per row or column)."""

    array = id_array(ids, name)
    if array.size != n:
        raise ValueError(f"{name} has {array.size} ids but matrix has {n} {axis}.")
    _, inner = IdMap.from_values(array)
    if inner.size and np.unique(inner).size != inner.size:
        raise ValueError(f"{name} contains repeated ids; every row and column needs its own id.")
    return array


def check_same_lengths(arrays: dict[str, np.ndarray | None]) -> None:
    """Raise unless the given (non-None) 1-D arrays all have the same length."""
    sizes = {name: a.size for name, a in arrays.items() if a is not None}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise ValueError(f"{', '.join(sizes)} must have the same length, got {listed}.")


def check_no_repeated_pairs(user: Any, item: Any) -> None:
    """Raise for a (user, item) pair given twice under ``duplicates='error'``."""
    user, item = (v.item() if isinstance(v, np.generic) else v for v in (user, item))
    raise ValueError(
        f"The pair (user {user!r}, item {item!r}) occurs more than once; pass "
        "duplicates='last' or 'sum' to merge repeated pairs."
    )


def check_dataframe(frame: Any, name: str) -> None:
    """Raise unless ``frame`` is a pandas DataFrame."""
    if not (hasattr(frame, "columns") and hasattr(frame, "iloc")):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}.")


def check_frame_columns(columns: list[Any], chosen: dict[str, Any]) -> None:
    """Raise when a named column is missing or two roles name the same column."""
    for argument, column in chosen.items():
        if column is not None and column not in columns:
            raise ValueError(
                f"{argument}={column!r} is not a column of the DataFrame; its columns are {columns}."
            )
    check_separate_columns(chosen)


def check_rating_mask(mask: Any, nnz: int) -> np.ndarray:
    """``mask`` as a boolean array with one flag per stored rating."""
    keep = np.asarray(mask)
    if keep.dtype != bool or keep.shape != (nnz,):
        raise ValueError(
            f"mask must be a boolean array with one flag per rating ({nnz},), got dtype "
            f"{keep.dtype} and shape {keep.shape}."
        )
    return keep


def timestamp_values(values: Any) -> np.ndarray:
    """Times as int64 Unix seconds (datetimes and date strings) or as the numbers given."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if series.dtype.kind in "biuf":
        array = series.to_numpy()
        if array.dtype.kind == "f":
            check_finite(array, "timestamps")
            if np.all(array == np.round(array)):
                return array.astype(np.int64)
            return array.astype(np.float64)
        return array.astype(np.int64)
    try:
        try:
            parsed = pd.to_datetime(series, utc=True)
        except ValueError:  # dates written in more than one format
            parsed = pd.to_datetime(series, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "timestamps must be numbers (e.g. Unix seconds) or dates that pandas.to_datetime "
            f"reads; got values such as {series.iloc[0]!r}."
        ) from exc
    if parsed.isna().any():
        raise ValueError("timestamps contains missing dates; every interaction needs a time.")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def check_side_table_index(table: Any, name: str) -> None:
    """Raise unless ``table`` is a DataFrame that can be reindexed by raw id."""
    if not (hasattr(table, "columns") and hasattr(table, "reindex")):
        raise TypeError(f"{name} must be a pandas DataFrame indexed by raw id, got {type(table).__name__}.")


def unreadable_file(path: Any, what: str, exc: BaseException) -> ValueError:
    """The error for a file that pandas could not parse as ``what``."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return ValueError(f"{str(path)!r} could not be read as {what}: {reason}")


def check_rating_table(frame: Any, path: Any, what: str, numeric: tuple[str, ...]) -> None:
    """Raise when a parsed ratings file is empty or has non-numeric id/rating columns."""
    if len(frame) == 0:
        raise ValueError(f"{str(path)!r} holds no ratings; expected {what}.")
    for column in numeric:
        if frame[column].dtype.kind not in "biuf" or frame[column].isna().any():
            raise ValueError(
                f"{str(path)!r} does not look like {what}: its {column} column holds missing or "
                "non-numeric values."
            )


def check_required_columns(columns: list[Any], required: tuple[str, ...], path: Any) -> None:
    """Raise when a MovieLens CSV lacks one of its standard columns."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(
            f"{str(path)!r} has no {missing} column (columns {columns}); for other CSV layouts "
            "use load_interactions(path, user_col=..., item_col=...)."
        )


def check_interaction_columns(frame: Any, user: Any, item: Any, rating: Any, source: str) -> None:
    """Raise for missing ids, or a rating column with missing or non-numeric values."""
    for column, argument in ((user, "user_col"), (item, "item_col")):
        if frame[column].isna().any():
            raise ValueError(
                f"{source} has missing values in its {argument} column {column!r}; "
                "every interaction needs a user and an item."
            )
    if rating is not None and (frame[rating].dtype.kind not in "biuf" or frame[rating].isna().any()):
        raise ValueError(
            f"{source}: the rating column {rating!r} holds missing or non-numeric values; pass "
            "rating_col=<numeric column> or implicit=True."
        )
