"""Every model survives pickle, joblib and cloudpickle round trips and works the same after."""

from __future__ import annotations

import io
import pickle

import cloudpickle
import numpy as np
import pytest

import fastrec
from fastrec.datasets import make_ratings

joblib = pytest.importorskip("joblib")

R = make_ratings(120, 90, 2500, seed=0)
FEATURES = make_ratings(90, 15, 400, seed=1)
USERS = np.arange(0, 120, 5)


def _joblib_round_trip(model):
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


ROUND_TRIPS = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL)),
    "joblib": _joblib_round_trip,
    "cloudpickle": lambda m: cloudpickle.loads(cloudpickle.dumps(m)),
}

MODELS = {
    "mf": lambda: fastrec.MatrixFactorization(n_factors=7, n_epochs=3, random_state=0),
    "mf_float64": lambda: fastrec.MatrixFactorization(
        n_factors=9, n_epochs=2, random_state=1, dtype=np.float64
    ),
    "itemknn": lambda: fastrec.ItemKNN(k=10),
    "userknn": lambda: fastrec.UserKNN(k=10, shrink=1.0),
    "content": lambda: fastrec.ContentKNN(FEATURES),
    "hybrid": lambda: fastrec.Hybrid(
        [
            (fastrec.ItemKNN(k=10), 0.6),
            (fastrec.MatrixFactorization(n_factors=5, n_epochs=2, random_state=0), 0.4),
        ]
    ),
}


def _outputs(model):
    out = list(model.recommend(USERS, n=7))
    if isinstance(model, fastrec.MatrixFactorization):
        out.append(model.predict(USERS, USERS % 90))
        out += [model.user_factors_, model.item_factors_]
    if isinstance(model, fastrec.ItemKNN):
        out += list(model.similar_items(np.arange(20), n=4))
    return out


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("name", MODELS)
def test_fitted_model_round_trips(name, trip):
    model = MODELS[name]().fit(R)
    expected = _outputs(model)
    copy = ROUND_TRIPS[trip](model)
    for got, want in zip(_outputs(copy), expected):
        np.testing.assert_array_equal(got, want)
    if isinstance(copy, fastrec.MatrixFactorization):
        assert copy._P.ctypes.data % 64 == 0 and copy._Q.ctypes.data % 64 == 0
        copy.fold_in(10_000, items=[1, 2, 3], ratings=[5, 4, 3])  # the copy is a working model
        assert copy.n_users_ == model.n_users_ + 1 and 10_000 not in set(model.user_ids_)
        copy.partial_fit(make_ratings(130, 90, 500, seed=3), n_epochs=1)


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("name", MODELS)
def test_unfitted_model_round_trips_and_fits_like_a_new_one(name, trip):
    copy = ROUND_TRIPS[trip](MODELS[name]())
    for got, want in zip(_outputs(copy.fit(R)), _outputs(MODELS[name]().fit(R))):
        np.testing.assert_array_equal(got, want)
