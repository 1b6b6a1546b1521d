"""The installed package matches how it was built.

The compiled core is optional at build time (see docs/install.md): without a
compiler fastrec installs on its Numba backend, and without OpenMP it gets a
single-threaded core.  Run with ``FASTREC_BUILD_CORE`` set as for the build, the
suite also checks the outcome: ``1`` (CI, wheels) means the core must be there,
``0`` (the no-compiler CI run) that it must not be.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re

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


# Every kernel of the compiled core, by family: the Numba and numpy backends define
# the same names with the same parameters, so a call site may pass keywords.
KERNELS = {
    "similarity": ["cosine_topk"],
    "scoring": ["topn"],
    "cluster": ["kmeans_assign_dense", "kmeans_assign_csr", "sqdist_dense"],
    "recommenders": ["sparse_score_topn", "dense_topn"],
    "metrics": ["ranking_metrics"],
    "mf": ["sgd_mf_epoch", "group_by_block", "mf_predict"],
    "implicit.als": ["als_half_step"],
    "implicit.bpr": ["bpr_draw", "bpr_samples", "bpr_epoch"],
    "implicit.warp": ["warp_epoch", "warp_epoch_features"],
    "implicit.weighting": ["bm25_weight", "tfidf_weight", "confidence_weight"],
}


def _cpp_parameter_lists(function) -> list[list[str]]:
    """Parameter names of every overload of a pybind11 function, from its docstring."""
    name = function.__name__
    lists = []
    for line in function.__doc__.splitlines():
        match = re.match(rf"(?:\d+\. )?{name}\((.*)\) -> ", line)
        if match and not match.group(1).startswith("*args"):
            lists.append(re.findall(r"(?:^|, )(\w+): ", match.group(1)))
    return lists


@pytest.mark.skipif(_runtime._cpp is None, reason="checks the compiled core's signatures")
@pytest.mark.parametrize("family", sorted(KERNELS))
def test_compiled_kernels_take_the_other_backends_parameter_names(family):
    reference = importlib.import_module(f"fastrec.{family}._reference")
    numba_module = importlib.import_module(f"fastrec.{family}._numba")
    for kernel in KERNELS[family]:
        expected = list(inspect.signature(getattr(reference, kernel)).parameters)
        numba_kernel = getattr(numba_module, kernel)
        assert list(inspect.signature(getattr(numba_kernel, "py_func", numba_kernel)).parameters) == expected
        overloads = _cpp_parameter_lists(getattr(_runtime._cpp, kernel))
        assert overloads, f"no signature found for the compiled {kernel}"
        for names in overloads:
            assert names == expected, kernel


def _topn_arguments():
    rng = np.random.default_rng(3)
    u, v = rng.random((6, 5), dtype=np.float32), rng.random((11, 5), dtype=np.float32)
    exclude = sp.random(6, 11, density=0.3, format="csr", random_state=4)
    return {
        "u": u,
        "v": v,
        "exclude_indptr": exclude.indptr.astype(np.int64),
        "exclude_indices": exclude.indices.astype(np.int32),
        "cand_indptr": np.zeros(0, np.int64),
        "cand_indices": np.zeros(0, np.int32),
        "out_indices": np.empty((6, 4), np.int32),
        "out_scores": np.empty((6, 4), np.float32),
        "n_threads": 2,
    }


@pytest.mark.parametrize("backend", fastrec.available_backends())
def test_kernels_accept_keywords_in_any_order(backend):
    kernel = _runtime.kernel_module(backend, "scoring").topn
    positional = _topn_arguments()
    with _runtime.kernel_threads(backend, 2):
        kernel(*positional.values())
    keywords = _topn_arguments()
    with _runtime.kernel_threads(backend, 2):
        kernel(**dict(reversed(list(keywords.items()))))
    np.testing.assert_array_equal(keywords["out_indices"], positional["out_indices"])
    np.testing.assert_array_equal(keywords["out_scores"], positional["out_scores"])


@pytest.mark.skipif(_runtime._cpp is None, reason="checks the compiled core's argument checks")
def test_compiled_kernels_reject_unknown_keywords_and_name_bad_arguments():
    arguments = _topn_arguments()
    arguments["exclude"] = arguments.pop("exclude_indptr")
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _runtime._cpp.topn(**arguments)
    arguments = _topn_arguments()
    arguments["out_scores"] = np.empty((6, 3), np.float32)
    with pytest.raises(ValueError, match=r"out_scores: expected shape \(6, 4\), got shape \(6, 3\)"):
        _runtime._cpp.topn(**arguments)
    arguments = _topn_arguments()
    arguments["v"] = arguments["v"][:, :4].copy()
    with pytest.raises(ValueError, match=r"v: expected shape \(\*, 5\)"):
        _runtime._cpp.topn(**arguments)
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"x_sqnorm: expected a 1-D array of length 3, got shape \(2,\)"):
        _runtime._cpp.sqdist_dense(x=x, x_sqnorm=np.ones(2), y=x, out=np.empty((3, 3)), n_threads=1)
