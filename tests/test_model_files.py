"""Saved model files: damaged or inconsistent files raise ValueError; good files round-trip."""

from __future__ import annotations

import ast
import io
import zipfile

import numpy as np
import pytest

from fastrec import ContentKNN, Hybrid, ItemKNN, MatrixFactorization, UserKNN
from fastrec.datasets import make_ratings

USERS = np.arange(40)


def _ratings():
    R = make_ratings(40, 30, 500, seed=5).tocoo()
    users = np.array([f"u{u}" for u in R.row])  # string ids on one side, integers on the other
    return users, R.col.astype(np.int64), R.data


def _features():
    return make_ratings(30, 8, 120, seed=6)


def _fitted(name):
    data = _ratings()
    if name == "mf":
        return MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, n_threads=1).fit(data)
    if name == "itemknn":
        return ItemKNN(k=5).fit(data)
    if name == "userknn":
        return UserKNN(k=5).fit(data)
    if name == "content":
        return ContentKNN(_features(), item_ids=np.arange(30)).fit(data)
    return Hybrid(
        [
            (ItemKNN(k=5), 0.6),
            (MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, n_threads=1), 0.4),
        ]
    ).fit(data)


NAMES = ["mf", "itemknn", "userknn", "content", "hybrid"]


@pytest.fixture(scope="module", params=NAMES)
def saved(request, tmp_path_factory):
    """(model, path of its saved file, the file's members)."""
    model = _fitted(request.param)
    path = tmp_path_factory.mktemp(request.param) / "model.npz"
    model.save(path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    return model, path, members


def _users(model):
    return np.array([f"u{u}" for u in range(40)])


def _same_recommendations(a, b):
    users = _users(a)
    for x, y in zip(a.recommend(users, n=5), b.recommend(users, n=5)):
        np.testing.assert_array_equal(x, y)


def _rewrite(tmp_path, members, **changes):
    """A copy of ``members`` with entries replaced (None removes one), saved as a new file."""
    out = {name: value for name, value in {**members, **changes}.items() if value is not None}
    path = tmp_path / "changed.npz"
    np.savez(path, **out)
    return path


def test_good_file_round_trips(saved, tmp_path):
    model, path, _ = saved
    loaded = type(model).load(path)
    _same_recommendations(model, loaded)
    if isinstance(model, MatrixFactorization):
        users, items = _users(model), np.arange(30)
        np.testing.assert_array_equal(
            model.predict(np.repeat(users, 30), np.tile(items, 40)),
            loaded.predict(np.repeat(users, 30), np.tile(items, 40)),
        )
        for key in (
            "n_factors",
            "n_epochs",
            "lr",
            "reg",
            "lr_bias",
            "reg_bias",
            "init_std",
            "biased",
            "non_negative",
            "clip",
            "random_state",
        ):
            assert getattr(loaded, key) == getattr(model, key), key
    buffer = io.BytesIO(path.read_bytes())  # a file object loads the same
    _same_recommendations(model, type(model).load(buffer))


def test_empty_file(saved, tmp_path):
    model, _, _ = saved
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz is not a fastrec model file"):
        type(model).load(tmp_path / "empty.npz")


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, tmp_path, fraction):
    model, path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: max(1, int(len(data) * fraction))])
    with pytest.raises(ValueError, match=r"cut\.npz is not a"):
        type(model).load(cut)


