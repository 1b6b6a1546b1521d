"""Every input check and every user-facing error message.

Public functions call these helpers before anything else; kernels then receive
canonical arrays only.  Each helper names the offending argument, what was wrong
with it and how to fix it.  Nothing here modifies the caller's data: whenever a
canonical form needs a change, the change is made on a copy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT32_MAX = np.iinfo(np.int32).max


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return value


def check_float(
    value: Any, name: str, *, minimum: float | None = None, strict_minimum: bool = False
) -> float:
    """Return ``value`` as a finite Python float, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None:
        if strict_minimum and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}.")
        if not strict_minimum and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return value


def float_dtype_for(dtype: np.dtype, name: str) -> np.dtype:
    """The float dtype a kernel computes in for input of ``dtype``.

    float32 and float64 are kept; integers and booleans compute in float32 (the
    library default); anything else is refused.
    """
    dtype = np.dtype(dtype)
    if dtype in FLOAT_DTYPES:
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.float32)
    if dtype.kind == "f":  # float16 / longdouble
        return np.dtype(np.float64 if dtype.itemsize > 8 else np.float32)
    raise TypeError(
        f"{name} has dtype {dtype}, which is not numeric. Pass float32 or float64 values "
        f"(for example {name}.astype(np.float32))."
    )


def check_finite(values: np.ndarray, name: str) -> None:
    """Raise if ``values`` holds NaN or infinity."""
    if values.size and not np.isfinite(values).all():
        bad = "NaN" if np.isnan(values).any() else "infinite"
        raise ValueError(
            f"{name} contains {bad} values. Remove or impute them before calling "
            "(for example with np.nan_to_num)."
        )


def index_dtype_for(*sizes: int) -> np.dtype:
    """int32 when every index fits, else int64."""
    return np.dtype(np.int32) if max(sizes, default=0) <= INT32_MAX else np.dtype(np.int64)


def as_2d_array(X: Any, name: str, layout: str = "rows x features") -> np.ndarray:
    """``X`` as a 2-D numpy array (no copy when it already is one), or raise naming ``name``.

    ``layout`` names the expected axes in the error message.  The dtype is not
    checked beyond refusing objects; see :func:`float_dtype_for`.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D array or a scipy sparse matrix, got {type(X).__name__}.")
    array = np.asarray(X)
    if array.dtype == object:
        raise TypeError(
            f"{name} could not be read as a numeric array (dtype object). Pass a 2-D "
            "float array or a scipy sparse matrix."
        )
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D ({layout}), got an array of shape {array.shape}. "
            "Reshape it, e.g. with .reshape(1, -1) for a single row or .reshape(-1, 1) "
            "for a single feature."
        )
    return array


def as_sparse_2d(X: Any, name: str) -> sp.spmatrix:
    """Any scipy sparse matrix or array, or a 2-D array-like, as a scipy sparse matrix.

    Sparse input is returned as it is (no copy); dense input becomes CSR.
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got a sparse array with {X.ndim} dimensions.")
        return X
    array = as_2d_array(X, name)
    float_dtype_for(array.dtype, name)
    return sp.csr_matrix(array)


def canonical_csr(A: sp.spmatrix, name: str, dtype: np.dtype | None = None) -> sp.csr_matrix:
    """A CSR copy-on-need of ``A`` with float data, sorted unique indices and no stored zeros.

    The result shares arrays with ``A`` when ``A`` already is canonical CSR of the
    requested dtype; otherwise it is a new matrix.
    """
    dtype = float_dtype_for(A.dtype, name) if dtype is None else np.dtype(dtype)
    if A.format == "csr":  # may share the caller's arrays: never change them in place
        csr = A if isinstance(A, sp.csr_matrix) else sp.csr_matrix(A)
        owned = False
    else:  # the conversion builds new arrays that we own
        csr = sp.csr_matrix(A.tocsr())
        owned = True
    check_finite(csr.data, name)
    if csr.dtype != dtype:
        csr = csr.astype(dtype)
        owned = True
    if not csr.has_canonical_format or (csr.data.size and not csr.data.all()):
        if not owned:
            csr = csr.copy()
        csr.sum_duplicates()  # sorts indices and merges duplicates, in place on our copy
        csr.eliminate_zeros()
    return csr


