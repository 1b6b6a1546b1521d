"""Property-based fuzzing of every public entry point on every backend.

Generated bad and edge inputs (NaN/inf, empty and 1x1, magnitudes from 1e-300 to
1e200, non-numeric dtypes, non-contiguous and read-only arrays, non-canonical and
malformed sparse matrices, absurd counts and thread numbers, ids past int32) go
to each entry point.  Every case must end in one of two ways:

* a ValueError/TypeError whose message names the offending argument, on every
  backend alike; an argument that is bad by itself must always end this way;
* the answer of the numpy reference (``backend="numpy"``), on every backend.

and it must leave every input array exactly as it was.

Budgets: by default each test runs a CI-sized number of examples (the module takes
about a minute).  ``FASTREC_FUZZ_EXAMPLES=100000 python -m pytest tests/test_fuzz.py``
spreads that many examples over the tests instead.  A summary of the cases tried
per entry point is printed at the end of the module (and written as JSON to
``$FASTREC_FUZZ_REPORT`` when set).

Malformed sparse matrices can crash a kernel that trusts them, so those tests
run in child processes (``test_malformed_sparse_in_child_process``): a crash is
reported with the last case the child started, and the remaining tests go on in a
fresh child.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import subprocess
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import scipy.sparse as sp
from _fuzz_strategies import (
    COUNTS,
    THREADS,
    Arg,
    as_coo,
    assert_same,
    dense,
    describe,
    malformed,
    mostly,
    snapshot,
    sparse,
    values,
)
from conftest import assert_topk_rows_equivalent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrec
from fastrec import metrics
from fastrec.datasets import Interactions, train_test_split

COMPILED = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]

# --- budgets -------------------------------------------------------------------------------

_TOTAL = os.environ.get("FASTREC_FUZZ_EXAMPLES")
TOTAL_WEIGHT = 21.5  # the weights given to fuzz() below, summed (child-process tests included)
CI_EXAMPLES = 400


def _examples(weight: float = 1.0) -> int:
    if _TOTAL:
        return max(1, math.ceil(int(_TOTAL) * weight / TOTAL_WEIGHT))
    return max(1, round(CI_EXAMPLES * weight))


def fuzz(weight: float = 1.0):
    """Hypothesis settings for one test: its share of the budget, no deadline."""
    return settings(
        max_examples=_examples(weight),
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


# --- bookkeeping ---------------------------------------------------------------------------

CASES: collections.Counter = collections.Counter()
CASE_LOG = os.environ.get("_FASTREC_FUZZ_CASE_LOG")


def record(entry: str, **case: Any) -> None:
    """Count one case of ``entry``; in a child process also write it where a crash leaves it."""
    CASES[entry] += 1
    if CASE_LOG:
        text = f"{entry}\n" + "\n".join(
            f"  {k} = {describe(v.value if isinstance(v, Arg) else v)}" for k, v in case.items()
        )
        with open(CASE_LOG, "w") as fh:
            fh.write(text)


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    lines = [f"  {entry:<34} {count:>8}" for entry, count in sorted(CASES.items())]
    text = [
        "fuzz cases per entry point (each case runs on every backend):",
        *lines,
        f"  {'total':<34} {sum(CASES.values()):>8}",
    ]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # straight to the terminal, not captured
            reporter.write_line("")
            for line in text:
                reporter.write_line(line)
    if os.environ.get("FASTREC_FUZZ_REPORT"):
        Path(os.environ["FASTREC_FUZZ_REPORT"]).write_text(json.dumps(dict(CASES), indent=1))


# --- the outcome rule ----------------------------------------------------------------------


class Refused:
    """A call that ended in ValueError/TypeError."""

    def __init__(self, exc: Exception):
        self.exc = exc

    def __repr__(self) -> str:
        return f"{type(self.exc).__name__}({self.exc})"


def attempt(call: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return call()
    except (ValueError, TypeError) as exc:
        return Refused(exc)


def names_one_of(exc: Exception, names: list[str]) -> bool:
    text = str(exc)
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", text) for n in names)


def check_outcomes(
    call: Callable[[str], Any],
    args: dict[str, Arg | Any],
    names: list[str],
    compare: Callable[[Any, Any, str], None],
) -> Any:
    """Run ``call(backend)`` on numpy then every compiled backend and apply the outcome rule.

    ``args`` maps argument names to generated values; an :class:`Arg` flagged bad
    must be refused by a message naming one of the bad arguments.  ``names`` lists
    every argument a refusal may name when none is bad by itself.  Returns the
    reference result (or its :class:`Refused`).
    """
    bad = [name for name, a in args.items() if isinstance(a, Arg) and a.bad]
    before = {name: snapshot(a.value if isinstance(a, Arg) else a) for name, a in args.items()}
    ref = attempt(lambda: call("numpy"))
    outcomes = {"numpy": ref}
    for backend in COMPILED:
        outcomes[backend] = attempt(lambda backend=backend: call(backend))
    for name, a in args.items():
        assert_same(before[name], a.value if isinstance(a, Arg) else a, name)
    for backend, got in outcomes.items():
        if bad:
            assert isinstance(got, Refused), f"{backend}: accepted the bad argument(s) {bad}"
        if isinstance(got, Refused):
            # the generator cannot flag every fault (an empty X, too many clusters), so a
            # refusal may name any argument; a flagged one must be refused all the same
            allowed = bad + names
            assert names_one_of(got.exc, allowed), f"{backend}: the error names none of {allowed}: {got!r}"
            assert isinstance(ref, Refused), f"{backend} refused what numpy answered: {got!r}"
            assert type(got.exc) is type(ref.exc), f"{backend}: {got!r}, numpy: {ref!r}"
        else:
            assert not isinstance(ref, Refused), f"{backend} answered what numpy refused ({ref!r})"
            compare(got, ref, backend)  # numpy too: some compares check invariants of one result
    return ref


def value(a: Arg | Any) -> Any:
    return a.value if isinstance(a, Arg) else a


def float_tol(dtype: np.dtype) -> float:
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-9


def assert_dense_topn_equivalent(got, ref, backend: str, tol) -> None:
    """(items, scores) tables agree: same shape, scores within tol, items equal except among ties."""
    (gi, gs), (ri, rs) = got, ref
    assert gi.shape == ri.shape and gs.shape == rs.shape, f"{backend}: shape {gi.shape} vs {ri.shape}"
    assert gs.dtype == rs.dtype, f"{backend}: score dtype {gs.dtype} vs {rs.dtype}"
    assert not np.isnan(gs).any(), f"{backend}: NaN score returned"
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), (rs.shape[0],))
    for row in range(rs.shape[0]):
        g_valid = gi[row] != -1 if gi.dtype.kind in "iu" else np.array([x is not None for x in gi[row]])
        r_valid = ri[row] != -1 if ri.dtype.kind in "iu" else np.array([x is not None for x in ri[row]])
        assert np.array_equal(g_valid, r_valid), f"{backend} row {row}: filled slots differ"
        if not r_valid.any():
            continue
        g, r = gs[row][r_valid].astype(np.float64), rs[row][r_valid].astype(np.float64)
        if not (np.isfinite(r).all() and np.isfinite(g).all()):
            assert np.array_equal(g, r), f"{backend} row {row}: scores {g} vs {r}"
            continue
        assert np.allclose(g, r, rtol=0, atol=tol[row]), f"{backend} row {row}: scores {g} vs {r}"
        boundary = r[-1]
        firm_g = set(gi[row][r_valid][g > boundary + tol[row]].tolist())
        firm_r = set(ri[row][r_valid][r > boundary + tol[row]].tolist())
        assert firm_g == firm_r, f"{backend} row {row}: items {firm_g ^ firm_r} differ above ties"


# --- cosine_topk ---------------------------------------------------------------------------

SHRINKS = st.sampled_from(
    [
        (0.0, False),
        (1.0, False),
        (1e30, False),
        (-1.0, True),
        (float("nan"), True),
        (float("inf"), True),
        ("1", True),
    ]
)


@st.composite
def rows_arg(draw):
    return draw(
        st.sampled_from(
            [
                (None, False),
                (slice(0, 2), False),
                ((1, 3), False),
                (slice(-2, None), False),
                (slice(5, 1), False),
                (slice(0, 10**12), False),
                (slice(0, 4, 2), True),
                ([0, 1], True),
                ("0:2", True),
            ]
        )
    )


def compare_cosine(got, ref, backend):
    assert isinstance(got, sp.csr_matrix) and got.shape == ref.shape, f"{backend}: {got!r} vs {ref!r}"
    assert got.dtype == ref.dtype, f"{backend}: dtype {got.dtype} vs {ref.dtype}"
    assert np.isfinite(got.data).all(), f"{backend}: non-finite similarity"
    tol = float_tol(ref.dtype) * 5
    if not (np.abs(got.data) <= tol).any() and not (np.abs(ref.data) <= tol).any():
        assert_topk_rows_equivalent(got, ref, tol=tol)
        return
    # A score within rounding of 0 (products that cancel exactly, summed with or without
    # fused multiply-adds) may be stored by one backend and be exactly 0, so not stored, in
    # another; where it is stored it takes a slot below the positive scores.  The positive
    # scores must agree; the negative ones agree as far as both rows keep them.
    for row in range(ref.shape[0]):
        parts = []
        for result in (got, ref):
            span = slice(result.indptr[row], result.indptr[row + 1])
            idx, val = result.indices[span], result.data[span]
            parts.append((idx[val > tol], val[val > tol], val[val < -tol], int((abs(val) <= tol).sum())))
        (g_idx, g_pos, g_neg, g_zero), (r_idx, r_pos, r_neg, r_zero) = parts
        np.testing.assert_allclose(g_pos, r_pos, rtol=0, atol=tol, err_msg=f"{backend}: row {row}")
        if r_pos.size:  # the same items above the lowest kept positive score (ties may swap)
            boundary = r_pos[-1] + tol
            assert set(g_idx[g_pos > boundary]) == set(r_idx[r_pos > boundary]), f"{backend}: row {row}"
        common = min(g_neg.size, r_neg.size)
        np.testing.assert_allclose(
            g_neg[:common], r_neg[:common], rtol=0, atol=tol, err_msg=f"{backend}: row {row}"
        )
        assert abs(g_neg.size - r_neg.size) <= max(g_zero, r_zero), f"{backend}: row {row}"


@fuzz(2)
@given(
    X=st.one_of(dense(what="X"), sparse(what="X")),
    use_y=st.booleans(),
    Y=st.one_of(dense(what="Y"), sparse(what="Y")),
    k=COUNTS,
    shrink=SHRINKS,
    exclude_self=st.sampled_from([(True, False), (False, False), (1, True)]),
    rows=rows_arg(),
    threads=THREADS,
)
def test_cosine_topk(X, use_y, Y, k, shrink, exclude_self, rows, threads):
    args = {
        "X": X,
        "k": Arg(k[0], k[1], "k"),
        "shrink": Arg(shrink[0], shrink[1], "shrink"),
        "exclude_self": Arg(*exclude_self, "exclude_self"),
        "rows": Arg(rows[0], rows[1], "rows"),
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
    }
    if use_y:
        args["Y"] = Y
    record("cosine_topk", **args)

    def call(backend):
        return fastrec.cosine_topk(
            X.value,
            Y.value if use_y else None,
            k[0],
            shrink=shrink[0],
            exclude_self=exclude_self[0],
            rows=rows[0],
            n_threads=threads[0],
            backend=backend,
        )

    ref = check_outcomes(call, args, list(args), compare_cosine)
    if not isinstance(ref, Refused):
        assert np.isfinite(ref.data).all() and (np.abs(ref.data) <= 1 + 1e-5).all(), (
            f"similarities outside [-1, 1]: {ref.data}"
        )
        assert ref.getnnz(axis=1).max(initial=0) <= k[0]


# --- topn ----------------------------------------------------------------------------------


@st.composite
def candidates_arg(draw, n_queries, n_items):
    kind = draw(
        st.sampled_from(["none", "none", "list", "list_bad", "bool", "float", "sparse", "empty", "2d"])
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "none":
        return Arg(None, False, "candidates none")
    if kind == "list":
        return Arg(
            rng.integers(0, max(n_items, 1), size=int(rng.integers(1, 6)))
            if n_items
            else np.zeros(0, dtype=np.int64),
            False,
            "candidates list",
        )
    if kind == "list_bad":
        return Arg(
            np.array([0, draw(st.sampled_from([-1, n_items, 2**40, -(2**40)]))]),
            True,
            "candidates out of range",
        )
    if kind == "bool":
        return Arg(np.ones(n_items, dtype=bool), True, "candidates bool")
    if kind == "float":
        return Arg(np.array([0.0, 1.0]), True, "candidates float")
    if kind == "2d":
        return Arg(np.zeros((2, 2), dtype=np.int64), True, "candidates 2-D")
    if kind == "empty":
        return Arg(np.zeros(0, dtype=np.int64), False, "candidates empty")
    return draw(
        sparse(
            rows=(n_queries, n_queries),
            cols=(n_items, n_items),
            what="candidates",
            allow_specials=False,
            dtypes=("float32", "bool"),
        )
    )


@fuzz(2)
@given(
    U=dense(what="U", rows=(0, 5), cols=(1, 4)),
    V=dense(what="V", rows=(0, 7), cols=(1, 4)),
    n=COUNTS,
    threads=THREADS,
    with_exclude=st.booleans(),
    data=st.data(),
)
def test_topn(U, V, n, threads, with_exclude, data):
    nq, ni = U.value.shape[0], V.value.shape[0]
    exclude = (
        data.draw(
            st.one_of(
                sparse(rows=(nq, nq), cols=(ni, ni), what="exclude", allow_specials=False),
                dense(
                    rows=(nq, nq),
                    cols=(ni, ni),
                    what="exclude",
                    allow_specials=False,
                    dtypes=("float32", "bool"),
                ),
            )
        )
        if with_exclude
        else Arg(None, False, "exclude none")
    )
    exclude.bad = False  # only the pattern of exclude matters: any values will do
    candidates = data.draw(candidates_arg(nq, ni))
    if sp.issparse(candidates.value):
        candidates.bad = False  # the same for a sparse candidates matrix
    args = {
        "U": U,
        "V": V,
        "n": Arg(n[0], n[1], "n"),
        "exclude": exclude,
        "candidates": candidates,
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
    }
    record("topn", **args)

    def call(backend):
        return fastrec.topn(
            U.value,
            V.value,
            n[0],
            exclude=exclude.value,
            candidates=candidates.value,
            n_threads=threads[0],
            backend=backend,
        )

    def compare(got, ref, backend):
        u = np.abs(np.asarray(U.value, dtype=np.float64))
        v = np.abs(np.asarray(V.value, dtype=np.float64))
        with np.errstate(all="ignore"):
            scale = (u @ v.T).max(axis=1, initial=0.0) if ni else np.zeros(nq)
        tol = float_tol(ref[1].dtype) * (scale + 1e-300) * 4
        assert_dense_topn_equivalent(got, ref, backend, tol)

    names = ["U", "V", "n", "exclude", "candidates", "n_threads"]
    if U.value.shape[1] != V.value.shape[1]:
        U.bad = V.bad = True  # a refusal must name U or V
    ref = check_outcomes(call, args, names, compare)
    if not isinstance(ref, Refused):
        items, scores = ref
        assert items.shape[1] <= max(ni, 1) and items.shape[1] <= n[0], "more columns than items"
        assert not np.isnan(scores).any()


# --- KMeans --------------------------------------------------------------------------------


def _numeric_object_is_data(X: Arg) -> None:
    """scikit-learn's protocol reads an object array of numbers as float64: good unless non-finite."""
    if isinstance(X.value, np.ndarray) and X.value.dtype == object:
        X.bad = not np.isfinite(X.value.astype(np.float64)).all()


