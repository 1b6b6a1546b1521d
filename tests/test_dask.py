"""fastrec.dask against the single-machine results, on a small two-process LocalCluster."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

# the optional extra fastrec[dask] (dask[dataframe] and distributed): without it, skip this file
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask.dataframe as dd  # noqa: E402

import fastrec  # noqa: E402
import fastrec.dask as fdask  # noqa: E402
from fastrec.datasets import Interactions  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def ratings_frame(seed=0, n=3000, n_users=400, n_items=120, string_items=True):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n) * 7 + 3  # sparse, unordered integer ids
    items = rng.integers(0, n_items, n)
    return pd.DataFrame(
        {
            "user": users,
            "item": np.array([f"item{i:03d}" for i in items], dtype=object) if string_items else items * 5,
            "rating": rng.integers(1, 6, n).astype(np.float64),
            "ts": rng.integers(0, 40, n),
        }
    )


def stacked(blocks):
    return sp.vstack(blocks, format="csr")


def assert_same_csr(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


# -- interactions -----------------------------------------------------------------------


@pytest.mark.parametrize("duplicates", ["last", "sum"])
@pytest.mark.parametrize("string_items", [True, False])
def test_interactions_number_ids_and_build_blocks_as_interactions(client, duplicates, string_items):
    frame = ratings_frame(string_items=string_items)
    data = fdask.interactions(dd.from_pandas(frame, npartitions=4), timestamp="ts", duplicates=duplicates)
    ref = Interactions.from_frame(frame, timestamp_col="ts", duplicates=duplicates)
    np.testing.assert_array_equal(data.user_ids, ref.user_ids)
    np.testing.assert_array_equal(data.item_ids, ref.item_ids)
    assert data.shape == ref.shape
    # the ids a model fitted on the same rows holds
    model = fastrec.ItemKNN(k=20).fit(ref)
    np.testing.assert_array_equal(data.user_ids, model.user_ids_)
    np.testing.assert_array_equal(data.item_ids, model.item_ids_)
    pairs = dask.compute(*data.blocks(37, timestamps=True))
    assert len(pairs) == -(-ref.shape[0] // 37)
    assert_same_csr(stacked([m for m, _ in pairs]), ref.matrix)
    assert_same_csr(stacked([t for _, t in pairs]), ref.timestamps)
    mapped = data.frame.compute()  # small: the per-row mapping itself
    np.testing.assert_array_equal(data.user_ids[mapped["user"]], frame["user"].to_numpy())
    np.testing.assert_array_equal(data.item_ids[mapped["item"]], frame["item"].to_numpy())


def test_interactions_from_parquet_and_csv_files(client, tmp_path):
    frame = ratings_frame(seed=3, n=800)
    ref = Interactions.from_frame(frame)
    (tmp_path / "parquet").mkdir()
    (tmp_path / "csv").mkdir()
    for p, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(tmp_path / "parquet" / f"part{p}.parquet")
        frame.iloc[part].to_csv(tmp_path / "csv" / f"part{p}.csv", index=False)
    for read in (dd.read_parquet(tmp_path / "parquet"), dd.read_csv(str(tmp_path / "csv" / "*.csv"))):
        data = fdask.interactions(read)
        np.testing.assert_array_equal(data.user_ids, ref.user_ids)
        np.testing.assert_array_equal(data.item_ids, ref.item_ids)
        assert_same_csr(stacked(dask.compute(*data.blocks(100))), ref.matrix)


def test_interactions_errors(client):
    frame = ratings_frame(n=50, string_items=False)
    with pytest.raises(TypeError, match="dask.dataframe.from_pandas"):
        fdask.interactions(frame)
    with pytest.raises(ValueError, match="value='score' is not a column"):
        fdask.interactions(dd.from_pandas(frame, npartitions=2), value="score")
    with pytest.raises(ValueError, match="block_size"):
        fdask.interactions(dd.from_pandas(frame, npartitions=2)).blocks(0)
    # integer item ids in one partition, strings in another
    halves = [frame.iloc[:25], frame.iloc[25:].assign(item=frame["item"].iloc[25:].astype(str))]
    mixed = dd.from_delayed([dask.delayed(h) for h in halves], meta=halves[0], verify_meta=False)
    with pytest.raises(TypeError, match="one type"):
        fdask.interactions(mixed)
    twice = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="more than once|repeated|twice"):
        dask.compute(
            *fdask.interactions(dd.from_pandas(twice, npartitions=2), duplicates="error").blocks(1000)
        )


# -- recommend ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    frame = ratings_frame(seed=1)
    data = Interactions.from_frame(frame)
    return (
        frame,
        data,
        {
            "ItemKNN": fastrec.ItemKNN(k=20).fit(data),
            "MatrixFactorization": fastrec.MatrixFactorization(n_factors=8, n_epochs=3, random_state=0).fit(
                data
            ),
        },
    )


def expected_rows(users, ids, scores):
    """``recommend``'s table as (user, rank, item, score) rows, empty slots left out."""
    ids, scores = np.asarray(ids), np.asarray(scores)
    keep = np.isfinite(scores)
    ranks = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.repeat(users, scores.shape[1])[keep.ravel()], ranks[keep], ids[keep], scores[keep]