@dataclass(frozen=True)
class CsrArrays:
    """The primitive arrays a kernel receives for one CSR matrix."""

    indptr: np.ndarray  # int64 (n_rows + 1)
    indices: np.ndarray  # int32 or int64 (nnz)
    data: np.ndarray  # float32 or float64 (nnz)
    shape: tuple[int, int]


def csr_arrays(csr: sp.csr_matrix, index_dtype: np.dtype) -> CsrArrays:
    """Kernel arrays of a canonical CSR matrix (no copy when dtypes already match)."""
    return CsrArrays(
        indptr=np.ascontiguousarray(csr.indptr, dtype=np.int64),
        indices=np.ascontiguousarray(csr.indices, dtype=index_dtype),
        data=np.ascontiguousarray(csr.data),
        shape=(int(csr.shape[0]), int(csr.shape[1])),
    )


def transpose_csr(csr: sp.csr_matrix, n_threads: int = 1) -> sp.csr_matrix:
    """Canonical CSR of ``csr.T`` for a canonical CSR ``csr``.

    Uses the compiled core's parallel transpose when it is available (the
    result is the same for any thread count), else scipy.
    """
    from fastrec import _runtime

    if _runtime._cpp is None or csr.nnz < 1 << 16:
        return csr.T.tocsr()
    index_dtype = index_dtype_for(*csr.shape, csr.nnz)
    indptr, indices, data = _runtime._cpp.csr_transpose(
        np.ascontiguousarray(csr.indptr, dtype=np.int64),
        np.ascontiguousarray(csr.indices, dtype=index_dtype),
        np.ascontiguousarray(csr.data), int(csr.shape[1]), int(n_threads),
    )
    result = sp.csr_matrix((data, indices, indptr), shape=(csr.shape[1], csr.shape[0]))
    result.has_sorted_indices = True
    return result


def rows_and_transpose(X: Any, name: str, dtype: np.dtype | None = None, n_threads: int = 1):
    """Canonical CSR of ``X`` and of its transpose, converting the format only once.

    CSC input (such as ``interactions.T``) already holds the transpose as CSR, so
    only the CSR of the rows needs building; CSR input needs only the transpose.
    """
    A = as_sparse_2d(X, name)
    if A.format == "csc":
        transpose = canonical_csr(A.T, name, dtype)
        return transpose_csr(transpose, n_threads), transpose
    rows = canonical_csr(A, name, dtype)
    return rows, transpose_csr(rows, n_threads)


def check_rows(rows: Any, n_rows: int, name: str = "rows") -> tuple[int, int]:
    """A ``rows=`` block (None, a slice with step 1, or a (start, stop) pair) as (start, stop)."""
    if rows is None:
        return 0, n_rows
    if isinstance(rows, range):
        rows = slice(rows.start, rows.stop, rows.step)
    if isinstance(rows, tuple) and len(rows) == 2:
        rows = slice(*rows)
    if not isinstance(rows, slice):
        raise TypeError(
            f"{name} must be a slice such as slice(0, 1000), a (start, stop) pair or None; "
            f"got {type(rows).__name__}."
        )
    for part in ("start", "stop", "step"):
        value = getattr(rows, part)
        if value is not None and not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}.{part} must be an integer or None, got {value!r}.")
    start, stop, step = rows.indices(n_rows)
    if step != 1:
        raise ValueError(f"{name} must be a contiguous block (step 1), got step {step}.")
    return start, max(start, stop)


# --- clustering ---


@dataclass(frozen=True)
class ClusterData:
    """Canonical clustering input: a C-contiguous dense array or a canonical CSR matrix."""

    dense: np.ndarray | None  # float32/float64 (n, d), C-contiguous; None for sparse input
    csr: sp.csr_matrix | None  # canonical CSR; None for dense input
    n_samples: int
    n_features: int
    dtype: np.dtype

    @property
    def is_sparse(self) -> bool:
        return self.csr is not None


