"""The ``fastrec`` command line, run as ``python -m fastrec`` in a subprocess on tiny data."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fastrec import ContentKNN, ItemKNN, MatrixFactorization, UserKNN, _runtime, evaluate
from fastrec.cli import main
from fastrec.cli.demo import load_story
from fastrec.datasets import make_ratings


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The command imports the fastrec under test (a checkout's or an installed copy's).
    env = dict(os.environ)
    here = str(Path(_runtime.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Without the compiled core fastrec warns once at import; the tests read stderr line by line.
    quiet = ["-W", "ignore:fastrec's compiled core"] if _runtime._cpp is None else []
    return subprocess.run(
        [sys.executable, *quiet, "-m", "fastrec", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def write_ratings_csv(path: Path) -> pd.DataFrame:
    R = make_ratings(60, 40, 900, seed=3).tocoo()
    frame = pd.DataFrame(
        {
            "customer": [f"c{u}" for u in R.row],
            "product": R.col,
            "stars": R.data,
            "when": 1_600_000_000 + np.arange(R.nnz),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_demo_on_generated_data(tmp_path):
    done = run_cli("demo", "--size", "small", "--quiet", "--threads", "1", "--epochs", "8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    headings = re.findall(r"^== \d\. (.+) ==$", out, flags=re.M)
    assert headings == [
        "Data",
        "Item-item neighbours (cosine_topk)",
        "Matrix factorization (SGD)",
        "Rating metrics (held-out ratings)",
        "Ranking metrics (top-10 lists against the held-out ratings)",
        "User segments (KMeans on MF user factors)",
        "Top-N recommendations (seen items excluded)",
    ]
    assert "600 users x 500 items, 20,000 ratings" in out
    rmse = {
        name.strip(): float(value)
        for name, value in re.findall(
            r"^(global mean|item mean|MF \(16 factors\))\s+([\d.]+)\s+[\d.]+$", out, flags=re.M
        )
    }
    # the low-rank signal is learnt: MF beats both baselines on held-out ratings
    assert rmse["MF (16 factors)"] < rmse["item mean"] < rmse["global mean"]
    # ranking metrics: the ItemKNN row is fastrec.evaluate on the demo's own split
    ranking = {
        name: [float(v) for v in values.split()]
        for name, values in re.findall(
            r"^(MF \(16 factors\)|ItemKNN \(k=20\))\s+((?:[\d.]+\s+){6}[\d.]+)$", out, flags=re.M
        )
    }
    assert set(ranking) == {"MF (16 factors)", "ItemKNN (k=20)"}
    story = load_story(
        argparse.Namespace(
            data=None,
            size="small",
            users=None,
            items=None,
            ratings=None,
            factors=None,
            epochs=None,
            seed=0,
            test_fraction=0.2,
        )
    )
    expected = evaluate(ItemKNN(k=20), story.train, story.test, k=10)
    np.testing.assert_allclose(
        ranking["ItemKNN (k=20)"][:6],
        [expected[f"{key}@10"] for key in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")],
        atol=6e-5,
    )
    assert all(0.0 <= v <= 1.0 for v in ranking["MF (16 factors)"][:6])
    assert f"means over {expected['n_users']:,} test users" in out
    assert len(re.findall(r"^  segment \d: ", out, flags=re.M)) == 6
    assert len(re.findall(r"^      MF:      item \d+ \(", out, flags=re.M)) == 3
    assert len(re.findall(r"^      ItemKNN: item \d+ \(", out, flags=re.M)) == 3


def write_movielens_folder(tmp_path: Path) -> Path:
    """A tiny MovieLens 100K look-alike: u.data, and u.item with titles and genre flags."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    R = make_ratings(80, 30, 1200, seed=1).tocoo()
    (folder / "u.data").write_text(
        "".join(
            f"{u + 1}\t{i + 1}\t{int(r)}\t{880000000 + k}\n"
            for k, (u, i, r) in enumerate(zip(R.row, R.col, R.data))
        )
    )
    flags = np.random.default_rng(2).random((30, 19)) < 0.2
    (folder / "u.item").write_bytes(
        "".join(
            f"{i + 1}|Film n°{i + 1} (1990)|||" + "".join(f"|{int(f)}" for f in flags[i]) + "\n"
            for i in range(30)
        ).encode("latin-1")
    )
    return folder


