"""The implicit benchmark and its accuracy run: data, work model, contenders, measurements, report.

fastrec's ALS, BPR and WARP are reached by name on the package, so these tests put
stand-ins there (MatrixFactorization behind the same constructor keywords) and check
what the benchmark measures against the same stand-in fitted here; a model missing
from the package must be reported as not available.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec.bench import BENCHMARKS, implicit, implicit_accuracy, suite
from fastrec.bench._common import make_size_ratings
from fastrec.datasets import make_ratings
from fastrec.metrics import ranking_metrics

COMPILED = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]
INSTALLED_PEERS = [p for p, package in implicit.PEER_PACKAGE.items() if suite.installed(package)]


class StandIn:
    """A factory with the constructor keywords of fastrec's ALS / BPR / WARP, recording them."""

    def __init__(self):
        self.calls = []

    def __call__(self, n_factors=64, random_state=None, n_threads=None, backend="auto", **rest):
        self.calls.append(dict(n_factors=n_factors, random_state=random_state, backend=backend, **rest))
        return make_stand_in(n_factors, rest, random_state, n_threads, backend)


def make_stand_in(n_factors, rest, random_state, n_threads, backend="auto"):
    epochs = rest.get("n_iterations", rest.get("n_epochs", 3))
    return fastrec.MatrixFactorization(
        n_factors=n_factors,
        n_epochs=epochs,
        reg=rest.get("reg", 0.02),
        random_state=random_state,
        n_threads=n_threads,
        backend=backend,
    )


@pytest.fixture
def stand_ins(monkeypatch):
    found = {}
    for model in implicit.MODELS:
        found[model] = StandIn()
        monkeypatch.setattr(fastrec, model, found[model], raising=False)
    return found


def options(**extra):
    found = suite.module_options(implicit, None)
    found.update(peers=False, backends=list(COMPILED), simd=[])
    found.update(extra)
    return found


def test_registered_and_sized():
    assert BENCHMARKS["implicit"] == "fastrec.bench.implicit"
    assert "implicit" in suite.registered()
    assert set(implicit.DEFAULT_SIZES) <= set(implicit.SIZES) == set(implicit.VALUES)


def test_interactions_keep_the_rating_pattern_as_counts_or_ones():
    R = make_size_ratings("XS")
    counts = implicit.make_interactions("XS", "counts")
    binary = implicit.make_interactions("XS", "binary")
    for X in (counts, binary, implicit.make_interactions("XS")):
        assert X.dtype == np.float32 and X.shape == R.shape
        np.testing.assert_array_equal(X.indptr, R.indptr)
        np.testing.assert_array_equal(X.indices, R.indices)
    assert np.all(binary.data == 1.0)
    np.testing.assert_array_equal(implicit.make_interactions("XS").data, counts.data)  # auto: counts on XS
    assert np.all(counts.data >= 1) and np.all(counts.data == np.floor(counts.data))
    assert counts.data.max() > 50 * np.median(counts.data)  # a heavy tail
    # higher-rated pairs were played more
    assert counts.data[R.data == 5].mean() > 4 * counts.data[R.data == 1].mean()
    np.testing.assert_array_equal(implicit.make_interactions("XS", "counts").data, counts.data)  # seeded
    with pytest.raises(ValueError, match="values='ratings'"):
        implicit.make_interactions("XS", "ratings")


def test_confidence_values():
    x = np.array([0.0, 1.0, 9.0], dtype=np.float32)
    np.testing.assert_allclose(implicit.confidence_values(x, 2.0, "linear"), [1.0, 3.0, 19.0])
    np.testing.assert_allclose(implicit.confidence_values(x, 2.0, "log"), 1.0 + 2.0 * np.log1p(x), rtol=1e-6)


def test_als_flops_by_hand():
    # k=2, s=1, 2 users, 3 items, 4 interactions
    users = 2 * 2 * 3 + 2 * 2 * 4 + 2 * (2 * 4 * 2 + 4 * 2 * 4) + 10 * 2 * 1 * 2  # 164
    items = 2 * 2 * 2 + 2 * 2 * 4 + 2 * (2 * 4 * 3 + 4 * 2 * 4) + 10 * 2 * 1 * 3  # 196
    assert implicit.als_flops(2, 3, 4, 2, 1) == users + items == 360
    # the Gram and product terms grow with k^2, the per-interaction ones with k
    assert implicit.als_flops(0, 0, 0, 8, 3) == 0