@fuzz(1.5)
@given(
    X=st.one_of(dense(what="X", rows=(0, 8), cols=(0, 4)), sparse(what="X", rows=(0, 8), cols=(0, 4))),
    n_clusters=COUNTS,
    threads=THREADS,
    init=st.sampled_from(["k-means++", "random"]),
    weights=st.sampled_from([None, "ones", "zeros", "negative", "nan", "short"]),
    seed=st.integers(0, 3),
    data=st.data(),
)
def test_kmeans(X, n_clusters, threads, init, weights, seed, data):
    _numeric_object_is_data(X)
    n = X.value.shape[0]
    weight = {
        None: None,
        "ones": np.ones(n),
        "zeros": np.zeros(n),
        "negative": -np.ones(n),
        "nan": np.full(n, np.nan),
        "short": np.ones(n + 1),
    }[weights]
    w_bad = weights in ("negative", "nan", "short") or (weights == "zeros" and n > 0)
    args = {
        "X": X,
        "n_clusters": Arg(n_clusters[0], n_clusters[1], "n_clusters"),
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
        "sample_weight": Arg(weight, w_bad and n > 0, "sample_weight"),
    }
    record("KMeans.fit/predict/transform", **args)

    def fitted(backend):
        model = fastrec.KMeans(
            n_clusters[0],
            init=init,
            n_init=1,
            max_iter=20,
            random_state=seed,
            n_threads=threads[0],
            backend=backend,
        )
        return model.fit(X.value, sample_weight=weight)

    def compare(got, ref, backend):
        # Different backends may break a near-tie differently and so reach another local
        # optimum; what must hold is that each result is a consistent clustering.
        assert got.cluster_centers_.shape == ref.cluster_centers_.shape
        assert np.isfinite(got.cluster_centers_).all(), f"{backend}: non-finite centres"
        assert np.isfinite(got.inertia_), f"{backend}: inertia {got.inertia_}"

    model = check_outcomes(fitted, args, ["X", "n_clusters", "n_threads", "sample_weight"], compare)
    if isinstance(model, Refused):
        return
    assert np.isfinite(model.cluster_centers_).all() and np.isfinite(model.inertia_)
    # predict and transform of the numpy-fitted model on new edge input, every backend
    Z = data.draw(
        st.one_of(
            dense(what="X", rows=(0, 4), cols=(X.value.shape[1], X.value.shape[1])),
            dense(what="X", rows=(1, 3), cols=(1, 5)),
            sparse(what="X", rows=(0, 4), cols=(X.value.shape[1], X.value.shape[1])),
        )
    )
    _numeric_object_is_data(Z)
    if Z.value.shape[1] != X.value.shape[1]:
        Z.bad = True
    record("KMeans.fit/predict/transform", X=Z)

    def transformed(backend):
        model.backend = backend
        return model.predict(Z.value), model.transform(Z.value)

    def compare_transform(got, ref, backend):
        (gl, gd), (rl, rd) = got, ref
        assert gd.shape == rd.shape and gl.shape == rl.shape
        finite = np.isfinite(rd)
        assert np.array_equal(finite, np.isfinite(gd)), f"{backend}: non-finite distances differ"
        scale = np.abs(rd[finite]).max(initial=1.0)
        assert np.allclose(gd[finite], rd[finite], rtol=1e-3, atol=1e-3 * scale), f"{backend}: {gd} vs {rd}"
        # labels agree up to distance ties
        chosen = np.take_along_axis(rd, gl[:, None].astype(np.int64), axis=1)[:, 0]
        assert np.all(chosen <= rd.min(axis=1) + 1e-3 * scale + 1e-12), f"{backend}: labels {gl} vs {rl}"

    check_outcomes(transformed, {"X": Z}, ["X"], compare_transform)