def _npz_with_claimed_shape(path, members, key, claimed):
    """Write ``members`` as an npz whose ``key`` header claims ``claimed`` entries (valid CRCs)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value)
            data = buffer.getvalue()
            if name == key:
                old, new = f"'shape': ({value.size},)".encode(), f"'shape': ({claimed},)".encode()
                header_end = data.index(b"\n") + 1
                header = data[:header_end].replace(old, new)
                padding = header_end - len(header)  # keep the header length: eat its spaces
                assert header.count(b" " * 8) and padding <= 0
                header = header.replace(b" " * -padding + b"\n", b"\n", 1) if padding else header
                data = header + data[header_end:]
            archive.writestr(name + ".npy", data)
    return path


@pytest.mark.parametrize("claimed", ["one more", "huge"])
def test_member_shorter_than_its_header_is_refused_before_reading(saved, tmp_path, claimed):
    model, _, members = saved
    key = "user_ids" if "user_ids" in members else "weights"
    size = members[key].size + 1 if claimed == "one more" else 10**15
    path = _npz_with_claimed_shape(tmp_path / "short.npz", members, key, size)
    with pytest.raises(
        ValueError,
        match=rf"short\.npz is not a valid saved fastrec .*'{key}' is "
        r"cut short: its header announces",
    ):
        type(model).load(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_bytes(saved, tmp_path, seed):
    model, path, _ = saved
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(seed).bytes(2000))
    with pytest.raises(ValueError, match=r"junk\.npz is not a fastrec model file"):
        type(model).load(junk)
    # a zip that is not an npz of arrays: random bytes inside an intact zip container
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start : start + 64] = np.random.default_rng(seed).bytes(64)
    junk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"junk\.npz is not a"):
        type(model).load(junk)


def test_every_member_removed(saved, tmp_path):
    model, _, members = saved
    for name in members:
        path = _rewrite(tmp_path, members, **{name: None})
        expected = (
            "is not a saved fastrec"
            if name == "format_name"
            else f"{name}.* is missing|holds .* weights but the models"
        )
        with pytest.raises(ValueError, match=expected):
            type(model).load(path)


def _last_row_dropped(members, prefix):
    """The saved CSR ``prefix`` without its last row (a consistent, shorter matrix)."""
    indptr = members[f"{prefix}_indptr"]
    end = indptr[-2]
    return {
        f"{prefix}_indptr": indptr[:-1],
        f"{prefix}_indices": members[f"{prefix}_indices"][:end],
        f"{prefix}_data": members[f"{prefix}_data"][:end],
    }


def _cases(model, members):
    """(changed members, message) of inconsistent files of this model class."""
    cases = []
    ids = members["user_ids"].copy() if "user_ids" in members else None
    if ids is not None:
        ids[1] = ids[0]
        cases.append(({"user_ids": ids}, "lists the id 'u0' more than once"))
        items = members["item_ids"].copy()
        items[-1] = items[0]
        cases.append(({"item_ids": items}, "item_ids' lists the id"))
    if isinstance(model, MatrixFactorization):
        P, Q = members["user_factors"], members["item_factors"]
        n_items = members["item_ids"].size
        seen = members["ratings_indices"].copy()
        seen[3] = n_items
        bad_nan = P.copy()
        bad_nan[2, 1] = np.nan
        params = ast.literal_eval(str(members["params"]))
        cases += [
            ({"user_factors": P[:-1]}, "'user_factors' has 39 rows, expected 40"),
            ({"item_factors": Q[:, :-1]}, "user factors have 4 columns and item factors 3"),
            ({"item_factors": Q.astype(np.float64)}, "both float32 or both float64"),
            (
                {"user_factors": P.astype(np.float64), "item_factors": Q.astype(np.float64)},
                "the factors are float64 but the model is float32",
            ),
            ({"user_bias": members["user_bias"][:-2]}, "'user_bias' has 38 rows"),
            ({"user_factors": bad_nan}, "NaN or infinite"),
            ({"ratings_indices": seen}, r"column indices must lie in \[0, 30\)"),
            ({"ratings_indptr": members["ratings_indptr"][:-1]}, "indptr must be 41 integers"),
            ({"ratings_indptr": members["ratings_indptr"][::-1].copy()}, "indptr must rise"),
            ({"global_mean": np.array(np.inf)}, "'global_mean' is inf"),
            ({"rating_range": np.array([5.0, 1.0])}, "low <= high"),
            ({"seed": np.array([1, 2])}, "'seed' should be a single value"),
            ({"params": np.array(repr({**params, "lr": -1.0}))}, "invalid saved parameters: lr"),
            (
                {"params": np.array(repr({**params, "random_state": "x"}))},
                "invalid saved parameters: random_state",
            ),
            ({"params": np.array(repr({**params, "n_factors": 7}))}, "n_factors is 7 but"),
            ({"params": np.array("{'n_factors': 4}")}, "the saved parameters lack"),
            ({"params": np.array("{'n_threads': 0}")}, "unknown parameters"),
            ({"params": np.array("__import__('os')")}, "not a readable parameter list"),
        ]
    elif isinstance(model, (ItemKNN, UserKNN, ContentKNN)):
        indices = members["ratings_indices"].copy()
        indices[0] = members["item_ids"].size + 5
        cases += [
            ({"ratings_indices": indices}, r"ratings: column indices must lie in \[0, 30\)"),
            ({"ratings_indices": -members["ratings_indices"] - 1}, "column indices must lie"),
            ({"ratings_shape": np.array([41, 30])}, "indptr must be 42 integers"),
            ({"ratings_data": members["ratings_data"][:-1]}, "one value per stored entry"),
            ({"ratings_data": members["ratings_data"].astype(np.float64)}, "expected 40 users"),
            (
                {
                    "params": np.array("{'k': 0, 'shrink': 0.0, 'dtype': 'float32'}")
                    if not isinstance(model, ContentKNN)
                    else np.array("{'dtype': 'int8'}")
                },
                "invalid saved parameters",
            ),
            ({"params": np.array("[1, 2]")}, "not a dict of named parameters"),
        ]
        if isinstance(model, ContentKNN):
            cases += [
                (
                    {**_last_row_dropped(members, "features"), "features_shape": np.array([29, 8])},
                    "feature matrix has 29 rows",
                ),
                ({"features_indices": members["features_indices"] + 8}, "features: column"),
            ]
        else:
            n = 30 if isinstance(model, ItemKNN) else 40
            neighbours = members["neighbours_indices"].copy()
            neighbours[0] = n
            repeated = members["neighbours_indices"].copy()
            row = members["neighbours_indptr"]
            first = int(np.argmax(np.diff(row) >= 2))
            repeated[row[first] + 1] = repeated[row[first]]
            cases += [
                ({"neighbours_indices": neighbours}, rf"neighbours: column indices must lie in \[0, {n}\)"),
                (
                    {**_last_row_dropped(members, "neighbours"), "neighbours_shape": np.array([n - 1, n])},
                    f"neighbour matrix is {n - 1} x {n}",
                ),
                ({"neighbours_indices": repeated}, "the same column twice"),
                (
                    {"params": np.array("{'k': 1, 'shrink': 0.0, 'dtype': 'float32'}")},
                    "more than k=1 neighbours",
                ),
            ]
    else:  # Hybrid
        blob = members["model_0"]
        cases += [
            ({"model_0": blob[: blob.size // 2]}, r"model 0\) is not a fastrec model file"),
            ({"weights": np.array([0.5])}, "1 weights but the models"),
            ({"weights": np.array([np.nan, 1.0])}, "NaN or infinite"),
            ({"normalization": np.array("max")}, "unknown normalization 'max'"),
            (
                {"model_1": np.frombuffer(b"PK\x03\x04" + bytes(40), dtype=np.uint8)},
                r"model 1\) is not a fastrec model file",
            ),
        ]
    return cases


def test_inconsistent_contents(saved, tmp_path):
    model, _, members = saved
    cases = _cases(model, members)
    assert len(cases) >= 5
    for changes, message in cases:
        path = _rewrite(tmp_path, members, **changes)
        with pytest.raises(ValueError, match=message):
            type(model).load(path)


@pytest.mark.parametrize(
    "users",
    [np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]"), np.array([1.5, 2.5, 3.5])],
)
def test_ids_of_every_saveable_kind_round_trip(users):
    data = (users, np.array([1, 2, 1]), np.array([4.0, 3.0, 5.0]))
    for model in (
        ItemKNN(k=2).fit(data),
        MatrixFactorization(n_factors=2, n_epochs=1, random_state=0).fit(data),
    ):
        buffer = io.BytesIO()
        model.save(buffer)
        buffer.seek(0)
        loaded = type(model).load(buffer)
        np.testing.assert_array_equal(loaded.user_ids_, users)
        for a, b in zip(model.recommend(users, n=2), loaded.recommend(users, n=2)):
            np.testing.assert_array_equal(a, b)


def test_a_wrong_override_is_the_callers_type_error(saved):
    model, path, _ = saved
    with pytest.raises(TypeError, match="colour"):
        type(model).load(path, colour=3)
    if not isinstance(model, Hybrid):
        assert type(model).load(path, backend="numpy").backend == "numpy"


def _version_1_members(model):
    """The members of ``model`` saved in format 1 (the seen pattern as seen_*, a seed member)."""
    R = model.interactions_
    return {
        "format_name": np.array("fastrec.MatrixFactorization"),
        "format_version": np.array(1),
        "user_factors": model.user_factors_,
        "item_factors": model.item_factors_,
        "user_bias": model.user_bias_,
        "item_bias": model.item_bias_,
        "user_ids": model.user_ids_,
        "item_ids": model.item_ids_,
        "global_mean": np.array(model.global_mean_),
        "biased": np.array(True),
        "rating_range": np.array(model.rating_range_),
        "seed": np.array(model.seed_),
        "epochs_trained": np.array(model.epochs_trained_),
        "seen_indptr": R.indptr.astype(np.int64),
        "seen_indices": R.indices.astype(np.int32),
        "params": np.array(
            repr(
                {
                    key: getattr(model, key)
                    for key in (
                        "n_factors",
                        "n_epochs",
                        "lr",
                        "reg",
                        "lr_bias",
                        "reg_bias",
                        "init_std",
                        "non_negative",
                        "clip",
                    )
                }
            )
        ),
    }


def test_format_1_files_with_a_seed_still_load(tmp_path):
    model = _fitted("mf")
    path = tmp_path / "v1.npz"
    np.savez(path, **_version_1_members(model))
    loaded = MatrixFactorization.load(path)
    assert loaded.random_state == model.seed_ == 0 and loaded.seed_ == 0
    _same_recommendations(model, loaded)
    users = _users(model)
    np.testing.assert_array_equal(
        model.predict(users, np.zeros(40, dtype=np.int64)),
        loaded.predict(users, np.zeros(40, dtype=np.int64)),
    )
    again = io.BytesIO()
    loaded.save(again)  # written in the current format
    again.seek(0)
    _same_recommendations(model, MatrixFactorization.load(again))
    members = _version_1_members(model)
    bad = members["seen_indices"].copy()
    bad[0] = 30
    with pytest.raises(ValueError, match=r"column indices must lie in \[0, 30\)"):
        MatrixFactorization.load(_rewrite(tmp_path, members, seen_indices=bad))
    with pytest.raises(ValueError, match="seen_indptr.* is missing"):
        MatrixFactorization.load(_rewrite(tmp_path, members, seen_indptr=None))