def check_cluster_data(X: Any, name: str = "X", dtype: np.dtype | None = None) -> ClusterData:
    """``X`` as dense float32/float64 rows (kept in its dtype) or canonical CSR.

    Integer and boolean input computes in float32.  ``dtype`` forces a dtype
    (``predict`` uses the dtype of the fitted centres).  Raises for 1-D or 3-D
    input, NaN or infinity, and empty input.  The caller's array is never
    modified; it is copied only when its dtype or layout must change.
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got a sparse array with {X.ndim} dimensions.")
        csr = canonical_csr(X, name, dtype)
        n, d = csr.shape
        result = ClusterData(None, csr, int(n), int(d), csr.dtype)
    else:
        array = as_2d_array(X, name, "samples x features")
        target = float_dtype_for(array.dtype, name) if dtype is None else np.dtype(dtype)
        array = np.ascontiguousarray(array, dtype=target)
        check_finite(array, name)
        result = ClusterData(array, None, int(array.shape[0]), int(array.shape[1]), array.dtype)
    if result.n_samples < 1 or result.n_features < 1:
        raise ValueError(
            f"{name} has shape ({result.n_samples}, {result.n_features}); it needs at least "
            "one sample and one feature."
        )
    return result


def check_n_clusters(n_clusters: Any, n_samples: int) -> int:
    """``n_clusters`` as an int in [1, n_samples]."""
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} is greater than the number of samples ({n_samples}). "
            "Use at most as many clusters as samples."
        )
    return n_clusters


def check_cluster_init(init: Any, n_clusters: int, n_features: int, dtype: np.dtype):
    """``init`` as ``"k-means++"``, ``"random"`` or a new (n_clusters, n_features) array."""
    if isinstance(init, str):
        if init not in ("k-means++", "random"):
            raise ValueError(
                f"init={init!r} is not one of 'k-means++', 'random' or an array of initial "
                "centres."
            )
        return init
    if callable(init) or init is None:
        raise TypeError(
            f"init must be 'k-means++', 'random' or an array of shape ({n_clusters}, "
            f"{n_features}), got {type(init).__name__}."
        )
    centers = np.asarray(init)
    if centers.dtype == object or centers.dtype.kind not in "biuf":
        raise TypeError(f"init must be a numeric array, got dtype {centers.dtype}.")
    if centers.shape != (n_clusters, n_features):
        raise ValueError(
            f"init has shape {centers.shape}, but it must be (n_clusters, n_features) = "
            f"({n_clusters}, {n_features}): one initial centre per cluster, one column per "
            "feature of X."
        )
    centers = np.array(centers, dtype=dtype, order="C", copy=True)
    check_finite(centers, "init")
    return centers


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Sample weights as a new float array of length n_samples (ones when None)."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    weight = np.asarray(sample_weight)
    if weight.dtype == object or weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {weight.dtype}.")
    if weight.ndim == 0:
        weight = np.full(n_samples, weight)
    if weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {weight.shape}; it must be 1-D with one weight per "
            f"sample ({n_samples},)."
        )
    weight = np.array(weight, dtype=dtype, copy=True)
    check_finite(weight, "sample_weight")
    if (weight < 0).any():
        raise ValueError(
            f"sample_weight contains negative values (smallest {weight.min()}); weights "
            "must be >= 0."
        )
    if not weight.any():
        raise ValueError("sample_weight is zero everywhere; at least one weight must be > 0.")
    return weight


def check_n_features(n_features: int, expected: int, name: str = "X") -> None:
    """Raise when ``name`` does not have the number of features the model was fitted on."""
    if n_features != expected:
        raise ValueError(
            f"{name} has {n_features} features, but the model was fitted with {expected} "
            "features. Pass data with the same columns as in fit."
        )


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a bool, or raise naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_seed(seed: Any, *, draw: bool = False) -> int | None:
    """``seed`` as a non-negative int, or None.

    With ``draw=True`` a ``None`` seed becomes a fresh one from the OS entropy
    pool, for code that must record the seed it used.
    """
    if seed is None:
        if draw:
            return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        return None
    return check_int(seed, "seed", minimum=0)


def check_labels(labels: Any, n_samples: int) -> np.ndarray:
    """Cluster labels as a new int64 array of length n_samples, all >= 0."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise ValueError(
            f"labels has shape {array.shape}; it must be 1-D with one label per row of X "
            f"({n_samples},)."
        )
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integers (cluster ids such as KMeans.labels_), got dtype "
            f"{array.dtype}."
        )
    if array.size and array.min() < 0:
        raise ValueError(f"labels must be >= 0, got {array.min()}.")
    return array.astype(np.int64)