def test_demo_on_a_movielens_folder_shows_titles(tmp_path):
    folder = write_movielens_folder(tmp_path)
    done = run_cli(
        "demo",
        "--data",
        str(folder),
        "--quiet",
        "--threads",
        "1",
        "--factors",
        "4",
        "--epochs",
        "3",
        "--segments",
        "2",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Interactions 'ml-100k': 80 users x 30 items" in done.stdout
    assert re.search(r"MF:      Film n°\d+ \(1990\) \(", done.stdout)
    assert re.search(r"ItemKNN: Film n°\d+ \(1990\) \(", done.stdout)


def test_fit_and_recommend_round_trip(tmp_path):
    frame = write_ratings_csv(tmp_path / "ratings.csv")
    fit = run_cli(
        "fit",
        "ratings.csv",
        "--user-col",
        "customer",
        "--item-col",
        "product",
        "--rating-col",
        "stars",
        "-p",
        "n_factors=6",
        "-p",
        "n_epochs=4",
        "--threads",
        "1",
        "--quiet",
        "-o",
        "model.npz",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr
    assert "trained MatrixFactorization" in fit.stdout and "saved model.npz" in fit.stdout
    rec = run_cli(
        "recommend", "model.npz", "--users", "c1,c7,unknown", "-n", "4", "-o", "recs.csv", cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    table = pd.read_csv(tmp_path / "recs.csv")
    assert list(table.columns) == ["user", "rank", "item", "score"]
    model = MatrixFactorization.load(tmp_path / "model.npz")
    assert model.n_factors == 6 and model.epochs_trained_ == 4
    items, scores = model.recommend(np.array(["c1", "c7", "unknown"]), n=4, unknown="skip")
    # an unknown user has no interactions: served by popularity, as a cold user is
    items[2], scores[2] = model.recommend("unknown", n=4, user_items=sp.csr_matrix((1, model.n_items_)))
    for row, user in enumerate(["c1", "c7", "unknown"]):
        mine = table[table.user == user].sort_values("rank")
        assert mine["rank"].tolist() == [1, 2, 3, 4]
        np.testing.assert_array_equal(mine["item"].to_numpy(), items[row])
        np.testing.assert_allclose(mine["score"].to_numpy(), scores[row], rtol=1e-6)
    seen = set(frame.loc[frame.customer == "c1", "product"])
    assert not seen & set(table.loc[table.user == "c1", "item"])
    # every user, Parquet output
    everyone = run_cli("recommend", "model.npz", "-n", "2", "-o", "all.parquet", cwd=tmp_path)
    assert everyone.returncode == 0, everyone.stderr
    assert len(pd.read_parquet(tmp_path / "all.parquet")) == 2 * frame.customer.nunique()


def write_item_features_csv(path: Path) -> pd.DataFrame:
    """Genres of the products of write_ratings_csv, and 5 products nobody rated."""
    rng = np.random.default_rng(4)
    genres = np.array(["Action", "Comedy", "Drama", "Horror", "Sci-Fi"])
    frame = pd.DataFrame(
        {
            "sku": np.arange(45),
            "title": [f"product {i}" for i in range(45)],
            "genres": [
                "|".join(rng.choice(genres, size=rng.integers(1, 4), replace=False)) for _ in range(45)
            ],
        }
    )
    frame.to_csv(path, index=False)
    return frame


RATING_COLUMNS = ("--user-col", "customer", "--item-col", "product", "--rating-col", "stars")


def check_recommendations(table: pd.DataFrame, model, users: list[str], n: int) -> None:
    """The CSV rows are the model's own recommend() (unknown users served by popularity)."""
    assert list(table.columns) == ["user", "rank", "item", "score"]
    items, scores = model.recommend(np.array(users), n=n, unknown="skip")
    for row, user in enumerate(users):
        if user not in set(model.user_ids_.tolist()):  # no interactions: popularity
            items[row], scores[row] = model.recommend(
                user, n=n, user_items=sp.csr_matrix((1, model.n_items_))
            )
        mine = table[table.user == user].sort_values("rank")
        filled = np.isfinite(scores[row])
        assert mine["rank"].tolist() == list(range(1, int(filled.sum()) + 1))
        np.testing.assert_array_equal(mine["item"].to_numpy(), items[row][filled])
        np.testing.assert_allclose(mine["score"].to_numpy(), scores[row][filled], rtol=1e-6)


@pytest.mark.parametrize("name, cls", [("itemknn", ItemKNN), ("userknn", UserKNN)])
def test_fit_and_recommend_round_trip_of_neighbour_models(tmp_path, name, cls):
    frame = write_ratings_csv(tmp_path / "ratings.csv")
    fit = run_cli(
        "fit",
        "ratings.csv",
        "--model",
        name,
        *RATING_COLUMNS,
        "-p",
        "k=15",
        "-p",
        "shrink=2.0",
        "--threads",
        "1",
        "-o",
        f"{name}.npz",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr
    assert f"trained {cls.__name__}" in fit.stdout and f"saved {name}.npz" in fit.stdout
    model = cls.load(tmp_path / f"{name}.npz")
    assert (model.k, model.shrink) == (15, 2.0)
    # the same data and parameters give the same neighbours
    again = cls(k=15, shrink=2.0).fit(
        (frame.customer.to_numpy(), frame["product"].to_numpy(), frame.stars.to_numpy())
    )
    assert (model.similarities_ != again.similarities_).nnz == 0
    users = ["c1", "c7", "nobody"]
    rec = run_cli(
        "recommend", f"{name}.npz", "--users", ",".join(users), "-n", "5", "-o", "recs.csv", cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    assert "1 of 3 users are unknown" in rec.stderr
    table = pd.read_csv(tmp_path / "recs.csv")
    check_recommendations(table, model, users, 5)
    seen = set(frame.loc[frame.customer == "c1", "product"])
    assert not seen & set(table.loc[table.user == "c1", "item"])


def test_content_model_from_a_features_file(tmp_path):
    frame = write_ratings_csv(tmp_path / "ratings.csv")
    items = write_item_features_csv(tmp_path / "items.csv")
    fit = run_cli(
        "fit",
        "ratings.csv",
        "--model",
        "content",
        *RATING_COLUMNS,
        "--features",
        "items.csv",
        "--feature-item-col",
        "sku",
        "--feature-cols",
        "genres",
        "-o",
        "content.npz",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr
    assert "features: 45 items x 5 features (genres=Action," in fit.stdout
    assert "trained ContentKNN" in fit.stdout
    model = ContentKNN.load(tmp_path / "content.npz")
    tags = items.genres.str.get_dummies(sep="|").to_numpy(dtype=np.float32)
    expected = ContentKNN(tags, item_ids=items.sku.to_numpy()).fit(
        (frame.customer.to_numpy(), frame["product"].to_numpy(), frame.stars.to_numpy())
    )
    users = ["c0", "c3", "c9"]
    rec = run_cli(
        "recommend", "content.npz", "--users", ",".join(users), "-n", "4", "-o", "recs.csv", cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    table = pd.read_csv(tmp_path / "recs.csv")
    check_recommendations(table, model, users, 4)
    check_recommendations(table, expected, users, 4)
    # the products nobody rated (40..44) can be recommended: that is what features are for
    everyone = run_cli("recommend", "content.npz", "-n", "10", cwd=tmp_path)
    assert everyone.returncode == 0, everyone.stderr
    assert set(pd.read_csv(io.StringIO(everyone.stdout)).item) & set(range(40, 45))


def test_content_model_from_movielens_genres(tmp_path, monkeypatch, capsys):
    folder = write_movielens_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(folder), "--model", "content", "-o", "content.npz"]) == 0
    assert "genres of the MovieLens item table" in capsys.readouterr().out
    model = ContentKNN.load(tmp_path / "content.npz")
    from fastrec.datasets import load_movielens

    data = load_movielens(folder)
    tags = data.items.genres.str.get_dummies(sep="|")
    expected = ContentKNN(tags.to_numpy(dtype=np.float32), item_ids=data.item_ids).fit(data)
    np.testing.assert_array_equal(model.recommend([1, 2], n=5)[0], expected.recommend([1, 2], n=5)[0])


@pytest.mark.skipif(_runtime._cpp is None, reason="benchmarks the compiled core")
def test_bench_writes_report_json_and_charts(tmp_path):
    done = run_cli(
        "bench",
        "all",
        "--size",
        "XS",
        "--no-peers",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--backends",
        "cpp",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    names = ["cosine", "mf", "kmeans", "knn", "metrics", "topn", "implicit", "roofline"]
    for name in names:
        assert f"## {name}: " in report and f"![{name}]({name}.png)" in report
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["simd"] and results["machine"]["versions"]["fastrec"]
    assert results["settings"]["benchmarks"] == names
    records = [r for r in results["results"] if r["kernel"] != "roofline"]  # own tests
    assert sorted((r["kernel"], r["contender"]) for r in records) == sorted(
        [(n, "fastrec cpp") for n in ("cosine", "mf", "kmeans", "metrics", "topn")]
        + [("knn", "fastrec ItemKNN cpp"), ("knn", "fastrec UserKNN cpp")]
        + [("implicit", f"fastrec {model} cpp") for model in ("ALS", "BPR", "WARP")]
    )
    for record in records:
        assert len(record["times"]) == 1 and record["times"][0] > 0 and not record["errors"]
    by_kernel = {r["kernel"]: r for r in records}
    assert by_kernel["cosine"]["quality"]["agree"] == 1.0  # top-k lists checked against exact
    assert by_kernel["kmeans"]["quality"]["iterations"] == 20
    assert 0.0 < by_kernel["knn"]["quality"]["precision@10"] <= 1.0
    assert by_kernel["topn"]["quality"]["precision"] == 1.0  # lists checked against exact scores
    assert by_kernel["topn"]["quality"]["seen returned"] == 0
    for kernel, rate in (("mf", "M updates/s"), ("topn", "GFLOP/s")):  # work of a run / its time
        work, seconds = by_kernel[kernel]["work"][rate], by_kernel[kernel]["times"][0]
        assert work > 0 and by_kernel[kernel]["rates"][rate] == pytest.approx(work / seconds, rel=1e-3)


@pytest.mark.skipif(_runtime._cpp is None, reason="benchmarks the compiled core")
def test_bench_knn_alone(tmp_path):
    done = run_cli(
        "bench",
        "knn",
        "--size",
        "XS",
        "--no-peers",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--backends",
        "cpp",
        "--k",
        "20",
        "--out",
        "knn-out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "knn-out" / "report.md").read_text()
    assert "## knn: neighbourhood recommenders" in report
    assert "| fastrec UserKNN cpp | 1 |" in report and "time / fastrec ItemKNN cpp" in report


@pytest.mark.skipif(_runtime._cpp is None, reason="benchmarks the compiled core")
def test_bench_topn_alone(tmp_path):
    done = run_cli(
        "bench",
        "topn",
        "--size",
        "XS",
        "--no-peers",
        "--repeats",
        "2",
        "--threads",
        "2",
        "--n",
        "5",
        "--check-sample",
        "40",
        "--out",
        "topn-out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "topn-out" / "report.md").read_text()
    assert "## topn: top-N scoring of a factor model" in report
    assert "| precision | seen returned | GFLOP/s |" in report
    records = json.loads((tmp_path / "topn-out" / "results.json").read_text())["results"]
    assert [r["contender"] for r in records] == ["fastrec cpp", "fastrec numba"]
    for record in records:
        assert record["shape"] == "300 x 400, 6,000 ratings (excluded); f=64, top-5"
        assert len(record["times"]) == 2 and not record["errors"]
        assert record["quality"]["precision"] == 1.0 and record["quality"]["seen returned"] == 0
    bad = run_cli("bench", "topn", "--size", "XS", "--n", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--n: must be a whole number >= 1" in bad.stderr


def test_info(tmp_path):
    done = run_cli("info", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("fastrec ") and "backends available" in done.stdout


def test_errors_are_one_line_with_exit_code_2_in_a_subprocess(tmp_path):
    done = run_cli("fit", "missing.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["fastrec fit: error: 'missing.csv' does not exist"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "ratings.csv", "--user-col", "nobody"], "user_col='nobody' is not a column"),
        (["fit", "ratings.csv", "-p", "n_factors"], "--param takes KEY=VALUE"),
        (["fit", "ratings.csv", "-p", "colour=3"], "MatrixFactorization has no parameter 'colour'"),
        (["fit", "ratings.csv", "--model", "svdpp"], "invalid choice: 'svdpp'"),
        (
            ["fit", "ratings.csv", "--model", "content", *RATING_COLUMNS],
            "--model content needs item features",
        ),
        (
            ["fit", "ratings.csv", "--model", "content", "--features", "no.csv", *RATING_COLUMNS],
            "--features 'no.csv' does not exist",
        ),
        (
            [
                "fit",
                "ratings.csv",
                "--model",
                "content",
                "--features",
                "ratings.csv",
                *RATING_COLUMNS,
                "--feature-item-col",
                "product",
                "--feature-cols",
                "colour",
            ],
            "--feature-cols: 'colour' is not a column",
        ),
        (
            [
                "fit",
                "ratings.csv",
                "--model",
                "content",
                "--features",
                "ratings.csv",
                *RATING_COLUMNS,
                "--feature-item-col",
                "sku",
            ],
            "--feature-item-col='sku' is not a column",
        ),
        (
            [
                "fit",
                "ratings.csv",
                "--model",
                "content",
                "--features",
                "ratings.csv",
                *RATING_COLUMNS,
                "--feature-item-col",
                "customer",
                "--feature-cols",
                "stars",
            ],
            "none of the 900 item ids of the features appears in the ratings",
        ),
        (
            ["fit", "ratings.csv", "--model", "content", "-p", "features=1"],
            "ContentKNN's features come from --features FILE",
        ),
        (
            ["fit", "ratings.csv", "--model", "itemknn", "--features", "ratings.csv"],
            "--features is for --model content, not itemknn",
        ),
        (["fit", "ratings.csv", "--feature-cols", "genres"], "describe --features FILE"),
        (
            ["fit", "ratings.csv", "--model", "itemknn", "-p", "n_factors=3"],
            "ItemKNN has no parameter 'n_factors'",
        ),
        (
            [
                "fit",
                "ratings.csv",
                "--rating-col",
                "customer",
                "--user-col",
                "customer",
                "--item-col",
                "product",
            ],
            "user_col and rating_col both name the column 'customer'",
        ),
        (["recommend", "nothing.npz"], "'nothing.npz' does not exist"),
        (["recommend", "ratings.csv"], "ratings.csv is not a fastrec model file (.npz)"),
        (["recommend", "ratings.csv", "-n", "0"], "-n must be >= 1"),
        (["recommend", "ratings.csv", "-o", "out.xlsx"], "--out must end in .csv or .parquet"),
        (["demo", "--k", "0"], "--k must be >= 1"),
        (["demo", "--size", "huge"], "invalid choice: 'huge'"),
        (["demo", "--data", "nowhere"], "'nowhere' does not exist"),
        (["bench", "nope"], "unknown benchmark 'nope'"),
        (["bench", "cosine", "--size", "Q"], "size 'Q' is not one of"),
        (["bench", "mf", "--threads", "two"], "--threads takes whole numbers"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors(tmp_path, monkeypatch, capsys, argv, message):
    write_ratings_csv(tmp_path / "ratings.csv")
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_recommend_with_model_file_users_file(tmp_path, monkeypatch, capsys):
    frame = write_ratings_csv(tmp_path / "ratings.csv")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "ratings.csv", "--quiet", "--threads", "1", "-p", "n_epochs=2", *RATING_COLUMNS]) == 0
    (tmp_path / "users.txt").write_text("c2\n\nc5\n")
    capsys.readouterr()
    assert main(["recommend", "model.npz", "--users-file", "users.txt", "-n", "3"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert table.user.tolist() == ["c2"] * 3 + ["c5"] * 3
    assert set(table.item) <= set(frame["product"])


def write_play_counts(folder: Path, names: bool = True) -> pd.DataFrame:
    """A small HetRec-like folder: heavy-tailed play counts and, optionally, artist names."""
    rng = np.random.default_rng(4)
    R = make_ratings(80, 50, 1_500, seed=11).tocoo()
    plays = np.ceil(rng.pareto(1.2, R.nnz) * 40 * R.data).astype(np.int64)  # counts, long tail
    frame = pd.DataFrame({"userID": R.row + 2, "artistID": R.col + 1, "weight": plays})
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / "user_artists.dat", sep="\t", index=False, lineterminator="\r\n")
    if names:
        pd.DataFrame(
            {
                "id": np.arange(1, 51),
                "name": [f"Band {j}" for j in range(1, 51)],
                "url": "u",
                "pictureURL": "p",
            }
        ).to_csv(folder / "artists.dat", sep="\t", index=False)
    return frame


def test_play_counts_stop_mf_with_what_to_pass(tmp_path, monkeypatch, capsys):
    frame = write_play_counts(tmp_path / "lastfm")
    assert frame.weight.max() > 1000
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "lastfm/user_artists.dat", "--quiet", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "look like play counts or clicks, not ratings" in err[0]
    assert "--transform log1p" in err[0] and "--model itemknn" in err[0]
    assert not (tmp_path / "model.npz").exists()


def test_play_counts_with_log1p_fit_mf_on_log_values(tmp_path, monkeypatch, capsys):
    frame = write_play_counts(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    assert (
        main(["fit", "lastfm", "--quiet", "--threads", "1", "--transform", "log1p", "-p", "n_epochs=5"]) == 0
    )
    out = capsys.readouterr().out
    low, high = np.log1p(frame.weight.min()), np.log1p(frame.weight.max())
    assert f"fitting on log1p(value): values now {low:.3g} to {high:.3g}" in out
    model = MatrixFactorization.load(tmp_path / "model.npz")
    # the model learnt the log values: its rating range is theirs, and it predicts near them
    np.testing.assert_allclose(model.rating_range_, (low, high), rtol=1e-6)
    pred = model.predict(frame.userID.to_numpy(), frame.artistID.to_numpy())
    assert np.sqrt(np.mean((pred - np.log1p(frame.weight)) ** 2)) < np.std(np.log1p(frame.weight))


def test_play_counts_fit_neighbours_with_a_note(tmp_path, monkeypatch, capsys):
    write_play_counts(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "lastfm/user_artists.dat", "--model", "itemknn", "--quiet"]) == 0
    assert "note: the values run from" in capsys.readouterr().err
    assert ItemKNN.load(tmp_path / "model.npz").n_items_ == 50


def test_forced_mf_on_counts_diverges_in_one_line(tmp_path):
    write_play_counts(tmp_path / "lastfm")
    done = run_cli(
        "fit",
        "lastfm",
        "--quiet",
        "--threads",
        "1",
        "--transform",
        "none",
        "-p",
        "lr=5.0",
        "-p",
        "lr_bias=5.0",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrec fit: error: SGD diverged")


def test_demo_on_play_counts_runs_what_makes_sense(tmp_path):
    write_play_counts(tmp_path / "lastfm")
    done = run_cli("demo", "--data", "lastfm", "--quiet", "--threads", "1", "--k", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr
    assert "they look like play counts or clicks, not ratings" in out
    assert "skips the parts that model rating values (3, 4, 6)" in out
    sections = re.split(r"^== \d\. .+ ==$", out, flags=re.M)
    assert [part.strip().startswith("skipped: this part models rating values") for part in sections[1:]] == [
        False,
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    # the neighbours are named by artists.dat, and the ranking rows are ItemKNN's alone
    assert re.search(r"^  Band \d+ \[\d+ interactions\]$", sections[2], flags=re.M)
    assert re.findall(r"^(MF|ItemKNN)", sections[5], flags=re.M) == ["ItemKNN"]
    assert "played most: Band" in sections[7]


def test_counts_detection():
    from fastrec.cli._data import count_like

    assert count_like(np.array([1, 2, 3, 4, 5, 5])) is None
    assert count_like(np.arange(1, 11)) is None  # a 1-10 scale
    assert count_like(np.linspace(0, 100, 50)) is None  # a 0-100 score
    assert count_like(np.array([1, 1, 2, 3, 1, 2, 60])) is not None  # 30x the median
    assert count_like(np.array([3, 250, 4000])) is not None


@pytest.mark.parametrize("threads", ["100000", "2147483648"])
def test_huge_thread_counts_are_capped(tmp_path, threads):
    write_ratings_csv(tmp_path / "ratings.csv")
    done = run_cli(
        "fit",
        "ratings.csv",
        "--quiet",
        "--model",
        "itemknn",
        "--threads",
        threads,
        *RATING_COLUMNS,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    ceiling = _runtime.max_threads()
    assert f"note: --threads {threads} is more than fastrec runs; using {ceiling}" in done.stderr


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_bad_thread_counts(tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "ratings.csv", "--threads", value])
    assert exc.value.code == 2
    assert "argument --threads: must be" in capsys.readouterr().err


def test_recommend_caps_n_at_the_number_of_items(tmp_path, monkeypatch, capsys):
    write_ratings_csv(tmp_path / "ratings.csv")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "ratings.csv", "--model", "itemknn", "--quiet", *RATING_COLUMNS]) == 0
    capsys.readouterr()
    assert main(["recommend", "model.npz", "-u", "c1", "-n", "2147483648", "--include-seen"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    model = ItemKNN.load(tmp_path / "model.npz")
    items, scores = model.recommend("c1", n=model.n_items_, exclude_seen=False)
    assert table["rank"].tolist() == list(range(1, np.isfinite(scores).sum() + 1))
    np.testing.assert_array_equal(table["item"], items[np.isfinite(scores)])


@pytest.mark.parametrize("damage", ["empty", "truncated", "junk"])
def test_recommend_on_a_damaged_model_file(tmp_path, monkeypatch, capsys, damage):
    write_ratings_csv(tmp_path / "ratings.csv")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "ratings.csv", "--model", "itemknn", "--quiet", *RATING_COLUMNS]) == 0
    data = (tmp_path / "model.npz").read_bytes()
    damaged = {"empty": b"", "truncated": data[: len(data) // 2], "junk": b"PK" + bytes(200)}
    (tmp_path / "model.npz").write_bytes(damaged[damage])
    capsys.readouterr()
    assert main(["recommend", "model.npz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "fastrec recommend: error: model.npz is not a fastrec model file (.npz)"
    )


def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    write_ratings_csv(tmp_path / "ratings.csv")
    monkeypatch.chdir(tmp_path)

    def no_memory(self, *args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(ItemKNN, "fit", no_memory)
    assert main(["fit", "ratings.csv", "--model", "itemknn", "--quiet", *RATING_COLUMNS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fastrec fit: error: not enough memory for what was asked (a size or count too "
        "large for this machine)"
    ]
