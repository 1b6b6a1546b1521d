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


class TooLargeError(MemoryError, ValueError):
    """A call would need more memory than the machine has, judged before allocating.

    Subclasses both ``MemoryError`` and ``ValueError`` (the sizes come from the
    arguments), so either ``except`` clause catches it.
    """


def memory_limit() -> int:
    """Bytes of memory this process may use: physical memory, capped by a cgroup limit."""
    import os

    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return 1 << 62
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                value = fh.read().strip()
            if value.isdigit():
                limit = min(limit, int(value))
        except OSError:
            continue
    return limit


def check_memory(n_bytes: int, what: str, fix: str) -> None:
    """Raise :class:`TooLargeError` when ``what`` would need more than the machine's memory.

    Sizes a caller declares (a matrix shape, ``n_users``) can ask for far more
    than the data holds; refusing up front beats being killed by the OOM killer.
    """
    limit = memory_limit()
    if n_bytes > limit:
        raise TooLargeError(
            f"{what} would need {n_bytes / 2**30:,.1f} GiB, more than the {limit / 2**30:,.1f} GiB "
            f"of memory this process may use; {fix}"
        )


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
        f"{name} has dtype {dtype}, which is not numeric (real numbers are needed). Pass "
        f"float32 or float64 values (for example {name}.astype(np.float32))."
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


def _index_array(values: Any, name: str, what: str) -> np.ndarray:
    """A sparse matrix's index array, refused unless it is 1-D integers."""
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(
            f"{name} is a malformed sparse matrix: its {what} array must be 1-D integers, got "
            f"dtype {array.dtype} and shape {array.shape}. {_REBUILD_HINT}"
        )
    return array


_REBUILD_HINT = ("Build it with the scipy.sparse constructors, or find the fault with "
                 "matrix.check_format(full_check=True).")


def _first_outside(index: np.ndarray, size: int) -> int | None:
    """The first entry of ``index`` outside [0, size), or None; one vectorised pass.

    Signed indices are read as unsigned, so a negative index shows as a huge one
    and one comparison of the maximum finds both kinds.
    """
    if index.size == 0:
        return None
    if index.dtype.kind == "i":
        unsigned = index.view(np.dtype(f"u{index.dtype.itemsize}"))
    else:
        unsigned = index
    if int(unsigned.max()) < size:
        return None
    return int(index[(index < 0) | (index >= size)][0])


def _check_compressed(indptr: Any, indices: Any, data: Any, n_major: int, n_minor: int,
                      name: str, axes: tuple[str, str]) -> None:
    """Raise unless (indptr, indices, data) is valid compressed storage of that size."""
    indptr = _index_array(indptr, name, "indptr")
    indices = _index_array(indices, name, "indices")
    major, minor = axes
    if indptr.size != n_major + 1:
        raise ValueError(
            f"{name} is a malformed sparse matrix: indptr has {indptr.size} entries but the "
            f"matrix has {n_major} {major}s (it needs {n_major + 1}). {_REBUILD_HINT}"
        )
    if int(indptr[0]) != 0:
        raise ValueError(f"{name} is a malformed sparse matrix: indptr starts at {int(indptr[0])}, "
                         f"not 0. {_REBUILD_HINT}")
    if n_major and bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError(f"{name} is a malformed sparse matrix: indptr decreases (it must be "
                         f"non-decreasing). {_REBUILD_HINT}")
    nnz = int(indptr[-1])
    n_data = np.shape(data)[0] if np.ndim(data) else 0
    if nnz > indices.size or nnz > n_data:
        raise ValueError(
            f"{name} is a malformed sparse matrix: indptr declares {nnz} stored entries but there "
            f"are {indices.size} indices and {n_data} values. {_REBUILD_HINT}"
        )
    bad = _first_outside(indices[:nnz], n_minor)
    if bad is not None:
        raise ValueError(
            f"{name} is a malformed sparse matrix: it stores the {minor} index {bad}, outside "
            f"[0, {n_minor}). {_REBUILD_HINT}"
        )


