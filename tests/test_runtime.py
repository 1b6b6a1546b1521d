"""Backend resolution, thread control, SIMD dispatch and show_config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import simd_levels

import fastrec
from fastrec import _runtime


def test_backend_resolution():
    assert _runtime.resolve_backend("numpy") == "numpy"
    assert _runtime.resolve_backend("auto") == fastrec.available_backends()[0]
    with pytest.raises(ValueError, match="backend='gpu' is not one of"):
        _runtime.resolve_backend("gpu")


def test_thread_defaults_and_override():
    assert fastrec.get_num_threads() == _runtime.usable_cores()
    assert _runtime.usable_cores() <= len(os.sched_getaffinity(0))
    fastrec.set_num_threads(1)
    assert fastrec.get_num_threads() == 1 and _runtime.resolve_threads(None) == 1
    assert _runtime.resolve_threads(3) == 3
    fastrec.set_num_threads(None)
    assert fastrec.get_num_threads() == _runtime.usable_cores()
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        fastrec.set_num_threads(0)
    with pytest.raises(TypeError, match="n_threads must be an integer"):
        fastrec.set_num_threads("2")


def test_blas_is_held_to_one_thread_inside_kernels():
    from threadpoolctl import threadpool_info

    with _runtime.kernel_threads("cpp", 2):
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        assert all(lib["num_threads"] == 1 for lib in blas)


@pytest.mark.skipif(_runtime._cpp is None, reason="compiled core not built")
def test_simd_levels_are_selectable():
    levels = simd_levels()
    assert levels[0] == "baseline"
    assert fastrec.simd_level() in levels
    assert _runtime._cpp.detected_simd_level() == levels[-1]
    previous = fastrec.simd_level()
    try:
        for level in levels:
            _runtime._cpp.set_simd_level(level)
            assert fastrec.simd_level() == level
    finally:
        _runtime._cpp.set_simd_level(previous)
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _runtime._cpp.set_simd_level("sse9")


def test_show_config_reports_everything(capsys):
    fastrec.show_config()
    out = capsys.readouterr().out
    assert out.startswith(f"fastrec {fastrec.__version__}")
    for label in ("backends available", "SIMD path", "threads", "OpenMP", "Numba", "BLAS"):
        assert label in out


def test_missing_compiled_core_falls_back_to_numba_with_one_warning():
    code = textwrap.dedent(
        """
        import sys, warnings
        sys.modules["fastrec._cpp"] = None  # makes `from fastrec import _cpp` fail
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastrec
            import fastrec.similarity
        messages = [str(w.message) for w in caught if "compiled core" in str(w.message)]
        print(len(messages), fastrec.available_backends())
        import numpy as np
        S = fastrec.cosine_topk(np.eye(3) + 1, k=1)
        print(S.nnz)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    ).stdout.split("\n")
    assert out[0] == "1 ('numba', 'numpy')"
    assert out[1] == "3"
