"""Loaders: MovieLens 100K / 1M / 10M / CSV releases and generic CSV, TSV and Parquet files.

Every test writes its own small files (LF and CRLF, latin-1 and UTF-8 titles)
and checks the matrix against the triples it wrote.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastrec.datasets import (
    load_interactions,
    load_ml1m,
    load_ml100k,
    load_ml_latest,
    load_movielens,
)


def triples(seed=0, n=300, half_stars=False):
    """Distinct (user, item) pairs with ratings and timestamps, in random order."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(40 * 60, size=n, replace=False)
    users, items = keys // 60 + 1, keys % 60 + 1
    ratings = rng.integers(1, 6, n).astype(float)
    if half_stars:
        ratings -= 0.5 * rng.integers(0, 2, n)
    times = rng.integers(800_000_000, 900_000_000, n)
    return users, items, ratings, times


def write(path, lines, newline="\n", encoding="utf-8"):
    path.write_bytes((newline.join(lines) + newline).encode(encoding))


def assert_matches(data, users, items, ratings, times=None):
    expected = {(u, i): r for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist())}
    got_u, got_i, got_r = data.to_triples()
    got = {(u, i): r for u, i, r in zip(got_u.tolist(), got_i.tolist(), got_r.tolist())}
    assert got == expected
    if times is not None:
        stamp = {(u, i): t for u, i, t in zip(users.tolist(), items.tolist(), times.tolist())}
        assert data.timestamps.data.tolist() == [stamp[k] for k in zip(got_u.tolist(), got_i.tolist())]


def write_ml100k(folder, newline="\n", seed=0):
    users, items, ratings, times = triples(seed)
    folder.mkdir()
    write(
        folder / "u.data",
        [f"{u}\t{i}\t{int(r)}\t{t}" for u, i, r, t in zip(users, items, ratings, times)],
        newline,
    )
    genres = ["0"] * 19
    item_lines = []
    for i in range(1, 61):
        flags = list(genres)
        flags[1 + i % 18] = "1"
        title = "Misérables, Les (1995)" if i == 7 else f"Movie {i} (1990)"
        item_lines.append(f"{i}|{title}|01-Jan-1990||http://example.org/{i}|" + "|".join(flags))
    write(folder / "u.item", item_lines, newline, encoding="latin-1")
    write(
        folder / "u.user", [f"{u}|{20 + u}|{'MF'[u % 2]}|writer|{10000 + u}" for u in range(1, 41)], newline
    )
    return users, items, ratings, times


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ml100k_folder_and_file(tmp_path, newline):
    users, items, ratings, times = write_ml100k(tmp_path / "ml-100k", newline)
    data = load_ml100k(tmp_path / "ml-100k")
    assert_matches(data, users, items, ratings, times)
    assert data.name == "ml-100k"
    titles = data.items["title"]
    assert titles.loc[7] == "Misérables, Les (1995)"  # latin-1 decoded
    assert titles.loc[8] == "Movie 8 (1990)"  # no stray \r from CRLF
    assert data.items["genres"].loc[8] == "Fantasy"  # flag 1 + 8 % 18 = 9: the 10th genre
    assert list(data.users.columns) == ["age", "gender", "occupation", "zip"]
    assert data.users.loc[data.user_ids[0], "age"] == 20 + data.user_ids[0]
    # the ratings file alone also works; side tables come from beside it
    again = load_ml100k(tmp_path / "ml-100k" / "u.data")
    assert (again.matrix != data.matrix).nnz == 0 and again.items is not None


def write_dat(folder, with_users, newline="\n", seed=1):
    users, items, ratings, times = triples(seed, half_stars=not with_users)
    folder.mkdir()
    write(
        folder / "ratings.dat",
        [f"{u}::{i}::{r:g}::{t}" for u, i, r, t in zip(users, items, ratings, times)],
        newline,
    )
    write(
        folder / "movies.dat",
        [f"{i}::{'Amélie: Le Fabuleux (2001)' if i == 3 else f'M{i}'}::Comedy|Romance" for i in range(1, 61)],
        newline,
        encoding="latin-1",
    )
    if with_users:
        write(
            folder / "users.dat",
            [f"{u}::{'FM'[u % 2]}::{1 if u == 1 else 25}::{u % 21}::4806{u}" for u in range(1, 41)],
            newline,
        )
    return users, items, ratings, times


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ml1m_and_ml10m(tmp_path, newline):
    expected = write_dat(tmp_path / "ml-1m", with_users=True, newline=newline)
    data = load_ml1m(tmp_path / "ml-1m")
    assert_matches(data, *expected)
    assert data.name == "ml-1m"
    assert data.items.loc[3, "title"] == "Amélie: Le Fabuleux (2001)"  # ":" inside a title
    assert data.items.loc[3, "genres"] == "Comedy|Romance"
    assert data.users.loc[1, "age"] == 1 and data.users.loc[10, "occupation"] == "K-12 student"
    expected = write_dat(tmp_path / "ml-10M100K", with_users=False, newline=newline)
    data = load_movielens(tmp_path / "ml-10M100K" / "ratings.dat")
    assert_matches(data, *expected)
    assert data.name == "ml-10m" and data.users is None
    assert set(np.unique(data.matrix.data)) > {0.5}  # half stars kept