def check_sparse_structure(A: Any, name: str) -> sp.spmatrix:
    """Raise unless the index arrays of the scipy sparse matrix ``A`` fit its shape.

    scipy does not check arrays assigned after construction, and its own routines
    (``tocsr``, transposes) read them unchecked, so every sparse argument passes
    here before anything else touches it: ``indptr`` of the right length, starting
    at 0 and non-decreasing, enough indices and values, every index within the
    shape.  Vectorised, O(nnz + rows).  Returns ``A`` itself for CSR, CSC and COO
    (CSR and CSC with spare storage past ``indptr[-1]`` as a matrix of views that
    ends there); other formats are returned as CSR after the same checks.
    """
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a sparse array with {A.ndim} dimensions.")
    n_rows, n_cols = (int(size) for size in A.shape)
    if A.format in ("csr", "csc"):
        major, minor = (n_rows, n_cols) if A.format == "csr" else (n_cols, n_rows)
        axes = ("row", "column") if A.format == "csr" else ("column", "row")
        _check_compressed(A.indptr, A.indices, A.data, major, minor, name, axes)
        if np.ndim(A.data) != 1:
            raise ValueError(f"{name} is a malformed sparse matrix: its data array is not 1-D. "
                             f"{_REBUILD_HINT}")
        nnz = int(A.indptr[-1])
        if A.indices.size != nnz or A.data.size != nnz:  # spare storage: kernels see views of nnz
            return type(A)((A.data[:nnz], A.indices[:nnz], A.indptr), shape=A.shape)
        return A
    if A.format == "coo":
        row, col = _index_array(A.row, name, "row"), _index_array(A.col, name, "col")
        if not row.size == col.size == np.size(A.data):
            raise ValueError(
                f"{name} is a malformed sparse matrix: it has {row.size} row indices, {col.size} "
                f"column indices and {np.size(A.data)} values. {_REBUILD_HINT}"
            )
        for index, size, axis in ((row, n_rows, "row"), (col, n_cols, "column")):
            bad = _first_outside(index, size)
            if bad is not None:
                raise ValueError(f"{name} is a malformed sparse matrix: it stores the {axis} index "
                                 f"{bad}, outside [0, {size}). {_REBUILD_HINT}")
        return A
    if A.format == "bsr":
        block_rows, block_cols = A.blocksize
        _check_compressed(A.indptr, A.indices, A.data, n_rows // block_rows, n_cols // block_cols,
                          name, ("block row", "block column"))
    csr = A.tocsr()
    _check_compressed(csr.indptr, csr.indices, csr.data, n_rows, n_cols, name, ("row", "column"))
    return csr


def as_sparse_2d(X: Any, name: str) -> sp.spmatrix:
    """Any scipy sparse matrix or array, or a 2-D array-like, as a scipy sparse matrix.

    Sparse input has its structure checked (:func:`check_sparse_structure`) and
    is returned as it is (no copy); dense input becomes CSR.
    """
    if sp.issparse(X):
        return check_sparse_structure(X, name)
    array = as_2d_array(X, name)
    float_dtype_for(array.dtype, name)
    return sp.csr_matrix(array)


def canonical_csr(A: sp.spmatrix, name: str, dtype: np.dtype | None = None) -> sp.csr_matrix:
    """A CSR copy-on-need of ``A`` with float data, sorted unique indices and no stored zeros.

    ``A`` must have passed :func:`check_sparse_structure` (as :func:`as_sparse_2d`
    does).  The result shares arrays with ``A`` when ``A`` already is canonical CSR
    of the requested dtype; otherwise it is a new matrix.
    """
    own = float_dtype_for(A.dtype, name)  # refuses complex, object and string data
    dtype = own if dtype is None else np.dtype(dtype)
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