def test_contenders():
    opts = options()
    names = [c.name for c in implicit.contenders(opts)]
    assert names == [f"fastrec {m} {b}" for m in implicit.MODELS for b in COMPILED]
    assert all(not c.peer and c.dispatch == f"k=64 {c.name}" for c in implicit.contenders(opts))
    opts = options(factors="32,128", models="bpr")
    assert [(c.name, c.dispatch) for c in implicit.contenders(opts)] == [
        (f"fastrec BPR {b} k={k}", f"k={k} fastrec BPR {b}") for k in (32, 128) for b in COMPILED
    ]
    opts = options(peers=True, models="als,warp")
    found = {c.name: c for c in implicit.contenders(opts)}
    for peer in (implicit.IMPLICIT_ALS, implicit.LIGHTFM_WARP):
        assert (peer in found) == (peer in INSTALLED_PEERS)
    assert implicit.IMPLICIT_BPR not in found and implicit.LIGHTFM_BPR not in found
    assert found[implicit.SGEMM].dispatch == "sgemm" and found[implicit.SGEMM].blas
    assert implicit.SGEMM not in [c.name for c in implicit.contenders(options(peers=True, gemm_size=0))]
    assert implicit.SGEMM not in [c.name for c in implicit.contenders(options(peers=True, models="bpr"))]
    for bad in ({"factors": "0"}, {"factors": "many"}, {"models": "svd"}, {"models": ""}):
        with pytest.raises(ValueError, match="--factors|--models"):
            implicit.contenders(options(**bad))
    expanded = suite.simd_contenders(implicit.contenders(options(peers=True, backends=["cpp"])), ["avx2"])
    assert {implicit.family(c.name) for c in expanded} == {*implicit.MODELS, "SGEMM"}
    assert "fastrec ALS cpp [avx2]" in [c.name for c in expanded]
    assert [implicit.family(n) for n in ("fastrec ALS cpp k=8", "LightFM BPR", "LightFM WARP", "SGEMM")] == [
        "ALS",
        "BPR",
        "WARP",
        "SGEMM",
    ]


def small(tmp_path, **extra):
    opts = options(als_iterations=3, bpr_epochs=2, warp_epochs=2, gemm_size=64, **extra)
    return implicit.prepare("XS", tmp_path, opts)


def test_prepare_splits_the_interactions(tmp_path):
    data = small(tmp_path)
    train, test = sp.load_npz(data["train"]).tocsr(), sp.load_npz(data["test"]).tocsr()
    X = implicit.make_interactions("XS")
    assert train.shape == test.shape == X.shape and train.nnz + test.nnz == X.nnz
    assert train.multiply(test).nnz == 0 and abs((train + test) - X).max() == 0
    assert test.nnz == round(0.2 * X.nnz)
    assert data["factors"] == [64] and data["als_iterations"] == 3 and data["confidence"] == "log"
    assert "6,000 interactions (counts 1 to" in data["shape"]