# --- MatrixFactorization -------------------------------------------------------------------


@st.composite
def triples(draw, what="ratings"):
    n = draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    id_kind = draw(
        st.sampled_from(["small", "small", "small", "beyond_int32", "strings", "negative", "float_nan"])
    )
    users = rng.integers(0, 4, size=n)
    items = rng.integers(0, 5, size=n)
    bad = n == 0
    if id_kind == "beyond_int32":
        users = users + 2**40
    elif id_kind == "strings":
        items = np.array([f"i{i}" for i in items])
    elif id_kind == "negative" and n:
        users[0] = -5
        bad = True
    elif id_kind == "float_nan" and n:
        users = users.astype(np.float64)
        users[0] = np.nan
        bad = True
    r, special = draw(values((n,), integer_valued=False))
    r = r + 3.0 if np.isfinite(r).all() else r
    bad = bad or special
    return Arg((users, items, r), bad, f"{what} triples ids={id_kind}")


@fuzz(1.5)
@given(
    ratings=st.one_of(triples(), sparse(what="ratings", rows=(0, 6), cols=(0, 5))),
    n_factors=mostly([1, 3], [0, -1, 2.5]),
    threads=THREADS,
    data=st.data(),
)
def test_matrix_factorization(ratings, n_factors, threads, data):
    if sp.issparse(ratings.value) and ratings.value.nnz == 0:
        ratings.bad = True
    r = ratings.value.data if sp.issparse(ratings.value) else ratings.value[2]
    with np.errstate(all="ignore"):
        if r.dtype.kind == "f" and np.isfinite(r).all() and (np.abs(r) > np.finfo(np.float32).max).any():
            ratings.bad = True  # the model computes in float32, where these are infinite
    args = {
        "ratings": ratings,
        "n_factors": Arg(n_factors[0], n_factors[1], "n_factors"),
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
    }
    record("MatrixFactorization.fit", **args)

    def fitted(backend):
        model = fastrec.MatrixFactorization(
            n_factors[0], n_epochs=3, random_state=1, n_threads=threads[0], backend=backend
        )
        # SGD blowing up on ratings far from a rating scale ends in DivergenceError, a
        # ValueError naming the ratings: a refusal like any other
        return model.fit(ratings.value)

    def compare(got, ref, backend):
        # SGD visits ratings in a backend-specific order: compare sanity, not bits
        assert np.isfinite(got.user_factors_).all() and np.isfinite(got.item_factors_).all(), (
            f"{backend}: non-finite factors"
        )
        assert got.user_factors_.shape == ref.user_factors_.shape

    model = check_outcomes(
        fitted, args, ["ratings", "ratings matrix", "user_ids", "item_ids", "n_factors", "n_threads"], compare
    )
    if isinstance(model, Refused):
        return
    assert np.isfinite(model.user_factors_).all() and np.isfinite(model.item_factors_).all(), (
        "fit produced non-finite factors from finite ratings"
    )
    raw_users = (
        np.unique(ratings.value[0]) if isinstance(ratings.value, tuple) else np.arange(ratings.value.shape[0])
    )
    raw_items = (
        np.unique(ratings.value[1]) if isinstance(ratings.value, tuple) else np.arange(ratings.value.shape[1])
    )
    pick = data.draw(st.sampled_from(["known", "unknown", "beyond_int32", "empty", "2d"]))
    # unknown users are served from the biases (documented), so only a 2-D table is bad
    users_q = {
        "known": raw_users[:3],
        "unknown": np.array([raw_users[0], 10**6]),
        "beyond_int32": np.array([2**45]),
        "empty": raw_users[:0],
        "2d": raw_users[:1].reshape(1, 1),
    }[pick]
    n = data.draw(COUNTS)
    q_args = {"users": Arg(users_q, pick == "2d", "users"), "n": Arg(n[0], n[1], "n")}
    record("MatrixFactorization.predict/recommend", **q_args)

    def queried(backend):
        model.backend = backend
        items_ = np.resize(raw_items, len(users_q)) if users_q.ndim == 1 else raw_items[:1].reshape(1, 1)
        return model.predict(users_q, items_), model.recommend(users_q, n[0])

    def compare_q(got, ref, backend):
        (gp, gr), (rp, rr) = got, ref
        assert np.allclose(gp, rp, rtol=1e-4, atol=1e-4), f"{backend}: predict {gp} vs {rp}"
        assert_dense_topn_equivalent(gr, rr, backend, 1e-3)

    check_outcomes(queried, q_args, ["users", "items", "n"], compare_q)
    # fold_in: a new user with edge ratings
    fi_items = raw_items[: data.draw(st.integers(0, 3))]
    fi_r, special = data.draw(values((fi_items.size,), integer_valued=False))
    with np.errstate(all="ignore"):
        too_big = bool((np.abs(fi_r) > np.finfo(model.user_factors_.dtype).max).any())
    fi_args = {"items": Arg(fi_items, False, "items"), "ratings": Arg(fi_r, special or too_big, "ratings")}
    record("MatrixFactorization.fold_in", **fi_args)

    def folded(backend):
        import copy

        m = copy.deepcopy(model)
        m.backend = backend
        m.fold_in("new-user" if raw_users.dtype.kind not in "iu" else 10**13, fi_items, fi_r)
        return m

    def compare_fold(got, ref, backend):
        assert np.isfinite(got.user_factors_).all(), f"{backend}: fold_in made non-finite factors"

    check_outcomes(folded, fi_args, ["user", "items", "ratings"], compare_fold)


