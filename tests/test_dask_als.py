"""fastrec.dask.fit(fastrec.ALS(...)) against fastrec.ALS.fit, on a two-process LocalCluster."""

from __future__ import annotations

import pickle

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
from fastrec.dask import _als  # noqa: E402
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


def counts_frame(seed=0, n=3000, n_users=250, n_items=110):
    """Implicit counts with repeated pairs, a few stored zeros, string items and unordered user ids."""
    rng = np.random.default_rng(seed)
    plays = rng.geometric(0.3, n).astype(np.float64)
    plays[rng.random(n) < 0.03] = 0.0  # a stored zero: seen, but no preference
    return pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n) * 7 + 3,
            "item": np.array([f"item{i:03d}" for i in rng.integers(0, n_items, n)], dtype=object),
            "plays": plays,
        }
    )


@pytest.fixture(scope="module")
def frames():
    frame = counts_frame()
    ref = Interactions.from_frame(frame, rating_col="plays", duplicates="sum")
    return frame, ref


def dask_data(frame, npartitions=3):
    return fdask.interactions(dd.from_pandas(frame, npartitions=npartitions), value="plays", duplicates="sum")


def assert_same_csr(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


# Bit for bit where the workers run the C++ core. Numba code compiled in one process and
# loaded from Numba's cache in another differ in the last bits (fastmath reassociates each
# its own way), so without the core (Numba is then "auto") the factors agree within this.
EXACT = fastrec._runtime.resolve_backend("auto") == "cpp"
NUMBA_EPS = 256


def assert_same_lists(ids, scores, want_ids, want_scores):
    """Equal top-N lists: bit for bit, or (Numba across processes) scores within NUMBA_EPS and
    the same items wherever a score is apart from its neighbours by more than that."""
    if EXACT:
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)
        return
    finite = np.isfinite(want_scores)
    atol = NUMBA_EPS * np.finfo(np.float32).eps * np.abs(want_scores[finite]).max()
    np.testing.assert_array_equal(np.isfinite(scores), finite)
    np.testing.assert_allclose(scores[finite], want_scores[finite], rtol=0, atol=atol)
    gaps = np.abs(np.diff(np.where(finite, want_scores, 0), axis=1))
    apart = np.ones_like(finite)
    apart[:, 1:] &= gaps > 2 * atol
    apart[:, :-1] &= gaps > 2 * atol
    np.testing.assert_array_equal(ids[apart & finite], want_ids[apart & finite])


def assert_same_model(got, want, eps=None):
    """Bit-identical factors (or within ``eps`` float eps of the largest), ids, seed and interactions."""
    eps = (0 if EXACT else NUMBA_EPS) if eps is None else eps
    assert got.user_factors_.dtype == want.user_factors_.dtype
    for a, b in ((got.user_factors_, want.user_factors_), (got.item_factors_, want.item_factors_)):
        if eps:
            atol = eps * np.finfo(b.dtype).eps * np.abs(b).max()
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)
        else:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.user_ids_, want.user_ids_)
    np.testing.assert_array_equal(got.item_ids_, want.item_ids_)
    assert got.seed_ == want.seed_
    assert_same_csr(got.interactions_, want.interactions_)


