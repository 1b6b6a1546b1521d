"""fastrec.dask against the single-machine results, on a small two-process LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask")  # the optional extra fastrec[dask]
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import dask.dataframe as dd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import fastrec  # noqa: E402
import fastrec.dask as fdask  # noqa: E402
from fastrec.datasets import Interactions  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
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


def test_interactions_errors(client):
    frame = ratings_frame(n=50)
    with pytest.raises(TypeError, match="dask.dataframe.from_pandas"):
        fdask.interactions(frame)
    with pytest.raises(ValueError, match="value='score' is not a column"):
        fdask.interactions(dd.from_pandas(frame, npartitions=2), value="score")
    with pytest.raises(ValueError, match="block_size"):
        fdask.interactions(dd.from_pandas(frame, npartitions=2)).blocks(0)
    twice = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="more than once|repeated|twice"):
        dask.compute(
            *fdask.interactions(dd.from_pandas(twice, npartitions=2), duplicates="error").blocks(1000)
        )
