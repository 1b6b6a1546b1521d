"""Readers for MovieLens releases and generic interaction files; each returns ``Interactions``.

Every reader takes a local path (the dataset's folder or its ratings file) and
never touches the network (:func:`fastrec.datasets.fetch_movielens` downloads).
Files are read as the publishers released them: CRLF or LF line endings, and
UTF-8 or latin-1 text (MovieLens 100K and 1M titles are latin-1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastrec.datasets._checks import (
    check_data_path,
    check_file_name,
    check_interaction_columns,
    check_is_file,
    check_rating_table,
    check_required_columns,
    check_separate_columns,
    find_data_file,
    pick_column,
    unreadable_file,
)
from fastrec.datasets.interactions import Interactions

# Flag columns 5..23 of ml-100k's u.item, in order (the content of its u.genre).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# Occupation codes of ml-1m's users.dat (from the release's README).
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

# Column names looked for when a generic file's columns are not named (case-insensitive).
USER_COLUMNS = ("user", "user_id", "userId", "uid", "u", "customer_id", "visitorid")
ITEM_COLUMNS = ("item", "item_id", "itemId", "movieId", "movie_id", "artistID", "product_id", "iid", "i")
RATING_COLUMNS = (
    "rating",
    "ratings",
    "score",
    "value",
    "weight",
    "count",
    "plays",
    "playcount",
    "play_count",
    "clicks",
    "views",
    "r",
)
TIMESTAMP_COLUMNS = ("timestamp", "time", "ts", "datetime", "date")
# Rows read to decide whether a text file's first line is a header.
_HEADER_SNIFF_ROWS = 200
_KNOWN_COLUMNS = frozenset(
    name.lower() for name in USER_COLUMNS + ITEM_COLUMNS + RATING_COLUMNS + TIMESTAMP_COLUMNS
)


def _read_text(path: Path) -> list[str]:
    """Lines of a small text file: UTF-8 when it decodes, else latin-1; CRLF and BOM removed."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [line for line in text.splitlines() if line.strip()]