def entry_rows(indptr: np.ndarray, dtype: Any = np.int64) -> np.ndarray:
    """The row of every stored entry of a CSR matrix, shape (nnz,), from its ``indptr``.

    When rows outnumber entries (a declared shape far larger than the data) it
    searches ``indptr`` instead of building arrays as long as the rows.
    """
    n_rows, nnz = indptr.size - 1, int(indptr[-1])
    if n_rows <= nnz:
        return np.repeat(np.arange(n_rows, dtype=dtype), np.diff(indptr))
    return (np.searchsorted(indptr, np.arange(nnz), side="right") - 1).astype(dtype)


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
        csr = canonical_csr(check_sparse_structure(X, name), name, dtype)
        n, d = csr.shape
        result = ClusterData(None, csr, int(n), int(d), csr.dtype)
    else:
        array = as_2d_array(X, name, "samples x features")
        own = float_dtype_for(array.dtype, name)  # refuses complex, object and string data
        target = own if dtype is None else np.dtype(dtype)
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
    zeros included; duplicates are summed, as scipy does), a pandas DataFrame or a
    :class:`fastrec.datasets.Interactions` (whose raw ids are kept).
    """
    from fastrec.datasets.interactions import Interactions

    if isinstance(data, Interactions):
        users, items, ratings = data.to_triples()
        if ratings.size == 0:
            raise ValueError("The Interactions hold no ratings: there is nothing to fit.")
        return RatingTriples(users, items, ratings, None)
    if sp.issparse(data):
        if data.ndim != 2:
            raise ValueError(f"ratings matrix must be 2-D, got {data.ndim} dimensions.")
        data = check_sparse_structure(data, "ratings matrix")
        # CSR sums duplicates in linear time (COO's sum_duplicates sorts); canonical
        # CSR, the common case, is read as it is.
        csr = sp.csr_matrix(data) if data.format != "csr" else data
        if not csr.has_canonical_format:
            csr = csr.copy()  # never change the caller's matrix
            csr.sum_duplicates()
        values = _rating_values(csr.data, "ratings matrix values")
        if values.size == 0:
            raise ValueError("The ratings matrix has no stored entries: there is nothing to fit.")
        rows = entry_rows(csr.indptr)
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


# --- recommenders, metrics and splits ---


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id that the model never saw.

    Subclasses both ``KeyError`` (an id lookup failed) and ``ValueError`` (bad
    argument value), so either ``except`` clause catches it.
    """

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


UNKNOWN_POLICIES = ("raise", "skip")


def check_unknown(unknown: Any) -> str:
    """The ``unknown=`` policy of ``recommend``: ``"raise"`` or ``"skip"``."""
    if not isinstance(unknown, str) or unknown not in UNKNOWN_POLICIES:
        raise ValueError(
            f"unknown={unknown!r} is not one of 'raise' (error on an id the model never saw) or "
            "'skip' (serve unknown users by popularity, ignore unknown candidate items)."
        )
    return unknown


def raise_unknown(raw: np.ndarray, inner: np.ndarray, side: str, argument: str) -> None:
    """Raise :class:`UnknownIdError` naming the first raw id whose inner index is -1."""
    missing = np.flatnonzero(inner < 0)
    if missing.size:
        first = raw[missing[0]]
        first = first.item() if isinstance(first, np.generic) else first  # 999, not np.int64(999)
        more = f" (and {missing.size - 1} more)" if missing.size > 1 else ""
        remedy = "serve such users by popularity" if side == "user" else "leave such items out"
        raise UnknownIdError(
            f"{argument} contains the {side} id {first!r}{more}, which the model was not fitted "
            f"with. Pass unknown='skip' to {remedy}."
        )


def check_item_features(features: Any, name: str = "features") -> sp.csr_matrix:
    """An items x features matrix (sparse or dense) as canonical CSR with float data."""
    if sp.issparse(features):
        if features.ndim != 2:
            raise ValueError(f"{name} must be 2-D (items x features), got {features.ndim} dimensions.")
        matrix = check_sparse_structure(features, name)
    else:
        matrix = as_2d_array(features, name, "items x features")
        float_dtype_for(matrix.dtype, name)
        check_finite(np.asarray(matrix, dtype=np.float64), name)
        matrix = sp.csr_matrix(matrix)
    csr = canonical_csr(matrix, name)
    if csr.shape[0] < 1:
        raise ValueError(f"{name} has no rows: it needs one row of features per item.")
    return csr


def check_feature_ids(item_ids: Any, n_rows: int) -> np.ndarray:
    """Raw item ids of the feature rows: ``0 .. n_rows-1`` when None, else distinct ids."""
    if item_ids is None:
        return np.arange(n_rows, dtype=np.int64)
    ids = id_array(item_ids, "item_ids")
    if ids.size != n_rows:
        raise ValueError(
            f"item_ids has {ids.size} ids but features has {n_rows} rows; pass one item id per row."
        )
    from fastrec._idmap import IdMap

    mapping, inner = IdMap.from_values(ids)
    if len(mapping) != ids.size:
        counts = np.bincount(inner, minlength=len(mapping))
        raise ValueError(
            f"item_ids contains the id {mapping.ids[int(np.argmax(counts > 1))]!r} more than once; "
            "every feature row must belong to a different item."
        )
    return ids


