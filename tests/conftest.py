"""Shared test helpers: backend lists and tie-aware comparison of top-k results."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import settings

import fastrec
from fastrec import _runtime

# CI runs the property tests derandomised (HYPOTHESIS_PROFILE=ci in .ci/run), so a
# red run is reproducible and a green one does not depend on the draw; locally
# each run explores new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

COMPILED_BACKENDS = [b for b in ("cpp", "numba") if b in fastrec.available_backends()]
ALL_BACKENDS = [*COMPILED_BACKENDS, "numpy"]


@pytest.fixture(scope="module", params=ALL_BACKENDS)
def every_backend(request) -> str:
    """Each backend available here in turn: the one list the recommender contract runs on."""
    return request.param


def simd_levels() -> list[str]:
    """Every SIMD level the compiled core can run here (empty without it)."""
    return list(_runtime._cpp.available_simd_levels()) if _runtime._cpp is not None else []


@contextlib.contextmanager
def simd_level(level: str):
    """Run the compiled kernels at ``level``, restoring the previous level afterwards."""
    previous = _runtime._cpp.simd_level()
    _runtime._cpp.set_simd_level(level)
    try:
        yield
    finally:
        _runtime._cpp.set_simd_level(previous)


def compiled_variants() -> list[tuple[str, str | None]]:
    """(backend, simd level) pairs: cpp at every SIMD level, and numba."""
    variants: list[tuple[str, str | None]] = [("cpp", level) for level in simd_levels()]
    if "numba" in fastrec.available_backends():
        variants.append(("numba", None))
    return variants


@contextlib.contextmanager
def variant(level: str | None):
    if level is None:
        yield
    else:
        with simd_level(level):
            yield


def assert_topk_rows_equivalent(result: sp.csr_matrix, expected: sp.csr_matrix, tol: float) -> None:
    """Assert two rank-ordered top-k CSR results agree row by row, allowing only ties.

    Per row: the same number of entries; scores equal within ``tol`` position by
    position; and the same index sets, except that entries whose score lies
    within ``tol`` of the row's lowest kept score may be swapped for other
    entries of (near-)equal score.
    """
    assert result.shape == expected.shape
    for row in range(result.shape[0]):
        r_idx = result.indices[result.indptr[row] : result.indptr[row + 1]]
        r_val = result.data[result.indptr[row] : result.indptr[row + 1]]
        e_idx = expected.indices[expected.indptr[row] : expected.indptr[row + 1]]
        e_val = expected.data[expected.indptr[row] : expected.indptr[row + 1]]
        assert r_idx.size == e_idx.size, f"row {row}: {r_idx.size} entries, expected {e_idx.size}"
        if r_idx.size == 0:
            continue
        np.testing.assert_allclose(r_val, e_val, rtol=0, atol=tol, err_msg=f"row {row}")
        boundary = e_val[-1]
        r_firm = set(r_idx[r_val > boundary + tol].tolist())
        e_firm = set(e_idx[e_val > boundary + tol].tolist())
        assert r_firm == e_firm, f"row {row}: {sorted(r_firm ^ e_firm)} differ above the tie boundary"


def assert_rank_ordered(result: sp.csr_matrix, zeros_allowed: bool = False) -> None:
    """Each row sorted by descending score, ties to the smaller index, no index twice;
    no zeros stored unless ``zeros_allowed`` (a score of 0 is a real score there)."""
    for row in range(result.shape[0]):
        idx = result.indices[result.indptr[row] : result.indptr[row + 1]]
        val = result.data[result.indptr[row] : result.indptr[row + 1]]
        assert zeros_allowed or np.all(val != 0)
        assert len(set(idx.tolist())) == idx.size
        for a in range(idx.size - 1):
            assert val[a] > val[a + 1] or (val[a] == val[a + 1] and idx[a] < idx[a + 1]), (
                f"row {row} out of rank order at position {a}"
            )


@pytest.fixture(autouse=True)
def _restore_default_threads():
    yield
    fastrec.set_num_threads(None)
