"""train_test_split: disjoint parts whose union is the input, per-method properties, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fastrec.datasets import make_ratings, train_test_split


def triples(seed=0, n_users=50, n_items=40, n=600):
    R = make_ratings(n_users, n_items, n, seed=seed).tocoo()
    rng = np.random.default_rng(seed)
    times = rng.integers(0, 200, R.nnz)  # repeated timestamps: ties
    return R.row.astype(np.int64), R.col.astype(np.int64), R.data, times


def as_set(users, items):
    return set(zip(users.tolist(), items.tolist()))


@pytest.mark.parametrize("method", ["random", "leave_k_out", "leave_last_k_out", "temporal"])
def test_tuple_parts_are_disjoint_and_cover_the_input(method):
    users, items, values, times = triples()
    train, test = train_test_split((users, items, values, times), 0.25, method=method, k=2, seed=3)
    assert len(train) == len(test) == 4
    assert train[0].size + test[0].size == users.size
    assert as_set(train[0], train[1]).isdisjoint(as_set(test[0], test[1]))
    assert as_set(train[0], train[1]) | as_set(test[0], test[1]) == as_set(users, items)
    lookup = {(u, i): (v, t) for u, i, v, t in zip(users, items, values, times)}
    for part in (train, test):  # rows travel whole
        for u, i, v, t in zip(*part):
            assert lookup[(u, i)] == (v, t)


def test_random_split_size_and_seed():
    users, items, values, _ = triples()
    train, test = train_test_split((users, items, values), 0.2, seed=0)
    assert test[0].size == round(0.2 * users.size)
    again = train_test_split((users, items, values), 0.2, seed=0)
    other = train_test_split((users, items, values), 0.2, seed=1)
    np.testing.assert_array_equal(again[1][0], test[0])
    np.testing.assert_array_equal(again[1][1], test[1])
    assert as_set(*other[1][:2]) != as_set(*test[:2])
    _, counted = train_test_split((users, items, values), 37, seed=0)
    assert counted[0].size == 37


def test_leave_k_out_counts_per_user():
    users, items, values, times = triples(n=400)
    for method in ("leave_k_out", "leave_last_k_out"):
        train, test = train_test_split((users, items, values, times), method=method, k=3, seed=0)
        total = np.bincount(users, minlength=50)
        held = np.bincount(test[0], minlength=50)
        np.testing.assert_array_equal(held, np.where(total > 3, 3, 0))
        assert np.all(np.bincount(train[0], minlength=50)[total > 0] >= 1)


def test_leave_last_k_out_takes_each_users_latest():
    users, items, values, times = triples()
    train, test = train_test_split((users, items, values, times), method="leave_last_k_out", k=2)
    for u in np.unique(test[0]):
        assert train[3][train[0] == u].max() <= test[3][test[0] == u].min()
    # deterministic without a seed
    again = train_test_split((users, items, values, times), method="leave_last_k_out", k=2)
    np.testing.assert_array_equal(again[1][1], test[1])


def test_leave_k_out_is_random_but_seeded():
    users, items, values, _ = triples()
    a = train_test_split((users, items, values), method="leave_k_out", k=2, seed=5)[1]
    b = train_test_split((users, items, values), method="leave_k_out", k=2, seed=5)[1]
    c = train_test_split((users, items, values), method="leave_k_out", k=2, seed=6)[1]
    assert as_set(*a[:2]) == as_set(*b[:2]) != as_set(*c[:2])


def test_temporal_split_is_a_time_cut():
    users, items, values, times = triples()
    train, test = train_test_split((users, items, values), 0.3, method="temporal", timestamps=times)
    assert len(train) == 3
    order = np.lexsort((np.arange(times.size), times))
    cut = order[times.size - test[0].size :]
    assert as_set(*test[:2]) == as_set(users[cut], items[cut])
    assert times[order[: times.size - test[0].size]].max() <= times[cut].min()


def test_matrix_input_with_timestamp_matrix():
    R = make_ratings(60, 30, 500, seed=1)
    stamps = R.copy()
    stamps.data = np.random.default_rng(0).permutation(R.nnz).astype(float)
    before = R.copy()
    train, test = train_test_split(R, 0.2, method="temporal", timestamps=stamps)
    assert sp.isspmatrix_csr(train) and train.shape == test.shape == R.shape
    assert train.nnz + test.nnz == R.nnz
    assert (train + test != R).nnz == 0 and train.multiply(test).nnz == 0
    latest = stamps.data >= np.sort(stamps.data)[R.nnz - test.nnz]  # distinct stamps: exact cut
    rows = np.repeat(np.arange(60), np.diff(R.indptr))
    expected = sp.csr_matrix((R.data[latest], (rows[latest], R.indices[latest])), shape=R.shape)
    assert (test != expected).nnz == 0
    assert (R != before).nnz == 0
    # the same split from the aligned array, and the input's sparse format is kept
    aligned = train_test_split(R, 0.2, method="temporal", timestamps=stamps.data)
    assert (aligned[1] != test).nnz == 0
    coo_train, coo_test = train_test_split(R.tocoo(), 0.2, seed=0)
    assert coo_train.format == "coo" and coo_train.nnz + coo_test.nnz == R.nnz


def test_dataframe_input():
    pd = pytest.importorskip("pandas")
    users, items, values, times = triples()
    frame = pd.DataFrame(
        {"user_id": users, "item_id": items, "rating": values, "timestamp": times},
        index=np.arange(users.size) + 1000,
    )
    train, test = train_test_split(frame, method="leave_last_k_out", k=1)
    assert isinstance(train, pd.DataFrame) and len(train) + len(test) == len(frame)
    assert set(train.index).isdisjoint(test.index) and set(train.index) | set(test.index) == set(frame.index)
    latest = frame.sort_values(["timestamp"], kind="stable").groupby("user_id").tail(1)
    counts = frame.groupby("user_id").size()
    expected = latest[latest["user_id"].map(counts) > 1]
    assert set(test.index) == set(expected.index)


def test_bad_input():
    users, items, values, times = triples()
    data = (users, items, values)
    with pytest.raises(ValueError, match="method='time' is not one of"):
        train_test_split(data, method="time")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        train_test_split(data, 1.5)
    with pytest.raises(ValueError, match="must leave ratings on both sides"):
        train_test_split(data, users.size)
    with pytest.raises(TypeError, match="test_size must be a fraction"):
        train_test_split(data, "20%")
    with pytest.raises(ValueError, match="needs timestamps"):
        train_test_split(data, method="temporal")
    with pytest.raises(ValueError, match="one value per rating"):
        train_test_split(data, method="temporal", timestamps=times[:-1])
    R = make_ratings(20, 10, 50, seed=0)
    other = make_ratings(20, 10, 50, seed=1)
    with pytest.raises(ValueError, match="same shape and stored pattern"):
        train_test_split(R, method="temporal", timestamps=other)
    with pytest.raises(ValueError, match="same length"):
        train_test_split((users, items[:-1], values))
    with pytest.raises(TypeError, match="data must be a users x items"):
        train_test_split(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        train_test_split(data, method="leave_k_out", k=0)


# --- Interactions in, Interactions out ---


def interactions(seed=0, with_times=True):
    from fastrec.datasets import Interactions

    users, items, values, times = triples(seed)
    pd = pytest.importorskip("pandas")
    titles = pd.DataFrame({"title": [f"film {i}" for i in range(40)]}, index=np.arange(40))
    return Interactions.from_arrays(
        [f"u{u}" for u in users],
        items,
        values,
        timestamps=times if with_times else None,
        item_table=titles,
        name="toy",
    )


def rating_set(data):
    users, items, values = data.to_triples()
    times = data.timestamps.data if data.timestamps is not None else np.zeros(values.size)
    return set(zip(users.tolist(), items.tolist(), values.tolist(), times.tolist()))


@pytest.mark.parametrize("method", ["random", "leave_k_out", "leave_last_k_out", "temporal"])
def test_interactions_parts_keep_ids_side_tables_and_times(method):
    from fastrec.datasets import Interactions

    data = interactions()
    before = data.matrix.copy()
    train, test = train_test_split(data, 0.25, method=method, k=2, seed=3)
    assert isinstance(train, Interactions) and isinstance(test, Interactions)
    for part in (train, test):
        assert part.shape == data.shape and part.name == "toy"
        np.testing.assert_array_equal(part.user_ids, data.user_ids)
        np.testing.assert_array_equal(part.item_ids, data.item_ids)
        assert part.items is data.items and part.timestamps is not None
    # every rating, with its time, lands on exactly one side
    assert rating_set(train).isdisjoint(rating_set(test))
    assert rating_set(train) | rating_set(test) == rating_set(data)
    assert (data.matrix != before).nnz == 0


def test_interactions_split_equals_the_split_of_its_triples():
    data = interactions()
    users, items, values = data.to_triples()
    times = data.timestamps.data
    for method in ("random", "leave_k_out", "leave_last_k_out", "temporal"):
        train, test = train_test_split(data, 0.3, method=method, k=2, seed=7)
        _, expected = train_test_split((users, items, values, times), 0.3, method=method, k=2, seed=7)
        got = test.to_triples()
        assert as_set(got[0], got[1]) == as_set(expected[0], expected[1])


def test_interactions_temporal_split_uses_their_timestamps():
    data = interactions()
    train, test = train_test_split(data, 0.3, method="temporal")
    assert train.timestamps.data.max() <= test.timestamps.data.min()
    assert test.nnz == round(0.3 * data.nnz)
    # other times given explicitly win over the stored ones (aligned array or matrix)
    reverse = -data.timestamps.data
    kept, flipped = train_test_split(data, 0.3, method="temporal", timestamps=reverse)
    assert flipped.timestamps.data.max() <= kept.timestamps.data.min()  # the earliest went out
    stamps = data.timestamps.copy()
    stamps.data = reverse
    _, from_matrix = train_test_split(data, 0.3, method="temporal", timestamps=stamps)
    assert (from_matrix.matrix != flipped.matrix).nnz == 0


def test_interactions_without_timestamps():
    data = interactions(with_times=False)
    train, test = train_test_split(data, 0.2, seed=0)
    assert train.timestamps is None and train.nnz + test.nnz == data.nnz
    with pytest.raises(ValueError, match="needs timestamps, and these Interactions have none"):
        train_test_split(data, method="temporal")
    with pytest.raises(ValueError, match="one value per rating"):
        train_test_split(data, method="leave_last_k_out", timestamps=np.arange(3))
