"""The input checks every family shares, and the errors they raise.

Scalars (ints, floats, bools, seeds), dtypes, dense and sparse arrays (the
structure of a scipy sparse matrix, canonical CSR and the arrays a kernel
receives), raw id arrays and a memory check made before allocating.  Checks
that one family alone uses live in that family (``fastrec/<family>/_checks.py``).
Each helper names the offending argument, what was wrong with it and how to fix
it.  Nothing here modifies the caller's data: whenever a canonical form needs a
change, the change is made on a copy.
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


_REBUILD_HINT = (
    "Build it with the scipy.sparse constructors, or find the fault with "
    "matrix.check_format(full_check=True)."
)


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


def _check_compressed(
    indptr: Any, indices: Any, data: Any, n_major: int, n_minor: int, name: str, axes: tuple[str, str]
) -> None:
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
        raise ValueError(
            f"{name} is a malformed sparse matrix: indptr starts at {int(indptr[0])}, not 0. {_REBUILD_HINT}"
        )
    if n_major and bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError(
            f"{name} is a malformed sparse matrix: indptr decreases (it must be "
            f"non-decreasing). {_REBUILD_HINT}"
        )
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
            raise ValueError(
                f"{name} is a malformed sparse matrix: its data array is not 1-D. {_REBUILD_HINT}"
            )
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
                raise ValueError(
                    f"{name} is a malformed sparse matrix: it stores the {axis} index "
                    f"{bad}, outside [0, {size}). {_REBUILD_HINT}"
                )
        return A
    if A.format == "bsr":
        block_rows, block_cols = A.blocksize
        _check_compressed(
            A.indptr,
            A.indices,
            A.data,
            n_rows // block_rows,
            n_cols // block_cols,
            name,
            ("block row", "block column"),
        )
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


def check_factor_dtype(dtype: Any) -> np.dtype:
    """float32 or float64, the dtypes the factor kernels compute in."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype={dtype!r} is not a numpy dtype; use np.float32 or np.float64.") from exc
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {resolved}.")
    return resolved


def id_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D array of ids; raises naming ``name`` on NaN or missing ids."""
    if isinstance(values, np.ndarray):
        array = values
    else:
        try:
            array = np.asarray(values)
            ragged = False
        except ValueError:  # ragged sequences
            ragged = True
        if ragged or (array.ndim > 1 and len(values) > 0):
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


def _rating_values(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {array.shape}.")
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numbers, got dtype {array.dtype}. Convert it, e.g. {name}.astype(np.float32)."
        )
    check_finite(array, name)
    return array
