"""Backend resolution, thread control, SIMD dispatch and show_config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import numpy as np
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
    assert fastrec.get_num_threads() == _runtime.host_threads()
    assert _runtime.usable_cores() <= len(os.sched_getaffinity(0))
    fastrec.set_num_threads(1)
    assert fastrec.get_num_threads() == 1 and _runtime.resolve_threads(None) == 1
    assert _runtime.resolve_threads(3) == 3
    fastrec.set_num_threads(None)
    assert fastrec.get_num_threads() == _runtime.host_threads()
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        fastrec.set_num_threads(0)
    with pytest.raises(TypeError, match="n_threads must be an integer"):
        fastrec.set_num_threads("2")
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        _runtime.resolve_threads(-3)


@pytest.mark.parametrize("requested", [100_000, 2**31, 2**63, 10**30])
def test_thread_counts_are_capped_at_the_ceiling(requested):
    ceiling = _runtime.max_threads()
    assert ceiling == 4 * os.cpu_count()
    assert _runtime.resolve_threads(requested) == ceiling
    fastrec.set_num_threads(requested)
    try:
        assert fastrec.get_num_threads() == ceiling
    finally:
        fastrec.set_num_threads(None)


def test_default_threads_follow_the_openmp_limit_of_the_calling_thread():
    from threadpoolctl import threadpool_limits

    if _runtime._cpp is None or _runtime._cpp.openmp_version() == 0:
        pytest.skip("the OpenMP limit is read through the compiled core, built with OpenMP")
    with threadpool_limits(1, user_api="openmp"):
        assert fastrec.get_num_threads() == 1
    assert fastrec.get_num_threads() == _runtime.host_threads()


def test_default_threads_follow_omp_num_threads():
    code = "import fastrec; print(fastrec.get_num_threads(), fastrec._runtime._env_thread_limit())"
    env = {**os.environ, "OMP_NUM_THREADS": "1,1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out == ["1", "1"]
    for value in ("", "zero", "0", "-2"):
        env["OMP_NUM_THREADS"] = value
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        ).stdout.split()
        assert out[1] == "None"


def test_default_threads_follow_joblib_inner_max_num_threads():
    joblib = pytest.importorskip("joblib")
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        counts = joblib.Parallel(n_jobs=2)(joblib.delayed(fastrec.get_num_threads)() for _ in range(2))
    assert counts == [1, 1]


def _thread_limits() -> list[tuple[str, str, int]]:
    from threadpoolctl import threadpool_info

    return sorted((lib["user_api"], lib["filepath"], lib["num_threads"]) for lib in threadpool_info())


def test_kernel_calls_leave_blas_and_openmp_limits_unchanged():
    import numba
    import numpy as np

    before, numba_before = _thread_limits(), numba.get_num_threads()
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    for backend in fastrec.available_backends() + ("numpy",):
        fastrec.topn(U, V, n=3, n_threads=1, backend=backend)
        fastrec.cosine_topk(np.abs(V), k=3, n_threads=1, backend=backend)
    after = [lib for lib in _thread_limits() if lib[:2] in {b[:2] for b in before}]
    assert after == before  # libraries loaded by the calls themselves start at their defaults
    assert numba.get_num_threads() == numba_before


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


def test_public_simd_switch_selects_every_level_and_none_restores_the_widest():
    if _runtime._cpp is None:
        with pytest.raises(RuntimeError, match="compiled core"):
            fastrec.set_simd_level("baseline")
        return
    levels = simd_levels()
    assert _runtime.available_simd_levels() == tuple(levels)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 9)).astype(np.float32)
    init = X[:7].copy()
    expected = fastrec.KMeans(7, init=init, n_init=1, max_iter=3, tol=0.0, backend="numpy").fit(X).labels_
    try:
        for level in levels:
            fastrec.set_simd_level(level.upper())  # case-insensitive
            assert fastrec.simd_level() == level
            got = fastrec.KMeans(7, init=init, n_init=1, max_iter=3, tol=0.0, backend="cpp").fit(X).labels_
            np.testing.assert_array_equal(got, expected)
        fastrec.set_simd_level(None)
        assert fastrec.simd_level() == levels[-1]
    finally:
        fastrec.set_simd_level(None)


def test_public_simd_switch_rejects_bad_levels(monkeypatch):
    if _runtime._cpp is None:
        return  # covered by the test above: every call raises RuntimeError
    before = fastrec.simd_level()
    with pytest.raises(ValueError, match="'sse9' is not a SIMD level: use one of baseline, avx2, avx512"):
        fastrec.set_simd_level("sse9")
    with pytest.raises(TypeError, match="level must be a string or None"):
        fastrec.set_simd_level(2)
    monkeypatch.setattr(_runtime, "available_simd_levels", lambda: ("baseline",))
    with pytest.raises(ValueError, match="'avx512' is not supported by this CPU: it runs baseline"):
        fastrec.set_simd_level("avx512")
    assert fastrec.simd_level() == before


@pytest.mark.parametrize("value", ["baseline", " AVX2 ", "avx512", "sse9"])
def test_fastrec_simd_environment_variable_sets_the_starting_level(value):
    code = "import fastrec; print(fastrec.simd_level())"
    env = dict(os.environ, FASTREC_SIMD=value)
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    levels = simd_levels()
    if not levels:
        assert proc.stdout.strip() == "none"
        return
    wanted = value.strip().lower()
    if wanted in levels:
        assert proc.stdout.strip() == wanted
        assert "FASTREC_SIMD" not in proc.stderr
    else:
        assert proc.stdout.strip() == levels[-1]
        assert f"FASTREC_SIMD={value!r} ignored" in proc.stderr


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
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    ).stdout.split("\n")
    assert out[0] == "1 ('numba', 'numpy')"
    assert out[1] == "3"


# --- first-use compilation notice of the Numba kernels ---


def _fresh_kernel():
    """An uncached Numba kernel that no process has compiled yet."""
    numba = pytest.importorskip("numba")

    @numba.njit
    def add_one(x):
        return x + 1.0

    return add_one


def _announced(kernel, monkeypatch, after_s):
    from fastrec import _jit

    monkeypatch.setattr(_jit, "NOTICE_AFTER_S", after_s)
    module = types.SimpleNamespace(add_one=kernel, plain=3)
    return _jit.AnnouncedModule(module, "demo")


def test_slow_first_compile_is_announced_once(monkeypatch, caplog):
    announced = _announced(_fresh_kernel(), monkeypatch, 0.0)
    with caplog.at_level("WARNING", logger="fastrec"):
        assert announced.add_one(np.float64(1.5)) == 2.5
        assert announced.add_one(np.float64(2.0)) == 3.0
    notices = [r.getMessage() for r in caplog.records if "compiling the Numba kernel" in r.getMessage()]
    assert len(notices) == 1 and "demo.add_one" in notices[0]
    assert announced.plain == 3  # non-kernel attributes pass through
    assert announced.add_one is announced.add_one  # one wrapper per kernel


def test_quick_first_compile_is_not_announced(monkeypatch, caplog):
    announced = _announced(_fresh_kernel(), monkeypatch, 60.0)
    with caplog.at_level("WARNING", logger="fastrec"):
        assert announced.add_one(np.float64(1.5)) == 2.5
    assert not [r for r in caplog.records if "compiling" in r.getMessage()]


def test_numba_typing_error_keeps_numbas_message(monkeypatch):
    announced = _announced(_fresh_kernel(), monkeypatch, 60.0)
    from numba.core.errors import TypingError

    with pytest.raises(TypingError):
        announced.add_one("not a number")


def test_numba_backend_kernels_are_announced():
    from fastrec import _jit

    if "numba" not in fastrec.available_backends():
        pytest.skip("Numba is not installed")
    module = _runtime.kernel_module("numba", "scoring")
    assert isinstance(module, _jit.AnnouncedModule)
    assert _runtime.kernel_module("numba", "scoring") is module


def test_slow_first_compile_is_announced_for_a_keyword_call(monkeypatch, caplog):
    numba = pytest.importorskip("numba")

    @numba.njit
    def scaled(x, factor):
        return x * factor

    from fastrec import _jit

    monkeypatch.setattr(_jit, "NOTICE_AFTER_S", 0.0)
    announced = _jit.AnnouncedModule(types.SimpleNamespace(scaled=scaled), "demo")
    with caplog.at_level("WARNING", logger="fastrec"):
        assert announced.scaled(factor=np.float64(2.0), x=np.float64(1.5)) == 3.0
        assert announced.scaled(np.float64(2.0), factor=np.float64(0.5)) == 1.0
    notices = [r.getMessage() for r in caplog.records if "compiling the Numba kernel" in r.getMessage()]
    assert len(notices) == 1 and "demo.scaled" in notices[0]
    fresh = _announced(_fresh_kernel(), monkeypatch, 0.0)
    with pytest.raises(TypeError):  # an unknown keyword: Numba's own error
        fresh.add_one(y=np.float64(1.0))