# --- neighbourhood recommenders ------------------------------------------------------------


@fuzz(2)
@given(
    ratings=st.one_of(triples(), sparse(what="ratings", rows=(0, 6), cols=(0, 6), nonnegative=True)),
    kind=st.sampled_from(["item", "user", "content"]),
    k=COUNTS,
    n=COUNTS,
    exclude_seen=st.booleans(),
    threads=THREADS,
    data=st.data(),
)
def test_knn_recommenders(ratings, kind, k, n, exclude_seen, threads, data):
    if sp.issparse(ratings.value) and ratings.value.nnz == 0:
        ratings.bad = True
    raw_items = (
        np.unique(ratings.value[1]) if isinstance(ratings.value, tuple) else np.arange(ratings.value.shape[1])
    )
    args: dict[str, Any] = {"ratings": ratings, "n_threads": Arg(threads[0], threads[1], "n_threads")}
    features = None
    if kind == "content":
        features = data.draw(
            st.one_of(
                dense(what="features", rows=(max(raw_items.size, 1),) * 2, cols=(1, 3)),
                sparse(what="features", rows=(max(raw_items.size, 1),) * 2, cols=(1, 3)),
            )
        )
        args["features"] = features
    else:
        args["k"] = Arg(k[0], k[1], "k")
    record(f"{kind.capitalize()}KNN.fit", **args)

    def fitted(backend):
        if kind == "content":
            model = fastrec.ContentKNN(
                features.value, raw_items[: features.value.shape[0]], n_threads=threads[0], backend=backend
            )
        else:
            cls = fastrec.ItemKNN if kind == "item" else fastrec.UserKNN
            model = cls(k[0], n_threads=threads[0], backend=backend)
        return model.fit(ratings.value)

    model = check_outcomes(
        fitted,
        args,
        list(args) + ["ratings matrix", "user_ids", "item_ids", "item_ids"],
        lambda g, r, b: None,
    )
    if isinstance(model, Refused):
        return
    raw_users = (
        np.unique(ratings.value[0]) if isinstance(ratings.value, tuple) else np.arange(ratings.value.shape[0])
    )
    pick = data.draw(st.sampled_from(["known", "known", "unknown", "beyond_int32", "empty"]))
    users_q = {
        "known": raw_users[:3],
        "unknown": np.array([2**62]),
        "beyond_int32": np.array([2**40 + 3]),
        "empty": raw_users[:0],
    }[pick]
    unknown_bad = not np.isin(users_q, raw_users).all()
    q_args = {
        "users": Arg(users_q, unknown_bad, "users"),
        "n": Arg(n[0], n[1], "n"),
        "exclude_seen": exclude_seen,
    }
    record(f"{kind.capitalize()}KNN.recommend", **q_args)

    def recommended(backend):
        model.backend = backend
        return model.recommend(users_q, n[0], exclude_seen=exclude_seen)

    def compare(got, ref, backend):
        assert_dense_topn_equivalent(got, ref, backend, 1e-3)

    ref = check_outcomes(recommended, q_args, ["users", "n"], compare)
    if not isinstance(ref, Refused):
        assert ref[0].shape[1] <= max(raw_items.size, 1), "more columns than items"
    if kind == "item":
        items_q = data.draw(st.sampled_from([raw_items[:2], np.array([2**40]), raw_items[:0]]))
        s_args = {
            "items": Arg(items_q, not np.isin(items_q, raw_items).all(), "items"),
            "n": Arg(n[0], n[1], "n"),
        }
        record("ItemKNN.similar_items", **s_args)

        def similar(backend):
            model.backend = backend
            return model.similar_items(items_q, n[0])

        check_outcomes(similar, s_args, ["items", "n"], compare)


