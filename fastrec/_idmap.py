"""Mapping between raw ids (any hashable: ints, strings, ...) and dense inner indices.

Every recommender that accepts raw user and item ids keeps one :class:`IdMap` per
side.  Inner index ``k`` belongs to raw id ``ids[k]``.  Ids met in one call are
numbered in sorted order (first-appearance order when they cannot be sorted), and
ids met later are appended, so the indices of known ids never change.

Lookups are vectorised: integer ids that are small and non-negative go through a
dense table, other sortable ids through a binary search, and only ids that numpy
cannot sort (mixed types, tuples) through a dictionary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A dense lookup table is used while it costs at most this many entries per id
# (plus a fixed allowance), i.e. while the id space is not much sparser than the ids.
_TABLE_SLACK = 8
_TABLE_ALLOWANCE = 1 << 20


def _sortable(array: np.ndarray) -> bool:
    return array.dtype.kind in "iufUSMmb"


class IdMap:
    """A bijection between raw ids and ``range(len(self))``.

    Parameters
    ----------
    ids : ndarray, shape (n,)
        Distinct raw ids; position ``k`` is inner index ``k``.
    """

    def __init__(self, ids: np.ndarray):
        self.ids = ids
        self._table: np.ndarray | None = None
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._dict: dict[Any, int] | None = None
        self._is_range = bool(
            ids.dtype.kind in "iu"
            and (ids.size == 0 or (ids[0] == 0 and ids[-1] == ids.size - 1 and np.all(np.diff(ids) == 1)))
        )

    @classmethod
    def range(cls, n: int) -> IdMap:
        """The identity map of ``0 .. n-1`` (raw id == inner index)."""
        return cls(np.arange(n, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def is_range(self) -> bool:
        """True when raw ids are exactly ``0 .. n-1`` in order."""
        return self._is_range

    @staticmethod
    def from_values(values: np.ndarray) -> tuple[IdMap, np.ndarray]:
        """Number the distinct ids of ``values``; returns the map and the int32 indices."""
        ids, inner = _unique_inverse(values)
        return IdMap(ids), inner

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """int32 inner index of every id in ``values``; -1 for ids not in the map."""
        n = values.size
        if n == 0 or len(self) == 0:
            return np.full(n, -1, dtype=np.int32)
        if values.dtype.kind in "iu" and self.ids.dtype.kind in "iu":
            if self._is_range:
                inner = np.full(n, -1, dtype=np.int32)
                ok = (values >= 0) & (values < len(self))
                inner[ok] = values[ok]
                return inner
            table = self._dense_table()
            if table is not None:
                inner = np.full(n, -1, dtype=np.int32)
                ok = (values >= 0) & (values < table.size)
                inner[ok] = table[values[ok]]
                return inner
        if _sortable(self.ids) and _sortable(values) and _comparable(self.ids, values):
            sorted_ids, order = self._sorted_ids()
            pos = np.searchsorted(sorted_ids, values)
            pos[pos == sorted_ids.size] = 0
            hit = sorted_ids[pos] == values
            inner = np.full(n, -1, dtype=np.int32)
            inner[hit] = order[pos[hit]]
            return inner
        mapping = self._mapping()
        return np.fromiter((mapping.get(_key(v), -1) for v in values), dtype=np.int32, count=n)

    def extend(self, values: np.ndarray) -> tuple[IdMap, np.ndarray]:
        """A map that also holds the new ids of ``values`` (appended), and their indices."""
        inner = self.lookup(values)
        missing = inner < 0
        if not missing.any():
            return self, inner
        new_ids, new_inner = _unique_inverse(values[missing])
        old_kind, new_kind = self.ids.dtype.kind, new_ids.dtype.kind
        if self.ids.dtype == new_ids.dtype:
            dtype = self.ids.dtype
        elif (old_kind in "iuf" and new_kind in "iuf") or (old_kind in "US" and new_kind in "US"):
            dtype = np.result_type(self.ids.dtype, new_ids.dtype)
        else:  # e.g. int ids joined by a string id: keep each id as it is
            dtype = np.dtype(object)
        ids = np.concatenate([self.ids.astype(dtype), new_ids.astype(dtype)])
        inner = inner.copy()
        inner[missing] = new_inner + len(self)
        return IdMap(ids), inner

    def append(self, value: Any) -> tuple[IdMap, int]:
        """A map with one more id (or this map when it is known) and that id's index."""
        ids = np.empty(1, dtype=object)
        ids[0] = value
        if isinstance(value, (int, np.integer, str, np.str_)):
            ids = np.asarray([value])
        extended, inner = self.extend(ids)
        return extended, int(inner[0])

    def to_saveable(self) -> np.ndarray | None:
        """The ids as an array ``np.save`` writes without pickle, or None when impossible."""
        if self.ids.dtype != object:
            return self.ids
        kinds = {type(v) for v in self.ids}
        if kinds <= {str, np.str_}:
            return self.ids.astype(str)
        if all(issubclass(k, (int, np.integer)) for k in kinds):
            try:
                return self.ids.astype(np.int64)
            except OverflowError:
                return None
        return None

    # -- lookup structures, built on first use --------------------------------------

    def _dense_table(self) -> np.ndarray | None:
        if self._table is None:
            top = int(self.ids.max())
            if top >= _TABLE_SLACK * len(self) + _TABLE_ALLOWANCE:
                return None
            table = np.full(top + 1, -1, dtype=np.int32)
            table[self.ids] = np.arange(len(self), dtype=np.int32)
            self._table = table
        return self._table

    def _sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            order = np.argsort(self.ids, kind="stable").astype(np.int32)
            self._sorted = (self.ids[order], order)
        return self._sorted

    def _mapping(self) -> dict[Any, int]:
        if self._dict is None:
            self._dict = {_key(v): k for k, v in enumerate(self.ids)}
        return self._dict


def _key(value: Any) -> Any:
    """A dictionary key under which numpy scalars and Python values agree."""
    return value.item() if isinstance(value, np.generic) else value


def _comparable(a: np.ndarray, b: np.ndarray) -> bool:
    numeric = "iufb"
    text = "US"
    return (a.dtype.kind in numeric and b.dtype.kind in numeric) or (
        a.dtype.kind in text and b.dtype.kind in text
    )


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ids (sorted when sortable) and the int32 index of every value."""
    if values.dtype.kind in "iu" and values.size:
        top = int(values.max())
        # Small non-negative integers: a presence table is O(n), far faster than sorting.
        if top < _TABLE_SLACK * values.size + _TABLE_ALLOWANCE:
            present = np.zeros(top + 1, dtype=bool)
            present[values] = True
            ids = np.flatnonzero(present)
            table = np.full(top + 1, -1, dtype=np.int32)
            table[ids] = np.arange(ids.size, dtype=np.int32)
            return ids.astype(values.dtype, copy=False), table[values]
    if _sortable(values):
        ids, inverse = np.unique(values, return_inverse=True)
        return ids, inverse.reshape(-1).astype(np.int32)
    try:  # object arrays of one orderable type (e.g. Python strings)
        ids, inverse = np.unique(values, return_inverse=True)
        return ids, inverse.reshape(-1).astype(np.int32)
    except TypeError:  # mixed or unorderable types: first-appearance order
        mapping: dict[Any, int] = {}
        inner = np.fromiter(
            (mapping.setdefault(_key(v), len(mapping)) for v in values),
            dtype=np.int32,
            count=values.size,
        )
        ids = np.empty(len(mapping), dtype=object)
        ids[:] = list(mapping)
        return ids, inner
