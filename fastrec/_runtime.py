"""Backend resolution, thread counts and the facts ``show_config`` reports.

Every public function resolves its ``backend`` and ``n_threads`` arguments here, so
the rules live in one place:

* ``backend="auto"`` picks the compiled C++ core when it imported, else Numba.
  ``"numpy"`` is the reference implementation: readable, slow, and the definition
  of a correct answer.
* ``n_threads=None`` follows the host, as scikit-learn does: every core this
  process may run on (CPU affinity and cgroup quotas), further limited by
  ``OMP_NUM_THREADS`` and by an OpenMP limit set on the calling thread (for example
  ``threadpoolctl.threadpool_limits(n, user_api="openmp")``, or what joblib and Dask
  give their workers), unless :func:`set_num_threads` set a default.
* Every thread count, from any source, is validated and capped at
  :func:`max_threads` here, so no caller can make a kernel start thousands of
  threads.
* The SIMD level of the compiled kernels is the widest the CPU supports, unless
  ``FASTREC_SIMD`` (``baseline``, ``avx2``, ``avx512``) or :func:`set_simd_level`
  forces a narrower one, for testing and benchmarking.
* A kernel call changes no process-wide state: the C++ kernels take their thread
  count as an argument and Numba's thread count is local to the calling thread.
  No kernel calls the BLAS, so its thread limits are left alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

BACKENDS = ("cpp", "numba", "numpy")

# The compiled extension module (it has no type stubs, so its functions are Any), or None.
_cpp: Any
try:  # the compiled core is optional at import time; Numba takes over without it
    import importlib

    # import_module names the real cause (no module fastrec._cpp) where `from fastrec import`
    # would blame a circular import
    _cpp = importlib.import_module("fastrec._cpp")

    CPP_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _cpp = None
    CPP_IMPORT_ERROR = str(exc)
    warnings.warn(
        "fastrec's compiled core (fastrec._cpp) could not be imported "
        f"({exc}); falling back to the Numba backend. Reinstall with "
        "`pip install .` to build it.",
        RuntimeWarning,
        stacklevel=2,
    )

# Numba compiler options shared by every Numba kernel.  "ninf"/"nnan" are left out
# on purpose: top-k padding uses -inf, and comparisons with it must stay exact.
NUMBA_FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
NUMBA_KERNEL_OPTIONS: dict[str, Any] = {
    "nogil": True,
    "cache": True,
    "fastmath": set(NUMBA_FASTMATH),
}
# Strict IEEE arithmetic, for kernels whose results must not depend on which
# code path computed them (fastmath lets LLVM fuse or reorder each path its own way).
NUMBA_STRICT_OPTIONS: dict[str, Any] = {"nogil": True, "cache": True}

_default_threads: int | None = None


def available_backends() -> tuple[str, ...]:
    """Backends usable in this process, fastest first."""
    return ("cpp", "numba", "numpy") if _cpp is not None else ("numba", "numpy")


def kernel_module(backend: str, family: str) -> Any:
    """The module holding one backend's kernels of a family (``"mf"``, ``"cluster"``, ...).

    The compiled core for ``"cpp"``; otherwise ``fastrec.<family>._numba`` (its
    kernels wrapped so that a slow first compile is announced, see
    :mod:`fastrec._jit`) or ``._reference``, imported on first use.  Every backend of a kernel has the
    same name and argument order, so callers pick kernels by attribute.
    """
    if backend == "cpp":
        return _cpp
    import importlib

    module = importlib.import_module(f"fastrec.{family}.{'_numba' if backend == 'numba' else '_reference'}")
    if backend != "numba":
        return module
    announced = _announced_modules.get(family)
    if announced is None:
        from fastrec._jit import AnnouncedModule

        announced = _announced_modules.setdefault(family, AnnouncedModule(module, family))
    return announced


_announced_modules: dict[str, Any] = {}  # family -> its Numba kernels, first compiles announced


def resolve_backend(backend: str) -> str:
    """Map a user's ``backend`` argument to a concrete backend name."""
    if not isinstance(backend, str) or backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend={backend!r} is not one of 'auto', 'cpp', 'numba', 'numpy'.")
    if backend == "auto":
        return available_backends()[0]
    if backend == "cpp" and _cpp is None:
        raise RuntimeError(
            "backend='cpp' was requested but the compiled core is not available "
            f"({CPP_IMPORT_ERROR}). Use backend='numba' or reinstall fastrec."
        )
    return backend


