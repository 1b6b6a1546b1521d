"""fastrec.dask.fit(MatrixFactorization) by DSGD against the single-machine fit, on 2 processes."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

# the optional extra fastrec[dask] (dask[dataframe] and distributed): without it, skip this file
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask.dataframe as dd  # noqa: E402

import fastrec  # noqa: E402
import fastrec.dask as fdask  # noqa: E402
from fastrec.mf._blocks import init_rows, init_seeds  # noqa: E402
from fastrec.mf.model import DivergenceError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def small_ratings(seed=0, n=3000, n_users=400, n_items=120):
    """Star ratings with sparse integer user ids and string item ids: under 20 ratings per user,
    so a single-threaded single-machine fit trains them as one block."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n) * 7 + 3,
            "item": np.array([f"item{i:03d}" for i in rng.integers(0, n_items, n)], dtype=object),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )


def low_rank_ratings(seed, n_users=2000, n_items=1500, nnz=100_000, rank=4, noise=0.3):
    """Ratings 3 + (rank-4 scores) + noise, and a held-out tenth."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    users, items = rng.integers(0, n_users, nnz), rng.integers(0, n_items, nnz)
    values = 3 + 0.8 * (U[users] * V[items]).sum(axis=1) / np.sqrt(rank) + rng.normal(scale=noise, size=nnz)
    # float32 values: what DaskInteractions stores, so both fits see the same numbers
    frame = pd.DataFrame(
        {"user": users, "item": items, "rating": values.astype(np.float32).astype(np.float64)}
    )
    held_out = rng.random(nnz) < 0.1
    return frame[~held_out].reset_index(drop=True), frame[held_out].reset_index(drop=True)


def triples(frame):
    return frame["user"].to_numpy(), frame["item"].to_numpy(), frame["rating"].to_numpy()


def dask_data(frame, npartitions=4):
    return fdask.interactions(dd.from_pandas(frame, npartitions=npartitions), "user", "item", "rating")


def rmse(model, frame):
    predicted = model.predict(frame["user"].to_numpy(), frame["item"].to_numpy())
    return float(np.sqrt(np.mean((predicted - frame["rating"].to_numpy()) ** 2)))


def assert_same_model(a, b):
    np.testing.assert_array_equal(a.user_ids_, b.user_ids_)
    np.testing.assert_array_equal(a.item_ids_, b.item_ids_)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_bias_, b.user_bias_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    assert a.history_["train_rmse"] == b.history_["train_rmse"]


@pytest.fixture(scope="module")
def low_rank():
    train, test = low_rank_ratings(0)
    return train, test, dask_data(train)


# -- initialisation -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 700, 1024, 3000])
@pytest.mark.parametrize("non_negative", [False, True])
def test_init_rows_are_rows_of_the_single_machine_initialisation(n, non_negative):
    model = fastrec.MatrixFactorization(
        n_factors=5, init_std=0.3, non_negative=non_negative, dtype=np.float64
    )
    params = model._checked_params()
    whole = model._init_factors(n, 5, np.dtype(np.float64), params, np.random.default_rng([7, 0]))
    seeds = init_seeds(np.random.default_rng([7, 0]), n)
    for start, stop in [(0, n), (0, n // 2), (n // 3, n), (n // 2, n // 2), (min(1000, n), min(2100, n))]:
        rows = init_rows(seeds, n, start, stop, 5, np.float64, 0.3, non_negative)
        assert rows.shape == (stop - start, whole.shape[1]) and (start == stop or rows.ctypes.data % 64 == 0)
        np.testing.assert_array_equal(rows, whole[start:stop])


# -- the fit against the single-machine fit -------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"biased": False, "non_negative": True, "dtype": np.float64},
        {"lr_bias": None, "reg_bias": None, "init_std": 0.2, "clip": False},
    ],
)
def test_one_block_is_the_single_machine_fit(client, params):
    frame = small_ratings()
    kw = dict(n_factors=6, n_epochs=4, random_state=5, **params)
    want = fastrec.MatrixFactorization(**kw, n_threads=1).fit(triples(frame))
    got = fdask.fit(fastrec.MatrixFactorization(**kw), dask_data(frame), n_blocks=1)
    assert_same_model(got, want)
    assert got.user_factors_.dtype == want.user_factors_.dtype
    assert got.global_mean_ == pytest.approx(want.global_mean_, rel=1e-15)
    assert got.rating_range_ == want.rating_range_
    assert (got.seed_, got.epochs_trained_) == (want.seed_, want.epochs_trained_)
    users, items, _ = triples(frame)
    np.testing.assert_array_equal(got.predict(users, items), want.predict(users, items))


@pytest.mark.parametrize("n_blocks", [2, 3])
def test_held_out_rmse_is_the_single_machine_rmse(client, low_rank, n_blocks):
    train, test, data = low_rank
    kw = dict(n_factors=8, n_epochs=30, random_state=0)
    single = fastrec.MatrixFactorization(**kw, n_threads=1).fit(triples(train))
    model = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=n_blocks)
    assert len(model.history_["train_rmse"]) == 30
    baseline = float(np.std(test["rating"].to_numpy()))
    assert rmse(single, test) < 0.7 * baseline  # the factors matter on this data
    assert abs(rmse(model, test) - rmse(single, test)) < 0.005


def test_the_same_seed_gives_the_same_model(client):
    data = dask_data(small_ratings(1))
    kw = dict(n_factors=4, n_epochs=3, random_state=11)
    first = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=3)
    assert_same_model(fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=3), first)
    other = fdask.fit(fastrec.MatrixFactorization(**{**kw, "random_state": 12}), data, n_blocks=3)
    assert not np.array_equal(other.user_factors_, first.user_factors_)


def test_the_local_scheduler_gives_the_same_model(client, monkeypatch):
    import fastrec.dask._dsgd

    data = dask_data(small_ratings(2))
    kw = dict(n_factors=4, n_epochs=3, random_state=3)
    want = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=2)
    monkeypatch.setattr(fastrec.dask._dsgd, "current_client", lambda client: None)  # as if none had started
    with dask.config.set(scheduler="threads"):
        got = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=2)
    assert_same_model(got, want)


# -- the fitted model -----------------------------------------------------------------------


def test_the_fitted_model_recommends_pickles_and_saves(client, tmp_path):
    frame = small_ratings(3)
    kw = dict(n_factors=5, n_epochs=3, random_state=4)
    data = dask_data(frame)
    model = fdask.fit(fastrec.MatrixFactorization(**kw), data)  # n_blocks: one per worker
    single = fastrec.MatrixFactorization(**kw).fit(triples(frame))
    seen, want_seen = model.interactions_, single.interactions_
    np.testing.assert_array_equal(seen.indptr, want_seen.indptr)
    np.testing.assert_array_equal(seen.indices, want_seen.indices)
    np.testing.assert_allclose(seen.data, want_seen.data)
    users = model.user_ids_[:25]
    ids, scores = model.recommend(users, 5)
    inner = model.interactions_
    for row, user_items in enumerate(ids):
        rated = set(model.item_ids_[inner.indices[inner.indptr[row] : inner.indptr[row + 1]]])
        assert not rated & set(user_items)  # exclude_seen reads the training ratings
    # the scores are mu + b_u + b_i + p_u . q_i of the fitted parameters
    u, i = 0, model._item_map.lookup(np.asarray(ids[0, :1]))[0]
    want = (
        model.global_mean_
        + model.user_bias_[u]
        + model.item_bias_[i]
        + model.user_factors_[u] @ model.item_factors_[i]
    )
    assert scores[0, 0] == pytest.approx(want, rel=1e-5)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.recommend(users, 5)[0], ids)
    model.save(tmp_path / "dsgd.npz")
    loaded = fastrec.MatrixFactorization.load(tmp_path / "dsgd.npz")
    u_raw, i_raw, _ = triples(frame)
    np.testing.assert_array_equal(loaded.predict(u_raw, i_raw), model.predict(u_raw, i_raw))
    # without the training ratings on the client: nothing to exclude, the same factors
    bare = fdask.fit(fastrec.MatrixFactorization(**kw), data, keep_interactions=False)
    assert bare.interactions_.shape == model.interactions_.shape and bare.interactions_.nnz == 0
    np.testing.assert_array_equal(bare.user_factors_, model.user_factors_)


def test_errors_name_the_argument(client):
    frame = small_ratings(4)
    data = dask_data(frame)
    model = fastrec.MatrixFactorization(n_factors=3, n_epochs=2, random_state=0)
    with pytest.raises(TypeError, match=r"fastrec\.dask\.interactions"):
        fdask.fit(model, dd.from_pandas(frame, npartitions=2))
    with pytest.raises(TypeError, match="block_size"):
        fdask.fit(model, data, block_size=10)
    with pytest.raises(ValueError, match="n_blocks"):
        fdask.fit(model, data, n_blocks=0)
    with pytest.raises(ValueError, match="n_blocks=500"):
        fdask.fit(model, data, n_blocks=500)
    with pytest.raises(TypeError, match="keep_interactions"):
        fdask.fit(model, data, keep_interactions="yes")
    with pytest.raises(ValueError, match="early_stopping"):
        fdask.fit(fastrec.MatrixFactorization(early_stopping=2), data)
    with pytest.raises(ValueError, match="hogwild"):
        fdask.fit(fastrec.MatrixFactorization(hogwild=True), data)
    with pytest.raises(DivergenceError, match="diverged"):
        fdask.fit(fastrec.MatrixFactorization(n_factors=3, n_epochs=3, lr=1e4, random_state=0), data)
    assert not hasattr(model, "user_bias_")  # nothing fitted by a refused call


# -- failures -------------------------------------------------------------------------------


def test_the_fit_survives_a_worker_killed_mid_fit(client, low_rank):
    _, _, data = low_rank
    kw = dict(n_factors=8, n_epochs=6, random_state=2)
    want = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=2)

    def first_stratum_done(dask_scheduler):
        return any(
            isinstance(key, str) and key.startswith("fastrec-dsgd-train-0-0-") and task.state == "memory"
            for key, task in dask_scheduler.tasks.items()
        )

    killed_at = []

    def kill_a_worker():
        while not client.run_on_scheduler(first_stratum_done):
            time.sleep(0.002)
        _, pid = sorted(client.run(os.getpid).items())[0]
        os.kill(pid, signal.SIGKILL)  # the worker dies with its blocks and factor blocks
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    got = fdask.fit(fastrec.MatrixFactorization(**kw), data, n_blocks=2)
    done_at = time.monotonic()
    killer.join()
    assert killed_at and killed_at[0] < done_at  # the worker died while the fit ran
    assert_same_model(got, want)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the tests that follow


def test_groups_without_ratings_and_the_default_grid(client):
    from fastrec.dask._dsgd import _group_bounds

    # one user holds most ratings: the middle user group of a 3 x 3 grid is empty
    rng = np.random.default_rng(6)
    users = np.concatenate([np.zeros(300, dtype=np.int64), np.arange(1, 40)])
    items = np.concatenate([np.arange(300) % 150, rng.integers(0, 150, 39)])
    frame = pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, 339).astype(float)})
    bounds = _group_bounds(np.bincount(users), 3)
    assert bounds[0] == 0 and bounds[-1] == 40 and np.diff(bounds).min() == 0
    kw = dict(n_factors=4, n_epochs=4, random_state=1)
    model = fdask.fit(fastrec.MatrixFactorization(**kw), dask_data(frame), n_blocks=3)
    assert model.user_factors_.shape == (40, 4) and np.isfinite(model.user_factors_).all()
    assert model.history_["train_rmse"][-1] < model.history_["train_rmse"][0]
    # the default grid has one block row per worker, but never more groups than ids
    one_item = pd.DataFrame({"user": np.arange(30), "item": np.zeros(30, dtype=np.int64), "rating": 3.0})
    fitted = fdask.fit(fastrec.MatrixFactorization(**kw), dask_data(one_item, 2))
    single = fastrec.MatrixFactorization(**kw, n_threads=1).fit(triples(one_item))
    assert_same_model(fitted, single)  # one item: d = 1, the single-machine fit
