"""The cosine, knn, metrics and topn benchmark modules: their measurements report what fastrec computes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec.bench import cosine, knn, metrics, suite, topn
from fastrec.datasets import make_ratings
from fastrec.metrics import ranking_metrics

# The compiled core is optional (an install without a compiler has Numba only).
COMPILED = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]


def options(module, **extra):
    found = suite.module_options(module, None)
    found.update(peers=False, backends=list(COMPILED), **extra)
    return found


def test_cosine_contenders_add_each_measure_and_its_peer():
    opts = options(cosine)
    assert [c.name for c in cosine.contenders(opts)] == [f"fastrec {b}" for b in COMPILED]
    opts.update(similarities=[["jaccard", "bm25"], ["cosine", "jaccard"]])
    assert cosine.similarities(opts) == ["cosine", "jaccard", "bm25"]
    assert [c.name for c in cosine.contenders(opts)] == [
        *(f"fastrec {b}" for b in COMPILED),
        *(f"fastrec {m} {b}" for m in ("jaccard", "bm25") for b in COMPILED),
    ]
    opts.update(peers=True)
    peers = [c.name for c in cosine.contenders(opts) if c.peer]
    assert "implicit TFIDFRecommender" not in peers  # tfidf was not asked for
    if suite.installed("implicit"):
        assert {"implicit CosineRecommender", "implicit BM25Recommender"} <= set(peers)
    with pytest.raises(SystemExit):
        cosine.main(["--similarity", "cosine,nonsense"])


@pytest.mark.parametrize("similarity", ["cosine", "pearson", "adjusted_cosine", "jaccard", "bm25", "tfidf"])
def test_cosine_exact_scores_follow_each_definition(similarity):
    R = sp.random(40, 25, density=0.3, format="csr", random_state=3, dtype=np.float64)
    R.data = np.ceil(R.data * 5)
    items = R.T.toarray()
    present = items != 0
    sample = np.array([0, 7, 24])
    if similarity == "pearson":  # centred by the item's mean over its stored entries
        means = items.sum(1) / np.maximum(present.sum(1), 1)
        items = np.where(present, items - means[:, None], 0.0)
    elif similarity == "adjusted_cosine":  # centred by the user's mean
        means = items.sum(0) / np.maximum(present.sum(0), 1)
        items = np.where(present, items - means[None, :], 0.0)
    elif similarity == "jaccard":
        items = present.astype(np.float64)
    elif similarity in ("bm25", "tfidf"):
        idf = np.log(items.shape[0]) - np.log1p(present.sum(0))
        if similarity == "tfidf":
            items = np.sqrt(items) * idf
        else:
            length = items.sum(1) / items.sum(1).mean()
            norm = (0.25 + 0.75 * length)[:, None]
            items = np.where(present, items * 2.2 / (1.2 * norm + items) * idf, 0.0)
    dots = items[sample] @ items.T
    if similarity == "bm25":
        expected = dots
    elif similarity == "jaccard":
        sizes = items.sum(1)
        expected = dots / (sizes[sample, None] + sizes[None, :] - dots)
    else:
        norms = np.linalg.norm(items, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.where(dots != 0, dots / np.outer(norms[sample], norms), 0.0)
    np.testing.assert_allclose(cosine.exact_scores(R, sample, similarity), expected, rtol=1e-12, atol=1e-12)


def test_cosine_agreement_accepts_the_kernel_and_counts_a_wrong_list():
    R = sp.random(60, 30, density=0.25, format="csr", random_state=4, dtype=np.float64)
    sample = np.arange(30)
    for similarity in ("pearson", "jaccard", "bm25"):
        lists = fastrec.similarity_topk(R.T, k=5, similarity=similarity, exclude_self=False, backend="numpy")
        assert cosine.agreement(R, lists, 5, sample, similarity) == 1.0
        wrong = lists.tolil()
        scores = cosine.exact_scores(R, sample[:1], similarity)[0]
        wrong[0, int(np.argmin(np.where(scores != 0, scores, np.inf)))] = 1.0  # a sixth, worst item
        assert cosine.agreement(R, wrong.tocsr(), 5, sample, similarity) == pytest.approx(29 / 30)


def test_cosine_measure_times_each_measure_and_checks_it(tmp_path):
    opts = options(cosine, k=10, check_sample=40, similarities=["jaccard,tfidf"])
    data = cosine.prepare("XS", tmp_path, opts)
    for contender in [c.name for c in cosine.contenders(opts)]:
        out = cosine.measure(contender, data, 2)
        assert out["seconds"] > 0 and out["cpu_seconds"] >= 0
        assert out["quality"] == {"agree": 1.0}, contender


def test_knn_prepare_and_measure(tmp_path):
    opts = options(knn, k=10)
    assert [c.name for c in knn.contenders(opts)] == [
        f"fastrec {model} {b}" for model in ("ItemKNN", "UserKNN") for b in COMPILED
    ]
    data = knn.prepare("XS", tmp_path, opts)
    train, test = sp.load_npz(data["train"]), sp.load_npz(data["test"])
    R = make_ratings(*knn.TINY, seed=0)
    assert train.shape == test.shape == R.shape and train.nnz + test.nnz == R.nnz
    assert train.multiply(test).nnz == 0
    for name, cls in (("ItemKNN", fastrec.ItemKNN), ("UserKNN", fastrec.UserKNN)):
        recs = cls(k=10).fit(train).recommend(np.arange(R.shape[0]), n=10)[0]
        expected = ranking_metrics(recs, test, 10)
        for backend in COMPILED:
            out = knn.measure(f"fastrec {name} {backend}", data, 1)
            assert out["seconds"] > 0 and out["cpu_seconds"] >= 0
            assert out["quality"] == {
                "precision@10": round(expected["precision"], 4),
                "ndcg@10": round(expected["ndcg"], 4),
            }


def test_knn_accuracy_on_a_u_data_file(tmp_path, capsys):
    R = make_ratings(943, 1682, 100_000, seed=0).tocoo()
    order = np.random.default_rng(0).permutation(R.nnz)
    lines = [f"{R.row[j] + 1}\t{R.col[j] + 1}\t{int(R.data[j])}\t{880000000 + j}\n" for j in order]
    (tmp_path / "u.data").write_text("".join(lines))
    assert knn.main(["--accuracy", "--data", str(tmp_path), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = {m[0]: float(m[1]) for m in re.findall(r"^\| (\w+) \| ([\d.]+) \|", out, flags=re.M)}
    assert set(rows) == {"ItemKNN", "UserKNN", "MatrixFactorization"}
    table = np.array([[R.row[j] + 1, R.col[j] + 1, int(R.data[j])] for j in order])
    base, test = table[20_000:], table[:20_000]
    expected = fastrec.evaluate(
        fastrec.ItemKNN(k=50),
        (base[:, 0], base[:, 1], base[:, 2]),
        (test[:, 0], test[:, 1], test[:, 2]),
        k=10,
    )
    assert rows["ItemKNN"] == pytest.approx(expected["precision@10"], abs=6e-4)  # 3 digits shown
    assert knn.main(["--accuracy", "--data", str(tmp_path / "nowhere")]) == 2


def test_metrics_prepare_and_measure_agree_across_backends(tmp_path):
    opts = options(metrics)
    assert [c.name for c in metrics.contenders(opts)] == [f"fastrec {b}" for b in COMPILED]
    data = metrics.prepare("XS", tmp_path, opts)
    recs, test = np.load(data["recs"]), sp.load_npz(data["test"])
    assert recs.shape == (test.shape[0], 10) and recs.dtype == np.int64
    for row in recs:  # distinct items first, then -1 padding
        filled = row[row >= 0]
        assert np.unique(filled).size == filled.size and np.all(row[filled.size :] == -1)
    expected = ranking_metrics(recs, test, 10, backend="numpy")
    for contender in [f"fastrec {b}" for b in (*COMPILED, "numpy")]:
        out = metrics.measure(contender, data, 1)
        assert out["quality"] == {"ndcg@10": round(expected["ndcg"], 6), "users": expected["n_users"]}


def test_topn_contenders_run_peers_under_each_coretype():
    opts = options(topn)
    assert [c.name for c in topn.contenders(opts)] == [f"fastrec {b}" for b in COMPILED]
    opts.update(peers=True, coretypes=["default", "SkylakeX"])
    numpy_peers = [c for c in topn.contenders(opts) if c.dispatch == "numpy"]
    assert [(c.name, c.env, c.peer) for c in numpy_peers] == [
        ("numpy [default]", {"OPENBLAS_CORETYPE": None}, True),
        ("numpy [SkylakeX]", {"OPENBLAS_CORETYPE": "SkylakeX"}, True),
    ]
    # "default" takes the variable away from the worker, whatever the driver has set
    base = {"OPENBLAS_CORETYPE": "Haswell", "HOME": "/h"}
    assert suite.worker_env(numpy_peers[0], base) == {"HOME": "/h"}
    assert suite.worker_env(numpy_peers[1], base) == {"OPENBLAS_CORETYPE": "SkylakeX", "HOME": "/h"}
    assert base == {"OPENBLAS_CORETYPE": "Haswell", "HOME": "/h"}
    opts.update(coretypes=[])  # no setting: one run per peer, in the driver's environment
    assert [(c.name, c.env) for c in topn.contenders(opts) if c.dispatch == "numpy"] == [("numpy", {})]


def test_topn_prepare_and_measure(tmp_path):
    opts = options(topn, n=7, check_sample=50)
    data = topn.prepare("XS", tmp_path, opts)
    seen = sp.load_npz(data["seen"])
    U, V = np.load(data["u"]), np.load(data["v"])
    assert seen.shape == (300, 400) and (seen != make_ratings(*knn.TINY, seed=0)).nnz == 0
    assert U.shape == (300, topn.FACTORS) and V.shape == (400, topn.FACTORS)
    assert U.dtype == V.dtype == np.float32
    assert len(data["sample"]) == 50 and data["n"] == 7
    for contender in [f"fastrec {b}" for b in (*COMPILED, "numpy")] + ["numpy"]:
        out = topn.measure(contender, data, 2)
        assert out["seconds"] > 0 and out["cpu_seconds"] >= 0
        assert out["quality"]["precision"] == 1.0 and out["quality"]["seen returned"] == 0
        assert ("BLAS" in out["quality"]) == (contender == "numpy")
        assert out["work"] == {"GFLOP/s": 2.0 * 300 * 400 * topn.FACTORS / 1e9}


def test_topn_agreement_counts_wrong_seen_missing_and_repeated_items():
    rng = np.random.default_rng(5)
    U, V = rng.normal(size=(6, 4)), rng.normal(size=(9, 4))
    rated = rng.random((6, 9)) < 0.3
    rated[2, 3] = True
    rated[5] = np.arange(9) < 6  # user 5 has 3 unseen items, fewer than n
    seen = sp.csr_matrix(rated.astype(np.float32))
    sample, n = np.array([0, 2, 5]), 4
    items, scores = fastrec.topn(U, V, n, exclude=seen, backend="numpy")
    ids = items[sample]
    expected = np.minimum(n, 9 - np.diff(seen.indptr)[sample]).sum()
    assert topn.agreement(U, V, seen, sample, ids, n, scores[sample]) == (1.0, 0)
    worst = np.argsort(U[sample] @ V.T, axis=1)[:, :1]  # a low-scoring item in slot 0
    wrong = ids.copy()
    wrong[0, 0] = worst[0, 0]
    assert topn.agreement(U, V, seen, sample, wrong, n)[0] == pytest.approx((expected - 1) / expected)
    returned_seen = ids.copy()
    returned_seen[1, 0] = 3  # rated by user 2
    assert topn.agreement(U, V, seen, sample, returned_seen, n) == ((expected - 1) / expected, 1)
    repeated = ids.copy()
    repeated[0, 1] = repeated[0, 0]
    assert topn.agreement(U, V, seen, sample, repeated, n)[0] == (expected - 1) / expected
    emptied = scores[sample].copy()
    emptied[2, 0] = -np.inf  # a slot scored -inf is an empty slot
    assert topn.agreement(U, V, seen, sample, ids, n, emptied)[0] == (expected - 1) / expected