def _pandas():
    """pandas, or an ImportError that says how to get it."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            "Reading rating files needs pandas: pip install pandas (or pip install 'fastrec[data]')."
        ) from exc
    return pandas


def _read_table(path: Path, what: str, **options: Any):
    """``pandas.read_csv`` with a one-line error naming the file and the expected format."""
    pd = _pandas()

    try:
        return pd.read_csv(path, **options)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise unreadable_file(path, what, exc) from exc


def _folder_and_file(path: Any, names: tuple[str, ...], what: str) -> tuple[Path, Path]:
    resolved = check_data_path(path, what)
    ratings = find_data_file(resolved, names, what)
    return ratings.parent, ratings


# --- MovieLens -----------------------------------------------------------------------


def load_ml100k(path: str | Path) -> Interactions:
    """MovieLens 100K: ``u.data`` ratings, ``u.item`` titles and genres, ``u.user`` demographics.

    Parameters
    ----------
    path : str or path-like
        The ``ml-100k`` folder, or its ``u.data`` file (side files are looked up
        beside it and skipped when absent).

    Returns
    -------
    Interactions
        Integer stars 1-5 and Unix-second timestamps; ``items`` has ``title``,
        ``genres`` (``|``-separated), ``release_date`` and ``imdb_url``; ``users``
        has ``age``, ``gender``, ``occupation`` and ``zip``.
    """
    what = "MovieLens 100K (folder ml-100k or its u.data)"
    folder, ratings_path = _folder_and_file(path, ("u.data",), what)
    frame = _read_table(
        ratings_path,
        "MovieLens 100K u.data (user, item, rating, timestamp separated by tabs)",
        sep="\t",
        header=None,
        names=["user", "item", "rating", "timestamp"],
    )
    check_rating_table(frame, ratings_path, "MovieLens 100K u.data", ("user", "item", "rating", "timestamp"))
    items = users = None
    if (folder / "u.item").is_file():
        genres: tuple[str, ...] = ML100K_GENRES
        if (folder / "u.genre").is_file():
            listed = [line.split("|")[0] for line in _read_text(folder / "u.genre")]
            genres = tuple(listed) if listed else genres
        records: list[tuple[Any, ...]] = []
        for line in _read_text(folder / "u.item"):
            fields = line.split("|")
            flags = fields[5 : 5 + len(genres)]
            names = [g for g, flag in zip(genres, flags) if flag.strip() == "1"]
            records.append(
                (
                    int(fields[0]),
                    fields[1],
                    "|".join(names),
                    fields[2] if len(fields) > 2 else "",
                    fields[4] if len(fields) > 4 else "",
                )
            )
        items = _table(records, ["item", "title", "genres", "release_date", "imdb_url"], "item")
    if (folder / "u.user").is_file():
        records = []
        for line in _read_text(folder / "u.user"):
            fields = line.split("|")
            records.append(
                (int(fields[0]), int(fields[1]), fields[2], fields[3], fields[4] if len(fields) > 4 else "")
            )
        users = _table(records, ["user", "age", "gender", "occupation", "zip"], "user")
    return Interactions.from_frame(
        frame, "user", "item", "rating", "timestamp", user_table=users, item_table=items, name="ml-100k"
    )


def load_ml1m(path: str | Path) -> Interactions:
    """MovieLens 1M or 10M: ``::``-separated ``ratings.dat``, ``movies.dat`` and ``users.dat``.

    Parameters
    ----------
    path : str or path-like
        The ``ml-1m`` (or ``ml-10M100K``) folder, or its ``ratings.dat``.

    Returns
    -------
    Interactions
        Named ``"ml-1m"`` when ``users.dat`` is present (1M), else ``"ml-10m"``.
        ``items`` has ``title`` and ``genres``; for 1M, ``users`` has
        ``gender``, ``age`` (the release's age-group code: the lower bound of the
        group, 1 for under 18), ``occupation`` (a name, from the code) and ``zip``.
    """
    what = "MovieLens 1M/10M (folder ml-1m or ml-10M100K, or its ratings.dat)"
    folder, ratings_path = _folder_and_file(path, ("ratings.dat",), what)
    # The C parser splits on single colons: "::" leaves an empty field between values.
    frame = _read_table(
        ratings_path,
        "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp)",
        sep=":",
        header=None,
        usecols=[0, 2, 4, 6],
        names=["user", "_a", "item", "_b", "rating", "_c", "timestamp"],
    )
    check_rating_table(frame, ratings_path, "MovieLens ratings.dat", ("user", "item", "rating", "timestamp"))
    items = users = None
    if (folder / "movies.dat").is_file():
        records: list[tuple[Any, ...]] = []
        for line in _read_text(folder / "movies.dat"):
            fields = line.split("::")
            records.append((int(fields[0]), "::".join(fields[1:-1]), fields[-1]))
        items = _table(records, ["item", "title", "genres"], "item")
    if (folder / "users.dat").is_file():
        records = []
        for line in _read_text(folder / "users.dat"):
            fields = line.split("::")
            code = int(fields[3])
            occupation = ML1M_OCCUPATIONS[code] if 0 <= code < len(ML1M_OCCUPATIONS) else str(code)
            records.append(
                (int(fields[0]), fields[1], int(fields[2]), occupation, fields[4] if len(fields) > 4 else "")
            )
        users = _table(records, ["user", "gender", "age", "occupation", "zip"], "user")
    name = "ml-1m" if users is not None else "ml-10m"
    return Interactions.from_frame(
        frame, "user", "item", "rating", "timestamp", user_table=users, item_table=items, name=name
    )


def load_ml_latest(path: str | Path) -> Interactions:
    """MovieLens in CSV form (latest-small, latest, 20M, 25M): ``ratings.csv`` and ``movies.csv``.

    Parameters
    ----------
    path : str or path-like
        The folder (e.g. ``ml-latest-small``), or its ``ratings.csv`` (header
        ``userId,movieId,rating,timestamp``).

    Returns
    -------
    Interactions
        Half-star ratings 0.5-5; ``items`` has ``title`` and ``genres`` from
        ``movies.csv``.  The name is the folder's name.
    """
    what = "MovieLens CSV (folder such as ml-latest-small, or its ratings.csv)"
    folder, ratings_path = _folder_and_file(path, ("ratings.csv",), what)
    frame = _read_table(ratings_path, "MovieLens ratings.csv (userId,movieId,rating,timestamp)")
    check_required_columns(list(frame.columns), ("userId", "movieId", "rating"), ratings_path)
    timestamp = "timestamp" if "timestamp" in frame.columns else None
    check_rating_table(frame, ratings_path, "MovieLens ratings.csv", ("userId", "movieId", "rating"))
    items = None
    if (folder / "movies.csv").is_file():
        movies = _read_table(
            folder / "movies.csv", "MovieLens movies.csv (movieId,title,genres)", encoding_errors="replace"
        )
        if {"movieId", "title"} <= set(movies.columns):
            keep = [c for c in ("title", "genres") if c in movies.columns]
            items = movies.set_index("movieId")[keep]
            items.index.name = "item"
    return Interactions.from_frame(
        frame, "userId", "movieId", "rating", timestamp, item_table=items, name=folder.name or None
    )


def load_movielens(path: str | Path) -> Interactions:
    """Any MovieLens release from a local folder or ratings file, its format detected.

    ``u.data`` is MovieLens 100K, ``ratings.dat`` MovieLens 1M or 10M,
    ``ratings.csv`` the CSV releases (latest-small, latest, 20M, 25M).

    Parameters
    ----------
    path : str or path-like
        The release's folder or its ratings file.

    Returns
    -------
    Interactions

    Examples
    --------
    >>> data = load_movielens("data/ml-100k")  # doctest: +SKIP
    >>> data
    Interactions 'ml-100k': 943 users x 1,682 items, 100,000 ratings ...
    """
    what = "a MovieLens release (folder with u.data, ratings.dat or ratings.csv)"
    resolved = check_data_path(path, what)
    ratings = find_data_file(resolved, ("u.data", "ratings.dat", "ratings.csv"), what)
    loaders = {"u.data": load_ml100k, "ratings.dat": load_ml1m, "ratings.csv": load_ml_latest}
    check_file_name(
        ratings,
        tuple(loaders),
        "a MovieLens ratings file",
        "for other files use load_interactions(path, user_col=..., item_col=...)",
    )
    return loaders[ratings.name](ratings)


# --- behaviour data: play counts -------------------------------------------------------

# The HetRec 2011 Last.fm release: play counts per (user, artist), artist names beside them.
LASTFM_PLAYS, LASTFM_ARTISTS = "user_artists.dat", "artists.dat"


def load_lastfm(path: str | Path) -> Interactions:
    """Last.fm (HetRec 2011, ``hetrec2011-lastfm-2k``): play counts per (user, artist).

    The values are counts, not ratings: how often each user played each artist
    (1 to several hundred thousand, heavy-tailed).  Fit them with the
    behaviour-data models (ALS with the counts as confidence, BPR, WARP) or
    rescale them (``log1p``) before a rating model.

    Parameters
    ----------
    path : str or path-like
        The ``hetrec2011-lastfm-2k`` folder, or its ``user_artists.dat``
        (tab-separated ``userID artistID weight`` with a header line, CRLF or
        LF).  ``artists.dat`` beside it (``id name url pictureURL``) names the
        artists and is skipped when absent.

    Returns
    -------
    Interactions
        float32 play counts (repeated pairs summed); ``items`` has ``title``
        (the artist's name, so ``item_labels`` shows it) and ``url`` when
        ``artists.dat`` is present.  Named after the folder.
    """
    what = "Last.fm HetRec 2011 (folder hetrec2011-lastfm-2k, or its user_artists.dat)"
    folder, plays_path = _folder_and_file(path, (LASTFM_PLAYS,), what)
    frame = _read_table(
        plays_path, "Last.fm user_artists.dat (userID, artistID, weight separated by tabs)", sep="\t"
    )
    check_required_columns(list(frame.columns), ("userID", "artistID", "weight"), plays_path)
    check_rating_table(frame, plays_path, "Last.fm user_artists.dat", ("userID", "artistID", "weight"))
    if len(frame) and float(frame["weight"].min()) < 0:
        raise ValueError(
            f"{str(plays_path)!r} holds negative play counts (weight {frame['weight'].min()}); "
            "counts are >= 0."
        )
    items = None
    if (folder / LASTFM_ARTISTS).is_file():
        import csv

        artists = _read_table(
            folder / LASTFM_ARTISTS,
            "Last.fm artists.dat (id, name, url, pictureURL separated by tabs)",
            sep="\t",
            quoting=csv.QUOTE_NONE,  # names hold bare quotes
            encoding="utf-8",
            encoding_errors="replace",
        )
        if {"id", "name"} <= set(artists.columns):
            keep = ["name"] + (["url"] if "url" in artists.columns else [])
            items = artists.drop_duplicates("id").set_index("id")[keep].rename(columns={"name": "title"})
            items.index = items.index.astype(np.int64)
            items.index.name = "item"
    return Interactions.from_frame(
        frame,
        "userID",
        "artistID",
        "weight",
        item_table=items,
        duplicates="sum",
        name=folder.name or "lastfm",
    )


# --- generic files -----------------------------------------------------------------------


def _sniff_separator(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.readline().decode("latin-1")
    if "::" in head:
        return "::"
    counts = {sep: head.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def load_interactions(
    path: str | Path,
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    rating_col: str | int | None = None,
    timestamp_col: str | int | None = None,
    *,
    sep: str | None = None,
    header: bool | None = None,
    implicit: bool = False,
    duplicates: str = "last",
    encoding: str | None = None,
    name: str | None = None,
) -> Interactions:
    """Interactions from a CSV/TSV or Parquet file with one row per (user, item) event.

    Parameters
    ----------
    path : str or path-like
        A ``.parquet`` / ``.pq`` file (read with pyarrow), or a delimited text file.
    user_col, item_col : str or int, optional
        Columns (names, or positions) of the raw user and item ids.  ``None``
        looks for a usual name (``user``, ``user_id``, ``userId``; ``item``,
        ``item_id``, ``movieId``, ...); in a file without header, positions 0 and 1.
    rating_col : str or int, optional
        Column of the values (ratings, or counts such as plays and clicks).
        ``None`` looks for ``rating``, ``score``, ``weight``, ``count``,
        ``plays``, ``clicks``, ...; when there is none (or ``implicit``), every
        interaction is stored as 1.0 (``duplicates="sum"`` then counts the
        rows of each pair: a log of clicks becomes click counts).
    timestamp_col : str or int, optional
        Column of the times (numbers, or dates pandas can parse); ``None`` looks
        for ``timestamp`` / ``time`` / ``date`` and goes without when absent.
    sep : str, optional
        Field separator of a text file; default: sniffed from the first line
        (``,``, tab, ``;``, ``|`` or ``::``).
    header : bool, optional
        Whether the first line of a text file names the columns.  ``None``
        (default) decides from the file: the first line is a header when one of
        its fields is text above a column of numbers (``user,item,rating`` over
        ``1,10,5``), or when it holds a usual column name or a name passed as
        ``user_col`` ... ``timestamp_col``; otherwise it is the first row of
        data (``1,10,5`` in a file of numbers).  Pass ``True`` or ``False`` to
        say so for files where this cannot tell, such as text ids under
        unusual column names.
    implicit : bool, default False
        Ignore any rating column and store 1.0 per interaction.
    duplicates : {"last", "sum", "error"}, default "last"
        Repeated (user, item) pairs: see :meth:`Interactions.from_arrays`.
    encoding : str, optional
        Text encoding; default UTF-8, with latin-1 as the fallback.
    name : str, optional
        Label of the data; default the file name.

    Returns
    -------
    Interactions
    """
    pd = _pandas()
    resolved = check_data_path(path, "an interactions file (CSV, TSV or Parquet)")
    check_is_file(resolved, "pass the interactions file itself (for a MovieLens folder use load_movielens)")
    if resolved.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(resolved)
        except ImportError as exc:
            raise ImportError(f"Reading Parquet needs pyarrow: pip install pyarrow ({exc})") from exc
        except (OSError, ValueError) as exc:
            raise unreadable_file(resolved, "Parquet", exc) from exc
    else:
        separator = sep if sep is not None else _sniff_separator(resolved)
        options: dict[str, Any] = {"sep": separator}
        if len(separator) > 1:
            options["engine"] = "python"  # multi-character separators such as "::"

        def read(**more: Any):
            try:
                return _read_table(
                    resolved,
                    f"a table separated by {separator!r}",
                    encoding=encoding or "utf-8",
                    **options,
                    **more,
                )
            except ValueError as exc:
                if encoding is not None or not isinstance(exc.__cause__, UnicodeDecodeError):
                    raise
                return _read_table(
                    resolved, f"a table separated by {separator!r}", encoding="latin-1", **options, **more
                )

        names = [c for c in (user_col, item_col, rating_col, timestamp_col) if isinstance(c, str)]
        detected = header is None
        if detected:
            try:
                head = read(header=None, dtype=str, keep_default_na=False, nrows=_HEADER_SNIFF_ROWS)
            except ValueError:  # ragged or unreadable: the full read below says what is wrong
                head = None
            header = head is None or _first_row_is_header(head, names)
        frame = read(header=0 if header else None)
        if detected and not header and names:
            first = frame.iloc[0].tolist() if len(frame) else []
            raise ValueError(
                f"{str(resolved)!r} has no header line (its first row {first} reads like "
                f"the data), so it has no column named {names[0]!r}; name the columns by "
                "position (user_col=0, item_col=1, ...) or pass header=True if the first line "
                "names them."
            )
    check_rating_table(frame, resolved, "an interactions table", ())
    columns = list(frame.columns)
    source = repr(str(resolved))
    positional = not header and resolved.suffix.lower() not in (".parquet", ".pq")
    user = pick_column(
        columns,
        user_col if user_col is not None or not positional else 0,
        USER_COLUMNS,
        "user",
        source,
        "user_col",
    )
    item = pick_column(
        columns,
        item_col if item_col is not None or not positional else 1,
        ITEM_COLUMNS,
        "item",
        source,
        "item_col",
    )
    rating = None
    if not implicit:
        default_rating = 2 if positional and rating_col is None and len(columns) > 2 else None
        rating = pick_column(
            columns,
            rating_col if rating_col is not None else default_rating,
            () if positional else RATING_COLUMNS,
            "rating",
            source,
            "rating_col",
            required=False,
        )
    default_time = 3 if positional and timestamp_col is None and len(columns) > 3 else None
    timestamp = pick_column(
        columns,
        timestamp_col if timestamp_col is not None else default_time,
        () if positional else TIMESTAMP_COLUMNS,
        "timestamp",
        source,
        "timestamp_col",
        required=False,
    )
    check_separate_columns(
        {"user_col": user, "item_col": item, "rating_col": rating, "timestamp_col": timestamp}
    )
    check_interaction_columns(frame, user, item, rating, source)
    return Interactions.from_frame(
        frame, user, item, rating, timestamp, duplicates=duplicates, name=name or resolved.name
    )


def _first_row_is_header(head: Any, names: list[str]) -> bool:
    """Whether the first row of ``head`` (the file's first lines, as text) names the columns.

    It does when it holds one of ``names`` (the column names the caller gave),
    or when one of its fields is not a number while the rows below hold only
    numbers in that column (``rating`` over ``5``, ``3``).  Otherwise a row
    that parses like the rows below it (a number over numbers) is data; only
    when no column holds numbers do the usual column names decide.
    """
    pd = _pandas()
    if len(head) == 0:
        return False
    first = head.iloc[0].astype(str).str.strip()
    if any(value in names for value in first):
        return True
    numbers_below = False
    for column in head.columns:
        below = head[column].iloc[1:].astype(str).str.strip()
        below = below[below != ""]
        if not len(below) or first[column] == "" or not pd.to_numeric(below, errors="coerce").notna().all():
            continue
        if pd.isna(pd.to_numeric(first[column], errors="coerce")):
            return True  # text above a column of numbers: a column name
        numbers_below = True
    return not numbers_below and any(value.lower() in _KNOWN_COLUMNS for value in first)


def _table(records: list[tuple], columns: list[str], index: str):
    table = _pandas().DataFrame.from_records(records, columns=columns).set_index(index)
    table.index = table.index.astype(np.int64)
    return table
