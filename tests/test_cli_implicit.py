"""Behaviour data on the command line: the Last.fm loader, ``--model als|bpr|warp`` and the demo.

fastrec's ALS, BPR and WARP are found on the package when a command needs them;
these tests put stand-ins there (or take them away) to check both what the
commands do with the models and what they say without them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fastrec
from fastrec import MatrixFactorization, evaluate
from fastrec.cli import main
from fastrec.cli.demo import load_story
from fastrec.cli.models import MODELS, available, model_class
from fastrec.datasets import load_lastfm, make_ratings

BEHAVIOUR = ("ALS", "BPR", "WARP")


def write_lastfm(folder: Path, names: bool = True, small_counts: bool = False) -> pd.DataFrame:
    """A HetRec-like folder: tab-separated CRLF play counts and, optionally, artists.dat."""
    rng = np.random.default_rng(7)
    R = make_ratings(70, 40, 1_200, seed=5).tocoo()
    if small_counts:
        plays = R.data.astype(np.int64)  # 1..5: counts that look like stars
    else:
        plays = np.ceil(rng.pareto(1.2, R.nnz) * 30 * R.data).astype(np.int64) + 1
    frame = pd.DataFrame({"userID": R.row + 2, "artistID": R.col + 1, "weight": plays})
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / "user_artists.dat", sep="\t", index=False, lineterminator="\r\n")
    if names:
        artists = [f'Band "{j}" ä' if j % 7 == 0 else f"Band {j}" for j in range(1, 41)]
        lines = ["id\tname\turl\tpictureURL"] + [
            f"{j}\t{name}\thttp://www.last.fm/music/{j}\thttp://img/{j}.jpg"
            for j, name in enumerate(artists, 1)
        ]
        (folder / "artists.dat").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return frame


class StandIn:
    """fastrec.ALS-like factory: MatrixFactorization behind the keywords the commands pass."""

    def __call__(self, n_factors=64, random_state=None, **rest):
        return MatrixFactorization(n_factors=n_factors, n_epochs=3, random_state=random_state, n_threads=1)


def test_load_lastfm_reads_counts_and_artist_names(tmp_path):
    frame = write_lastfm(tmp_path / "hetrec2011-lastfm-2k")
    data = load_lastfm(tmp_path / "hetrec2011-lastfm-2k")
    users, items, plays = data.to_triples()
    got = {(u, i): p for u, i, p in zip(users.tolist(), items.tolist(), plays.tolist())}
    assert got == {(u, i): float(p) for u, i, p in frame.itertuples(index=False)}
    assert data.name == "hetrec2011-lastfm-2k" and data.matrix.dtype == np.float32
    assert data.item_labels[data.item_index([7])[0]] == 'Band "7" ä'
    assert data.item_labels[data.item_index([3])[0]] == "Band 3"
    assert data.items["url"].iloc[0] == f"http://www.last.fm/music/{data.item_ids[0]}"
    same = load_lastfm(tmp_path / "hetrec2011-lastfm-2k" / "user_artists.dat")
    assert (same.matrix != data.matrix).nnz == 0
    np.testing.assert_array_equal(same.item_ids, data.item_ids)


def test_load_lastfm_sums_repeated_pairs_and_goes_without_names(tmp_path):
    folder = tmp_path / "plays"
    folder.mkdir()
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n1\t9\t5\n1\t9\t7\n2\t8\t1\n")
    data = load_lastfm(folder)
    assert data.items is None and data.matrix.toarray().tolist() == [[0.0, 12.0], [1.0, 0.0]]
    assert data.item_labels.tolist() == ["8", "9"]


def test_load_lastfm_refuses_what_is_not_play_counts(tmp_path):
    folder = tmp_path / "plays"
    folder.mkdir()
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n1\t9\t-5\n")
    with pytest.raises(ValueError, match="negative play counts"):
        load_lastfm(folder)
    (folder / "user_artists.dat").write_text("user\tartist\tplays\n1\t9\t5\n")
    with pytest.raises(ValueError, match="userID"):
        load_lastfm(folder)
    with pytest.raises((ValueError, FileNotFoundError), match="user_artists.dat"):
        load_lastfm(tmp_path / "nowhere")


def test_behaviour_models_are_registered_and_found_lazily(monkeypatch):
    for name, attribute in zip(("als", "bpr", "warp"), BEHAVIOUR):
        assert MODELS[name] == f"fastrec:{attribute}"
        monkeypatch.delattr(fastrec, attribute, raising=False)
        assert not available(name)
        with pytest.raises(Exception, match=f"model {name!r} is not available in this installation"):
            model_class(name)
        monkeypatch.setattr(fastrec, attribute, MatrixFactorization, raising=False)
        assert available(name) and model_class(name) is MatrixFactorization


def test_fit_behaviour_model_missing_says_not_available(tmp_path, monkeypatch, capsys):
    write_lastfm(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    for name, attribute in zip(("als", "bpr", "warp"), BEHAVIOUR):
        monkeypatch.delattr(fastrec, attribute, raising=False)
        assert main(["fit", "lastfm", "--model", name, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"model {name!r} is not available in this installation" in err[0]
    assert not (tmp_path / "model.npz").exists()


def test_fit_behaviour_model_trains_saves_and_recommends(tmp_path, monkeypatch, capsys):
    write_lastfm(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fastrec, "BPR", MatrixFactorization, raising=False)  # stands in for BPR
    argv = ["fit", "lastfm", "--model", "bpr", "--implicit", "--quiet", "--threads", "1", "-p", "n_epochs=2"]
    assert main(argv) == 0
    assert "trained MatrixFactorization" in capsys.readouterr().out
    model = MatrixFactorization.load(tmp_path / "model.npz")
    assert model.n_epochs == 2 and model.n_items_ == 40
    assert main(["recommend", "model.npz", "--users", "2,3", "-n", "3"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert table.user.tolist() == [2] * 3 + [3] * 3


def test_mf_on_play_counts_names_the_behaviour_models(tmp_path, monkeypatch, capsys):
    write_lastfm(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    for attribute in BEHAVIOUR:
        monkeypatch.setattr(fastrec, attribute, StandIn(), raising=False)
    assert main(["fit", "lastfm", "--quiet", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "they look like play counts or clicks, not ratings" in err[0]
    assert "use --model als, bpr or warp for plays and clicks" in err[0] and not err[0].endswith("…")
    assert "--transform log1p" in err[0] and "--model itemknn" in err[0]
    monkeypatch.delattr(fastrec, "WARP")
    assert main(["fit", "lastfm", "--model", "mf", "--quiet"]) == 2
    assert "use --model als or bpr for plays" in capsys.readouterr().err
    for attribute in BEHAVIOUR:
        monkeypatch.delattr(fastrec, attribute, raising=False)
    assert main(["fit", "lastfm", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the models for plays and clicks (als, bpr, warp) are not available in this installation" in err
    assert not err.strip().endswith("…")
    assert not (tmp_path / "model.npz").exists()


def test_mf_on_small_lastfm_counts_is_stopped_by_the_loader_s_word(tmp_path, monkeypatch, capsys):
    frame = write_lastfm(tmp_path / "lastfm", small_counts=True)
    assert frame.weight.max() <= 5  # values alone would pass for stars
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "lastfm", "--quiet"]) == 2
    assert "the file holds Last.fm play counts, not ratings" in capsys.readouterr().err
    # the same values in a generic file are ratings as far as anyone can tell
    frame.rename(columns={"userID": "user", "artistID": "item", "weight": "rating"}).to_csv(
        tmp_path / "stars.csv", index=False
    )
    assert main(["fit", "stars.csv", "--quiet", "--threads", "1", "-p", "n_epochs=2"]) == 0
    assert (tmp_path / "model.npz").exists()


def test_recommend_finds_saved_models_without_the_behaviour_models(tmp_path, monkeypatch, capsys):
    write_lastfm(tmp_path / "lastfm")
    monkeypatch.chdir(tmp_path)
    for attribute in BEHAVIOUR:
        monkeypatch.delattr(fastrec, attribute, raising=False)
    assert main(["fit", "lastfm", "--model", "itemknn", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["recommend", "model.npz", "--users", "2", "-n", "2"]) == 0  # the registry skips als..warp
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def demo_args(folder: Path) -> argparse.Namespace:
    return argparse.Namespace(
        data=str(folder),
        size="small",
        users=None,
        items=None,
        ratings=None,
        factors=None,
        epochs=None,
        seed=0,
        test_fraction=0.2,
    )


def test_demo_on_lastfm_ranks_with_als_where_it_exists(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "lastfm"
    write_lastfm(folder)
    monkeypatch.setattr(fastrec, "ALS", StandIn(), raising=False)
    assert main(["demo", "--data", str(folder), "--quiet", "--k", "5", "--size", "small"]) == 0
    out = capsys.readouterr().out
    sections = re.split(r"^== \d\. .+ ==$", out, flags=re.M)
    assert re.search(r"^  Band \d+ \[\d+ interactions\]$", sections[2], flags=re.M)  # artist names
    row = re.search(r"^ALS \(16 factors\)\s+((?:[\d.]+\s+){6}[\d.]+)$", sections[5], flags=re.M)
    assert row is not None
    story = load_story(demo_args(folder))
    expected = evaluate(StandIn()(n_factors=16, random_state=0), story.train, story.test, k=10)
    np.testing.assert_allclose(
        [float(v) for v in row.group(1).split()][:6],
        [expected[f"{key}@10"] for key in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")],
        atol=6e-5,
    )
    assert len(re.findall(r"^      ALS:     Band", sections[7], flags=re.M)) == 3
    assert "Models for counts: fastrec fit DATA --model als (or bpr, warp)" in sections[3]


def test_demo_on_lastfm_without_als_says_so(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "lastfm"
    write_lastfm(folder)
    monkeypatch.delattr(fastrec, "ALS", raising=False)
    assert main(["demo", "--data", str(folder), "--quiet", "--k", "5", "--size", "small"]) == 0
    sections = re.split(r"^== \d\. .+ ==$", capsys.readouterr().out, flags=re.M)
    assert "  ALS (plays as confidence): not available in this installation" in sections[5]
    assert re.findall(r"^(ALS|ItemKNN)", sections[5], flags=re.M) == ["ItemKNN"]
    assert "ALS:" not in sections[7]


def test_click_logs_become_counts(tmp_path, monkeypatch, capsys):
    from fastrec.cli import _data, build_parser

    rng = np.random.default_rng(3)
    pairs = rng.integers(0, 6, size=(400, 2))
    pairs[:150] = [1, 2]  # one pair clicked 150 times: counts, not stars
    log = pd.DataFrame({"visitor": pairs[:, 0], "product_id": pairs[:, 1], "ts": np.arange(400)})
    log.to_csv(tmp_path / "clicks.csv", index=False)
    args = build_parser().parse_args(
        ["fit", str(tmp_path / "clicks.csv"), "--user-col", "visitor", "--implicit", "--duplicates", "sum"]
        + ["--model", "itemknn"]
    )
    data = _data.load(tmp_path / "clicks.csv", args)
    expected = log.groupby(["visitor", "product_id"]).size()
    users, items, clicks = data.to_triples()
    assert dict(zip(zip(users.tolist(), items.tolist()), clicks.tolist())) == {
        k: float(v) for k, v in expected.items()
    }
    args.duplicates = "last"  # the default: one per pair
    assert np.all(_data.load(tmp_path / "clicks.csv", args).matrix.data == 1.0)
    monkeypatch.chdir(tmp_path)
    for attribute in BEHAVIOUR:
        monkeypatch.setattr(fastrec, attribute, StandIn(), raising=False)
    argv = ["fit", "clicks.csv", "--user-col", "visitor", "--implicit", "--duplicates", "sum", "--quiet"]
    assert main(argv) == 2  # summed, the clicks are counts again: mf stops
    assert "use --model als, bpr or warp for plays and clicks" in capsys.readouterr().err
    assert main([*argv[:-3], "--quiet"]) == 0  # one per pair: nothing to stop
    assert not main([*argv, "--model", "itemknn"])


def test_count_columns_are_found_by_name(tmp_path):
    from fastrec.datasets import load_interactions

    for column in ("plays", "clicks", "playcount"):
        path = tmp_path / f"{column}.csv"
        path.write_text(f"user,item,{column}\n1,10,250\n1,11,3\n2,10,1\n")
        data = load_interactions(path)
        assert sorted(data.matrix.data.tolist()) == [1.0, 3.0, 250.0]