def check_model_weights(models: Any) -> list[tuple[Any, float]]:
    """``[(model, weight), ...]`` of a Hybrid: at least one fitted pair, finite weights."""
    if not isinstance(models, (list, tuple)) or len(models) == 0:
        raise TypeError(
            "models must be a non-empty list of (model, weight) pairs, e.g. "
            "[(item_knn, 0.7), (content_knn, 0.3)]."
        )
    pairs = []
    for position, pair in enumerate(models):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(
                f"models[{position}] must be a (model, weight) pair, got {type(pair).__name__}."
            )
        model, weight = pair
        if not hasattr(model, "_score_block") or not hasattr(model, "recommend"):
            raise TypeError(
                f"models[{position}] is a {type(model).__name__}, not a fastrec recommender "
                "(ItemKNN, UserKNN, ContentKNN, MatrixFactorization or Hybrid)."
            )
        pairs.append((model, check_float(weight, f"weight of models[{position}]")))
    return pairs


def check_recommendation_table(recommended: Any, n_users: int, n_items: int, k: int) -> np.ndarray:
    """A (n_users, >= k) integer table of inner item indices (-1 = empty) as int64."""
    table = np.asarray(recommended)
    if table.dtype.kind not in "iu":
        raise TypeError(
            f"recommended must hold integer item indices (-1 for an empty slot), got dtype "
            f"{table.dtype}."
        )
    if table.ndim != 2:
        raise ValueError(
            f"recommended must be 2-D (users x ranked items), got shape {table.shape}."
        )
    if table.shape[0] != n_users:
        raise ValueError(
            f"recommended has {table.shape[0]} rows but test has {n_users} users; pass one row per "
            "row of test (users without test items are skipped)."
        )
    if table.shape[1] < k:
        raise ValueError(
            f"recommended has {table.shape[1]} columns, fewer than k={k}; recommend at least k items."
        )
    head = np.ascontiguousarray(table[:, :k], dtype=np.int64)
    if head.size:
        low, high = int(head.min()), int(head.max())
        if low < -1 or high >= n_items:
            bad = low if low < -1 else high
            raise ValueError(
                f"recommended contains the item index {bad}, outside [0, {n_items}) (test has "
                f"{n_items} items; -1 marks an empty slot). Map raw ids to column indices of test."
            )
        ordered = np.sort(head, axis=1)
        duplicate = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if duplicate.any():
            row = int(np.argmax(duplicate.any(axis=1)))
            raise ValueError(
                f"recommended row {row} lists an item more than once in its first k={k} slots; "
                "each item may appear once per user."
            )
    return np.ascontiguousarray(table, dtype=np.int64)


def check_relevance_matrix(test: Any, threshold: float | None) -> sp.csr_matrix:
    """The relevant items of a users x items test matrix, as canonical CSR of ones.

    Every stored entry is relevant (explicit zeros included) unless ``threshold``
    is given, in which case entries with a value >= threshold are.
    """
    if not sp.issparse(test):
        raise TypeError(
            f"test must be a users x items scipy sparse matrix, got {type(test).__name__}."
        )
    test = check_sparse_structure(test, "test")
    csr = sp.csr_matrix(test, copy=True)  # never change the caller's matrix
    check_finite(csr.data, "test")
    csr.sum_duplicates()
    keep = np.ones(csr.nnz, dtype=bool)
    if threshold is not None:
        threshold = check_float(threshold, "threshold")
        keep = np.asarray(csr.data >= threshold)
    indptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    rows = entry_rows(csr.indptr)
    np.cumsum(np.bincount(rows[keep], minlength=csr.shape[0]), out=indptr[1:])
    index_dtype = index_dtype_for(*csr.shape)
    return sp.csr_matrix(
        (np.ones(int(indptr[-1]), dtype=np.float32), csr.indices[keep].astype(index_dtype), indptr),
        shape=csr.shape,
    )


