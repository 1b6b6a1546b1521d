"""Reading saved models: ``.npz`` archives carrying a format name and version."""

from __future__ import annotations

from typing import Any

import numpy as np


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

    Raises
    ------
    ValueError
        If the file is not an ``.npz``, not a saved model of this class, or newer
        than ``max_version``.
    """

    def __init__(self, path: Any, format_name: str, class_name: str, max_version: int):
        try:
            self.archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path!s} is not a fastrec model file (.npz): {exc}") from exc
        if not hasattr(self.archive, "files"):  # a plain .npy array
            raise ValueError(f"{path!s} is not a fastrec model file (.npz).")
        files = self.archive.files
        if "format_name" not in files or str(self.archive["format_name"]) != format_name:
            self.archive.close()
            raise ValueError(f"{path!s} is not a saved fastrec {class_name}.")
        version = int(self.archive["format_version"])
        if version > max_version:
            self.archive.close()
            raise ValueError(
                f"{path!s} has model format {version}, newer than this fastrec reads "
                f"({max_version}). Upgrade fastrec to load it."
            )

    def __enter__(self):
        return self.archive

    def __exit__(self, *exc: Any) -> None:
        self.archive.close()