def _cgroup_cpu_limit() -> int | None:
    """CPU quota of this process's cgroup (v2 ``cpu.max`` or v1), if any."""
    candidates: list[tuple[str, str | None]] = [("/sys/fs/cgroup/cpu.max", None)]
    candidates.append(("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as fh:
                fields = fh.read().split()
            if period_path is None:
                if fields[0] == "max":
                    return None
                quota, period = int(fields[0]), int(fields[1])
            else:
                with open(period_path) as fh:
                    quota, period = int(fields[0]), int(fh.read().split()[0])
                if quota < 0:
                    return None
            return max(1, math.ceil(quota / period))
        except (OSError, ValueError, IndexError):
            continue
    return None


# The cgroup quota is re-read at most this often (seconds): reading it costs about
# as much as a small kernel call, and it changes rarely.
_CGROUP_REFRESH = 10.0
_cgroup_cache: tuple[int, float, int | None] | None = None  # (pid, read at, limit)


def _cached_cgroup_cpu_limit() -> int | None:
    global _cgroup_cache
    import time

    now, pid = time.monotonic(), os.getpid()
    cache = _cgroup_cache
    if cache is None or cache[0] != pid or now - cache[1] > _CGROUP_REFRESH:
        cache = _cgroup_cache = (pid, now, _cgroup_cpu_limit())
    return cache[2]


def usable_cores() -> int:
    """Cores this process may use: affinity mask, capped by any cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    limit = _cached_cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit else cores)


# Threads per logical CPU above which a requested count is capped: oversubscribing
# a little is a user's choice, thousands of threads only exhaust memory.
THREADS_PER_CPU_CEILING = 4


def max_threads() -> int:
    """The most threads a kernel call starts: 4 per logical CPU of the machine.

    Larger requests (an argument, :func:`set_num_threads`, a loaded model's
    parameters, ``fastrec fit --threads``) are capped to it.
    """
    return THREADS_PER_CPU_CEILING * (os.cpu_count() or 1)


def check_threads(n_threads: Any, name: str = "n_threads") -> int:
    """``n_threads`` as an int in [1, :func:`max_threads`]: validated, then capped."""
    from fastrec._validation import check_int

    return min(check_int(n_threads, name, minimum=1), max_threads())


def _env_thread_limit() -> int | None:
    """The first entry of ``OMP_NUM_THREADS`` (a comma list for nested levels), if valid."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def host_threads() -> int:
    """Threads the host lets this calling thread use.

    Every core this process may run on (affinity mask and cgroup quota), capped
    by ``OMP_NUM_THREADS`` and by the OpenMP limit in force on the calling thread
    (``threadpool_limits(..., user_api="openmp")``, joblib's
    ``inner_max_num_threads``, a Dask worker's settings), as scikit-learn reads it.
    """
    limit = usable_cores()
    env = _env_thread_limit()
    if env is not None:
        limit = min(limit, env)
    if _cpp is not None:
        limit = min(limit, max(1, int(_cpp.omp_max_threads())))
    return max(1, limit)


def set_num_threads(n_threads: int | None) -> None:
    """Set the default thread count used when a call passes ``n_threads=None``.

    Parameters
    ----------
    n_threads : int or None
        Threads for fastrec's kernels, capped at :func:`max_threads`; ``None``
        restores the default, which follows the host (see :func:`get_num_threads`).
    """
    global _default_threads
    _default_threads = None if n_threads is None else check_threads(n_threads)


def get_num_threads() -> int:
    """The thread count a call with ``n_threads=None`` uses.

    The default set by :func:`set_num_threads`, else what the host allows the
    calling thread: the cores this process may use (affinity, cgroup quota),
    capped by ``OMP_NUM_THREADS`` and the OpenMP limit of threadpoolctl, joblib
    or Dask.
    """
    return _default_threads if _default_threads is not None else host_threads()


def resolve_threads(n_threads: int | None) -> int:
    """Map a user's ``n_threads`` argument to a thread count in [1, :func:`max_threads`]."""
    if n_threads is None:
        return get_num_threads()
    return check_threads(n_threads)


_blas_controller = None
_blas_controller_modules = -1
_blas_controller_lock = threading.Lock()


def _threadpool_controller():
    """A threadpoolctl controller that knows every BLAS loaded so far (for :func:`config`).

    Building one scans the process's shared libraries (milliseconds), so it is
    cached and rebuilt only when new modules were imported since.
    """
    global _blas_controller, _blas_controller_modules
    import sys

    with _blas_controller_lock:
        if _blas_controller is None or len(sys.modules) != _blas_controller_modules:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController()
            _blas_controller_modules = len(sys.modules)
        return _blas_controller


@contextlib.contextmanager
def kernel_threads(backend: str, n_threads: int) -> Iterator[None]:
    """Run a Numba kernel of the calling thread with ``n_threads`` threads.

    Numba's thread count is local to the calling thread, so setting it here and
    restoring it afterwards is invisible to every other thread.  The C++ kernels
    take their thread count as an argument and the reference runs numpy code, so
    for them this does nothing.
    """
    if backend != "numba":
        yield
        return
    import numba

    previous = numba.get_num_threads()
    # numba.config sets its options at run time, so mypy cannot see them
    limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(max(1, min(n_threads, limit)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


SIMD_LEVELS = ("baseline", "avx2", "avx512")


def simd_level() -> str:
    """SIMD level the compiled kernels use.

    Returns
    -------
    str
        ``"avx512"``, ``"avx2"`` or ``"baseline"`` (x86-64 with SSE2 only), or
        ``"none"`` when the compiled core is not available.

    See Also
    --------
    set_simd_level : force a narrower level.
    """
    return _cpp.simd_level() if _cpp is not None else "none"


def available_simd_levels() -> tuple[str, ...]:
    """SIMD levels this CPU can run, narrowest first (empty without the compiled core)."""
    return tuple(_cpp.available_simd_levels()) if _cpp is not None else ()


def set_simd_level(level: str | None) -> None:
    """Force the SIMD level of the compiled kernels, for testing and benchmarking.

    The compiled core holds every kernel at three levels and picks the widest
    the CPU supports at import.  This switch runs the same process at a
    narrower level, to test each code path or to see how fastrec performs on
    a CPU without AVX-512.  The environment variable ``FASTREC_SIMD``
    (``baseline``, ``avx2`` or ``avx512``) sets the starting level of a new
    process the same way, before any kernel runs.

    The level is process-wide: it is meant for tests and benchmarks, not to
    be called while kernels run in other threads (a kernel already running
    finishes at the level it started with; whether a concurrent call sees the
    old or the new level is not defined).  Results are correct at every
    level; the last bits of floating-point sums may differ between levels.

    Parameters
    ----------
    level : {"baseline", "avx2", "avx512"} or None
        The level to use (case-insensitive).  ``None`` goes back to the widest
        level the CPU supports.

    Raises
    ------
    ValueError
        If ``level`` is not a known level, or if this CPU cannot run it.
    TypeError
        If ``level`` is neither a string nor None.
    RuntimeError
        If the compiled core is not available.
    """
    if level is not None and not isinstance(level, str):
        raise TypeError(f"level must be a string or None, got {type(level).__name__}")
    if _cpp is None:
        raise RuntimeError(
            f"set_simd_level needs fastrec's compiled core, which did not import ({CPP_IMPORT_ERROR})"
        )
    name = _cpp.detected_simd_level() if level is None else level.strip().lower()
    if name not in SIMD_LEVELS:
        raise ValueError(f"level={level!r} is not a SIMD level: use one of {', '.join(SIMD_LEVELS)} or None")
    if name not in available_simd_levels():
        raise ValueError(
            f"level={level!r} is not supported by this CPU: it runs {', '.join(available_simd_levels())}"
        )
    _cpp.set_simd_level(name)


def _apply_simd_environment() -> None:
    """Apply ``FASTREC_SIMD``, warning about a value that cannot be used."""
    value = os.environ.get("FASTREC_SIMD", "").strip()
    if not value or _cpp is None:
        return
    try:
        set_simd_level(value)
    except ValueError as exc:
        warnings.warn(
            f"FASTREC_SIMD={value!r} ignored: {exc}; running at {simd_level()}",
            RuntimeWarning,
            stacklevel=3,
        )


_apply_simd_environment()


def config() -> dict[str, Any]:
    """Everything :func:`show_config` prints, as a dictionary."""
    from fastrec._version import __version__

    info: dict[str, Any] = {
        "version": __version__,
        "backends": list(available_backends()),
        "cpp_import_error": CPP_IMPORT_ERROR,
        "simd": simd_level(),
        "simd_detected": _cpp.detected_simd_level() if _cpp is not None else "none",
        "usable_cores": usable_cores(),
        "default_threads": get_num_threads(),
        "max_threads": max_threads(),
        "openmp_max_threads": _cpp.omp_max_threads() if _cpp is not None else None,
        "openmp_version": _cpp.openmp_version() if _cpp is not None else None,
    }
    try:
        import numba

        info["numba"] = numba.__version__
        # numba.config sets its options at run time, so mypy cannot see them
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet: report the configured choice
            layer = numba.config.THREADING_LAYER  # type: ignore[attr-defined]
            info["numba_threading_layer"] = f"{layer} (not yet initialised)"
    except ImportError:  # pragma: no cover
        info["numba"] = None
    blas = []
    for lib in _threadpool_controller().info():
        if lib.get("user_api") == "blas":
            blas.append(
                f"{lib.get('internal_api')} {lib.get('version')} "
                f"({lib.get('architecture')}, {lib.get('num_threads')} threads, "
                f"{os.path.basename(lib.get('filepath', ''))})"
            )
    info["blas"] = blas
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


def show_config() -> None:
    """Print the version, backends, SIMD path, threads and BLAS in use."""
    info = config()
    lines = [
        f"fastrec {info['version']}",
        f"  backends available : {', '.join(info['backends'])}",
    ]
    if info["cpp_import_error"]:
        lines.append(f"  compiled core      : NOT available ({info['cpp_import_error']})")
    lines += [
        f"  SIMD path          : {info['simd']} (CPU supports {info['simd_detected']})",
        f"  threads            : {info['default_threads']} by default "
        f"({info['usable_cores']} usable cores, at most {info['max_threads']})",
        f"  OpenMP             : {info['openmp_max_threads']} max threads, version {info['openmp_version']}",
        f"  Numba              : {info.get('numba')}, threading layer "
        f"{info.get('numba_threading_layer')}, {info.get('numba_threads')} threads",
    ]
    blas = info["blas"] or ["none loaded"]
    lines.append(f"  BLAS               : {blas[0]}")
    lines += [f"                       {entry}" for entry in blas[1:]]
    if info["OPENBLAS_CORETYPE"]:
        lines.append(f"  OPENBLAS_CORETYPE  : {info['OPENBLAS_CORETYPE']}")
    print("\n".join(lines))
