"""fastrec.cluster.profile and the embeddings generator: values checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fastrec.cluster import ClusterProfile, profile
from fastrec.datasets import make_user_embeddings


def test_dense_profile_values():
    X = np.array([[1.0, 0.0, 2.0], [1.0, 0.2, 2.0], [0.0, 1.0, 2.0], [0.0, 0.8, 2.0]])
    age = np.array([20.0, 30.0, 50.0, np.nan])
    out = profile([0, 0, 1, 1], X, ["sport", "news", "const"], top=2, side={"age": age})
    assert [p.cluster for p in out] == [0, 1]
    assert [p.size for p in out] == [2, 2]
    assert out[0].share == 0.5
    # column means (0.5, 0.5, 2) and stds (0.5, 0.4123, 0); constant columns score 0
    sport, news = out[0].top
    assert sport[0] == "sport" and sport[1] == pytest.approx(1.0) and sport[2] == pytest.approx(1.0)
    assert news[0] == "const" and news[2] == 0.0  # z 0 beats news's negative z
    assert out[1].top[0][0] == "news"
    assert out[1].top[0][1] == pytest.approx(0.9)
    assert out[1].top[0][2] == pytest.approx((0.9 - 0.5) / np.std([0.0, 0.2, 1.0, 0.8]))
    assert out[0].side_means == {"age": 25.0}
    assert out[1].side_means == {"age": 50.0}  # NaN ignored
    text = str(out[1])
    assert text.startswith("cluster 1: 2 users (50.0%); strongest features: news (0.9")
    assert "mean age 50" in text


def test_sparse_profile_ranks_over_represented_items():
    # users 0-2 in cluster 0 all have item 2; item 0 is everywhere; item 1 only cluster 1
    rows = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    cols = [0, 2, 0, 2, 0, 2, 0, 1, 0, 1, 0]
    R = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 3))
    out = profile(np.array([0, 0, 0, 1, 1, 1]), R, ["a", "b", "c"], top=3)
    assert isinstance(out[0], ClusterProfile) and out[0].kind == "items"
    # cluster 0: c has count 3, overall rate 3/6 -> lift (3+1)/(3*0.5+1) = 1.6
    # a has count 3, rate 1 -> (3+1)/(3+1) = 1.0; b is absent in cluster 0 (not listed)
    assert [(name, count) for name, count, _ in out[0].top] == [("c", 3.0), ("a", 3.0)]
    assert out[0].top[0][2] == pytest.approx(1.6)
    assert out[0].top[1][2] == pytest.approx(1.0)
    assert out[1].top[0][0] == "b"
    assert out[1].top[0][2] == pytest.approx((2 + 1) / (3 * 2 / 6 + 1))
    assert "over-represented items: c (lift 1.60)" in str(out[0])


def test_profile_empty_cluster_id_and_top_zero():
    X = np.arange(6, dtype=float).reshape(3, 2)
    out = profile([0, 2, 2], X, top=0)
    assert [p.size for p in out] == [1, 0, 2]
    assert all(p.top == [] for p in out)


def test_profile_bad_input():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="labels has shape"):
        profile([0, 1], X)
    with pytest.raises(TypeError, match="labels must be integers"):
        profile([0.5, 1, 0], X)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        profile([0, -1, 0], X)
    with pytest.raises(ValueError, match="feature_names has 3 entries"):
        profile([0, 1, 0], X, ["a", "b", "c"])
    with pytest.raises(ValueError, match="side column 'age' has shape"):
        profile([0, 1, 0], X, side={"age": [1, 2]})
    with pytest.raises(TypeError, match="side must be a mapping"):
        profile([0, 1, 0], X, side=[1, 2, 3])


def test_make_user_embeddings_is_seeded_gaussian_mixture():
    X, seg = make_user_embeddings(5000, 4, n_segments=3, cluster_std=0.5, seed=7)
    assert X.shape == (5000, 4) and X.dtype == np.float32
    X2, seg2 = make_user_embeddings(5000, 4, n_segments=3, cluster_std=0.5, seed=7)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(seg, seg2)
    assert set(np.unique(seg)) == {0, 1, 2}
    for s in range(3):  # within-segment spread is cluster_std
        assert X[seg == s].std(axis=0) == pytest.approx(np.full(4, 0.5), rel=0.1)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        make_user_embeddings(10, 2, dtype=np.int32)


def test_dense_profile_of_extreme_float64_values_matches_unit_data():
    X = np.array([[1.0, 0.0, 2.0], [1.0, 0.2, 2.0], [0.0, 1.0, 2.0], [0.0, 0.8, 2.0]])
    labels = [0, 0, 1, 1]
    unit = profile(labels, X, top=3)
    for e in (900, -900):  # variances near 1e540 and 1e-540: beyond float64
        scaled = profile(labels, np.ldexp(X, e), top=3)
        for a, b in zip(scaled, unit):
            assert [name for name, _, _ in a.top] == [name for name, _, _ in b.top]
            for (_, value_a, z_a), (_, value_b, z_b) in zip(a.top, b.top):
                assert np.ldexp(value_a, -e) == pytest.approx(value_b, rel=1e-14)
                assert z_a == pytest.approx(z_b, rel=1e-14)