def test_measure_fits_fastrec_models_with_the_settings(tmp_path, stand_ins):
    data = small(tmp_path, values="binary")  # the stand-in is a rating model: no counts for it
    train, test = sp.load_npz(data["train"]).tocsr(), sp.load_npz(data["test"]).tocsr()
    for model in implicit.MODELS:
        for backend in COMPILED:
            stand_ins[model].calls.clear()
            out = implicit.measure(f"k=6 fastrec {model} {backend}", data, 1)
            warm_up, timed = stand_ins[model].calls
            assert warm_up["n_factors"] == 8 and timed["n_factors"] == 6
            assert timed["backend"] == backend and timed["random_state"] == 0
            if model == "ALS":
                assert {k: timed[k] for k in ("n_iterations", "reg", "alpha", "confidence", "cg_steps")} == {
                    "n_iterations": 3,
                    "reg": 0.01,
                    "alpha": 1.0,
                    "confidence": "log",
                    "cg_steps": 3,
                }
                assert out["work"] == {"GFLOP/s": implicit.als_flops(*train.shape, train.nnz, 6, 3) / 1e9}
            else:
                epochs = 2
                assert timed["n_epochs"] == epochs and timed["lr"] == 0.05
                assert timed["reg"] == (0.01 if model == "BPR" else 0.0)
                assert (model == "WARP") == ("max_sampled" in timed)
                assert out["work"] == {"M samples/s": train.nnz / 1e6}
            expected_model = make_stand_in(6, timed, 0, 1, backend).fit(train)
            recs = expected_model.recommend(np.arange(train.shape[0]), n=10)[0]
            expected = ranking_metrics(recs, test, 10)
            assert out["quality"] == {
                "precision@10": round(expected["precision"], 4),
                "ndcg@10": round(expected["ndcg"], 4),
            }
            assert out["seconds"] > 0 and out["cpu_seconds"] >= 0


def test_a_missing_model_is_not_available(tmp_path, monkeypatch):
    data = small(tmp_path)
    for model in implicit.MODELS:
        monkeypatch.delattr(fastrec, model, raising=False)
        with pytest.raises(RuntimeError, match=f"fastrec.{model} is not available in this installation"):
            implicit.measure(f"k=4 fastrec {model} {COMPILED[0]}", data, 1)
    with pytest.raises(ValueError, match="k=FACTORS"):
        implicit.measure("fastrec ALS cpp", data, 1)


def test_installed_peers_are_scored_on_their_own_factors(tmp_path):
    data = small(tmp_path)
    train = sp.load_npz(data["train"]).tocsr()
    for peer in INSTALLED_PEERS:  # implicit and LightFM are optional (the bench extra)
        out = implicit.measure(f"k=4 {peer}", data, 1)
        assert 0.0 <= out["quality"]["precision@10"] <= 1.0 and out["seconds"] > 0
        assert set(out["work"]) == {"GFLOP/s" if implicit.family(peer) == "ALS" else "M samples/s"}
    U = np.random.default_rng(0).normal(size=(train.shape[0], 3))
    V = np.random.default_rng(1).normal(size=(train.shape[1], 3))
    recs = implicit._top_n(U, V, train, 1)
    scores = U @ V.T
    scores[train.nonzero()] = -np.inf
    np.testing.assert_array_equal(recs, np.argsort(-scores, axis=1, kind="stable")[:, :10])


def test_sgemm_ceiling(tmp_path):
    out = implicit.measure("sgemm", small(tmp_path), 1)
    assert out["work"] == {"GFLOP/s": 2.0 * 64**3 / 1e9} and out["seconds"] > 0


def record(name, times, work=None, size="M", threads=2, peer=True):
    return {
        "kernel": "implicit",
        "size": size,
        "shape": "",
        "contender": name,
        "peer": peer,
        "threads": threads,
        "times": times,
        "cpu_times": times,
        "quality": {} if name.startswith("SGEMM") else {"precision@10": 0.1},
        "work": work or {},
        "errors": [] if times else ["RuntimeError: fastrec.WARP is not available in this installation"],
        "simd": None,
        "openblas_coretype": None,
    }