def write_latest(folder, newline="\r\n"):
    users, items, ratings, times = triples(2, half_stars=True)
    folder.mkdir()
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{i},{r:g},{t}" for u, i, r, t in zip(users, items, ratings, times)]
    write(folder / "ratings.csv", lines, newline)
    movies = ["movieId,title,genres"] + [
        f'{i},"Good, the Bad (1966)",Western' if i == 5 else f"{i},Amélie {i} (2001),Comedy"
        for i in range(1, 61)
    ]
    write(folder / "movies.csv", movies, newline)
    return users, items, ratings, times


def test_ml_latest_csv_with_crlf_and_quoted_titles(tmp_path):
    expected = write_latest(tmp_path / "ml-latest-small")
    data = load_ml_latest(tmp_path / "ml-latest-small")
    assert_matches(data, *expected)
    assert data.name == "ml-latest-small"
    assert data.items.loc[5, "title"] == "Good, the Bad (1966)"
    assert data.items.loc[6, "title"] == "Amélie 6 (2001)"
    assert data.item_labels[data.item_index([5])][0] == "Good, the Bad (1966)"


def test_load_movielens_detects_every_format(tmp_path):
    write_ml100k(tmp_path / "a")
    write_dat(tmp_path / "b", with_users=True)
    write_latest(tmp_path / "c")
    assert [load_movielens(tmp_path / f).name for f in "abc"] == ["ml-100k", "ml-1m", "c"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds none of \['u.data', 'ratings.dat'"):
        load_movielens(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(tmp_path / "missing")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        load_movielens(tmp_path / "other.csv")


def test_malformed_movielens_files(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "u.data").write_text("1\t2\tfive\t100\n")
    with pytest.raises(ValueError, match="does not look like MovieLens 100K u.data"):
        load_ml100k(folder)
    (folder / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match=r"has no \['userId', 'movieId', 'rating'\] column"):
        load_ml_latest(folder / "ratings.csv")


def test_generic_csv_with_named_columns_and_string_ids(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("who;what;stars;when\nann;x;4.5;2020-01-02\nbob;y;3;2020-01-01\nann;y;2;2020-01-03\n")
    data = load_interactions(path, user_col="who", item_col="what", rating_col="stars", timestamp_col="when")
    assert as_triples(data) == [("ann", "x", 4.5), ("ann", "y", 2.0), ("bob", "y", 3.0)]
    assert data.timestamps.data.tolist() == [1577923200, 1578009600, 1577836800]
    assert data.name == "events.csv"
    # columns found by their usual names, separator sniffed (tab)
    tsv = tmp_path / "plays.tsv"
    tsv.write_text("userID\tartistID\tweight\n7\t1\t10\n7\t2\t3\n8\t1\t5\n")
    assert as_triples(load_interactions(tsv)) == [(7, 1, 10.0), (7, 2, 3.0), (8, 1, 5.0)]
    implicit = load_interactions(tsv, implicit=True)
    assert implicit.matrix.data.tolist() == [1.0, 1.0, 1.0]


def as_triples(data):
    u, i, r = data.to_triples()
    return list(zip(u.tolist(), i.tolist(), r.tolist()))


def test_generic_file_without_header_latin1_and_duplicates(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_bytes("5|Café|4|10\r\n5|Café|2|30\r\n6|Thé|1|20\r\n".encode("latin-1"))
    data = load_interactions(path, header=False)
    assert as_triples(data) == [(5, "Café", 2.0), (6, "Thé", 1.0)]  # latest of the duplicates
    summed = load_interactions(path, header=False, duplicates="sum")
    assert as_triples(summed) == [(5, "Café", 6.0), (6, "Thé", 1.0)]
    swapped = load_interactions(path, user_col=1, item_col=0, rating_col=2, header=False)
    assert as_triples(swapped)[0] == ("Café", 5, 2.0)


@pytest.mark.parametrize("sep", [",", "\t", "::"])
def test_headerless_file_of_numbers_keeps_its_first_row(tmp_path, sep):
    path = tmp_path / "ratings.txt"
    rows = [(1, 10, 5), (2, 10, 3), (2, 11, 4)]
    path.write_text("".join(sep.join(map(str, row)) + "\n" for row in rows))
    expected = [(1, 10, 5.0), (2, 10, 3.0), (2, 11, 4.0)]
    assert as_triples(load_interactions(path)) == expected  # detected: no header
    assert as_triples(load_interactions(path, 0, 1, 2)) == expected
    assert as_triples(load_interactions(path, header=False)) == expected
    swapped = load_interactions(path, user_col=1, item_col=0, rating_col=2)
    assert as_triples(swapped) == [(10, 1, 5.0), (10, 2, 3.0), (11, 2, 4.0)]
    # header=True forces the first line to be the names, whatever it holds
    forced = load_interactions(path, 0, 1, 2, header=True)
    assert as_triples(forced) == expected[1:]
    assert forced.n_users == 1


def test_header_is_detected_over_numbers_and_by_name(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,10,5\n2,10,3\n")
    assert as_triples(load_interactions(path)) == [(1, 10, 5.0), (2, 10, 3.0)]
    # unusual names over numbers: still a header, the columns named by the caller
    odd = tmp_path / "odd.tsv"
    odd.write_text("who\twhat\tstars\n7\t1\t4\n8\t1\t2\n")
    assert as_triples(load_interactions(odd, "who", "what", "stars")) == [(7, 1, 4.0), (8, 1, 2.0)]
    assert as_triples(load_interactions(odd, 0, 1, 2)) == [(7, 1, 4.0), (8, 1, 2.0)]
    # text ids only: the usual column names mark the header ...
    named = tmp_path / "named.csv"
    named.write_text("user,item\nann,x\nbob,y\n")
    assert as_triples(load_interactions(named)) == [("ann", "x", 1.0), ("bob", "y", 1.0)]
    # ... and a row of data is not taken for one, even when an id looks like a name
    data_first = tmp_path / "data_first.csv"
    data_first.write_text("ann,date,5\nbob,x,3\n")
    assert as_triples(load_interactions(data_first)) == [("ann", "date", 5.0), ("bob", "x", 3.0)]
    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("ann,x\nbob,y\n")
    assert as_triples(load_interactions(unnamed)) == [("ann", "x", 1.0), ("bob", "y", 1.0)]
    assert as_triples(load_interactions(unnamed, "ann", "x", header=True)) == [("bob", "y", 1.0)]


def test_column_names_on_a_headerless_file_say_how_to_fix(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,10,5\n2,10,3\n")
    with pytest.raises(
        ValueError,
        match=r"has no header line .* no column named 'user'; name "
        r"the columns by position .* or pass header=True",
    ):
        load_interactions(path, user_col="user", item_col="item")
    # the names the caller gives mark a header, even over text ids
    named = tmp_path / "named.csv"
    named.write_text("buyer,sku\nann,x\n")
    assert as_triples(load_interactions(named, "buyer", "sku")) == [("ann", "x", 1.0)]


def test_parquet(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["c2", "c1", "c2"],
            "product_id": [3, 3, 4],
            "rating": [1.0, 5.0, 2.0],
            "ts": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"]),
        }
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    data = load_interactions(path, timestamp_col="ts")
    assert as_triples(data) == [("c1", 3, 5.0), ("c2", 3, 1.0), ("c2", 4, 2.0)]
    assert data.timestamps.data.tolist() == [1609545600, 1609459200, 1609632000]


def test_generic_loader_errors(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(ValueError, match=r"user_col='who' is not a column of .*\['user', 'item'"):
        load_interactions(path, user_col="who")
    with pytest.raises(ValueError, match="user_col and item_col both name the column 'user'"):
        load_interactions(path, item_col="user")
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,rating\n1,2,3\n")
    with pytest.raises(ValueError, match="Could not find the user column .* pass user_col="):
        load_interactions(odd)
    text = tmp_path / "t.csv"
    text.write_text("user,item,rating\n1,2,good\n")
    with pytest.raises(ValueError, match="rating column 'rating' holds missing or non-numeric"):
        load_interactions(text)
    with pytest.raises(ValueError, match="is a folder"):
        load_interactions(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_interactions(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="path must be a file or folder path"):
        load_interactions(42)