# --- matrix factorization ---

_USER_COLUMNS = ("user", "user_id", "userId", "userID", "uid", "u")
_ITEM_COLUMNS = ("item", "item_id", "itemId", "itemID", "movieId", "movie_id", "iid", "i")
_RATING_COLUMNS = ("rating", "ratings", "score", "value", "r")


def check_factor_dtype(dtype: Any) -> np.dtype:
    """float32 or float64, the dtypes the factor kernels compute in."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"dtype={dtype!r} is not a numpy dtype; use np.float32 or np.float64."
        ) from exc
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {resolved}.")
    return resolved


def check_fitted(model: Any, attribute: str = "user_factors_") -> None:
    """Raise a clear error when an estimator is used before ``fit``."""
    if getattr(model, attribute, None) is None:
        raise RuntimeError(
            f"This {type(model).__name__} is not fitted yet. Call fit(...) before using it."
        )


@dataclass(frozen=True)
class RatingTriples:
    """Explicit ratings as three aligned arrays, the canonical form of every MF input."""

    users: np.ndarray  # (n) raw user ids, or int64 row indices when shape is set
    items: np.ndarray  # (n) raw item ids, or int64 column indices when shape is set
    ratings: np.ndarray  # (n) float64 or float32, finite
    shape: tuple[int, int] | None  # (n_users, n_items) when ids are already indices


def id_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D array of ids; raises naming ``name`` on NaN or missing ids."""
    if isinstance(values, np.ndarray):
        array = values
    else:
        try:
            array = np.asarray(values)
        except ValueError:  # ragged sequences
            array = None
        if array is None or (array.ndim > 1 and len(values) > 0):
            # a list of tuples is a list of tuple ids, not a 2-D array
            array = np.empty(len(values), dtype=object)
            array[:] = [tuple(v) if isinstance(v, list) else v for v in values]
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {array.shape}.")
    if array.dtype.kind == "f" and array.size and np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; every rating needs a user and an item id.")
    if array.dtype == object and any(v is None for v in array):
        raise ValueError(f"{name} contains None; every rating needs a user and an item id.")
    if array.dtype.kind in "iu" and array.size and array.min() < 0:
        position = int(np.argmax(array < 0))
        raise ValueError(
            f"{name} contains the negative id {array[position]} (position {position}). "
            "Ids must be non-negative integers or labels such as strings."
        )
    return array



def saveable_ids(ids: np.ndarray | None, side: str) -> np.ndarray:
    """Raise when id labels cannot be written to ``.npz`` without pickle."""
    if ids is None:
        raise TypeError(
            f"The {side} ids are neither all integers nor all strings, so they cannot be saved "
            "without pickle. Map them to integers or strings before fit to use save()."
        )
    return ids


def _pick_column(frame: Any, given: str | None, candidates: tuple[str, ...], role: str) -> str:
    columns = list(frame.columns)
    if given is not None:
        if given not in columns:
            raise ValueError(
                f"columns: the {role} column {given!r} is not in the DataFrame {columns}."
            )
        return given
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(
        f"Could not find the {role} column of the DataFrame (columns {columns}). Name it one of "
        f"{list(candidates[:3])} or pass columns=(user_column, item_column, rating_column)."
    )


def _rating_values(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {array.shape}.")
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numbers, got dtype {array.dtype}. Convert it, e.g. "
            f"{name}.astype(np.float32)."
        )
    check_finite(array, name)
    return array


