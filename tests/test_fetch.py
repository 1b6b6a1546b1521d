"""fetch_movielens: download once, read from the cache, clear errors without network.

The downloader is replaced by a function that copies a zip built here: the
tests never touch the network.
"""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile

import pytest

from fastrec.datasets import DownloadError, fetch, fetch_movielens, get_data_home

RATINGS = "1\t10\t4\t881250949\n2\t10\t5\t881250950\n2\t20\t3\t881250951\n"


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def archive(tmp_path):
    return make_zip(
        tmp_path / "served.zip",
        {
            "ml-100k/u.data": RATINGS,
            "ml-100k/u.item": "10|Ten (1990)|||" + "|0" * 19 + "\n20|Twenty (1991)|||" + "|0" * 19,
        },
    )


def serve(monkeypatch, archive, calls):
    def fake_download(url, destination):
        calls.append(url)
        destination.write_bytes(archive.read_bytes())

    monkeypatch.setattr(fetch, "_download", fake_download)


def test_downloads_once_then_reads_the_cache(tmp_path, monkeypatch, archive):
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    name, folder, ratings, _ = fetch.MOVIELENS["ml-100k"]
    monkeypatch.setitem(fetch.MOVIELENS, "ml-100k", (name, folder, ratings, digest))
    calls: list[str] = []
    serve(monkeypatch, archive, calls)
    home = tmp_path / "home"
    data = fetch_movielens("ml-100k", data_home=home)
    assert calls == [fetch.BASE_URL + "ml-100k.zip"]
    assert (data.n_users, data.n_items, data.nnz) == (2, 2, 3)
    assert data.items.loc[20, "title"] == "Twenty (1991)"
    assert (home / "ml-100k" / "u.data").read_text() == RATINGS
    assert [p.name for p in home.iterdir()] == ["ml-100k"]  # no temporary files left
    again = fetch_movielens("ml-100k", data_home=home, download=False)
    assert calls == [fetch.BASE_URL + "ml-100k.zip"] and (again.matrix != data.matrix).nnz == 0


def test_no_network_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, destination):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(fetch, "_download", offline)
    with pytest.raises(
        DownloadError,
        match=r"Could not download ml-1m .*Temporary failure.*"
        r"pass its folder to fastrec.datasets.load_movielens",
    ):
        fetch_movielens("ml-1m", data_home=tmp_path)
    with pytest.raises(FileNotFoundError, match="ml-1m is not cached"):
        fetch_movielens("ml-1m", data_home=tmp_path, download=False)


def test_bad_archives_are_refused(tmp_path, monkeypatch, archive):
    calls: list[str] = []
    serve(monkeypatch, archive, calls)  # the published MD5 of ml-100k does not match this zip
    with pytest.raises(DownloadError, match="does not have the published MD5"):
        fetch_movielens("ml-100k", data_home=tmp_path / "a")
    serve(monkeypatch, make_zip(tmp_path / "evil.zip", {"../escape.txt": "x"}), calls)
    with pytest.raises(DownloadError, match="unsafe path '../escape.txt'"):
        fetch_movielens("ml-latest-small", data_home=tmp_path / "b")
    assert not (tmp_path / "escape.txt").exists()
    serve(monkeypatch, make_zip(tmp_path / "other.zip", {"readme.txt": "x"}), calls)
    with pytest.raises(DownloadError, match="has no ml-latest-small/ratings.csv"):
        fetch_movielens("ml-latest-small", data_home=tmp_path / "c")
    with pytest.raises(ValueError, match="name='ml-2k' is not a known MovieLens release"):
        fetch_movielens("ml-2k", data_home=tmp_path)


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTREC_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("FASTREC_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache" / "fastrec"
