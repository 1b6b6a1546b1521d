"""Reading saved models: ``.npz`` archives carrying a format name and version.

Every failure to read a model file, and every inconsistency found in it, is a
``ValueError`` naming the file and what is wrong: a damaged or foreign file must
never surface as ``EOFError``, ``BadZipFile`` or an ``IndexError`` deep inside a
later call.
"""

from __future__ import annotations

import ast
import os
import zipfile
import zlib
from typing import Any

import numpy as np
import scipy.sparse as sp

# What reading a damaged archive or member can raise besides ValueError.
_READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    MemoryError,
    RuntimeError,
    NotImplementedError,
    UnicodeDecodeError,
    ValueError,
)


def file_label(path: Any) -> str:
    """How errors name ``path``: its file name, or a file object's ``name``."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(path)
    name = getattr(path, "name", None)
    return str(name) if isinstance(name, (str, bytes, os.PathLike)) else "the model file"


class Archive:
    """The members of an open model archive, each read and checked on request.

    Reading a member that is missing, damaged, or of the wrong kind raises
    ``ValueError`` naming the file and the member.
    """

    def __init__(self, npz: Any, label: str, class_name: str):
        self._npz = npz
        self.label = label
        self.class_name = class_name
        self.files = list(npz.files)

    def close(self) -> None:
        self._npz.close()

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def error(self, message: str) -> ValueError:
        """A ValueError saying that this file is not a usable saved model, and why."""
        return ValueError(f"{self.label} is not a valid saved fastrec {self.class_name}: {message}")

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.files:
            raise self.error(f"the entry {name!r} is missing (the file is incomplete or damaged)")
        self._check_size(name)
        try:
            return self._npz[name]
        except _READ_ERRORS as exc:
            raise self.error(f"cannot read the entry {name!r} ({type(exc).__name__}: {exc})") from exc

    def _check_size(self, name: str) -> None:
        """Refuse a member whose header claims more data than the member holds (no huge allocation)."""
        try:
            info = self._npz.zip.getinfo(name + ".npy")
            with self._npz.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                reader = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = reader(member)
                header = member.tell()
        except _READ_ERRORS as exc:
            raise self.error(f"cannot read the entry {name!r} ({type(exc).__name__}: {exc})") from exc
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed > info.file_size - header:
            raise self.error(
                f"the entry {name!r} is cut short: its header announces {claimed} "
                f"bytes of data but it holds {info.file_size - header}"
            )

    # -- typed reads -----------------------------------------------------------------------

    def array(
        self, name: str, ndim: int, kinds: str, length: int | None = None, finite: bool = False
    ) -> np.ndarray:
        """Member ``name`` as an array of ``ndim`` dimensions whose dtype kind is in ``kinds``."""
        value = self[name]
        if value.ndim != ndim or value.dtype.kind not in kinds:
            raise self.error(
                f"{name!r} is a {value.ndim}-D array of {value.dtype}, expected a "
                f"{ndim}-D array of kind {kinds!r}"
            )
        if length is not None and value.shape[0] != length:
            raise self.error(f"{name!r} has {value.shape[0]} rows, expected {length}")
        if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise self.error(f"{name!r} holds NaN or infinite values")
        return value

    def scalar(self, name: str, kind: str) -> Any:
        """Member ``name`` as a Python scalar: kind ``"f"`` (finite float), ``"i"``, ``"b"`` or ``"U"``."""
        value = self[name]
        allowed = {"f": "fiu", "i": "iu", "b": "b", "U": "U"}[kind]
        if value.shape != () or value.dtype.kind not in allowed:
            raise self.error(
                f"{name!r} should be a single value of kind {kind!r}, got an array "
                f"of shape {value.shape} and dtype {value.dtype}"
            )
        item = value.item()
        if kind == "f":
            item = float(item)
            if not np.isfinite(item):
                raise self.error(f"{name!r} is {item}, not a finite number")
        return {"i": int, "b": bool, "U": str}.get(kind, float)(item)

    def ids(self, name: str) -> np.ndarray:
        """Member ``name`` as 1-D distinct ids (numbers or strings)."""
        ids = self.array(name, 1, "iufUSbMm")
        if ids.dtype.kind == "f" and not np.isfinite(ids).all():
            raise self.error(f"{name!r} holds NaN or infinite ids")
        if np.unique(ids).size != ids.size:
            values, counts = np.unique(ids, return_counts=True)
            raise self.error(f"{name!r} lists the id {values[np.argmax(counts > 1)].item()!r} more than once")
        return ids

    def params(self, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Member ``name``: the ``repr`` of a dict of parameters, keys among ``allowed``."""
        text = self.scalar(name, "U")
        try:
            params = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise self.error(f"{name!r} is not a readable parameter list ({exc})") from exc
        if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
            raise self.error(f"{name!r} is not a dict of named parameters")
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise self.error(f"{name!r} holds unknown parameters {unknown}")
        return params

    def csr(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray | None,
        shape: tuple[int, int],
        name: str,
    ) -> sp.csr_matrix:
        """A CSR matrix of ``shape`` from saved arrays, after checking they describe one.

        ``data`` None gives int8 ones (a pattern).  Rows may be in any column order
        (neighbour lists are stored in rank order) but must not repeat a column.
        """
        n_rows, n_cols = shape
        if indptr.ndim != 1 or indptr.dtype.kind not in "iu" or indptr.size != n_rows + 1:
            raise self.error(
                f"{name}: indptr must be {n_rows + 1} integers (rows + 1), got "
                f"shape {indptr.shape} of {indptr.dtype}"
            )
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise self.error(
                f"{name}: indices must be 1-D integers, got shape {indices.shape} of {indices.dtype}"
            )
        if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
            raise self.error(f"{name}: indptr must rise from 0 to the {indices.size} stored entries")
        if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
            raise self.error(
                f"{name}: column indices must lie in [0, {n_cols}), found {indices.min()} .. {indices.max()}"
            )
        if data is None:
            data = np.ones(indices.size, dtype=np.int8)
        elif data.ndim != 1 or data.size != indices.size:
            raise self.error(
                f"{name}: data must hold one value per stored entry ({indices.size}), got shape {data.shape}"
            )
        elif not np.isfinite(data).all():
            raise self.error(f"{name}: data holds NaN or infinite values")
        index_dtype = np.int32 if max(n_rows, n_cols, indices.size) < 2**31 else np.int64
        matrix = sp.csr_matrix(
            (data, indices.astype(index_dtype), indptr.astype(index_dtype)), shape=(n_rows, n_cols)
        )
        if indices.size and not matrix.has_canonical_format:
            rows = np.repeat(np.arange(n_rows), np.diff(indptr))
            keys = rows.astype(np.int64) * max(n_cols, 1) + indices
            if np.unique(keys).size != keys.size:
                raise self.error(f"{name}: a row lists the same column twice")
        return matrix

    def saved_csr(self, prefix: str, kinds: str = "f") -> sp.csr_matrix:
        """The CSR written by ``csr_fields(prefix, matrix)``, checked."""
        shape = self.array(f"{prefix}_shape", 1, "iu")
        if shape.size != 2 or shape.min() < 0:
            raise self.error(f"'{prefix}_shape' must be two sizes >= 0, got {shape.tolist()}")
        data = self.array(f"{prefix}_data", 1, kinds)
        return self.csr(
            self[f"{prefix}_indptr"], self[f"{prefix}_indices"], data, (int(shape[0]), int(shape[1])), prefix
        )


