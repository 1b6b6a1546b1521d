"""Kernels and shared models used from many Python threads at once.

Every kernel releases the GIL (C++) or runs ``nogil`` (Numba), so these calls
really overlap.  Each test compares what the threads got with single-threaded
results, checks that nothing was lost, and that the process's thread limits are
as they were.
"""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import fastrec
from fastrec.datasets import make_ratings

THREADS = 8
BACKENDS = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]


def _limits():
    return sorted((lib["filepath"], lib["num_threads"]) for lib in threadpool_info())


def _in_threads(calls):
    """Run every call of ``calls`` on a pool of THREADS threads; their results in order."""
    start = threading.Barrier(min(THREADS, len(calls)))

    def run(call):
        try:
            start.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        return call()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, calls))


@pytest.fixture
def limits_unchanged():
    before, numba_before = _limits(), numba.get_num_threads()
    yield
    known = {path for path, _ in before}
    assert [entry for entry in _limits() if entry[0] in known] == before
    assert numba.get_num_threads() == numba_before


def _assert_same(got, expected):
    for a, b in zip(got, expected):
        if sp.issparse(b):
            assert (a != b).nnz == 0 and np.array_equal(a.indices, b.indices)
        elif isinstance(b, tuple):
            _assert_same(a, b)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_kernel_from_eight_threads_matches_single_threaded(backend, limits_unchanged):
    rng = np.random.default_rng(0)
    R = make_ratings(400, 300, 8000, seed=1)
    U = rng.normal(size=(200, 16)).astype(np.float32)
    V = rng.normal(size=(300, 16)).astype(np.float32)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    km = fastrec.KMeans(n_clusters=5, random_state=0, backend=backend).fit(X)
    table = fastrec.topn(U, V, n=10, backend=backend)[0]
    test = make_ratings(200, 300, 2000, seed=2)
    jobs = [
        lambda: fastrec.cosine_topk(R.T, k=10, n_threads=2, backend=backend),
        lambda: fastrec.cosine_topk(R, k=5, shrink=2.0, n_threads=1, backend=backend),
        lambda: fastrec.topn(U, V, n=10, exclude=R[:200], n_threads=2, backend=backend),
        lambda: fastrec.topn(U, V, n=7, candidates=np.arange(0, 300, 3), backend=backend),
        lambda: km.predict(X),
        lambda: km.transform(X[:50]),
        lambda: fastrec.metrics.ndcg_at_k(table, test, k=10, backend=backend),
        lambda: fastrec.metrics.precision_at_k(table, test, k=5, backend=backend),
    ]
    expected = [job() for job in jobs]
    for _ in range(3):
        got = _in_threads(jobs * 2)
        _assert_same(got, expected * 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_model_serves_eight_reader_threads(backend, limits_unchanged):
    R = make_ratings(300, 200, 6000, seed=3)
    users = np.arange(0, 300, 7)
    models = [
        fastrec.MatrixFactorization(n_factors=8, n_epochs=3, random_state=0, backend=backend).fit(R),
        fastrec.ItemKNN(k=20, backend=backend).fit(R),
        fastrec.UserKNN(k=20, backend=backend).fit(R),
    ]
    for model in models:
        jobs = [lambda m=model: m.recommend(users, n=10)]
        if isinstance(model, fastrec.MatrixFactorization):
            jobs.append(lambda m=model: m.predict(users, users % 200))
        if isinstance(model, fastrec.ItemKNN):
            jobs.append(lambda m=model: m.similar_items(np.arange(50), n=5))
        expected = [job() for job in jobs]
        got = _in_threads(jobs * (THREADS // len(jobs)))
        _assert_same(got, expected * (THREADS // len(jobs)))


def test_fold_in_beside_readers_loses_no_user_and_shows_no_half_model():
    R = make_ratings(200, 150, 4000, seed=4)
    model = fastrec.MatrixFactorization(n_factors=8, n_epochs=3, random_state=0).fit(R)
    reference = copy.deepcopy(model)
    new_users = [(1000 + u, np.arange(u % 50, u % 50 + 10), np.full(10, 1 + u % 5)) for u in range(64)]
    for user, items, ratings in new_users:
        reference.fold_in(user, items, ratings)
    errors: list[BaseException] = []
    stop = threading.Event()

    def fold(part):
        for user, items, ratings in part:
            model.fold_in(user, items, ratings)

    def read():
        while not stop.is_set():
            try:
                ids, scores = model.recommend(np.arange(10), n=5)
                assert ids.shape == (10, 5) and np.isfinite(scores).all()
                model.predict(np.arange(10), np.arange(10))
            except BaseException as exc:  # reported after the threads end
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(THREADS // 2)]
    for thread in readers:
        thread.start()
    parts = [new_users[i :: THREADS // 2] for i in range(THREADS // 2)]
    with ThreadPoolExecutor(max_workers=THREADS // 2) as pool:
        list(pool.map(fold, parts))
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    assert model.n_users_ == reference.n_users_ == 200 + len(new_users)
    ids = [user for user, _, _ in new_users]
    # Each fold-in solves for its user alone from the frozen item side: the same solve
    # in any order, so the same bits.
    np.testing.assert_array_equal(
        model.predict(ids, np.zeros(len(ids), dtype=int)),
        reference.predict(ids, np.zeros(len(ids), dtype=int)),
    )
    for user in ids:
        np.testing.assert_array_equal(
            model.user_factors_[model._user_map.lookup(np.array([user]))[0]],
            reference.user_factors_[reference._user_map.lookup(np.array([user]))[0]],
        )
    for user, items, _ in new_users[:8]:
        got = model.recommend(user, n=20)[0]
        assert not set(got.tolist()) & set(items.tolist())  # its ratings count as seen


@pytest.mark.parametrize(
    "make",
    [
        lambda: fastrec.MatrixFactorization(n_factors=8, n_epochs=2, random_state=0),
        lambda: fastrec.ItemKNN(k=10),
        lambda: fastrec.UserKNN(k=10),
    ],
)
def test_refit_beside_readers_gives_old_or_new_model_never_a_mix(make):
    R1 = make_ratings(120, 80, 1500, seed=5)
    R2 = make_ratings(150, 90, 2000, seed=6)
    model = make().fit(R1)
    old = model.recommend(np.arange(100), n=5)
    new = make().fit(R2).recommend(np.arange(100), n=5)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.append(model.recommend(np.arange(100), n=5))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for data in (R2, R1, R2):
        model.fit(data)
    stop.set()
    for thread in readers:
        thread.join()
    assert seen
    for ids, scores in seen:
        assert any(np.array_equal(ids, ref[0]) and np.array_equal(scores, ref[1]) for ref in (old, new))


def test_pickled_model_keeps_working_under_threads():
    R = make_ratings(200, 150, 4000, seed=7)
    model = pickle.loads(
        pickle.dumps(fastrec.MatrixFactorization(n_factors=8, n_epochs=2, random_state=0).fit(R))
    )
    expected = model.recommend(np.arange(50), n=5)
    got = _in_threads([lambda: model.recommend(np.arange(50), n=5)] * THREADS)
    _assert_same(got, [expected] * THREADS)