def check_prediction_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length, non-empty, finite 1-D numeric arrays as float64."""
    true = _rating_values(np.asarray(y_true).reshape(-1) if np.ndim(y_true) == 0 else y_true, "y_true")
    pred = _rating_values(np.asarray(y_pred).reshape(-1) if np.ndim(y_pred) == 0 else y_pred, "y_pred")
    if true.size != pred.size:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {true.size} and {pred.size}."
        )
    if true.size == 0:
        raise ValueError("y_true and y_pred are empty: there is nothing to score.")
    return true.astype(np.float64), pred.astype(np.float64)


def check_test_size(test_size: Any, n: int) -> int:
    """``test_size`` (a fraction in (0, 1) or a count in [1, n)) as a count of ratings."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            f"test_size must be a fraction in (0, 1) or a number of ratings, got {test_size!r}."
        )
    if isinstance(test_size, numbers.Integral):
        count = int(test_size)
        if not 1 <= count < n:
            raise ValueError(
                f"test_size={count} must leave ratings on both sides: use 1 <= test_size < {n}."
            )
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
        if (stamps.shape != pattern.shape or stamps.nnz != pattern.nnz
                or not np.array_equal(stamps.indptr, pattern.indptr)
                or not np.array_equal(stamps.indices, pattern.indices)):
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
        raise ValueError(
            f"timestamps must be 1-D with one value per rating ({n}), got shape {values.shape}."
        )
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


# --- datasets ---

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
    from pathlib import Path

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


def pick_column(columns: list[Any], given: Any, candidates: tuple[str, ...], role: str,
                source: str, argument: str, required: bool = True) -> Any:
    """The column of a table that holds ``role`` (user, item, rating or timestamp).

    ``given`` is a name or a position; ``None`` looks for one of ``candidates``
    (case-insensitive).  Raises naming ``argument`` when ``given`` is not a
    column, or when a required column cannot be found.
    """
    if given is not None:
        if isinstance(given, numbers.Integral) and not isinstance(given, bool) \
                and given not in columns:
            if 0 <= int(given) < len(columns):
                return columns[int(given)]
        if given in columns:
            return given
        raise ValueError(
            f"{argument}={given!r} is not a column of {source}; its columns are {columns}."
        )
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
    if (other.shape != matrix.shape or other.nnz != matrix.nnz
            or not np.array_equal(other.indptr, matrix.indptr)
            or not np.array_equal(other.indices, matrix.indices)):
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
    from fastrec._idmap import IdMap

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
            raise ValueError(f"{argument}={column!r} is not a column of the DataFrame; its columns "
                             f"are {columns}.")
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
        raise TypeError(f"{name} must be a pandas DataFrame indexed by raw id, got "
                        f"{type(table).__name__}.")


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
            raise ValueError(f"{source} has missing values in its {argument} column {column!r}; "
                             "every interaction needs a user and an item.")
    if rating is not None and (frame[rating].dtype.kind not in "biuf" or frame[rating].isna().any()):
        raise ValueError(
            f"{source}: the rating column {rating!r} holds missing or non-numeric values; pass "
            "rating_col=<numeric column> or implicit=True."
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
    _check_products_fit(u, v)
    return u, v


def _largest_magnitude(array: np.ndarray) -> float:
    return max(float(array.max()), -float(array.min())) if array.size else 0.0


def _check_products_fit(u: np.ndarray, v: np.ndarray) -> None:
    """Raise when a dot product of a row of ``u`` and a row of ``v`` could overflow their dtype.

    ``|u . v| <= f max|u| max|v|``; only values near the dtype's limit fail it.
    An overflowing score would be infinite or NaN and rank wrongly.
    """
    bound = _largest_magnitude(u) * _largest_magnitude(v) * u.shape[1]
    limit = float(np.finfo(u.dtype).max)
    if bound > limit:
        raise ValueError(
            f"U and V hold values so large (largest |U| {_largest_magnitude(u):.3g}, largest |V| "
            f"{_largest_magnitude(v):.3g}) that their dot products can overflow {u.dtype} (largest "
            f"{limit:.3g}). Rescale U or V, or pass float64 arrays."
        )


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