def _open(path: Any, class_name: str) -> Archive:
    """``np.load`` of a model file; every failure but a missing file becomes ValueError."""
    label = file_label(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except _READ_ERRORS as exc:
        raise ValueError(f"{label} is not a fastrec model file (.npz): {type(exc).__name__}: {exc}") from exc
    if not hasattr(npz, "files"):  # a plain .npy array
        raise ValueError(f"{label} is not a fastrec model file (.npz) but a single array.")
    return Archive(npz, label, class_name)


def format_name_of(path: Any) -> str:
    """The ``format_name`` a saved model declares (ValueError when it cannot be read)."""
    archive = _open(path, "model")
    try:
        return archive.scalar("format_name", "U")
    finally:
        archive.close()


class open_archive:
    """Open a fastrec ``.npz`` and check its format name and version (a context manager).

    Parameters
    ----------
    path : str, path-like or file object
    format_name : str
        The ``format_name`` entry the archive must hold, e.g. ``"fastrec.ItemKNN"``.
    class_name : str
        Named in the error for a file of another kind.
    max_version : int
        The newest format this fastrec reads.

    Returns
    -------
    Archive
        On entering: the members, read and checked on request.

    Raises
    ------
    ValueError
        If the file cannot be read as an ``.npz`` (empty, truncated, not a zip,
        damaged member), is not a saved model of this class, or is newer than
        ``max_version``; also for any read error inside the ``with`` block.
    """

    def __init__(self, path: Any, format_name: str, class_name: str, max_version: int):
        self.archive = _open(path, class_name)
        label = self.archive.label
        try:
            if "format_name" not in self.archive or self.archive.scalar("format_name", "U") != format_name:
                raise ValueError(f"{label} is not a saved fastrec {class_name}.")
            version = self.archive.scalar("format_version", "i")
            if version > max_version:
                raise ValueError(
                    f"{label} has model format {version}, newer than this fastrec reads "
                    f"({max_version}). Upgrade fastrec to load it."
                )
            if version < 1:
                raise self.archive.error(f"format_version is {version}")
        except BaseException:
            self.archive.close()
            raise

    def __enter__(self) -> Archive:
        return self.archive

    def __exit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        self.archive.close()
        # A member of unexpected shape or type met while building the model is the file's fault.
        if exc is not None and isinstance(exc, _READ_ERRORS) and not isinstance(exc, ValueError):
            raise self.archive.error(f"{type(exc).__name__}: {exc}") from exc
