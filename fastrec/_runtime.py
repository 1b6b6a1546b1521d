"""Backend resolution, thread counts and the facts ``show_config`` reports.

Every public function resolves its ``backend`` and ``n_threads`` arguments here, so
the rules live in one place:

* ``backend="auto"`` picks the compiled C++ core when it imported, else Numba.
  ``"numpy"`` is the reference implementation: readable, slow, and the definition
  of a correct answer.
* ``n_threads=None`` means the library default, which is every core this process
  may run on (CPU affinity and cgroup quotas respected) unless
  :func:`set_num_threads` changed it.
* Inside our own parallel regions the BLAS is held to one thread, so it never
  oversubscribes the cores our threads already use.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

BACKENDS = ("cpp", "numba", "numpy")

try:  # the compiled core is optional at import time; Numba takes over without it
    from fastrec import _cpp  # type: ignore[attr-defined]

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

    The compiled core for ``"cpp"``; otherwise ``fastrec.<family>._numba`` or
    ``._reference``, imported on first use.  Every backend of a kernel has the
    same name and argument order, so callers pick kernels by attribute.
    """
    if backend == "cpp":
        return _cpp
    import importlib

    return importlib.import_module(f"fastrec.{family}.{'_numba' if backend == 'numba' else '_reference'}")


def resolve_backend(backend: str) -> str:
    """Map a user's ``backend`` argument to a concrete backend name."""
    if not isinstance(backend, str) or backend not in ("auto", *BACKENDS):
        raise ValueError(
            f"backend={backend!r} is not one of 'auto', 'cpp', 'numba', 'numpy'."
        )
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
    candidates = [("/sys/fs/cgroup/cpu.max", None)]
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


def usable_cores() -> int:
    """Cores this process may use: affinity mask, capped by any cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit else cores)


def set_num_threads(n_threads: int | None) -> None:
    """Set the default thread count used when a call passes ``n_threads=None``.

    Parameters
    ----------
    n_threads : int or None
        Threads for fastrec's kernels; ``None`` restores the default, every core
        this process may use.
    """
    global _default_threads
    if n_threads is not None:
        from fastrec._validation import check_int

        n_threads = check_int(n_threads, "n_threads", minimum=1)
    _default_threads = n_threads


def get_num_threads() -> int:
    """The thread count a call with ``n_threads=None`` uses."""
    return _default_threads if _default_threads is not None else usable_cores()


def resolve_threads(n_threads: int | None) -> int:
    """Map a user's ``n_threads`` argument to a positive thread count."""
    if n_threads is None:
        return get_num_threads()
    from fastrec._validation import check_int

    return check_int(n_threads, "n_threads", minimum=1)


_blas_controller = None
_blas_controller_modules = -1


def _threadpool_controller():
    """A threadpoolctl controller that knows every BLAS loaded so far.

    Building one scans the process's shared libraries (milliseconds), so it is
    cached and rebuilt only when new modules were imported since, which is how
    another BLAS (scipy's, say) gets loaded.
    """
    global _blas_controller, _blas_controller_modules
    import sys

    if _blas_controller is None or len(sys.modules) != _blas_controller_modules:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
        _blas_controller_modules = len(sys.modules)
    return _blas_controller


@contextlib.contextmanager
def kernel_threads(backend: str, n_threads: int) -> Iterator[None]:
    """Run a kernel with ``n_threads`` threads and the BLAS held to one thread.

    The C++ kernels take their thread count as an argument; Numba's pool size is
    set here and restored afterwards.  The reference backend runs numpy code and
    keeps the BLAS as it is.
    """
    if backend == "numpy":
        yield
        return
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        if backend != "numba":
            yield
            return
        import numba

        previous = numba.get_num_threads()
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


def simd_level() -> str:
    """SIMD level the compiled kernels use ('avx512', 'avx2', 'baseline'), or 'none'."""
    return _cpp.simd_level() if _cpp is not None else "none"


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
        "openmp_max_threads": _cpp.omp_max_threads() if _cpp is not None else None,
        "openmp_version": _cpp.openmp_version() if _cpp is not None else None,
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet: report the configured choice
            info["numba_threading_layer"] = f"{numba.config.THREADING_LAYER} (not yet initialised)"
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
        f"({info['usable_cores']} usable cores)",
        f"  OpenMP             : {info['openmp_max_threads']} max threads, "
        f"version {info['openmp_version']}",
        f"  Numba              : {info.get('numba')}, threading layer "
        f"{info.get('numba_threading_layer')}, {info.get('numba_threads')} threads",
    ]
    blas = info["blas"] or ["none loaded"]
    lines.append(f"  BLAS               : {blas[0]}")
    lines += [f"                       {entry}" for entry in blas[1:]]
    if info["OPENBLAS_CORETYPE"]:
        lines.append(f"  OPENBLAS_CORETYPE  : {info['OPENBLAS_CORETYPE']}")
    print("\n".join(lines))
