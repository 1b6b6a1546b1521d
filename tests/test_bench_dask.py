"""``fastrec bench dask``: the generated Parquet interactions, the single-machine side, the peers'
absence, and the whole harness in ``--quick`` mode (threads of one process, no peers).

The harness test runs fastrec.dask.fit for DSGD, ALS and KMeans: it needs the
distributed trainers (fastrec/dask/_dsgd.py, _als.py, _kmeans.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fastrec
from fastrec.bench import BENCHMARKS, dask_bench, suite
from fastrec.bench._common import make_size_ratings
from fastrec.bench.kmeans import common_inertia
from fastrec.bench.mf import split

pq = pytest.importorskip("pyarrow.parquet")


def options(**extra):
    found = suite.module_options(dask_bench, None)
    found.update(peers=False, backends=["cpp"], simd=[], processes=False, memory_limit="1GiB")
    found.update(extra)
    return found


def test_registered_and_sizes_planned():
    assert BENCHMARKS["dask"] == "fastrec.bench.dask_bench"
    assert dask_bench.DEFAULT_SIZES == ()  # `fastrec bench all` passes it by
    plan = dask_bench.planned_sizes
    assert plan(None, [], False, None) == ["mf-M", "mf-L", "kmeans-1M"]
    assert plan(None, ["M"], False, "/data") == ["mf-M", "kmeans-1M", "scale-100M"]
    assert plan("scale,mf", ["L"], False, None) == ["scale-100M", "mf-L"]
    assert plan(None, [], True, None) == ["mf-XS", "kmeans-XS", "scale-XS"]
    assert plan("kmeans", [], True, None) == ["kmeans-XS"]
    assert plan("kmeans", [], False, None, "10M") == ["kmeans-10M"]
    assert dask_bench.KMEANS_SHAPES["kmeans-10M"] == (10_000_000, 32, 256)
    assert set(plan(None, ["M", "L"], False, "d")) <= set(dask_bench.sizes(options()))
    for bad in ("svd", "", "mf,,x"):
        with pytest.raises(ValueError, match="--only takes some of mf, kmeans, scale"):
            dask_bench.parts_of(bad)
    with pytest.raises(ValueError, match="--workers"):
        dask_bench.contenders(options(workers="0"))


def test_contenders_per_part():
    found = dask_bench.contenders(options(workers="1,2", peers=True))
    by_part = {}
    for c in found:
        part = dask_bench.part_of(c.sizes[0])
        assert {dask_bench.part_of(s) for s in c.sizes} == {part}  # a contender runs one part
        by_part.setdefault(part, []).append((c.name, c.dispatch, c.peer))
    assert by_part["mf"] == [
        ("fastrec MF (1 machine)", "mf fastrec", False),
        ("fastrec.dask DSGD (1 worker)", "mf dask 1", False),
        ("fastrec.dask DSGD (2 workers)", "mf dask 2", False),
        ("Spark MLlib ALS", "mf spark", True),
    ]
    assert [n for n, _, _ in by_part["kmeans"]] == [
        "fastrec KMeans (1 machine)",
        "fastrec.dask KMeans (1 worker)",
        "dask-ml KMeans (1 worker)",
        "fastrec.dask KMeans (2 workers)",
        "dask-ml KMeans (2 workers)",
    ]
    assert [d for _, d, _ in by_part["scale"]] == [
        "scale MF 0",
        "scale MF 1",
        "scale MF 2",
        "scale ALS 0",
        "scale ALS 1",
        "scale ALS 2",
    ]
    assert not any(c.peer for c in dask_bench.contenders(options(peers=False)))
    assert dask_bench.layout(2, 2) == (2, 1) and dask_bench.layout(1, 2) == (1, 2)
    assert dask_bench.layout(2, 5) == (2, 2)
    with pytest.raises(RuntimeError, match="4 workers need at least 4 threads to share; give --threads 4"):
        dask_bench.layout(4, 2)


def test_generated_interactions_are_parquet_partitions(tmp_path):
    n_rows, n_users, n_items = 30_000, 300, 120
    found = dask_bench.write_interactions(tmp_path / "a", n_rows, n_users, n_items, 3, n_heldout=500, seed=3)
    assert not found["reused"] and len(found["files"]) == 3
    parts = [pq.read_table(f) for f in found["files"]]
    assert [p.num_rows for p in parts] == [10_000, 10_000, 10_000]
    table = pq.read_table(found["train"]).to_pandas()  # the folder, as Dask and Spark read it
    assert len(table) == n_rows
    assert [str(t) for t in table.dtypes] == ["int32", "int32", "float32"]
    assert list(table.columns) == ["user", "item", "rating"]
    users, items, ratings = (table[c].to_numpy() for c in ("user", "item", "rating"))
    assert users.min() >= 0 and users.max() < n_users and items.min() >= 0 and items.max() < n_items
    assert set(np.unique(ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and len(np.unique(ratings)) >= 4
    # power laws: the most active tenth of users and items hold far more than a tenth of the rows
    top_users = np.sort(np.bincount(users, minlength=n_users))[::-1][: n_users // 10].sum()
    top_items = np.sort(np.bincount(items, minlength=n_items))[::-1][: n_items // 10].sum()
    assert top_users > 0.2 * n_rows and top_items > 0.2 * n_rows
    heldout = pq.read_table(found["heldout"]).to_pandas()
    assert len(heldout) == 500 and list(heldout.columns) == ["user", "item", "rating"]
    # the same arguments reuse the folder; another folder gets the same rows
    again = dask_bench.write_interactions(tmp_path / "a", n_rows, n_users, n_items, 3, n_heldout=500, seed=3)
    assert again["reused"] and again["files"] == found["files"]
    twin = dask_bench.write_interactions(tmp_path / "b", n_rows, n_users, n_items, 3, n_heldout=500, seed=3)
    pd.testing.assert_frame_equal(pq.read_table(twin["train"]).to_pandas(), table)
    other = dask_bench.write_interactions(tmp_path / "a", n_rows, n_users, n_items, 2, n_heldout=500, seed=4)
    assert not other["reused"] and len(list((tmp_path / "a" / "train").glob("*.parquet"))) == 2
    assert not pq.read_table(other["train"]).to_pandas().equals(table)
    with pytest.raises(ValueError, match="n_partitions=5 exceeds n_rows=4"):
        dask_bench.write_interactions(tmp_path / "c", 4, 2, 2, 5)


def test_prepare_mf_writes_the_split_as_parquet(tmp_path):
    data = dask_bench.prepare("mf-XS", tmp_path, options(partitions=3))
    assert data["part"] == "mf" and data["factors"] == 100 and data["spark_iterations"] == 10
    train = pq.read_table(data["train"]).to_pandas()
    test = pq.read_table(data["test"]).to_pandas()
    assert len(list((tmp_path / "train").glob("*.parquet"))) == 3
    expected_train, expected_test = split(make_size_ratings("XS"))  # the MF benchmark's split
    coo = expected_train.tocoo()
    triples = sorted(zip(train["user"], train["item"], train["rating"]))
    assert triples == sorted(zip(coo.row, coo.col, coo.data))  # every training rating, once
    seen = np.isin(expected_test[:, 0], coo.row) & np.isin(expected_test[:, 1], coo.col)
    assert 0 < seen.sum() < len(seen)  # a few test pairs are cold starts at this size
    assert sorted(zip(test["user"], test["item"], test["rating"])) == sorted(map(tuple, expected_test[seen]))


def test_single_machine_measurements_report_what_fastrec_computes(tmp_path):
    (tmp_path / "mf").mkdir()
    data = dask_bench.prepare("mf-XS", tmp_path / "mf", options(factors=8, epochs=5))
    out = dask_bench.measure("mf fastrec", data, 1)
    frame = pq.read_table(data["train"]).to_pandas()
    test = pq.read_table(data["test"]).to_pandas()
    model = fastrec.MatrixFactorization(n_factors=8, n_epochs=5, random_state=0, n_threads=1)
    model.fit(frame, columns=("user", "item", "rating"))
    pred = np.clip(model.predict(test["user"].to_numpy(), test["item"].to_numpy()), 1, 5)
    expected = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
    assert out["quality"]["test RMSE"] == round(expected, 5) and out["seconds"] > 0
    assert out["quality"]["layout"] == "1 process x 1 thread" and out["quality"]["peak MB per worker"][0] > 10

    (tmp_path / "km").mkdir()
    data = dask_bench.prepare("kmeans-XS", tmp_path / "km", options(kmeans_iterations=6))
    out = dask_bench.measure("kmeans fastrec 0", data, 1)
    X = np.concatenate([np.load(p) for p, _ in data["chunks"]])
    assert X.shape == (4_000, 8) and len(data["chunks"]) == 4
    init = np.load(data["init"])
    km = fastrec.KMeans(16, init=init, n_init=1, max_iter=6, tol=0.0, n_threads=1).fit(X)
    assert out["quality"]["iterations"] == 6
    assert out["quality"]["final inertia"] == float(f"{common_inertia(X, km.cluster_centers_):.7e}")
    assert out["quality"]["final inertia"] < common_inertia(X, init)

    (tmp_path / "sc").mkdir()
    data = dask_bench.prepare("scale-XS", tmp_path / "sc", options(factors=8, epochs=5, data_dir=None))
    frame = pq.read_table(data["train"]).to_pandas()
    assert len(frame) == data["n_rows"] == 20_000
    out = dask_bench.measure("scale MF 0", data, 1)
    model = fastrec.MatrixFactorization(n_factors=8, n_epochs=5, random_state=0, n_threads=1)
    model.fit(frame, columns=("user", "item", "rating"))  # every row a rating, as DSGD reads them
    heldout = pq.read_table(data["heldout"]).to_pandas()
    keep = np.isin(heldout["user"], frame["user"]) & np.isin(heldout["item"], frame["item"])
    assert keep.sum() > 0.9 * len(heldout)
    pred = model.predict(heldout["user"][keep].to_numpy(), heldout["item"][keep].to_numpy())
    expected = np.sqrt(np.mean((np.clip(pred, 1, 5) - heldout["rating"][keep].to_numpy()) ** 2))
    assert out["quality"]["held-out RMSE"] == round(float(expected), 5)
    out = dask_bench.measure("scale ALS 0", data, 1)
    assert out["seconds"] > 0 and "held-out RMSE" not in out["quality"]


def test_missing_peers_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "installed", lambda module: False)
    (tmp_path / "mf").mkdir()
    data = dask_bench.prepare("mf-XS", tmp_path / "mf", options())
    with pytest.raises(RuntimeError, match=r"not installed: pip install pyspark"):
        dask_bench.measure("mf spark", data, 1)
    (tmp_path / "km").mkdir()
    data = dask_bench.prepare("kmeans-XS", tmp_path / "km", options())
    with pytest.raises(RuntimeError, match=r"not installed: pip install dask-ml"):
        dask_bench.measure("kmeans dask-ml 2", data, 2)
    # the report's row says so, and the ratios stay empty
    record = {
        "kernel": "dask",
        "size": "mf-XS",
        "contender": dask_bench.SPARK,
        "peer": True,
        "threads": 2,
        "times": [],
        "errors": ["RuntimeError: not installed: pip install pyspark (and a JDK 17)"],
        "quality": {},
    }
    mine = dict(record, contender="fastrec MF (1 machine)", peer=False, times=[1.0, 3.0, 2.0], errors=[])
    mine["quality"] = {"layout": "1 process x 2 threads", "test RMSE": 0.79978, "peak MB per worker": [300.0]}
    table = dask_bench.tables([mine, record], ["mf-XS"], {"mf-XS": "tiny"})
    assert "| Spark MLlib ALS | - | not installed: pip install pyspark (and a JDK 17) | - |" in table
    assert "| fastrec MF (1 machine) | 1 process x 2 threads | 2 | - | 1.00x | 0.7998 |" in table


def test_quick_harness_runs_every_part_on_fastrec_dask(tmp_path, monkeypatch):
    """Needs fastrec.dask.fit's trainers (DSGD, ALS, KMeans)."""
    pytest.importorskip("distributed")

    def in_process(module, contender, data, threads, timeout):  # the suite's worker, without a process
        try:
            return dask_bench.measure(contender.dispatch, data, threads)
        except Exception as exc:  # as the worker process reports it
            return {"error": f"{type(exc).__name__}: {exc}"}

    monkeypatch.setattr(suite, "_measure_in_subprocess", in_process)
    argv = [
        "--quick",
        "--no-peers",
        "--no-processes",
        "--repeats",
        "1",
        "--threads",
        "2",
        "--memory-limit",
        "2GiB",
    ]
    argv += ["--factors", "8", "--epochs", "5", "--als-iterations", "3", "--kmeans-iterations", "5"]
    assert dask_bench.main([*argv, "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "## dask: " in report
    for size in dask_bench.QUICK_SIZES:
        assert f"### {size}: " in report
    records = {(r["size"], r["contender"]): r for r in results["results"]}
    assert {s for s, _ in records} == set(dask_bench.QUICK_SIZES) and len(records) == 3 + 3 + 6
    for record in records.values():
        assert record["kernel"] == "dask" and not record["peer"]
        assert not record["errors"], (record["contender"], record["errors"])
        assert len(record["times"]) == 1 and record["times"][0] > 0
        assert record["quality"]["peak MB per worker"]
    mf = {c: r["quality"] for (s, c), r in records.items() if s == "mf-XS"}
    R = make_size_ratings("XS")
    baseline = float(np.std(R.data))  # RMSE of the global mean
    for name in ("fastrec MF (1 machine)", "fastrec.dask DSGD (1 worker)", "fastrec.dask DSGD (2 workers)"):
        assert 0.5 < mf[name]["test RMSE"] < baseline
    assert mf["fastrec.dask DSGD (2 workers)"]["layout"] == "2 workers x 1 thread"
    km = {c: r["quality"] for (s, c), r in records.items() if s == "kmeans-XS"}
    one = km["fastrec KMeans (1 machine)"]["final inertia"]
    for workers in ("1 worker", "2 workers"):  # Lloyd from the same centres: the same answer
        q = km[f"fastrec.dask KMeans ({workers})"]
        assert q["iterations"] == 5 and q["final inertia"] == pytest.approx(one, rel=1e-5)
    scale = {c: r["quality"] for (s, c), r in records.items() if s == "scale-XS"}
    for name in ("fastrec.dask DSGD (1 worker)", "fastrec.dask DSGD (2 workers)"):
        assert 0.5 < scale[name]["held-out RMSE"] < 1.5 * scale["fastrec MF (1 machine)"]["held-out RMSE"]
        assert scale[name]["client peak MB"] > 10
        assert scale[name]["memory limit MB"] == 2048  # --memory-limit is per worker
    assert "speed-up over 1 worker" in report and "time / fastrec 1 machine" in report


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "svd"], "--only takes some of mf, kmeans, scale"),
        (["--size", "Q"], "--size takes the mf part's sizes XS, M and L, got 'Q'"),
        (["--workers", "0,2"], "--workers takes positive whole numbers"),
        (["--kmeans-iterations", "1"], "--kmeans-iterations must be >= 2, got 1"),
        (["--factors", "0"], "--factors must be >= 1, got 0"),
        (["--spark-reg", "-1"], "--spark-reg must be >= 0"),
        (["--memory-limit", "lots"], "--memory-limit: "),
    ],
)
def test_usage_mistakes_exit_2_with_the_fix(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        dask_bench.main(argv, prog="fastrec bench dask")
    assert stop.value.code == 2
    assert f"fastrec bench dask: error: {message}" in capsys.readouterr().err