@pytest.mark.parametrize("confidence", ["linear", "log"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fit_is_bit_identical_to_one_machine(client, frames, solver, dtype, confidence):
    frame, ref = frames
    params = dict(
        n_factors=12,
        n_iterations=3,
        reg=0.05,
        alpha=2.0,
        confidence=confidence,
        solver=solver,
        random_state=7,
    )
    want = fastrec.ALS(**params, dtype=dtype).fit(ref)
    model = fastrec.ALS(**params, dtype=dtype)
    got = fdask.fit(model, dask_data(frame), block_size=40)  # 7 user blocks, 3 item blocks
    assert got is model
    assert_same_model(got, want)
    assert np.abs(got.user_factors_).max() > 1e-3  # trained: far from the 0.01-sized start
    assert len(got.history_["seconds"]) == 3 and "loss" not in got.history_


@pytest.mark.parametrize(("block_size", "n_threads"), [(1000, None), (17, 1), (None, 2), (None, None)])
def test_block_size_and_threads_do_not_change_the_model(client, frames, block_size, n_threads):
    frame, ref = frames
    params = dict(n_factors=10, n_iterations=2, random_state=3, cg_steps=2)
    want = fastrec.ALS(**params).fit(ref)
    got = fdask.fit(fastrec.ALS(**params), dask_data(frame), block_size=block_size, n_threads=n_threads)
    assert_same_model(got, want)


def test_item_blocks_are_the_transpose_built_by_pieces():
    rng = np.random.default_rng(4)
    rows, cols = rng.integers(0, 23, 150), rng.integers(0, 30, 150)
    cols[cols >= 11] += 1  # column 11 stays empty
    R = sp.csr_matrix((rng.random(150).astype(np.float32), (rows, cols)), shape=(23, 31))
    R.data[::7] = 0.0  # stored zeros travel too
    user_bounds, item_bounds = np.array([0, 5, 6, 20, 23]), np.array([0, 10, 12, 31])
    pieces = [_als._item_pieces(R[a:b], item_bounds) for a, b in zip(user_bounds[:-1], user_bounds[1:])]
    blocks = [
        _als._item_block(23, list(user_bounds[:-1]), *[p[j] for p in pieces])
        for j in range(item_bounds.size - 1)
    ]
    got = sp.vstack(blocks, format="csr")
    want = sp.csr_matrix(R.T)
    assert got.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_verbose_loss_and_a_generator_seed_match_one_machine(client, frames, capsys, solver):
    frame, ref = frames
    params = dict(n_factors=8, n_iterations=2, verbose=True, solver=solver)
    want = fastrec.ALS(**params, random_state=np.random.default_rng(11)).fit(ref)
    capsys.readouterr()
    got = fdask.fit(
        fastrec.ALS(**params, random_state=np.random.default_rng(11)), dask_data(frame), block_size=60
    )
    assert_same_model(got, want)
    assert got.history_["loss"] == pytest.approx(want.history_["loss"], rel=1e-10 if EXACT else 1e-7)
    assert got.history_["loss"][1] < got.history_["loss"][0]
    assert capsys.readouterr().err.count("ALS iteration") == 2


def test_numba_backend_equals_its_one_machine_fit(client, frames):
    # Numba code compiled in a process and the same code loaded from Numba's cache in
    # another differ in the last bits (fastmath reassociates each its own way), so a
    # worker may not match this process bit for bit on a cold cache.
    frame, ref = frames
    params = dict(n_factors=8, n_iterations=2, random_state=1, backend="numba")
    want = fastrec.ALS(**params).fit(ref)
    assert_same_model(fdask.fit(fastrec.ALS(**params), dask_data(frame), block_size=90), want, eps=256)


def test_local_scheduler_gives_the_same_model(frames, monkeypatch):
    monkeypatch.setattr(_als, "current_client", lambda client: None)  # as if no client had started
    frame, ref = frames
    params = dict(n_factors=8, n_iterations=2, random_state=5)
    want = fastrec.ALS(**params).fit(ref)
    with dask.config.set(scheduler="threads"):
        data = dask_data(frame)
        assert_same_model(fdask.fit(fastrec.ALS(**params), data, block_size=45), want)
        assert_same_model(
            fdask.fit(fastrec.ALS(**params, solver="cholesky"), data),
            fastrec.ALS(**params, solver="cholesky").fit(ref),
        )


def test_fitted_model_recommends_saves_and_pickles(client, frames, tmp_path):
    frame, ref = frames
    params = dict(n_factors=8, n_iterations=3, random_state=2)
    want = fastrec.ALS(**params).fit(ref)
    data = dask_data(frame)
    model = fdask.fit(fastrec.ALS(**params), data, block_size=64)
    users = model.user_ids_[::3]
    ids, scores = model.recommend(users, 6)
    want_ids, want_scores = want.recommend(users, 6)
    assert_same_lists(ids, scores, want_ids, want_scores)
    seen = ref.matrix[np.searchsorted(ref.user_ids, users)]
    assert not any(np.isin(ref.item_ids[seen[r].indices], ids[r]).any() for r in range(users.size))
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.recommend(users, 6)[1], scores)
    model.save(tmp_path / "als.npz")
    loaded = fastrec.ALS.load(tmp_path / "als.npz")
    assert_same_model(loaded, model, eps=0)
    assert_same_model(loaded, want)
    # served on the workers from the users' rows there, as one machine serves user_items
    out = fdask.recommend(model, n=4, interactions=data, block_size=100).compute()
    ids, scores = want.recommend(ref.user_ids, 4, user_items=ref.matrix)
    keep = np.isfinite(scores).ravel()
    np.testing.assert_array_equal(out["user"].to_numpy(), np.repeat(ref.user_ids, 4)[keep])
    got_ids = np.empty(ids.shape, dtype=object)  # the empty slots (-inf) are compared by score only
    got_scores = np.full(scores.shape, -np.inf, dtype=scores.dtype)
    got_ids.ravel()[keep] = out["item"].to_numpy()
    got_scores.ravel()[keep] = out["score"].to_numpy()
    assert_same_lists(got_ids, got_scores, ids.astype(object), scores)


def test_errors_name_the_fix(client, frames):
    frame, _ = frames
    data = dask_data(frame)
    with pytest.raises(TypeError, match=r"fastrec\.dask\.interactions\(frame"):
        fdask.fit(fastrec.ALS(), dd.from_pandas(frame, npartitions=2))
    with pytest.raises(TypeError, match="DaskInteractions, got DataFrame"):
        fdask.fit(fastrec.ALS(), frame)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['n_blocks'\]; ALS takes block_size"):
        fdask.fit(fastrec.ALS(), data, n_blocks=4)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        fdask.fit(fastrec.ALS(), data, block_size=0)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        fdask.fit(fastrec.ALS(), data, n_threads=0)
    with pytest.raises(ValueError, match="solver='lu' is not one of"):
        fdask.fit(fastrec.ALS(solver="lu"), data)
    negative = frame.assign(plays=frame["plays"] - 2.0)
    with pytest.raises(ValueError, match="negative values"):  # raised in a task, reported here
        fdask.fit(fastrec.ALS(n_iterations=1), dask_data(negative))
    huge = frame.assign(plays=np.float32(1e37))
    with pytest.raises(ValueError, match="could overflow float32"):
        fastrec.ALS(n_iterations=1).fit(Interactions.from_frame(huge, rating_col="plays"))
    with pytest.raises(ValueError, match="could overflow float32"):
        fdask.fit(fastrec.ALS(n_iterations=1), dask_data(huge))
    empty = fdask.interactions(dd.from_pandas(frame.iloc[:0], npartitions=1), value="plays")
    with pytest.raises(ValueError, match="no interactions"):
        fdask.fit(fastrec.ALS(), empty)


def test_fit_survives_a_worker_killed_mid_fit(client, frames, monkeypatch):
    import os
    import signal

    frame, ref = frames
    params = dict(n_factors=8, n_iterations=4, random_state=9)
    want = fastrec.ALS(**params).fit(ref)
    compute, calls = _als._compute, []

    def compute_then_kill(objs, c):
        calls.append(len(objs))
        if len(calls) != 4:  # the statistics, then the half-steps: the 4th is the users' second
            return compute(objs, c)
        futures = c.compute(objs)
        victim, pid = sorted(c.run(os.getpid).items())[0]
        os.kill(pid, signal.SIGKILL)  # with its share of the persisted blocks and the factors sent
        return c.gather(futures)

    monkeypatch.setattr(_als, "_compute", compute_then_kill)
    got = fdask.fit(fastrec.ALS(**params), dask_data(frame), block_size=30)
    assert len(calls) > 4
    assert_same_model(got, want)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the tests that follow