def assert_same_table(got, users, ids, scores):
    user, rank, item, score = expected_rows(users, ids, scores)
    assert list(got.columns) == ["user", "rank", "item", "score"]
    np.testing.assert_array_equal(got["user"].to_numpy(), user)
    np.testing.assert_array_equal(got["rank"].to_numpy(), rank)
    np.testing.assert_array_equal(got["item"].to_numpy().astype(object), item.astype(object))
    assert got["score"].dtype == scores.dtype
    np.testing.assert_array_equal(got["score"].to_numpy(), score)  # bit-identical


@pytest.mark.parametrize("name", ["ItemKNN", "MatrixFactorization"])
def test_recommend_every_user_equals_one_machine(client, fitted, name):
    _, _, models = fitted
    model = models[name]
    out = fdask.recommend(model, n=7, block_size=45)
    assert out.npartitions == -(-model.n_users_ // 45)
    ids, scores = model.recommend(model.user_ids_, 7)
    assert_same_table(out.compute(), model.user_ids_, ids, scores)


def test_recommend_options_and_given_users_equal_one_machine(client, fitted):
    _, _, models = fitted
    model = models["ItemKNN"]
    users = np.concatenate([model.user_ids_[::-3], [10**9]])  # an unknown user, skipped
    items, blocked = model.item_ids_[:60], model.item_ids_[:5]
    options = {"exclude_seen": False, "items": items, "filter_items": blocked, "unknown": "skip"}
    out = fdask.recommend(model, users, n=70, block_size=16, n_threads=1, **options)
    ids, scores = model.recommend(users, 70, **options)
    assert_same_table(out.compute(), users, ids, scores)


def test_recommend_from_dask_interactions_reads_user_items_blocks(client, fitted):
    frame, _, models = fitted
    model = models["ItemKNN"]
    # the users' interactions now: the training rows of a subset of users, plus new ones
    recent = frame[frame["user"] % 3 == 0]
    recent = recent[recent["item"].isin(model.item_ids_)]
    data = fdask.interactions(dd.from_pandas(recent, npartitions=3))
    ref = Interactions.from_frame(recent)
    if not np.array_equal(ref.item_ids, model.item_ids_):  # every item is in the sample
        pytest.fail("the test data must cover every item")
    out = fdask.recommend(model, n=5, interactions=data, block_size=30)
    ids, scores = model.recommend(ref.user_ids, 5, user_items=ref.matrix)
    assert_same_table(out.compute(), ref.user_ids, ids, scores)


def test_recommend_writes_parquet(client, fitted, tmp_path):
    _, _, models = fitted
    model = models["MatrixFactorization"]
    fdask.recommend(model, n=3, block_size=100).to_parquet(tmp_path / "top")
    back = pd.read_parquet(tmp_path / "top")
    ids, scores = model.recommend(model.user_ids_, 3)
    assert_same_table(back, model.user_ids_, ids, scores)


def test_recommend_errors(client, fitted):
    _, _, models = fitted
    model = models["ItemKNN"]
    with pytest.raises(fastrec.UnknownIdError):
        fdask.recommend(model, [model.user_ids_[0], 10**9])  # raised on the client, not in a task
    assert len(fdask.recommend(model, model.user_ids_[:0]).compute()) == 0
    with pytest.raises(ValueError, match="block_size"):
        fdask.recommend(model, block_size=0)
    with pytest.raises(ValueError, match="n must"):
        fdask.recommend(model, n=0)
    with pytest.raises(fastrec.NotFittedError):
        fdask.recommend(fastrec.ItemKNN())
    with pytest.raises(TypeError, match="fitted fastrec recommender"):
        fdask.recommend(object())


def test_recommend_survives_a_worker_killed_mid_job(client, fitted):
    import os
    import signal

    _, _, models = fitted
    model = models["MatrixFactorization"]
    ids, scores = model.recommend(model.user_ids_, 4)
    job = client.persist(fdask.recommend(model, n=4, block_size=4))  # ~100 tasks
    parts = distributed.futures_of(job)
    distributed.wait(parts, return_when="FIRST_COMPLETED")
    victim, pid = sorted(client.run(os.getpid).items())[0]
    os.kill(pid, signal.SIGKILL)  # the worker dies with its share of the results and the model
    assert_same_table(job.compute(), model.user_ids_, ids, scores)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the tests that follow


# -- cosine_topk --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_rows", [1, 17, 1000])
def test_cosine_topk_is_bit_identical_to_one_machine(client, fitted, dtype, block_rows):
    _, data, _ = fitted
    X = data.matrix.T.astype(dtype)  # items x users: item-item neighbours
    got = fdask.cosine_topk(X, k=9, block_rows=block_rows, shrink=0.5)
    assert_same_csr(got, fastrec.cosine_topk(X, k=9, shrink=0.5))


def test_cosine_topk_with_candidates_and_as_frame(client, fitted, tmp_path):
    _, data, _ = fitted
    X, Y = data.matrix[:150], data.matrix[100:]
    want = fastrec.cosine_topk(X, Y, k=6)
    frame = fdask.cosine_topk(X, Y, k=6, block_rows=40, as_frame=True)
    assert frame.npartitions == 4
    frame.to_parquet(tmp_path / "neighbours")
    got = pd.read_parquet(tmp_path / "neighbours")
    counts = np.diff(want.indptr)
    np.testing.assert_array_equal(got["row"].to_numpy(), np.repeat(np.arange(X.shape[0]), counts))
    np.testing.assert_array_equal(got["rank"].to_numpy(), np.concatenate([np.arange(c) for c in counts]))
    np.testing.assert_array_equal(got["col"].to_numpy(), want.indices)
    np.testing.assert_array_equal(got["score"].to_numpy(), want.data)


def test_cosine_topk_errors(client, fitted):
    _, data, _ = fitted
    with pytest.raises(ValueError, match="block_rows"):
        fdask.cosine_topk(data.matrix, k=3, block_rows=0)
    with pytest.raises(ValueError, match="k must"):
        fdask.cosine_topk(data.matrix, k=0)
    with pytest.raises(ValueError, match="same number of columns"):
        fdask.cosine_topk(data.matrix, data.matrix.T, k=3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_y", [False, True])
def test_cosine_topk_over_candidate_blocks_is_bit_identical(client, fitted, dtype, with_y):
    _, data, _ = fitted
    items = data.matrix.T.tocsr()
    items.data = np.sqrt(items.data) / 3  # squares that round in float64: norms must be computed alike
    items = items.astype(dtype)
    X, Y = (items[:20], items[10:34]) if with_y else (items[:24], None)
    want = fastrec.cosine_topk(X, Y, k=4, shrink=0.5)
    for block_rows, block_cols in [(r, c) for r in (1, 7, 1000) for c in (1, 7, 1000)]:
        got = fdask.cosine_topk(X, Y, k=4, shrink=0.5, block_rows=block_rows, block_cols=block_cols)
        assert_same_csr(got, want)


@pytest.mark.parametrize("k", [1, 5, 200])
def test_cosine_topk_over_candidate_blocks_keeps_self_ties_and_short_rows(client, fitted, k):
    _, data, _ = fitted
    X = data.matrix.T.tocsr()[:30].astype(np.float64)
    X.data = np.ceil(X.data / 2)  # few distinct values: many equal scores
    X.data[X.indptr[3] : X.indptr[4]] = 0  # an empty row has no neighbours
    X.eliminate_zeros()
    for exclude_self in (True, False):
        want = fastrec.cosine_topk(X, k=k, exclude_self=exclude_self)
        got = fdask.cosine_topk(X, k=k, exclude_self=exclude_self, block_rows=4, block_cols=6)
        assert_same_csr(got, want)
    assert np.diff(want.indptr)[3] == 0 and want.nnz > 0


@pytest.mark.parametrize("shrink", [0.0, 0.3])
def test_cosine_topk_over_candidate_blocks_keeps_the_norms_of_y_is_x(client, shrink):
    # float64 data whose squares round: a norm summed from the transpose can differ in the last bit
    X = sp.random(30, 20, density=0.2, format="csr", random_state=1, dtype=np.float64)
    for block_rows, block_cols in [(7, 6), (30, 1), (1, 30)]:
        got = fdask.cosine_topk(X, k=4, shrink=shrink, block_rows=block_rows, block_cols=block_cols)
        assert_same_csr(got, fastrec.cosine_topk(X, k=4, shrink=shrink))


def test_cosine_topk_over_candidate_blocks_as_frame(client, fitted):
    _, data, _ = fitted
    X, Y = data.matrix[:90], data.matrix[60:]
    want = fastrec.cosine_topk(X, Y, k=6)
    frame = fdask.cosine_topk(X, Y, k=6, block_rows=40, block_cols=150, as_frame=True)
    assert frame.npartitions == 3
    got = frame.compute()
    counts = np.diff(want.indptr)
    np.testing.assert_array_equal(got["row"].to_numpy(), np.repeat(np.arange(X.shape[0]), counts))
    np.testing.assert_array_equal(got["rank"].to_numpy(), np.concatenate([np.arange(c) for c in counts]))
    np.testing.assert_array_equal(got["col"].to_numpy(), want.indices)
    np.testing.assert_array_equal(got["score"].to_numpy(), want.data)


def test_cosine_topk_over_candidate_blocks_rescaled_rows(client, fitted):
    _, data, _ = fitted
    X = data.matrix.T.tocsr()[:25].astype(np.float32)
    X.data[::3] *= np.float32(2.0**60)  # beyond the normal range: the kernel rescales every row
    assert_same_csr(fdask.cosine_topk(X, k=5, block_rows=6, block_cols=7), fastrec.cosine_topk(X, k=5))
    with pytest.raises(ValueError, match="block_cols"):
        fdask.cosine_topk(X, k=5, shrink=1.0, block_cols=7)


def test_cosine_topk_block_cols_errors(client, fitted):
    _, data, _ = fitted
    with pytest.raises(ValueError, match="block_cols"):
        fdask.cosine_topk(data.matrix, k=3, block_cols=0)
    with pytest.raises(TypeError, match="block_cols"):
        fdask.cosine_topk(data.matrix, k=3, block_cols=2.5)


# -- evaluate -----------------------------------------------------------------------------


def held_out(seed=5):
    """Test ratings: some users and items the model knows, some it never saw."""
    test = ratings_frame(seed=seed, n=1500, n_users=450, n_items=140)
    return test, test[["user", "item", "rating"]]


@pytest.mark.parametrize("name", ["ItemKNN", "MatrixFactorization"])
@pytest.mark.parametrize("threshold", [None, 4.0])
def test_evaluate_equals_one_machine(client, fitted, name, threshold):
    _, _, models = fitted
    model = models[name]
    test, columns = held_out()
    assert not np.isin(test["user"], model.user_ids_).all()  # new users are served too
    assert not np.isin(test["item"], model.item_ids_).all()  # and new items count as misses
    want = fastrec.metrics.evaluate(model, None, columns, k=3, fit=False, threshold=threshold)
    got = fdask.evaluate(model, dd.from_pandas(test, npartitions=3), k=3, threshold=threshold, block_size=60)
    assert set(got) == set(want)
    assert got["n_users"] == want["n_users"] > 0
    assert want["hit_rate@3"] > 0 and 0 < want["coverage@3"] < 1  # the comparison can fail
    assert got["coverage@3"] == want["coverage@3"]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_evaluate_errors(client, fitted):
    _, _, models = fitted
    test = dd.from_pandas(held_out()[0], npartitions=2)
    with pytest.raises(ValueError, match="block_size"):
        fdask.evaluate(models["ItemKNN"], test, block_size=0)
    with pytest.raises(ValueError, match="k must"):
        fdask.evaluate(models["ItemKNN"], test, k=0)
    with pytest.raises(ValueError, match="columns must"):
        fdask.evaluate(models["ItemKNN"], test, columns=("user", "item"))
    with pytest.raises(fastrec.NotFittedError):
        fdask.evaluate(fastrec.ItemKNN(), test)


# -- threads ------------------------------------------------------------------------------


# two tasks of an in-process worker meet here (a lock does not pickle: a module global)
_PAIR = threading.Barrier(2)


def _share(paired=False):
    """(tasks running on this worker, task_threads) of a task, read while both paired tasks run."""
    from fastrec.dask._workers import task_threads

    barrier = _PAIR if paired else None
    if barrier is not None:
        barrier.wait(timeout=30)  # every task of the barrier is running now
    seen = len(distributed.get_worker().state.executing), task_threads(None)
    if barrier is not None:
        barrier.wait(timeout=30)  # and none leaves before all have looked
    return seen


def test_a_task_takes_its_share_of_the_worker_threads(fitted):
    from fastrec.dask._recommend import _with_threads
    from fastrec.dask._workers import task_threads

    _, _, models = fitted
    model = models["ItemKNN"]
    cap = fastrec._runtime.max_threads()  # the most threads fastrec lets one call use here
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        both = c.gather([c.submit(_share, True, pure=False) for _ in range(2)])
        assert both == [(2, 1), (2, 1)]  # two at once: one thread each
        alone = c.submit(_share, pure=False).result()
        assert alone == (1, min(2, cap))  # alone on a 2-thread worker: both threads
        assert c.submit(task_threads, 1).result() == 1  # n_threads given: taken as it is
        copy = c.submit(_with_threads, model, 1).result()
        assert copy.n_threads == 1 and copy is not model
    assert model.n_threads is None  # the model given is never changed
    assert task_threads(None) == fastrec.get_num_threads()  # outside a worker: fastrec's default


# -- without a distributed client, and without Dask ---------------------------------------


def test_dask_local_scheduler_gives_the_same_results(fitted, monkeypatch):
    import fastrec.dask._metrics
    import fastrec.dask._recommend
    import fastrec.dask._similarity

    for module in (fastrec.dask._recommend, fastrec.dask._similarity, fastrec.dask._metrics):
        monkeypatch.setattr(module, "current_client", lambda client: None)  # as if none had started
    frame, data, models = fitted
    model = models["ItemKNN"]
    with dask.config.set(scheduler="threads"):
        out = fdask.recommend(model, n=4, block_size=70).compute()
        assert_same_table(out, model.user_ids_, *model.recommend(model.user_ids_, 4))
        X = data.matrix.T
        assert_same_csr(fdask.cosine_topk(X, k=5, block_rows=33), fastrec.cosine_topk(X, k=5))
        test, columns = held_out()
        got = fdask.evaluate(model, dd.from_pandas(test, npartitions=2), k=3, block_size=100)
        want = fastrec.metrics.evaluate(model, None, columns, k=3, fit=False)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_import_fastrec_leaves_dask_alone_and_fastrec_dask_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import fastrec\n"
        "assert 'fastrec.dask' not in sys.modules and 'dask' not in sys.modules\n"
        "sys.modules['dask.dataframe'] = None  # as if the extra were not installed\n"
        "try:\n"
        "    import fastrec.dask\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install fastrec[dask]" in done.stdout


@pytest.mark.parametrize("threshold", [None, 4.0])
def test_ranking_metrics_of_stored_lists_equal_one_machine(client, fitted, tmp_path, threshold):
    from fastrec._idmap import IdMap

    _, _, models = fitted
    model = models["MatrixFactorization"]
    test, _ = held_out()
    # lists for every model user (some without test ratings); test users the model lacks get none
    fdask.recommend(model, n=4, block_size=90).to_parquet(tmp_path / "lists", write_index=False)
    lists = dd.read_parquet(tmp_path / "lists")
    got = fdask.ranking_metrics(
        lists, dd.from_pandas(test, npartitions=3), k=4, threshold=threshold, block_size=70
    )
    # one machine: one table row per test user, raw ids mapped to columns (test items first)
    stored = pd.read_parquet(tmp_path / "lists")
    users, rows = IdMap.from_values(test["user"].to_numpy())
    test_items, cols = IdMap.from_values(test["item"].to_numpy())
    all_items, _ = test_items.extend(stored["item"].to_numpy())
    relevant = np.ones(len(test), bool) if threshold is None else test["rating"].to_numpy() >= threshold
    truth = sp.csr_matrix(
        (np.ones(relevant.sum()), (rows[relevant], cols[relevant])), shape=(len(users), len(all_items))
    )
    table = np.full((len(users), 4), -1)
    listed = users.lookup(stored["user"].to_numpy())
    on = listed >= 0
    table[listed[on], stored["rank"].to_numpy()[on]] = all_items.lookup(stored["item"].to_numpy()[on])
    want = fastrec.metrics.ranking_metrics(table, truth, k=4)
    assert 0 < (table >= 0).all(axis=1).mean() < 1  # some test users have lists, some none
    assert want["hit_rate"] > 0
    assert got["n_users"] == want["n_users"] > 0
    for key in ("precision", "recall", "f1", "ndcg", "map", "hit_rate"):
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key


def test_ranking_metrics_errors(client, fitted):
    test = dd.from_pandas(held_out()[0], npartitions=2)
    lists = dd.from_pandas(pd.DataFrame({"user": [3], "item": ["item001"]}), npartitions=1)
    with pytest.raises(ValueError, match=r"lacks the columns \['rank'\]"):
        fdask.ranking_metrics(lists, test)
    with pytest.raises(TypeError, match="dask.dataframe.DataFrame"):
        fdask.ranking_metrics(lists.compute(), test)
    with pytest.raises(ValueError, match="k must"):
        fdask.ranking_metrics(lists.assign(rank=0), test, k=0)
