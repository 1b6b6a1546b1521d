"""Interactions: construction from triples, duplicates, id lookups, views, and use by MF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fastrec import MatrixFactorization
from fastrec.datasets import Interactions
from fastrec.datasets._triples import rating_triples


def random_triples(seed=0, n=400, n_users=30, n_items=50, strings=False):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n) * 7 + 3  # sparse, unsorted raw ids
    items = rng.integers(0, n_items, n) * 5 + 1
    ratings = rng.integers(1, 6, n).astype(np.float64)
    times = rng.permutation(n).astype(np.int64) + 1_000_000
    if strings:
        users = np.array([f"u{u}" for u in users])
    return users, items, ratings, times


def brute_force_last(users, items, ratings, times):
    """(user, item) -> rating of the largest timestamp (input order on ties)."""
    best: dict = {}
    for k, (u, i, r, t) in enumerate(zip(users, items, ratings, times)):
        key = (u, i)
        if key not in best or (t, k) >= best[key][0]:
            best[key] = ((t, k), r, t)
    return {key: (r, t) for key, (_, r, t) in best.items()}


def as_dict(data: Interactions) -> dict:
    users, items, ratings = data.to_triples()
    return {(u, i): r for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist())}


@pytest.mark.parametrize("strings", [False, True])
def test_from_arrays_matches_brute_force_and_keeps_the_latest_duplicate(strings):
    users, items, ratings, times = random_triples(strings=strings)
    data = Interactions.from_arrays(users, items, ratings, timestamps=times)
    expected = brute_force_last(users.tolist(), items.tolist(), ratings.tolist(), times.tolist())
    assert as_dict(data) == {k: v[0] for k, v in expected.items()}
    assert data.nnz == len(expected) < users.size  # duplicates were merged
    np.testing.assert_array_equal(data.user_ids, np.unique(users))
    np.testing.assert_array_equal(data.item_ids, np.unique(items))
    assert data.matrix.dtype == np.float32 and data.matrix.has_sorted_indices
    # timestamps share the sparsity pattern and hold the kept rating's time
    np.testing.assert_array_equal(data.timestamps.indptr, data.matrix.indptr)
    np.testing.assert_array_equal(data.timestamps.indices, data.matrix.indices)
    u, i, _ = data.to_triples()
    assert [expected[(a, b)][1] for a, b in zip(u.tolist(), i.tolist())] == data.timestamps.data.tolist()


def test_duplicate_policies_without_timestamps():
    users, items, values = [1, 1, 2, 1], [5, 5, 5, 6], [1.0, 4.0, 2.0, 3.0]
    last = Interactions.from_arrays(users, items, values)
    assert as_dict(last) == {(1, 5): 4.0, (2, 5): 2.0, (1, 6): 3.0}
    summed = Interactions.from_arrays(users, items, values, duplicates="sum")
    assert as_dict(summed) == {(1, 5): 5.0, (2, 5): 2.0, (1, 6): 3.0}
    with pytest.raises(ValueError, match=r"pair \(user 1, item 5\) occurs more than once"):
        Interactions.from_arrays(users, items, values, duplicates="error")
    with pytest.raises(ValueError, match="duplicates='max' is not one of"):
        Interactions.from_arrays(users, items, values, duplicates="max")


def test_implicit_and_datetime_timestamps():
    data = Interactions.from_arrays(["a", "b"], ["x", "x"], timestamps=["1970-01-02", "1970-01-01 00:01:00"])
    assert data.matrix.data.tolist() == [1.0, 1.0]
    assert data.timestamps.data.tolist() == [86400, 60]
    with pytest.raises(ValueError, match="timestamps must be numbers"):
        Interactions.from_arrays(["a"], ["x"], timestamps=["not a date"])


def test_lookups_labels_and_repr():
    items_table = pd.DataFrame({"title": ["Alpha", "Beta"]}, index=pd.Index([10, 20], name="item"))
    data = Interactions.from_arrays(
        ["ann", "bob", "ann"], [10, 20, 30], [4.0, 3.0, 5.0], item_table=items_table, name="tiny"
    )
    np.testing.assert_array_equal(data.user_index(["bob", "ann"]), [1, 0])
    np.testing.assert_array_equal(data.item_index([30, 10]), [2, 0])
    np.testing.assert_array_equal(data.item_index([10, 99], strict=False), [0, -1])
    with pytest.raises(ValueError, match="contains 99, which is not a known id"):
        data.item_index([10, 99])
    # item 30 has no row in the side table: its label falls back to the raw id
    labels = data.item_labels
    assert isinstance(labels, np.ndarray) and labels.shape == (3,)
    assert labels.tolist() == ["Alpha", "Beta", "30"]
    assert labels[[2, 0]].tolist() == ["30", "Alpha"] and labels[1] == "Beta"
    with pytest.raises(ValueError, match="read-only"):
        labels[0] = "changed"
    assert data.item_labels[0] == "Alpha"
    # the former method form still answers, with a warning that says what to write
    with pytest.warns(DeprecationWarning, match=r"data.item_labels\[columns\] instead"):
        assert data.item_labels([1, -1]) == ["Beta", ""]
    with pytest.warns(DeprecationWarning):
        assert data.item_labels() == ["Alpha", "Beta", "30"]
    bare = Interactions.from_arrays([1], ["x"], [2.0])
    assert bare.item_labels.tolist() == ["x"]
    assert (data.n_users, data.n_items, data.nnz, data.shape) == (2, 3, 3, (2, 3))
    text = repr(data)
    assert text.startswith("Interactions 'tiny': 2 users x 3 items, 3 ratings")
    assert "ratings 3 to 5" in text and "items[title]" in text


def test_to_frame_round_trip_and_subset():
    users, items, ratings, times = random_triples(seed=1, strings=True)
    data = Interactions.from_arrays(users, items, ratings, timestamps=times)
    frame = data.to_frame()
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    again = Interactions.from_frame(frame, timestamp_col="timestamp")
    assert (again.matrix != data.matrix).nnz == 0
    np.testing.assert_array_equal(again.user_ids, data.user_ids)
    np.testing.assert_array_equal(again.timestamps.toarray(), data.timestamps.toarray())
    mask = np.random.default_rng(0).random(data.nnz) < 0.3
    part = data.subset(mask)
    assert part.shape == data.shape and part.nnz == mask.sum()
    full = as_dict(data)
    assert as_dict(part) == {key: full[key] for key, keep in zip(full, mask) if keep}  # CSR order
    with pytest.raises(ValueError, match="one flag per rating"):
        data.subset(np.ones(3, dtype=bool))


def test_constructor_checks_and_never_modifies_input():
    R = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    before = R.copy()
    data = Interactions(R, ["a", "b"], [7, 8])
    assert (R != before).nnz == 0 and data.matrix.dtype == np.float32
    with pytest.raises(ValueError, match="user_ids has 3 ids but matrix has 2 rows"):
        Interactions(R, ["a", "b", "c"], [7, 8])
    with pytest.raises(ValueError, match="item_ids contains repeated ids"):
        Interactions(R, ["a", "b"], [7, 7])
    with pytest.raises(ValueError, match="timestamps must have the same shape and stored entries"):
        Interactions(R, ["a", "b"], [7, 8], timestamps=sp.csr_matrix(np.ones((2, 2))))
    with pytest.raises(ValueError, match="users has 1 rows but there are 2 ids"):
        Interactions(R, ["a", "b"], [7, 8], users=pd.DataFrame({"age": [3]}))
    with pytest.raises(TypeError, match="matrix must be a scipy sparse matrix"):
        Interactions(np.ones((2, 2)), ["a", "b"], [7, 8])
    with pytest.raises(ValueError, match="user_col='who' is not a column"):
        Interactions.from_frame(pd.DataFrame({"user": [1], "item": [2], "rating": [3.0]}), user_col="who")


def test_rating_triples_keeps_raw_ids():
    users, items, ratings, _ = random_triples(seed=2, strings=True)
    data = Interactions.from_arrays(users, items, ratings)
    triples = rating_triples(data)
    assert triples.shape is None
    expected_users, expected_items, expected_ratings = data.to_triples()
    np.testing.assert_array_equal(triples.users, expected_users)
    np.testing.assert_array_equal(triples.items, expected_items)
    np.testing.assert_array_equal(triples.ratings, expected_ratings)
    empty = Interactions(sp.csr_matrix((1, 1), dtype=np.float32), [0], [0])
    with pytest.raises(ValueError, match="hold no ratings"):
        rating_triples(empty)


def test_matrix_factorization_fits_from_interactions():
    users, items, ratings, _ = random_triples(seed=3, n=2000, strings=True)
    data = Interactions.from_arrays(users, items, ratings)
    params = dict(n_factors=4, n_epochs=3, random_state=0, n_threads=1)
    from_data = MatrixFactorization(**params).fit(data)
    from_tuple = MatrixFactorization(**params).fit(data.to_triples())
    np.testing.assert_array_equal(from_data.user_ids_, data.user_ids)  # raw ids, not row numbers
    np.testing.assert_array_equal(from_data.item_ids_, data.item_ids)
    np.testing.assert_array_equal(from_data.user_factors_, from_tuple.user_factors_)
    pred = from_data.predict(["u3", "u10"], [1, 6])
    np.testing.assert_array_equal(pred, from_tuple.predict(["u3", "u10"], [1, 6]))
    recommended, _ = from_data.recommend("u3", n=5)
    seen = set(data.item_ids[data.matrix[data.user_index(["u3"])[0]].indices].tolist())
    assert not seen & set(recommended.tolist())
