"""Download MovieLens releases from GroupLens once and read them from a local cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from fastrec.datasets.interactions import Interactions
from fastrec.datasets.loaders import load_movielens

BASE_URL = "https://files.grouplens.org/datasets/movielens/"

# name -> (archive, folder inside the archive, ratings file, md5 of the archive or None).
# Only checksums the publisher states are listed; other archives are checked by
# unpacking and reading them.
MOVIELENS = {
    "ml-100k": ("ml-100k.zip", "ml-100k", "u.data", "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": ("ml-1m.zip", "ml-1m", "ratings.dat", None),
    "ml-10m": ("ml-10m.zip", "ml-10M100K", "ratings.dat", None),
    "ml-20m": ("ml-20m.zip", "ml-20m", "ratings.csv", None),
    "ml-25m": ("ml-25m.zip", "ml-25m", "ratings.csv", None),
    "ml-latest-small": ("ml-latest-small.zip", "ml-latest-small", "ratings.csv", None),
    "ml-latest": ("ml-latest.zip", "ml-latest", "ratings.csv", None),
}
TIMEOUT_SECONDS = 60


class DownloadError(OSError):
    """A dataset could not be downloaded (no network, server error, bad archive)."""


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder datasets are cached in.

    Parameters
    ----------
    data_home : str or path-like, optional
        Explicit folder.  Default: ``$FASTREC_DATA`` when set, else
        ``$XDG_CACHE_HOME/fastrec`` (``~/.cache/fastrec``).

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    if os.environ.get("FASTREC_DATA"):
        return Path(os.environ["FASTREC_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fastrec"


def _download(url: str, destination: Path) -> None:
    """Write the body of ``url`` to ``destination`` (raises URLError/OSError on failure)."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing members that would land outside it."""
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            destination = (root / member).resolve()
            if root != destination and root not in destination.parents:
                raise DownloadError(f"{archive.name} holds the unsafe path {member!r}; not unpacked.")
        zf.extractall(root)


def fetch_movielens(
    name: str = "ml-100k",
    data_home: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> Interactions:
    """A MovieLens release, downloaded from GroupLens on first use and cached.

    Parameters
    ----------
    name : str, default "ml-100k"
        One of ``ml-100k``, ``ml-1m``, ``ml-10m``, ``ml-20m``, ``ml-25m``,
        ``ml-latest-small``, ``ml-latest``.
    data_home : str or path-like, optional
        Cache folder; see :func:`get_data_home`.  A release already unpacked
        there (``data_home/ml-100k/u.data`` say) is read without any download.
    download : bool, default True
        ``False`` reads the cache only and raises when the release is not there.

    Returns
    -------
    Interactions
        As returned by :func:`fastrec.datasets.load_movielens`.

    Raises
    ------
    DownloadError
        When the download fails (for example without network); the message
        says how to pass a local copy instead.
    FileNotFoundError
        With ``download=False`` when the release is not cached.

    Notes
    -----
    MovieLens is licensed by GroupLens for research use; read the README in the
    archive before using it.
    """
    if name not in MOVIELENS:
        raise ValueError(
            f"name={name!r} is not a known MovieLens release; choose one of {sorted(MOVIELENS)}."
        )
    archive_name, folder_name, ratings_name, md5 = MOVIELENS[name]
    home = get_data_home(data_home)
    folder = home / folder_name
    if (folder / ratings_name).is_file():
        return load_movielens(folder)
    if not download:
        raise FileNotFoundError(
            f"{name} is not cached in {str(home)!r}; call fetch_movielens({name!r}) with "
            "download=True, or unpack it there yourself."
        )
    url = BASE_URL + archive_name
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fastrec-download-", dir=home) as tmp:
        archive = Path(tmp) / archive_name
        try:
            _download(url, archive)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(
                f"Could not download {name} from {url} ({reason}). Without network access, "
                f"download {archive_name} elsewhere, unpack it and pass its folder to "
                f"fastrec.datasets.load_movielens(path) (or `fastrec demo --data PATH`), or "
                f"unpack it into {str(home)!r}."
            ) from exc
        if md5 is not None and _md5(archive) != md5:
            raise DownloadError(
                f"{archive_name} from {url} does not have the published MD5 "
                f"{md5}; the download is corrupt. Try again."
            )
        try:
            _extract(archive, Path(tmp) / "unpacked")
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{url} did not return a zip archive ({exc}).") from exc
        unpacked = Path(tmp) / "unpacked" / folder_name
        if not (unpacked / ratings_name).is_file():
            raise DownloadError(
                f"{archive_name} has no {folder_name}/{ratings_name}; not a MovieLens archive."
            )
        if folder.exists():  # a partial earlier copy without the ratings file
            shutil.rmtree(folder)
        os.replace(unpacked, folder)
    return load_movielens(folder)