def rating_triples(data: Any, columns: tuple[str, str, str] | None = None) -> RatingTriples:
    """Read MF training data into :class:`RatingTriples`, or raise a clear error.

    Accepts a ``(user_ids, item_ids, ratings)`` tuple of equal-length 1-D arrays,
    a users x items scipy sparse matrix (every stored entry is a rating, explicit
    zeros included; duplicates are summed, as scipy does) or a pandas DataFrame.
    """
    if sp.issparse(data):
        if data.ndim != 2:
            raise ValueError(f"ratings matrix must be 2-D, got {data.ndim} dimensions.")
        # CSR sums duplicates in linear time (COO's sum_duplicates sorts); canonical
        # CSR, the common case, is read as it is.
        csr = sp.csr_matrix(data) if data.format != "csr" else data
        if not csr.has_canonical_format:
            csr = csr.copy()  # never change the caller's matrix
            csr.sum_duplicates()
        values = _rating_values(csr.data, "ratings matrix values")
        if values.size == 0:
            raise ValueError("The ratings matrix has no stored entries: there is nothing to fit.")
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        return RatingTriples(rows, csr.indices.astype(np.int64), values,
                             (int(csr.shape[0]), int(csr.shape[1])))
    if hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        if columns is not None and (not isinstance(columns, (tuple, list)) or len(columns) != 3):
            raise TypeError("columns must be a (user_column, item_column, rating_column) tuple.")
        given = tuple(columns) if columns is not None else (None, None, None)
        user_col = _pick_column(data, given[0], _USER_COLUMNS, "user")
        item_col = _pick_column(data, given[1], _ITEM_COLUMNS, "item")
        rating_col = _pick_column(data, given[2], _RATING_COLUMNS, "rating")
        data = (data[user_col].to_numpy(), data[item_col].to_numpy(), data[rating_col].to_numpy())
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise TypeError(
            "Pass ratings as a (user_ids, item_ids, ratings) tuple of 1-D arrays, a users x items "
            f"scipy sparse matrix or a pandas DataFrame; got {type(data).__name__}."
        )
    users = id_array(data[0], "user_ids")
    items = id_array(data[1], "item_ids")
    ratings = _rating_values(data[2], "ratings")
    if not users.size == items.size == ratings.size:
        raise ValueError(
            f"user_ids, item_ids and ratings must have the same length, got {users.size}, "
            f"{items.size} and {ratings.size}."
        )
    if ratings.size == 0:
        raise ValueError("No ratings given (empty arrays): there is nothing to fit.")
    return RatingTriples(users, items, ratings, None)


def check_index_range(indices: np.ndarray, n: int, name: str, size_name: str) -> None:
    """Raise if integer ``indices`` fall outside ``[0, n)``."""
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers when {size_name} is given, got {indices.dtype}.")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices[(indices < 0) | (indices >= n)][0]
        raise ValueError(
            f"{name} contains {bad}, outside [0, {size_name}={n}). Raise {size_name} or leave it "
            "as None to map raw ids automatically."
        )


# --- scoring ---


def check_factor_matrices(U: Any, V: Any) -> tuple[np.ndarray, np.ndarray]:
    """Query factors ``U`` and item factors ``V`` as C-contiguous arrays of one float dtype.

    Both must be dense 2-D with the same number of columns, at least one, and
    finite.  float32 and float64 are kept; integers and booleans compute in
    float32; when the two dtypes differ, both are computed in the wider one
    (``np.result_type``), so float32 with float64 gives float64.  The caller's
    arrays are copied only when their dtype or layout must change.
    """
    arrays = []
    for X, name, layout in ((U, "U", "queries x factors"), (V, "V", "items x factors")):
        if sp.issparse(X):
            raise TypeError(
                f"{name} must be a dense array ({layout}), got a scipy sparse matrix. Factor "
                f"matrices are dense; pass {name}.toarray()."
            )
        array = as_2d_array(X, name, layout)
        float_dtype_for(array.dtype, name)
        arrays.append(array)
    u, v = arrays
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"U has {u.shape[1]} columns and V has {v.shape[1]}; both need one column per factor "
            "(U is queries x factors, V is items x factors)."
        )
    if u.shape[1] < 1:
        raise ValueError("U and V have no columns; they need at least one factor column.")
    dtype = np.result_type(float_dtype_for(u.dtype, "U"), float_dtype_for(v.dtype, "V"))
    u = np.ascontiguousarray(u, dtype=dtype)
    v = np.ascontiguousarray(v, dtype=dtype)
    check_finite(u, "U")
    check_finite(v, "V")
    return u, v