# --- metrics -------------------------------------------------------------------------------


@fuzz(1)
@given(data=st.data())
def test_rmse_mae(data):
    n = data.draw(st.integers(0, 6))
    true, s1 = data.draw(values((n,), integer_valued=False))
    pred, s2 = data.draw(values((data.draw(st.sampled_from([n, n, n + 1])),), integer_valued=False))
    dtype = data.draw(st.sampled_from(["float64", "float32", "int64", "complex128", "object", "str"]))
    from _fuzz_strategies import _cast

    t, p = _cast(true, dtype), pred
    bad_t = dtype in ("complex128", "object", "str") or (
        dtype.startswith("float") and not np.isfinite(t).all()
    )
    bad_p = s2 or pred.size != n
    record("metrics.rmse/mae", y_true=t, y_pred=p)
    for fn, exact in (
        (metrics.rmse, lambda d: math.sqrt(math.fsum(float(x) ** 2 for x in d) / d.size)),
        (metrics.mae, lambda d: math.fsum(abs(float(x)) for x in d) / d.size),
    ):
        before = (t.copy(), p.copy())
        got = attempt(lambda fn=fn: fn(t, p))
        assert_same(before[0], t, "y_true")
        assert_same(before[1], p, "y_pred")
        if bad_t or bad_p or n == 0:
            assert isinstance(got, Refused), f"{fn.__name__} accepted bad input"
            assert names_one_of(got.exc, ["y_true", "y_pred"]), got
            continue
        assert not isinstance(got, Refused), f"{fn.__name__}: {got!r}"
        # exact on the scaled differences (scaling keeps 1e200 inputs finite)
        diff = np.asarray(t, dtype=np.float64) - p
        scale = np.abs(diff).max(initial=0.0)
        if not np.isfinite(scale):
            assert isinstance(got, float)
            continue
        expected = exact(diff / scale) * scale if scale else 0.0
        assert math.isfinite(got) and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-300), (
            f"{fn.__name__} = {got}, exact {expected}"
        )


