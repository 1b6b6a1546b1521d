"""The installed package matches how it was built.

The compiled core is optional at build time (see docs/install.md): without a
compiler fastrec installs on its Numba backend, and without OpenMP it gets a
single-threaded core.  Run with ``FASTREC_BUILD_CORE`` set as for the build, the
suite also checks the outcome: ``1`` (CI, wheels) means the core must be there,
``0`` (the no-compiler CI run) that it must not be.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec import _runtime


def test_backends_report_the_compiled_core_as_built():
    core = _runtime._cpp is not None
    assert fastrec.available_backends() == (("cpp",) if core else ()) + ("numba", "numpy")
    assert _runtime.resolve_backend("auto") == ("cpp" if core else "numba")
    expected = os.environ.get("FASTREC_BUILD_CORE", "").strip()
    if expected == "1":
        assert core, f"the compiled core did not import: {_runtime.CPP_IMPORT_ERROR}"
    elif expected == "0":
        assert not core, "FASTREC_BUILD_CORE=0 but fastrec._cpp imported"


def test_default_threads_are_not_capped_by_a_core_without_openmp(monkeypatch):
    # A core built without OpenMP has no OpenMP limit to honour; the Numba backend
    # (and a later OpenMP build) must still get every usable core.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    expected = _runtime.usable_cores()
    if _runtime._cpp is not None and _runtime._cpp.openmp_version() > 0:
        expected = min(expected, _runtime._cpp.omp_max_threads())
    assert _runtime.host_threads() == max(1, expected)


@pytest.mark.parametrize("backend", fastrec.available_backends())
def test_every_available_backend_runs_after_install(backend):
    # One call per backend of each installed kernel family's entry point in the
    # compiled core (module import, linking, JIT), checked against the reference.
    rng = np.random.default_rng(0)
    X = sp.random(30, 12, density=0.3, format="csr", random_state=1, dtype=np.float32)
    got = fastrec.cosine_topk(X, k=3, backend=backend)
    ref = fastrec.cosine_topk(X, k=3, backend="numpy")
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_allclose(got.data, ref.data, rtol=1e-5, atol=1e-6)
    U, V = rng.random((5, 4), dtype=np.float32), rng.random((9, 4), dtype=np.float32)
    items, scores = fastrec.topn(U, V, 3, backend=backend)
    ref_items, ref_scores = fastrec.topn(U, V, 3, backend="numpy")
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
