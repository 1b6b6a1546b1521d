"""Hypothesis strategies and checks shared by the fuzz suite (tests/test_fuzz.py).

Each generated argument comes with a flag saying whether it is bad on its own
(non-finite values, a non-numeric dtype, a malformed sparse structure, a count
below one): a call given a bad argument must raise a ValueError/TypeError that
names it, never answer.  Values are drawn from a seeded numpy generator so that
one hypothesis example stays cheap however large its arrays.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

SCALES = (1.0, 1.0, 1.0, 1e30, 1e200, 1e-30, 1e-300)
GOOD_DTYPES = ("float32", "float64", "int32", "int64", "bool")
BAD_DTYPES = ("complex128", "object", "str")
SPECIALS = (None, None, None, None, np.nan, np.inf, -np.inf)
LAYOUTS = ("C", "F", "strided", "readonly")


@dataclasses.dataclass
class Arg:
    """One generated argument: its value, whether it is bad by itself, and a short description."""

    value: Any
    bad: bool
    what: str

    def __repr__(self) -> str:
        return f"<{self.what}{' BAD' if self.bad else ''}: {describe(self.value)}>"

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis prints a failing example
        printer.text(repr(self))


def as_coo(A: sp.spmatrix) -> sp.coo_matrix:
    """COO of a well-formed sparse matrix, spare storage past ``indptr[-1]`` left out
    (scipy's own ``tocoo`` reads the whole arrays)."""
    if A.format in ("csr", "csc"):
        nnz = int(A.indptr[-1])
        A = type(A)((A.data[:nnz], A.indices[:nnz], A.indptr), shape=A.shape)
    return sp.coo_matrix(A)


def describe(value: Any) -> str:
    """A repr that shows every array of a case (enough to rebuild it)."""
    with np.printoptions(threshold=200, precision=17):
        if sp.issparse(value):
            if value.format == "coo":
                parts = f"row={value.row!r}, col={value.col!r}, data={value.data!r}"
            else:
                parts = f"indptr={value.indptr!r}, indices={value.indices!r}, data={value.data!r}"
            return f"{value.format}(shape={value.shape}, {parts})"
        if isinstance(value, np.ndarray):
            flags = "" if value.flags.writeable else ", readonly"
            flags += "" if value.flags.c_contiguous else ", non-contiguous"
            return f"array({value.tolist()!r}, dtype={value.dtype}{flags})"
        return repr(value)


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype in ("float32", "float64"):
            return values.astype(dtype)
        if dtype in ("int32", "int64"):
            finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
            return np.clip(np.round(finite), -1e9, 1e9).astype(dtype)
        if dtype == "bool":
            return values != 0
        if dtype == "complex128":
            return values.astype(np.complex128) + 1j
        if dtype == "object":
            return values.astype(object)
        return values.astype("U12")


def _layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim == 2:
        wide = np.zeros((array.shape[0], 2 * array.shape[1]), dtype=array.dtype)
        wide[:, ::2] = array
        return wide[:, ::2]  # the same values, every other column of a wider buffer
    if layout == "readonly":
        array = array.copy()
        array.setflags(write=False)
    return array


@st.composite
def values(
    draw,
    shape: tuple[int, ...],
    *,
    integer_valued: bool | None = None,
    allow_specials: bool = True,
    scales=SCALES,
) -> tuple[np.ndarray, bool]:
    """Float64 values of ``shape`` (zeros, a scale, maybe NaN/inf) and whether a special went in."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from(scales))
    zeros = draw(st.sampled_from((0.0, 0.5, 0.9, 1.0)))
    integers = draw(st.booleans()) if integer_valued is None else integer_valued
    special = draw(st.sampled_from(SPECIALS)) if allow_specials else None
    rng = np.random.default_rng(seed)
    vals = rng.integers(-3, 4, size=shape).astype(np.float64) if integers else rng.standard_normal(shape)
    vals[rng.random(shape) < zeros] = 0.0
    vals = vals * scale
    placed = special is not None and vals.size > 0
    if placed:
        vals.flat[rng.integers(vals.size)] = special
    return vals, placed


@st.composite
def dense(
    draw,
    rows=(0, 6),
    cols=(0, 5),
    *,
    what="X",
    dtypes=GOOD_DTYPES + BAD_DTYPES,
    allow_specials=True,
    scales=SCALES,
    nonnegative=False,
) -> Arg:
    """A dense 2-D array: any dtype, scale, layout; NaN/inf sometimes."""
    n = draw(st.integers(*rows))
    m = draw(st.integers(*cols))
    vals, special = draw(values((n, m), allow_specials=allow_specials, scales=scales))
    if nonnegative:
        vals = np.abs(vals)
    dtype = draw(st.sampled_from(dtypes))
    array = _layout(_cast(vals, dtype), draw(st.sampled_from(LAYOUTS)))
    bad = dtype in BAD_DTYPES
    if dtype in ("float32", "float64"):
        bad = bad or not np.isfinite(array).all()
    return Arg(array, bad, f"{what} dense {dtype}")


ODDITIES = ("canonical", "unsorted", "duplicates", "explicit_zeros", "spare_storage", "int64_indices")


def odd_csr(A: sp.csr_matrix, oddity: str, rng: np.random.Generator) -> sp.csr_matrix:
    """A valid but non-canonical CSR holding the same matrix as ``A`` (zeros stored or not)."""
    A = sp.csr_matrix(A, copy=True)
    A.sum_duplicates()
    if oddity == "unsorted" and A.nnz:
        indices, data = A.indices.copy(), A.data.copy()
        for row in range(A.shape[0]):
            lo, hi = A.indptr[row], A.indptr[row + 1]
            indices[lo:hi], data[lo:hi] = indices[lo:hi][::-1], data[lo:hi][::-1]
        B = sp.csr_matrix((data, indices, A.indptr.copy()), shape=A.shape)
        B.has_sorted_indices = False
        return B
    if oddity == "duplicates" and A.nnz and A.dtype.kind == "f":
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        with np.errstate(all="ignore"):  # inf - inf/2 is NaN: the matrix stays bad either way
            halves = np.concatenate([A.data / 2, A.data - A.data / 2])
        order = np.argsort(np.concatenate([rows, rows]), kind="stable")
        indices = np.concatenate([A.indices, A.indices])[order]
        indptr = np.concatenate([[0], np.cumsum(2 * np.diff(A.indptr))])
        return sp.csr_matrix((halves[order], indices, indptr), shape=A.shape)
    if oddity == "explicit_zeros" and A.shape[0] and A.shape[1]:
        dense_ = A.toarray()
        zero_rows, zero_cols = np.nonzero(dense_ == 0)
        pick = rng.random(zero_rows.size) < 0.3
        rows = np.concatenate([np.repeat(np.arange(A.shape[0]), np.diff(A.indptr)), zero_rows[pick]])
        cols = np.concatenate([A.indices, zero_cols[pick]])
        data = np.concatenate([A.data, np.zeros(int(pick.sum()), dtype=A.dtype)])
        B = sp.csr_matrix((data, (rows, cols)), shape=A.shape)
        return B  # COO -> CSR keeps explicit zeros
    if oddity == "spare_storage":
        B = sp.csr_matrix(A, copy=True)
        # arrays longer than indptr[-1]: entries past it are not part of the matrix
        B.indices = np.concatenate([B.indices, np.array([A.shape[1] + 7, -3], dtype=B.indices.dtype)])
        junk = [np.nan, 1e30] if B.data.dtype.kind in "fc" else [7, 9]
        B.data = np.concatenate([B.data, np.array(junk).astype(B.data.dtype)])
        return B
    if oddity == "int64_indices":
        return sp.csr_matrix((A.data, A.indices.astype(np.int64), A.indptr.astype(np.int64)), shape=A.shape)
    return A


@st.composite
def sparse(
    draw,
    rows=(0, 6),
    cols=(0, 5),
    *,
    what="X",
    formats=("csr", "csc", "coo", "odd"),
    dtypes=("float32", "float64", "int32", "bool", "complex128"),
    allow_specials=True,
    scales=SCALES,
    nonnegative=False,
) -> Arg:
    """A well-formed scipy sparse matrix (maybe non-canonical), bad only by dtype or NaN/inf."""
    n = draw(st.integers(*rows))
    m = draw(st.integers(*cols))
    vals, special = draw(values((n, m), allow_specials=allow_specials, scales=scales))
    if nonnegative:
        vals = np.abs(vals)
    dtype = draw(st.sampled_from(dtypes))
    array = _cast(vals, dtype)
    fmt = draw(st.sampled_from(formats))
    A = sp.csr_matrix(array)
    if fmt == "odd":
        oddity = draw(st.sampled_from(ODDITIES))
        A = odd_csr(A, oddity, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
        fmt = f"csr/{oddity}"
    else:
        A = A.asformat(fmt)
    # a float32 cast turns magnitudes past 3.4e38 into infinity as well
    bad = dtype == "complex128" or (dtype.startswith("float") and not np.isfinite(array).all())
    return Arg(A, bad, f"{what} sparse {fmt} {dtype}")


FAULTS = (
    "negative_index",
    "index_past_end",
    "index_beyond_int32",
    "decreasing_indptr",
    "indptr_overrun",
    "short_indptr",
    "long_indptr",
    "nonzero_start",
    "negative_indptr",
    "short_data",
    "float_indices",
    "float_indptr",
)


def break_csr(A: sp.csr_matrix, fault: str, how: str, rng: np.random.Generator) -> sp.csr_matrix | None:
    """``A`` with one structural fault, built by the constructor or by assigning arrays afterwards.

    Returns None when ``A`` is too small to carry the fault.  scipy's constructor
    refuses some faults itself; those fall back to assignment after construction
    (which scipy never checks).
    """
    indptr = A.indptr.astype(np.int64).copy()
    indices = A.indices.astype(np.int64 if fault == "index_beyond_int32" else A.indices.dtype).copy()
    data = A.data.copy()
    nnz = indices.size
    minor = A.shape[1] if A.format == "csr" else A.shape[0]
    if fault in ("negative_index", "index_past_end", "index_beyond_int32"):
        if nnz == 0:
            return None
        at = int(rng.integers(nnz))
        indices[at] = {
            "negative_index": -1 - int(rng.integers(3)),
            "index_past_end": minor + int(rng.integers(3)),
            "index_beyond_int32": 2**31 + int(rng.integers(2**33)),
        }[fault]
    elif fault == "decreasing_indptr":
        if indptr.size < 3 or nnz == 0:
            return None
        at = int(rng.integers(1, indptr.size - 1))
        indptr[at] = indptr[-1] + 1 + int(rng.integers(3))
        if indptr[at] <= indptr[at + 1]:
            return None
    elif fault == "indptr_overrun":
        indptr[-1] = nnz + 1 + int(rng.integers(5))
    elif fault == "short_indptr":
        if indptr.size < 2:
            return None
        indptr = indptr[:-1]
    elif fault == "long_indptr":
        indptr = np.concatenate([indptr, [indptr[-1]]])
    elif fault == "nonzero_start":
        indptr = indptr + 1 + int(rng.integers(3))
    elif fault == "negative_indptr":
        if indptr.size < 2:
            return None
        indptr[int(rng.integers(indptr.size - 1))] = -1 - int(rng.integers(3))
    elif fault == "short_data":
        if nnz == 0:
            return None
        data = data[: int(rng.integers(nnz))]
    elif fault == "float_indices":
        indices = indices.astype(np.float64)
    elif fault == "float_indptr":
        indptr = indptr.astype(np.float64)
    cls = type(A)
    if how == "constructor" and not fault.startswith("float_"):  # scipy would cast those to int
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls((data, indices, indptr), shape=A.shape)
        except (ValueError, TypeError, IndexError, OverflowError):
            pass  # scipy refused it: build it the way it cannot check
    B = A.copy()
    B.indptr, B.indices, B.data = indptr, indices, data
    return B


@st.composite
def malformed(draw, rows=(1, 6), cols=(1, 5), *, what="X", formats=("csr", "csc"), nonnegative=False) -> Arg:
    """A CSR/CSC matrix with one structural fault; always bad."""
    while True:
        n = draw(st.integers(*rows))
        m = draw(st.integers(*cols))
        vals, _ = draw(values((n, m), allow_specials=False, scales=(1.0,)))
        vals[0, 0] = 1.0  # at least one stored entry
        if nonnegative:
            vals = np.abs(vals)
        A = sp.csr_matrix(vals.astype(np.float32)).asformat(draw(st.sampled_from(formats)))
        fault = draw(st.sampled_from(FAULTS))
        how = draw(st.sampled_from(("constructor", "assigned")))
        B = break_csr(A, fault, how, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
        if B is not None:
            return Arg(B, True, f"{what} malformed {A.format} {fault} ({how})")


def mostly(good: list, bad: list) -> st.SearchStrategy:
    """(value, is_bad) pairs: a good value three times out of four, so that most examples
    get past the argument checks and reach the kernels."""
    good_ = st.sampled_from([(v, False) for v in good])
    return st.one_of(good_, good_, good_, st.sampled_from([(v, True) for v in bad]))


# absurd and ordinary counts and thread numbers: (value, is_bad)
COUNTS = mostly([1, 2, 3, 5, 100_000, 2**31, 10**12, np.int64(2)], [0, -1, 1.5, "3", True, None])
THREADS = mostly([None, 1, 2, 3, 100_000, 2**31, 10**12, np.int32(2)], [0, -1, 1.5, "2", True])


def snapshot(value: Any) -> Any:
    """Deep copies of every array inside ``value`` (sparse index arrays included)."""
    if sp.issparse(value):
        if value.format == "coo":
            return ("coo", value.shape, value.row.copy(), value.col.copy(), np.array(value.data, copy=True))
        return (
            value.format,
            value.shape,
            np.array(value.indptr, copy=True),
            np.array(value.indices, copy=True),
            np.array(value.data, copy=True),
        )
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return type(value)(snapshot(v) for v in value)
    return value


def assert_same(before: Any, after: Any, name: str) -> None:
    """Raise unless ``after`` still holds exactly the arrays ``before`` recorded."""
    current = snapshot(after)
    assert type(before) is type(current), f"{name} changed type"
    if isinstance(before, tuple) and before and isinstance(before[0], str):
        assert before[:2] == current[:2], f"{name} changed format or shape"
        for a, b in zip(before[2:], current[2:]):
            assert a.dtype == b.dtype and a.shape == b.shape, f"{name}'s arrays changed"
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{name} was modified"
        return
    if isinstance(before, np.ndarray):
        assert before.dtype == current.dtype and before.shape == current.shape, f"{name} changed"
        if before.dtype.kind in "fc":
            assert np.array_equal(before, current, equal_nan=True), f"{name} was modified"
        elif before.dtype == object:  # NaN inside an object array is not equal to itself
            same = all(
                x is y or x == y or (x != x and y != y)
                for x, y in zip(before.ravel().tolist(), current.ravel().tolist())
            )
            assert same, f"{name} was modified"
        else:
            assert np.array_equal(before, current), f"{name} was modified"
        return
    if isinstance(before, (tuple, list)):
        for a, b in zip(before, current):
            assert_same(a, b, name)
