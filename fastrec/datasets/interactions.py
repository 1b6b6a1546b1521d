"""``Interactions``: a users x items ratings matrix that remembers raw ids and side tables."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec._idmap import IdMap
from fastrec.datasets._checks import (
    check_axis_ids,
    check_dataframe,
    check_duplicates_policy,
    check_frame_columns,
    check_id_lookup,
    check_no_repeated_pairs,
    check_rating_mask,
    check_same_lengths,
    check_same_pattern,
    check_side_table,
    check_side_table_index,
    check_sparse_matrix,
    timestamp_values,
)

if TYPE_CHECKING:  # pandas is needed only by the methods that build tables
    import pandas as pd


class Interactions:
    """Ratings as a users x items CSR matrix, with the raw ids of its rows and columns.

    Row ``u`` of :attr:`matrix` belongs to the user ``user_ids[u]`` and column
    ``i`` to the item ``item_ids[i]``; both id arrays are sorted when the ids
    are sortable.  Every fastrec model accepts an ``Interactions`` wherever it
    accepts ratings (``MatrixFactorization().fit(data)``) and then speaks the
    raw ids, not the row and column numbers.

    Parameters
    ----------
    matrix : scipy sparse matrix, shape (n_users, n_items)
        The ratings; kept as canonical CSR (sorted indices, no duplicates) of
        float32.  Every stored entry is a rating, explicit zeros included.
    user_ids : array-like, shape (n_users,)
        Distinct raw user ids, in row order.
    item_ids : array-like, shape (n_items,)
        Distinct raw item ids, in column order.
    timestamps : scipy sparse matrix, shape (n_users, n_items), optional
        One time per rating (for example Unix seconds, int64), with the same
        stored entries as ``matrix``.
    users, items : pandas.DataFrame, optional
        Side tables with one row per user (item), in row (column) order:
        for MovieLens, ``items`` holds ``title`` and ``genres`` and ``users``
        ``age``, ``gender`` and ``occupation`` where the release has them.
    name : str, optional
        A label shown by ``repr`` (the loaders set the dataset name).

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of float32, shape (n_users, n_items)
    user_ids, item_ids : ndarray
    timestamps : scipy.sparse.csr_matrix or None
    users, items : pandas.DataFrame or None
    name : str or None

    Examples
    --------
    >>> from fastrec.datasets import Interactions
    >>> data = Interactions.from_arrays(["ann", "bob", "ann"], [10, 20, 20], [4.0, 3.0, 5.0])
    >>> data
    Interactions: 2 users x 2 items, 3 ratings (density 75.00%), ratings 3 to 5
    >>> data.user_index(["bob"])
    array([1], dtype=int32)
    """

    def __init__(
        self,
        matrix: Any,
        user_ids: Any,
        item_ids: Any,
        *,
        timestamps: Any = None,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        name: str | None = None,
    ) -> None:
        check_sparse_matrix(matrix, "matrix")
        # structure first: scipy's conversions read the index arrays unchecked
        matrix = V.check_sparse_structure(matrix, "matrix")
        V.float_dtype_for(matrix.dtype, "matrix")  # refuses complex, object and string values
        csr = sp.csr_matrix(matrix)
        V.check_finite(csr.data, "matrix")
        if (
            csr.data.dtype.kind == "f"
            and csr.data.size
            and float(np.abs(csr.data).max()) > float(np.finfo(np.float32).max)
        ):
            raise ValueError(
                "matrix holds values beyond float32's range (about 3.4e38), where Interactions "
                "keeps its ratings; rescale them first."
            )
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        csr = sp.csr_matrix(
            (
                csr.data.astype(np.float32, copy=False),
                csr.indices.astype(V.index_dtype_for(*csr.shape, csr.nnz), copy=False),
                csr.indptr.astype(V.index_dtype_for(*csr.shape, csr.nnz), copy=False),
            ),
            shape=csr.shape,
        )
        csr.has_sorted_indices = True
        self.matrix = csr
        self.user_ids = check_axis_ids(user_ids, csr.shape[0], "user_ids", "rows")
        self.item_ids = check_axis_ids(item_ids, csr.shape[1], "item_ids", "columns")
        self.timestamps = None if timestamps is None else check_same_pattern(csr, timestamps, "timestamps")
        check_side_table(users, csr.shape[0], "users")
        check_side_table(items, csr.shape[1], "items")
        self.users = users
        self.items = items
        self.name = name
        self._user_map: IdMap | None = None
        self._item_map: IdMap | None = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any = None,
        *,
        timestamps: Any = None,
        duplicates: str = "last",
        user_table: pd.DataFrame | None = None,
        item_table: pd.DataFrame | None = None,
        name: str | None = None,
    ) -> Interactions:
        """Build from one (user, item, rating) triple per interaction, in raw ids.

        Parameters
        ----------
        users, items : array-like, shape (n,)
            Raw ids of any hashable type (integers, strings, ...).
        ratings : array-like of numbers, shape (n,), optional
            Rating values; ``None`` stores 1.0 for every interaction (implicit data).
        timestamps : array-like of numbers, shape (n,), optional
            Time of every interaction; kept as :attr:`timestamps`.
        duplicates : {"last", "sum", "error"}, default "last"
            What a (user, item) pair seen more than once becomes: ``"last"`` keeps
            the most recent rating (largest timestamp; the later one in input
            order on ties or without timestamps), ``"sum"`` adds the values (play
            counts, clicks; the timestamp kept is the latest), ``"error"`` raises.
        user_table, item_table : pandas.DataFrame, optional
            Side tables indexed by raw id; they are aligned to the rows (columns)
            found here, with missing ids as rows of NaN.
        name : str, optional

        Returns
        -------
        Interactions
            Users and items are numbered in sorted id order.
        """
        duplicates = check_duplicates_policy(duplicates)
        raw_users = V.id_array(users, "users")
        raw_items = V.id_array(items, "items")
        n = raw_users.size
        values = (
            np.ones(n, dtype=np.float32)
            if ratings is None
            else V._rating_values(ratings, "ratings").astype(np.float32)
        )
        times = None if timestamps is None else timestamp_values(timestamps)
        check_same_lengths({"users": raw_users, "items": raw_items, "ratings": values, "timestamps": times})
        user_map, u = IdMap.from_values(raw_users)
        item_map, i = IdMap.from_values(raw_items)
        n_users, n_items = len(user_map), len(item_map)
        key = u.astype(np.int64) * n_items + i
        # Sort by pair, then by time (if any), then by input position: the last
        # entry of each run of equal keys is the one "last" keeps.
        order = (
            np.lexsort((np.arange(n), times, key)) if times is not None else np.argsort(key, kind="stable")
        )
        key = key[order]
        last = np.ones(n, dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        if duplicates == "error" and not last.all():
            first = order[int(np.argmin(last))]
            check_no_repeated_pairs(raw_users[first], raw_items[first])
        if duplicates == "sum" and not last.all():
            starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
            values = np.add.reduceat(values[order].astype(np.float64), starts).astype(np.float32)
        else:
            values = values[order][last]
        kept = order[last]
        if times is not None:
            times = times[kept]
        rows, cols = u[kept], i[kept]
        index_dtype = V.index_dtype_for(n_users, n_items, kept.size)
        indptr = np.zeros(n_users + 1, dtype=index_dtype)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        indices = cols.astype(index_dtype)
        matrix = sp.csr_matrix((values, indices, indptr), shape=(n_users, n_items))
        stamps = None if times is None else sp.csr_matrix((times, indices, indptr), shape=(n_users, n_items))
        return cls(
            matrix,
            user_map.ids,
            item_map.ids,
            timestamps=stamps,
            users=_aligned(user_table, user_map.ids, "user_table"),
            items=_aligned(item_table, item_map.ids, "item_table"),
            name=name,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str | None = "rating",
        timestamp_col: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """Build from a DataFrame with one row per interaction.

        Parameters
        ----------
        frame : pandas.DataFrame
        user_col, item_col : str
            Columns of the raw user and item ids.
        rating_col : str or None, default "rating"
            Column of the ratings; ``None`` stores 1.0 per row (implicit data).
        timestamp_col : str, optional
            Column of the interaction times (numbers or datetimes).
        **kwargs
            ``duplicates``, ``user_table``, ``item_table`` and ``name`` of :meth:`from_arrays`.

        Returns
        -------
        Interactions
        """
        check_dataframe(frame, "frame")
        check_frame_columns(
            list(frame.columns),
            {
                "user_col": user_col,
                "item_col": item_col,
                "rating_col": rating_col,
                "timestamp_col": timestamp_col,
            },
        )
        return cls.from_arrays(
            frame[user_col].to_numpy(),
            frame[item_col].to_numpy(),
            None if rating_col is None else frame[rating_col].to_numpy(),
            timestamps=None if timestamp_col is None else frame[timestamp_col],
            **kwargs,
        )

    # -- sizes and ids --------------------------------------------------------------

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Number of stored ratings."""
        return int(self.matrix.nnz)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return self.n_users, self.n_items

    def _maps(self) -> tuple[IdMap, IdMap]:
        if self._user_map is None:
            self._user_map, self._item_map = IdMap(self.user_ids), IdMap(self.item_ids)
        return self._user_map, self._item_map  # type: ignore[return-value]

    def user_index(self, ids: Any, *, strict: bool = True) -> np.ndarray:
        """Row numbers of raw user ids.

        Parameters
        ----------
        ids : raw id or array-like of raw ids
        strict : bool, default True
            Raise on unknown ids; ``False`` returns -1 for them.

        Returns
        -------
        ndarray of int32, shape (n,)
        """
        raw = V.id_array(ids, "ids")
        inner = self._maps()[0].lookup(raw)
        if strict:
            check_id_lookup(inner, raw, "ids")
        return inner

    def item_index(self, ids: Any, *, strict: bool = True) -> np.ndarray:
        """Column numbers of raw item ids (see :meth:`user_index`)."""
        raw = V.id_array(ids, "ids")
        inner = self._maps()[1].lookup(raw)
        if strict:
            check_id_lookup(inner, raw, "ids")
        return inner

    @property
    def item_labels(self) -> np.ndarray:
        """Readable names of the items, in column order: their titles when known, else raw ids.

        ``data.item_labels[j]`` names column ``j``, and ``data.item_labels[columns]``
        the columns of an index array (a row of :func:`fastrec.cosine_topk`, say).

        Returns
        -------
        ndarray of str (object dtype), shape (n_items,)
            A fresh read-only array: ``items["title"]`` where it holds a string,
            else ``str(item_ids[j])``.  Index arrays of column numbers select from
            it; raw ids go through :meth:`item_index` first.  Mask the -1 slots
            of a padded top-k table before indexing: -1 would name the last item.
        """
        labels = np.array([str(i) for i in self.item_ids.tolist()], dtype=object)
        if self.items is not None and "title" in self.items.columns:
            titles = self.items["title"].to_numpy(dtype=object)
            known = np.array([isinstance(t, str) for t in titles], dtype=bool)
            labels[known] = titles[known]
        labels = labels.view(_Labels)
        labels.flags.writeable = False
        return labels

    # -- views ----------------------------------------------------------------------

    def to_triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ratings as ``(user ids, item ids, ratings)`` arrays in CSR order.

        Returns
        -------
        users, items : ndarray, shape (nnz,)
            Raw ids.
        ratings : ndarray of float32, shape (nnz,)
        """
        rows = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))
        return self.user_ids[rows], self.item_ids[self.matrix.indices], self.matrix.data

    def to_frame(self) -> pd.DataFrame:
        """One row per rating: columns ``user``, ``item``, ``rating`` (and ``timestamp``).

        Returns
        -------
        pandas.DataFrame
            Raw ids, in CSR order (by user, then item).
        """
        import pandas as pd

        users, items, ratings = self.to_triples()
        columns: dict[str, Any] = {"user": users, "item": items, "rating": ratings}
        if self.timestamps is not None:
            columns["timestamp"] = self.timestamps.data
        return pd.DataFrame(columns)

    def subset(self, mask: Any) -> Interactions:
        """The ratings selected by ``mask``, with the same users, items and side tables.

        Parameters
        ----------
        mask : array-like of bool, shape (nnz,)
            One flag per stored rating, in CSR order (the order of :meth:`to_triples`).

        Returns
        -------
        Interactions
            Same shape and ids (users or items left without ratings stay as
            empty rows or columns), so row and column numbers keep their meaning.
        """
        keep = check_rating_mask(mask, self.nnz)
        rows = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))[keep]
        indptr = np.zeros(self.n_users + 1, dtype=self.matrix.indptr.dtype)
        np.cumsum(np.bincount(rows, minlength=self.n_users), out=indptr[1:])
        indices = self.matrix.indices[keep]
        matrix = sp.csr_matrix((self.matrix.data[keep], indices, indptr), shape=self.shape)
        stamps = None
        if self.timestamps is not None:
            stamps = sp.csr_matrix((self.timestamps.data[keep], indices, indptr), shape=self.shape)
        return Interactions(
            matrix,
            self.user_ids,
            self.item_ids,
            timestamps=stamps,
            users=self.users,
            items=self.items,
            name=self.name,
        )

    def __repr__(self) -> str:
        label = f"Interactions {self.name!r}" if self.name else "Interactions"
        density = self.nnz / max(self.n_users * self.n_items, 1)
        text = (
            f"{label}: {self.n_users:,} users x {self.n_items:,} items, {self.nnz:,} ratings "
            f"(density {100 * density:.2f}%)"
        )
        if self.nnz:
            text += f", ratings {self.matrix.data.min():g} to {self.matrix.data.max():g}"
        extras = []
        if self.timestamps is not None:
            extras.append("timestamps")
        for side, table in (("users", self.users), ("items", self.items)):
            if table is not None:
                extras.append(f"{side}[{', '.join(str(c) for c in table.columns)}]")
        if extras:
            text += "; with " + ", ".join(extras)
        return text


class _Labels(np.ndarray):
    """The array of :attr:`Interactions.item_labels`; calling it is the old method form."""

    def __repr__(self) -> str:
        return repr(np.asarray(self))

    def __call__(self, indices: Any = None) -> list[str]:
        warnings.warn(
            "Interactions.item_labels is a property (an array of str): write "
            "data.item_labels[columns] instead of data.item_labels(columns); the call form "
            "will be removed.",
            DeprecationWarning,
            stacklevel=2,
        )
        labels = np.asarray(self)
        if indices is None:
            return labels.tolist()
        # the old form's -1 (padding of top-k tables) gave an empty label
        return ["" if k < 0 else labels[k] for k in np.asarray(indices, dtype=np.int64).reshape(-1)]


def _aligned(table: pd.DataFrame | None, ids: np.ndarray, name: str) -> pd.DataFrame | None:
    """``table`` (indexed by raw id) reindexed to ``ids``, or None."""
    if table is None:
        return None
    check_side_table_index(table, name)
    if not table.index.is_unique:
        table = table[~table.index.duplicated(keep="first")]
    return table.reindex(ids)