def test_tables_compare_each_model_with_its_own_fastrec_and_als_with_sgemm(tmp_path):
    records = [
        record("fastrec ALS cpp", [2.0, 2.0], {"GFLOP/s": 10.0}, peer=False),
        record("implicit ALS (CG)", [4.0], {"GFLOP/s": 10.0}),
        record("fastrec BPR cpp", [1.0], {"M samples/s": 8.0}, peer=False),
        record("implicit BPR", [3.0], {"M samples/s": 8.0}),
        record("fastrec WARP cpp", [], peer=False),
        record("SGEMM (numpy)", [0.5], {"GFLOP/s": 50.0}),
    ]
    text = implicit.tables(records, ["M"], {"M": "medium"})
    assert (
        text.index("**ALS**") < text.index("**BPR**") < text.index("**WARP**") < text.index("SGEMM ceiling")
    )
    assert "| implicit ALS (CG) | 2 | 4 | 4 | 4 | 2.00x |" in text  # against fastrec ALS cpp
    assert "| implicit BPR | 2 | 3 | 3 | 3 | 3.00x |" in text  # against fastrec BPR cpp, not ALS
    assert "| fastrec WARP cpp | 2 | failed |" in text and "not available in this installation" in text
    assert "| M | 2 | SGEMM (numpy) | 100 | ceiling |" in text
    assert "| M | 2 | fastrec ALS cpp | 5 | 5.0% |" in text
    assert "| M | 2 | implicit ALS (CG) | 2.5 | 2.5% |" in text
    rows = implicit.roofline_rows(records[:2])  # no ceiling measured: no fraction
    assert [row[-1] for row in rows] == ["-", "-"]
    path = implicit.chart(records, tmp_path / "implicit.png")
    assert path.stat().st_size > 0


# --- the accuracy run ---


def positives(seed=0):
    R = make_ratings(120, 90, 3_000, seed=seed)
    R.data = (R.data >= 3).astype(np.float32)
    R.eliminate_zeros()
    return sp.csr_matrix(R)


def test_find_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FASTREC_DATA", raising=False)
    (tmp_path / "data" / "hetrec2011-lastfm-2k").mkdir(parents=True)
    (tmp_path / "data" / "hetrec2011-lastfm-2k" / "user_artists.dat").write_text("userID\tartistID\tweight\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "u.data").write_text("1\t1\t5\t1\n")
    found = implicit_accuracy.find_dataset("lastfm", tmp_path / "data")
    assert found == tmp_path / "data" / "hetrec2011-lastfm-2k"
    assert implicit_accuracy.find_dataset("lastfm", found) == found  # the folder itself
    assert implicit_accuracy.find_dataset("ml-100k", tmp_path / "mine") == tmp_path / "mine"
    assert implicit_accuracy.find_dataset("ml-100k", tmp_path / "data") is None
    monkeypatch.setenv("FASTREC_DATA", str(tmp_path / "data"))
    assert implicit_accuracy.find_dataset("lastfm") == found


def test_positives_of_each_dataset(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    lines = ["1\t10\t5\t1", "1\t11\t3\t2", "2\t10\t4\t3", "2\t12\t1\t4"]
    (tmp_path / "ml-100k" / "u.data").write_text("\n".join(lines) + "\n")
    X, text = implicit_accuracy.load_positives("ml-100k", tmp_path / "ml-100k")
    assert X.toarray().tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]] and X.nnz == 2
    assert "2 positives (ratings >= 4 as positives)" in text
    (tmp_path / "lastfm").mkdir()
    (tmp_path / "lastfm" / "user_artists.dat").write_text(
        "userID\tartistID\tweight\r\n2\t5\t300\r\n3\t5\t7\r\n"
    )
    X, text = implicit_accuracy.load_positives("lastfm", tmp_path / "lastfm")
    assert X.toarray().ravel().tolist() == [300.0, 7.0] and "play counts" in text