def check_pattern(X: Any, name: str, shape: tuple[int, int], index_dtype: np.dtype
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The sparsity pattern of a (queries x items) matrix as (indptr int64, sorted unique indices).

    Every stored entry of a scipy sparse matrix counts, whatever its value
    (explicit zeros included); a dense array-like counts its non-zeros.
    Duplicates are merged.  The caller's matrix is never modified.
    """
    A = as_sparse_2d(X, name)
    if A.shape != shape:
        raise ValueError(
            f"{name} has shape {A.shape}, but it must be (n_queries, n_items) = {shape}: one row "
            "per row of U and one column per row of V."
        )
    csr = A if A.format == "csr" else A.tocsr()
    if not isinstance(csr, sp.csr_matrix):
        csr = sp.csr_matrix(csr)
    if not csr.has_canonical_format:
        # sum_duplicates sorts the indices too; it works on our copy, never on the caller's arrays
        csr = sp.csr_matrix((np.ones(csr.nnz, dtype=np.int8), csr.indices, csr.indptr), shape=csr.shape,
                            copy=True)
        csr.sum_duplicates()
    return (np.ascontiguousarray(csr.indptr, dtype=np.int64),
            np.ascontiguousarray(csr.indices, dtype=index_dtype))


@dataclass(frozen=True)
class Candidates:
    """Canonical ``candidates=`` of :func:`fastrec.topn`: none, shared, or one list per query."""

    shared: np.ndarray | None  # sorted unique item indices (int64) shared by every query
    indptr: np.ndarray | None  # per-query pattern: int64 (n_queries + 1)
    indices: np.ndarray | None  # per-query pattern: sorted unique items of each row


def check_candidates(candidates: Any, n_queries: int, n_items: int, index_dtype: np.dtype) -> Candidates:
    """``candidates=`` as :class:`Candidates`, or raise naming ``candidates``.

    A 1-D array-like of item indices is shared by every query (duplicates are
    dropped); a scipy sparse matrix of shape (n_queries, n_items) lists each
    query's candidates as the stored entries of its row.
    """
    if candidates is None:
        return Candidates(None, None, None)
    if sp.issparse(candidates):
        indptr, indices = check_pattern(candidates, "candidates", (n_queries, n_items), index_dtype)
        return Candidates(None, indptr, indices)
    if isinstance(candidates, (str, bytes)):
        raise TypeError(f"candidates must be item indices or a scipy sparse matrix, got {candidates!r}.")
    try:
        array = np.asarray(candidates)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.ndim != 1:
        what = "ragged rows" if array is None else f"shape {array.shape}"
        raise TypeError(
            f"candidates has {what}. Pass a 1-D array of item indices shared by every "
            "query, or a (n_queries, n_items) scipy sparse matrix whose stored entries are each "
            "query's candidates (for example scipy.sparse.csr_matrix((ones, (query_ids, item_ids)), "
            "shape=...))."
        )
    if array.dtype == bool:
        raise TypeError(
            "candidates is a boolean array; pass the item indices instead, e.g. np.flatnonzero(mask)."
        )
    if array.size == 0:
        return Candidates(np.zeros(0, dtype=np.int64), None, None)
    if array.dtype.kind not in "iu":
        raise TypeError(f"candidates must hold integer item indices, got dtype {array.dtype}.")
    if array.min() < 0 or array.max() >= n_items:
        bad = array[(array < 0) | (array >= n_items)][0]
        raise ValueError(
            f"candidates contains the item index {bad}, outside [0, n_items={n_items}) (n_items is "
            "the number of rows of V)."
        )
    return Candidates(np.unique(array).astype(np.int64), None, None)