def brute_ranking(table: np.ndarray, test: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-user (precision, recall, f1, ndcg, ap, hit) straight from the definitions."""
    out = np.full((table.shape[0], 6), np.nan)
    for u in range(table.shape[0]):
        relevant = set(test.indices[test.indptr[u] : test.indptr[u + 1]].tolist())
        if not relevant:
            continue
        rel = [1.0 if item in relevant else 0.0 for item in table[u, :k]]
        hits = sum(rel)
        p, r = hits / k, hits / len(relevant)
        f1 = 2 * p * r / (p + r) if hits else 0.0
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
        ndcg = sum(x / math.log2(i + 2) for i, x in enumerate(rel)) / ideal
        ap = sum(x * sum(rel[: i + 1]) / (i + 1) for i, x in enumerate(rel)) / min(k, len(relevant))
        out[u] = (p, r, f1, ndcg, ap, 1.0 if hits else 0.0)
    return out


@st.composite
def rec_table(draw, n_users, n_items):
    width = draw(st.integers(0, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid",
                "out_of_range",
                "beyond_int32",
                "duplicate",
                "float",
                "bool",
                "1d",
                "rows",
            ]
        )
    )
    table = np.full((n_users, width), -1, dtype=np.int64)
    for u in range(n_users):
        m = int(rng.integers(0, min(width, n_items) + 1))
        table[u, :m] = rng.permutation(n_items)[:m]
    if draw(st.booleans()):
        table = table.astype(np.int32)
    bad = False
    if kind == "out_of_range" and table.size:
        table.flat[0] = draw(st.sampled_from([-2, n_items, n_items + 5]))
        bad = True
    elif kind == "beyond_int32" and table.size:
        table = table.astype(np.int64)
        table.flat[0] = 2**40
        bad = True
    elif kind == "duplicate" and width >= 2 and n_items >= 1 and n_users >= 1:
        table[0, :2] = 0
        bad = "dup"
    elif kind == "float":
        table, bad = table.astype(np.float64), True
    elif kind == "bool":
        table, bad = table > 0, True
    elif kind == "1d":
        table, bad = table.reshape(-1), True
    elif kind == "rows":
        table, bad = np.concatenate([table, table[:1]]) if n_users else np.zeros((1, width), np.int64), True
    if draw(st.booleans()) and table.ndim == 2:
        table = np.asfortranarray(table)
    return Arg(table, bad, f"recommended {kind}")


@fuzz(2)
@given(
    test=sparse(
        what="test",
        rows=(0, 6),
        cols=(0, 7),
        allow_specials=False,
        dtypes=("float32", "float64", "int32", "bool"),
    ),
    k=COUNTS,
    threshold=st.sampled_from(
        [(None, False), (0.5, False), (1e30, False), (float("nan"), True), ("1", True)]
    ),
    threads=THREADS,
    metric=st.sampled_from(
        [
            "precision_at_k",
            "recall_at_k",
            "f1_at_k",
            "ndcg_at_k",
            "map_at_k",
            "hit_rate_at_k",
            "ranking_metrics",
            "coverage",
            "per_user_metrics",
        ]
    ),
    data=st.data(),
)
def test_ranking_metrics(test, k, threshold, threads, metric, data):
    n_users, n_items = test.value.shape
    rec = data.draw(rec_table(n_users, n_items))
    k_ok = not k[1]
    kv = k[0]
    if k_ok and rec.value.ndim == 2 and rec.value.shape[1] < min(kv, max(n_items, 1)):
        rec.bad = True  # fewer columns than k (slots past n_items are empty by necessity)
    if rec.bad == "dup":
        rec.bad = k_ok and kv >= 2
    fn = getattr(metrics, metric)
    args = {
        "recommended": rec,
        "test": test,
        "k": Arg(kv, k[1], "k"),
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
    }
    kwargs = {}
    if metric != "coverage":
        args["threshold"] = Arg(threshold[0], threshold[1], "threshold")
        kwargs["threshold"] = threshold[0]
    record(f"metrics.{metric}", **args)

    def call(backend):
        return fn(rec.value, test.value, kv, n_threads=threads[0], backend=backend, **kwargs)

    def compare(got, ref, backend):
        for g, r in zip(got if isinstance(got, tuple) else [got], ref if isinstance(ref, tuple) else [ref]):
            if isinstance(r, dict):
                g, r = np.array(list(g.values()), dtype=float), np.array(list(r.values()), dtype=float)
            assert np.allclose(
                np.asarray(g, dtype=float), np.asarray(r, dtype=float), rtol=1e-12, atol=1e-12, equal_nan=True
            ), f"{backend}: {got} vs {ref}"

    ref = check_outcomes(call, args, list(args), compare)
    if isinstance(ref, Refused) or metric == "coverage":
        return
    # the reference itself against the definitions
    relevant = as_coo(test.value).tocsr()  # a new canonical matrix: duplicates summed
    if threshold[0] is not None:
        relevant.data = (relevant.data >= threshold[0]).astype(np.float32)
        relevant.eliminate_zeros()
    expected = brute_ranking(np.asarray(rec.value), relevant, kv)
    per_user = metrics.per_user_metrics(rec.value, test.value, kv, threshold=threshold[0], backend="numpy")[0]
    assert np.allclose(per_user, expected, rtol=1e-12, atol=1e-12, equal_nan=True), (
        f"per-user metrics {per_user} vs definitions {expected}"
    )


@fuzz(1)
@given(
    train=sparse(
        what="train",
        rows=(1, 6),
        cols=(1, 6),
        allow_specials=True,
        dtypes=("float32", "float64", "int32"),
        nonnegative=True,
    ),
    k=COUNTS,
    threads=THREADS,
    data=st.data(),
)
def test_evaluate(train, k, threads, data):
    shape = train.value.shape
    test = data.draw(
        st.one_of(
            sparse(
                what="test",
                rows=(shape[0],) * 2,
                cols=(shape[1],) * 2,
                allow_specials=False,
                dtypes=("float32", "int32"),
            ),
            sparse(what="test", rows=(1, 7), cols=(1, 7), allow_specials=False, dtypes=("float32",)),
        )
    )
    # test may hold fewer or other (user, item) ids than train: row and column numbers are ids
    if train.value.nnz == 0:
        train.bad = True
    args = {
        "train": train,
        "test": test,
        "k": Arg(k[0], k[1], "k"),
        "n_threads": Arg(threads[0], threads[1], "n_threads"),
    }
    record("evaluate", **args)

    def call(backend):
        # the model on the reference backend, so that only evaluate's own kernels vary: the
        # models' backends may order near-ties differently (test_knn_recommenders allows it)
        model = fastrec.ItemKNN(k=5, backend="numpy")
        return fastrec.evaluate(model, train.value, test.value, k[0], n_threads=threads[0], backend=backend)

    def compare(got, ref, backend):
        g = {key: v for key, v in dict(got).items() if isinstance(v, (int, float))}
        r = {key: v for key, v in dict(ref).items() if isinstance(v, (int, float))}
        assert g.keys() == r.keys()
        for key in r:
            assert math.isclose(g[key], r[key], rel_tol=1e-6, abs_tol=1e-6) or (
                math.isnan(g[key]) and math.isnan(r[key])
            ), f"{backend}: {key} {g[key]} vs {r[key]}"

    check_outcomes(
        call, args, ["train", "test", "ratings", "ratings matrix", "k", "n_threads", "model"], compare
    )


# --- datasets ------------------------------------------------------------------------------


def _entries(data) -> collections.Counter:
    """The multiset of (user, item, rating) entries; NaN spelled "nan" so that it equals itself."""
    if sp.issparse(data):
        coo = as_coo(data)
        columns = (coo.row, coo.col, coo.data)
    elif isinstance(data, Interactions):
        columns = data.to_triples()
    else:
        columns = data
    columns = [
        ["nan" if isinstance(x, float) and x != x else x for x in np.asarray(c).tolist()] for c in columns
    ]
    return collections.Counter(zip(*columns))


@fuzz(1.5)
@given(
    data=st.one_of(triples(what="data"), sparse(what="data", rows=(0, 6), cols=(0, 6), allow_specials=False)),
    method=st.sampled_from(
        [
            ("random", False),
            ("leave_k_out", False),
            ("leave_last_k_out", False),
            ("temporal", False),
            ("bogus", True),
        ]
    ),
    test_size=st.sampled_from(
        [
            (0.2, False),
            (0.5, False),
            (1, False),
            (3, False),
            (0.0, True),
            (1.0, True),
            (-1, True),
            (float("nan"), True),
            (10**12, True),
            ("0.2", True),
        ]
    ),
    k=COUNTS,
    seed=st.sampled_from([(0, False), (None, False), (2**63, False), (-1, True)]),
    with_times=st.booleans(),
    draw=st.data(),
)
def test_train_test_split(data, method, test_size, k, seed, with_times, draw):
    n = len(data.value[2]) if isinstance(data.value, tuple) else data.value.nnz
    # a split moves ratings without reading their values: only missing or negative ids,
    # or no ratings at all, make data bad by itself
    data.bad = n == 0 or (
        isinstance(data.value, tuple)
        and n > 0
        and ("ids=negative" in data.what or "ids=float_nan" in data.what)
    )
    times = None
    if with_times:
        times, special = draw.draw(values((n,), integer_valued=True))
        if special:
            times_bad = True
        else:
            times_bad = False
    args = {
        "data": data,
        "test_size": Arg(test_size[0], test_size[1] and method[0] in ("random", "temporal"), "test_size"),
        "method": Arg(method[0], method[1], "method"),
        "k": Arg(k[0], k[1] and method[0].startswith("leave"), "k"),
        "seed": Arg(seed[0], seed[1], "seed"),
    }
    if with_times:
        args["timestamps"] = Arg(times, times_bad, "timestamps")
    record("datasets.train_test_split", **args)
    before = {name: snapshot(value(a)) for name, a in args.items()}
    got = attempt(
        lambda: train_test_split(
            data.value, test_size[0], method=method[0], k=k[0], timestamps=times, seed=seed[0]
        )
    )
    for name, a in args.items():
        assert_same(before[name], value(a), name)
    bad = [name for name, a in args.items() if isinstance(a, Arg) and a.bad]
    if bad:
        assert isinstance(got, Refused), f"accepted the bad argument(s) {bad}"
    if isinstance(got, Refused):
        assert names_one_of(
            got.exc,
            bad + list(args) + ["users", "items", "user_ids", "item_ids", "ratings", "ratings matrix"],
        ), got
        return
    train, test = got
    assert _entries(train) + _entries(test) == _entries(data.value), "the split lost or invented ratings"


@fuzz(1)
@given(
    matrix=st.one_of(
        sparse(what="matrix", rows=(0, 5), cols=(0, 5)), dense(what="matrix", rows=(0, 4), cols=(0, 4))
    ),
    ids=st.sampled_from(["range", "beyond_int32", "strings", "short", "repeated", "none_id"]),
    with_times=st.booleans(),
    data=st.data(),
)
def test_interactions(matrix, ids, with_times, data):
    shape = matrix.value.shape
    if not sp.issparse(matrix.value):
        matrix.bad = True  # Interactions holds a sparse matrix
    user_ids = {
        "range": np.arange(shape[0]),
        "beyond_int32": np.arange(shape[0]) + 2**40,
        "strings": np.array([f"u{i}" for i in range(shape[0])]),
        "short": np.arange(max(shape[0] - 1, 0)) if shape[0] else np.arange(1),
        "repeated": np.zeros(shape[0], dtype=np.int64),
        "none_id": np.array([None] * shape[0], dtype=object),
    }[ids]
    ids_bad = ids == "short" or (ids == "repeated" and shape[0] > 1) or (ids == "none_id" and shape[0] > 0)
    item_ids = np.arange(shape[1]) + (2**40 if ids == "beyond_int32" else 0)
    times, times_bad = None, False
    if with_times and sp.issparse(matrix.value):
        # timestamps: a sparse matrix with exactly the pattern of matrix (good), or not
        csr = sp.csr_matrix(matrix.value)
        kind = data.draw(st.sampled_from(["same", "same", "array", "other_pattern"]))
        if kind == "same":
            times = sp.csr_matrix(
                (np.arange(csr.nnz, dtype=np.float64) + 1, csr.indices.copy(), csr.indptr.copy()),
                shape=csr.shape,
            )
        elif kind == "array":
            times, times_bad = np.arange(csr.nnz), True
        else:
            times = sp.csr_matrix(np.ones((shape[0] + 1, shape[1] + 1)))
            times_bad = True
    args = {
        "matrix": matrix,
        "user_ids": Arg(user_ids, ids_bad, "user_ids"),
        "item_ids": Arg(item_ids, False, "item_ids"),
        "timestamps": Arg(times, times_bad, "timestamps"),
    }
    record("datasets.Interactions", **args)
    before = {name: snapshot(value(a)) for name, a in args.items()}
    got = attempt(lambda: Interactions(matrix.value, user_ids, item_ids, timestamps=times))
    for name, a in args.items():
        assert_same(before[name], value(a), name)
    bad = [name for name, a in args.items() if a.bad]
    if bad:
        assert isinstance(got, Refused), f"accepted the bad argument(s) {bad}"
    if isinstance(got, Refused):
        assert names_one_of(got.exc, bad + list(args)), got
        return
    users, items, ratings = got.to_triples()
    coo = as_coo(matrix.value).tocsr().tocoo()  # duplicates summed, as Interactions does
    # Interactions hold float32 ratings (values outside float32's range must have been refused)
    expected = collections.Counter(
        zip(user_ids[coo.row].tolist(), item_ids[coo.col].tolist(), coo.data.astype(np.float32).tolist())
    )
    assert collections.Counter(zip(users.tolist(), items.tolist(), ratings.tolist())) == expected


# --- malformed sparse input (child processes) -----------------------------------------------


def _refused_by_name(call: Callable[[], Any], arg: Arg, name: str) -> None:
    before = snapshot(arg.value)
    got = attempt(call)
    assert_same(before, arg.value, name)
    assert isinstance(got, Refused), f"accepted {arg!r}"
    assert names_one_of(got.exc, [name]), f"the error does not name {name}: {got!r}"


def _for_every_backend(entry: str, arg: Arg, name: str, call: Callable[[str], Any]) -> None:
    for backend in ["numpy", *COMPILED]:
        record(entry, backend=backend, **{name: arg})
        _refused_by_name(lambda backend=backend: call(backend), arg, name)


_GOOD = sp.csr_matrix(
    np.array(
        [
            [1, 0, 2, 0, 1],
            [0, 3, 0, 0, 1],
            [4, 0, 0, 5, 0],
            [0, 0, 1, 1, 0],
            [1, 1, 0, 0, 2],
            [0, 2, 0, 1, 0],
        ],
        dtype=np.float32,
    )
)


@fuzz(1)
@given(X=malformed(what="X"), as_y=st.booleans())
def malformed_cosine(X, as_y):
    if as_y:
        good = sp.random(3, X.value.shape[1], density=0.5, format="csr", random_state=0)
        _for_every_backend(
            "malformed: cosine_topk", X, "Y", lambda b: fastrec.cosine_topk(good, X.value, 2, backend=b)
        )
    else:
        _for_every_backend(
            "malformed: cosine_topk", X, "X", lambda b: fastrec.cosine_topk(X.value, k=2, backend=b)
        )


@fuzz(1)
@given(M=malformed(what="exclude", rows=(6, 6), cols=(5, 5), formats=("csr",)), as_candidates=st.booleans())
def malformed_topn(M, as_candidates):
    U = np.ones((6, 3), dtype=np.float32)
    V = np.arange(15, dtype=np.float32).reshape(5, 3)
    name = "candidates" if as_candidates else "exclude"
    _for_every_backend(
        "malformed: topn", M, name, lambda b: fastrec.topn(U, V, 3, **{name: M.value}, backend=b)
    )


@fuzz(1)
@given(X=malformed(what="X"), stage=st.sampled_from(["fit", "predict", "transform"]))
def malformed_kmeans(X, stage):
    def call(backend):
        model = fastrec.KMeans(2, random_state=0, max_iter=5, backend=backend)
        if stage == "fit":
            return model.fit(X.value)
        model.fit(np.random.default_rng(0).normal(size=(6, X.value.shape[1])))
        return getattr(model, stage)(X.value)

    _for_every_backend("malformed: KMeans", X, "X", call)


@fuzz(1)
@given(
    R=malformed(what="ratings", nonnegative=True),
    model=st.sampled_from(["MatrixFactorization", "ItemKNN", "UserKNN", "ContentKNN"]),
)
def malformed_fit(R, model):
    def call(backend):
        if model == "MatrixFactorization":
            return fastrec.MatrixFactorization(2, n_epochs=1, random_state=0, backend=backend).fit(R.value)
        if model == "ContentKNN":
            return fastrec.ContentKNN(R.value, backend=backend)
        return getattr(fastrec, model)(k=3, backend=backend).fit(R.value)

    name = "features" if model == "ContentKNN" else "ratings"
    if model == "ContentKNN":

        def call(backend):  # noqa: F811 - the features matrix is what is malformed here
            return fastrec.ContentKNN(R.value, backend=backend).fit(_GOOD[:, : R.value.shape[0]])

    _for_every_backend(f"malformed: {model}.fit", R, name, call)


@fuzz(1)
@given(
    T=malformed(what="test", rows=(6, 6), cols=(5, 5), formats=("csr",)),
    which=st.sampled_from(["metric", "evaluate_test", "evaluate_train"]),
)
def malformed_metrics(T, which):
    table = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 2]])

    def call(backend):
        if which == "metric":
            return metrics.ranking_metrics(table, T.value, 2, backend=backend)
        model = fastrec.ItemKNN(k=3, backend=backend)
        if which == "evaluate_test":
            return fastrec.evaluate(model, _GOOD, T.value, 2, backend=backend)
        return fastrec.evaluate(model, T.value, _GOOD, 2, backend=backend)

    _for_every_backend(
        f"malformed: {'metrics' if which == 'metric' else 'evaluate'}",
        T,
        "train" if which == "evaluate_train" else "test",
        call,
    )


@fuzz(1)
@given(M=malformed(what="data"), which=st.sampled_from(["split", "interactions"]))
def malformed_datasets(M, which):
    n_rows, n_cols = M.value.shape
    if which == "split":
        record("malformed: train_test_split", data=M)
        _refused_by_name(lambda: train_test_split(M.value, 0.5, seed=0), M, "data")
    else:
        record("malformed: Interactions", matrix=M)
        _refused_by_name(lambda: Interactions(M.value, np.arange(n_rows), np.arange(n_cols)), M, "matrix")


MALFORMED = [
    "malformed_cosine",
    "malformed_topn",
    "malformed_kmeans",
    "malformed_fit",
    "malformed_metrics",
    "malformed_datasets",
]


def _child_main(names: list[str]) -> int:
    """Run the named malformed-input tests here; print what each did, one line apiece."""
    failed = 0
    for name in names:
        print(f"FUZZ-START {name}", flush=True)
        CASES.clear()
        try:
            globals()[name]()
            status = "ok"
        except BaseException:  # noqa: BLE001 - report every failure, then go on
            traceback.print_exc(file=sys.stdout)  # with hypothesis's falsifying example
            sys.stdout.flush()
            status, failed = "failed", failed + 1
        print(f"FUZZ-DONE {name} {status} {json.dumps(dict(CASES))}", flush=True)
    return 1 if failed else 0


def test_malformed_sparse_in_child_process(tmp_path):
    """Every malformed-input test, in child processes that may crash without ending the run."""
    tests_dir = Path(__file__).resolve().parent
    case_log = tmp_path / "last-case.txt"
    env = dict(
        os.environ,
        _FASTREC_FUZZ_CASE_LOG=str(case_log),
        PYTHONPATH=os.pathsep.join([str(tests_dir.parent), str(tests_dir), os.environ.get("PYTHONPATH", "")]),
    )
    remaining, problems = list(MALFORMED), []
    while remaining:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, test_fuzz; sys.exit(test_fuzz._child_main(sys.argv[1:]))",
                *remaining,
            ],
            cwd=tests_dir.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        done, started, output = [], None, []
        for line in proc.stdout.splitlines():
            if line.startswith("FUZZ-START "):
                started, output = line.split()[1], []
            elif line.startswith("FUZZ-DONE "):
                _, name, status, counts = line.split(" ", 3)
                done.append(name)
                CASES.update(json.loads(counts))
                if status != "ok":
                    problems.append(f"{name} failed:\n" + "\n".join(output)[-8000:])
            else:
                output.append(line)
        if proc.returncode < 0 or (proc.returncode and started not in done):
            last = case_log.read_text() if case_log.exists() else "(none recorded)"
            problems.append(
                f"the child process died (exit status {proc.returncode}) in {started}; "
                f"last case started:\n{last}\n{proc.stderr[-3000:]}"
            )
            done.append(started)
        elif proc.returncode and not problems:
            problems.append(f"child failed (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")
        remaining = [name for name in remaining if name not in done]
        if not done:
            break
    assert not problems, "\n\n".join(problems)