def test_evaluate_dataset_defaults_then_the_best_of_the_grid(monkeypatch, stand_ins):
    monkeypatch.delattr(fastrec, "WARP")
    monkeypatch.setitem(implicit_accuracy.GRIDS, "fastrec ALS", {"reg": [0.5, 0.001]})
    X = positives()
    rows = implicit_accuracy.evaluate_dataset(
        X, ["fastrec ALS", "fastrec WARP"], factors=4, threads=1, seed=3, leave_out=2
    )
    assert rows[2] == ["fastrec WARP", "not available in this installation", *["-"] * 6]

    train, test = implicit_accuracy.split(X, 2, 3)
    assert test.nnz == 2 * int(np.sum(np.diff(X.indptr) > 2))

    def expected(fit_on, params, score_on):
        model = make_stand_in(4, params, 3, 1).fit(fit_on)
        found = ranking_metrics(model.recommend(np.arange(X.shape[0]), n=10)[0], score_on, 10)
        return found

    def cells(found, sd="0.0000"):  # precision, recall, ndcg, its sd, map
        return [*[f"{found[m]:.4f}" for m in ("precision", "recall", "ndcg")], sd, f"{found['map']:.4f}"]

    defaults = expected(train, {}, test)
    assert rows[0][:2] == ["fastrec ALS", "defaults"]
    assert rows[0][2:7] == cells(defaults)
    inner, valid = implicit_accuracy.split(train, 2, 4)
    by_setting = {reg: expected(inner, {"reg": reg}, valid)["ndcg"] for reg in (0.5, 0.001)}
    best = max(by_setting, key=lambda reg: (by_setting[reg], reg == 0.5))  # ties keep the first
    assert by_setting[0.5] != by_setting[0.001]
    tuned = expected(train, {"reg": best}, test)
    assert [row[:2] for row in rows] == [
        ["fastrec ALS", "defaults"],
        ["fastrec ALS", f"tuned: reg={best:g}"],
        ["fastrec WARP", "not available in this installation"],
    ]
    assert rows[1][2:7] == cells(tuned)
    # repeats: means over model seeds 3, 4 and 5 of the same split, with the sd of NDCG
    rows = implicit_accuracy.evaluate_dataset(
        X, ["fastrec ALS"], factors=4, threads=1, seed=3, leave_out=2, search=False, repeats=3
    )
    fits = [
        ranking_metrics(
            make_stand_in(4, {}, s, 1).fit(train).recommend(np.arange(X.shape[0]), n=10)[0], test, 10
        )
        for s in (3, 4, 5)
    ]
    mean = {m: np.mean([f[m] for f in fits]) for m in ("precision", "recall", "ndcg", "map")}
    assert len({f["ndcg"] for f in fits}) > 1  # the seeds give different fits
    assert rows[0][2:7] == cells(mean, f"{np.std([f['ndcg'] for f in fits], ddof=1):.4f}")
    assert implicit_accuracy.evaluate_dataset(X, ["fastrec ALS"], factors=4, threads=1, search=False)[0][
        1
    ] == ("defaults")
    assert implicit_accuracy.settings({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_accuracy_command(tmp_path, capsys, stand_ins):
    R = positives(1).tocoo()
    stars = np.where(R.data > 0, 5, 1)
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(
        "".join(
            f"{u + 1}\t{i + 1}\t{s}\t{880000000 + n}\n"
            for n, (u, i, s) in enumerate(zip(R.row, R.col, stars))
        )
    )
    argv = ["--accuracy", "--data", str(tmp_path), "--datasets", "ml-100k", "--no-peers", "--threads", "1"]
    assert implicit.main([*argv, "--factors", "4", "--leave-out", "2", "--no-search", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^## ml-100k: \d+ users x \d+ items, [\d,]+ positives \(ratings >= 4", out, flags=re.M)
    rows = re.findall(r"^\| (fastrec \w+) \| (\w+) \|", out, flags=re.M)
    assert rows == [("fastrec ALS", "defaults"), ("fastrec BPR", "defaults"), ("fastrec WARP", "defaults")]
    assert implicit.main(["--accuracy", "--data", str(tmp_path / "nowhere")]) == 2
    assert "none of lastfm, ml-100k, ml-latest-small found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        implicit.main(["--accuracy", "--datasets", "netflix"])
    assert exit_.value.code == 2


def test_the_driver_runs_each_contender_in_its_own_process():
    # the worker imports fastrec afresh: whether ALS is there decides the outcome, both are checked
    backend = COMPILED[0]
    opts = options(models="als", backends=[backend], als_iterations=1, factors="4")
    records = suite.run("implicit", ["XS"], [1], 1, opts, timeout=300, log=io.StringIO())
    assert [r["contender"] for r in records] == [f"fastrec ALS {backend}"]
    (found,) = records
    if getattr(fastrec, "ALS", None) is None:
        assert found["times"] == [] and len(found["errors"]) == 1
        assert "fastrec.ALS is not available in this installation" in found["errors"][0]
    else:
        assert found["errors"] == [] and len(found["times"]) == 1
        assert set(found["quality"]) == {"precision@10", "ndcg@10"} and set(found["work"]) == {"GFLOP/s"}
