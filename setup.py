"""Build the extension module ``fastrec._cpp`` from ``csrc/``, when a compiler allows.

Every ``csrc/bindings/*.cpp`` file registers its own functions with the module, and
every ``csrc/isa/<level>*.cpp`` file compiles kernel headers for one SIMD level
(baseline x86-64, AVX2+FMA, AVX-512).  The running CPU picks the level at import
time, so one build runs on any x86-64 machine and uses the widest vectors it has.
No ``-march=native``: the wheel must run on machines other than the build host.

The compiled core is optional.  Environment variables (see docs/install.md):

``FASTREC_BUILD_CORE``
    ``auto`` (default): build it; if no working C++ compiler is found or the build
    fails, say so and install without it (fastrec then runs on Numba).  ``1``: a
    failed build is an error (CI, wheels).  ``0``: do not build it.
``FASTREC_NO_OPENMP=1``
    Build without OpenMP (a single-threaded core).  Also chosen, with a message,
    when the compiler cannot build and link an OpenMP program (Apple's clang).
``FASTREC_BUILD_JOBS``
    Parallel compile jobs (default: every CPU).

Builds are incremental: objects live in ``build/temp-<tag>/`` (the tag hashes the
compiler, flags and Python), and a source is recompiled only when it or a header
it includes (as the compiler's dependency file lists them) changed.  So
re-installing an unchanged checkout, or installing an extra, only relinks.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
import tempfile
import textwrap
from glob import glob

import pybind11
from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _dependencies(depfile: str) -> list[str] | None:
    """Files listed in a compiler dependency file (``-MMD``), or None if unreadable."""
    try:
        with open(depfile) as fh:
            text = fh.read().replace("\\\n", " ")
    except OSError:
        return None
    _, sep, deps = text.partition(": ")
    if not sep:
        return None
    # Spaces inside a path are escaped as "\ "; keep them joined.
    return [d.replace("\0", " ") for d in deps.replace("\\ ", "\0").split()]


def _needs_recompile(obj: str, src: str) -> bool:
    """True unless ``obj`` is newer than its source and every header it included."""
    deps = _dependencies(os.path.splitext(obj)[0] + ".d")
    if not deps:
        return True
    built = os.path.getmtime(obj)
    if os.path.getmtime(src) > built:
        return True
    for dep in deps:
        # A listed file that is gone is skipped: pip builds in a fresh environment
        # each time, so pybind11's headers move (the object directory's tag holds
        # pybind11's version instead), and a project header can only disappear
        # together with an edit to the file that included it.
        try:
            if os.path.getmtime(dep) > built:
                return True
        except OSError:
            continue
    return False


ParallelCompile("FASTREC_BUILD_JOBS", default=0, needs_recompile=_needs_recompile).install()

# sysconfig honours a cross-compilation target (cibuildwheel on macOS), platform.machine() does not.
TARGET = sysconfig.get_platform().rsplit("-", 1)[-1].lower()
IS_X86 = TARGET in ("x86_64", "amd64", "i686", "x86")
# The per-ISA translation units use x86 target pragmas; other CPUs build the
# portable baseline units only.
ISA_SOURCES = sorted(glob("csrc/isa/*.cpp")) if IS_X86 else sorted(glob("csrc/isa/baseline*.cpp"))
BINDING_SOURCES = sorted(glob("csrc/bindings/*.cpp"))
COMPILE_ARGS = ["-O3", "-fno-math-errno", "-ffp-contract=fast", "-Wno-psabi"]


def _env_flag(name: str, default: str) -> str:
    return os.environ.get(name, default).strip().lower()


class BuildCore(build_ext):
    """Builds the core incrementally, with or without OpenMP, or skips it with a warning."""

    def finalize_options(self) -> None:
        super().finalize_options()
        # Decide the build for every extension in build_extensions; the per-object
        # dependency check there replaces setuptools' whole-extension one.
        self.force = True

    def _probe(self, code: str, compile_args: list[str], link_args: list[str]) -> str | None:
        """Compile and link ``code`` as a shared library; None on success, else the reason."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.cpp")
            with open(src, "w") as fh:
                fh.write(code)
            try:
                objects = self.compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
                self.compiler.link_shared_object(
                    objects, os.path.join(tmp, "probe.so"), extra_postargs=link_args, target_lang="c++"
                )
            except Exception as exc:  # a missing compiler raises several kinds of error
                compiler = " ".join(getattr(self.compiler, "compiler_so", None) or ["the compiler"][:1])
                detail = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
                if "Command '[" in detail[0]:  # the command line says nothing new
                    detail = [detail[0].rsplit("]'", 1)[-1].strip(" .") or type(exc).__name__]
                return f"{compiler.split()[0]} could not build a test program: {detail[0][:200]}"
        return None

    def _bindings_unit(self) -> str:
        """One translation unit that includes every binding source (the unity build).

        pybind11's headers dominate each binding file's compile time; parsing them
        once instead of once per file cuts the core's compile time by a third.
        Rewritten only when the list of files changes, so it never forces a rebuild.
        """
        path = os.path.join("build", "gen", "bindings.cpp")
        lines = ["// Generated by setup.py: every csrc/bindings/*.cpp, compiled as one unit."]
        for src in BINDING_SOURCES:
            rel = os.path.relpath(src, os.path.dirname(path)).replace(os.sep, "/")
            lines.append(f'#include "{rel}"')
        text = "\n".join(lines) + "\n"
        try:
            with open(path) as fh:
                if fh.read() == text:
                    return path
        except OSError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def _configure(self, ext: Pybind11Extension) -> None:
        """Chooses OpenMP, the sources in build order and the object directory."""
        openmp = _env_flag("FASTREC_NO_OPENMP", "0") in ("", "0", "false", "no")
        if openmp:
            reason = self._probe(
                "#include <omp.h>\nint fastrec_probe() { return omp_get_max_threads(); }\n",
                ["-fopenmp"],
                ["-fopenmp"],
            )
            if reason is not None:
                openmp = False
                _banner(
                    "fastrec: this compiler cannot build OpenMP code; building a single-threaded "
                    "compiled core (the Numba backend still uses every core).",
                    f"With -fopenmp, {reason}.",
                    "With gcc, or with Homebrew's llvm clang on macOS, the core is multi-threaded.",
                )
        if openmp:
            ext.extra_compile_args.append("-fopenmp")
            ext.extra_link_args.append("-fopenmp")
        else:
            ext.extra_compile_args.append("-Wno-unknown-pragmas")  # the ignored `#pragma omp` lines
        # The slowest units first, so that no long unit starts last and holds the build up.
        slow = [s for s in ISA_SOURCES if s.endswith("_mf.cpp")]
        ext.sources = [*slow, self._bindings_unit(), *[s for s in ISA_SOURCES if s not in slow]]
        if self.compiler.compiler_type == "unix":
            ext.extra_compile_args.append("-MMD")  # dependency files for incremental rebuilds
        # Editable installs build in a fresh temporary directory each time; keep objects
        # in the project's build/ instead, so that unchanged sources are reused.  One
        # directory per compiler, flags and Python: switching any of them never reuses
        # an object built another way.
        tag = hashlib.sha256(
            repr(
                (
                    self.compiler.compiler_so,
                    ext.extra_compile_args,
                    ext.define_macros,
                    sys.version,
                    sysconfig.get_paths()["include"],
                    TARGET,
                    pybind11.__version__,
                )
            ).encode()
        ).hexdigest()[:12]
        self.build_temp = os.path.join(HERE, "build", f"temp-{tag}")

    def build_extensions(self) -> None:
        mode = _env_flag("FASTREC_BUILD_CORE", "auto")
        if mode not in ("auto", "1", "0", "true", "false", "yes", "no", "on", "off"):
            raise SystemExit(f"FASTREC_BUILD_CORE={mode!r}: use auto, 1 (required) or 0 (skip).")
        required = mode in ("1", "true", "yes", "on")
        if mode in ("0", "false", "no", "off"):
            self._skip("FASTREC_BUILD_CORE=0 was set")
            return
        reason = self._probe("int fastrec_probe() { return 0; }\n", [], [])
        if reason is not None:
            if required:
                raise SystemExit(f"FASTREC_BUILD_CORE=1 but no working C++ compiler was found: {reason}.")
            self._skip(f"no working C++ compiler was found ({reason})")
            return
        for ext in self.extensions:
            self._configure(ext)
        try:
            super().build_extensions()
        except Exception as exc:
            if required:
                raise
            self._skip(f"building it failed ({type(exc).__name__}: {exc})")

    def _skip(self, reason: str) -> None:
        for ext in self.extensions:
            # A module left in build/lib by an earlier build must not reach this wheel.
            stale = self.get_ext_fullpath(ext.name)
            if os.path.exists(stale):
                os.remove(stale)
        # Emptying the list also keeps setuptools from copying a module that was never built.
        del self.extensions[:]
        _banner(
            f"fastrec: the compiled core (fastrec._cpp) was NOT built: {reason}.",
            "fastrec is installed and works on its Numba and numpy backends; importing it warns "
            "once that the core is missing.",
            "To build the core, install a C++17 compiler (g++ or clang++) and reinstall. "
            "Set FASTREC_BUILD_CORE=1 to make a failed build an error.",
        )


def _banner(*paragraphs: str) -> None:
    rule = "=" * 78
    body = "\n\n".join(textwrap.fill(p, 78) for p in paragraphs)
    print(f"\n{rule}\n{body}\n{rule}\n", file=sys.stderr, flush=True)


ext = Pybind11Extension(
    "fastrec._cpp",
    [*ISA_SOURCES, *BINDING_SOURCES],  # replaced by the build order in BuildCore._configure
    # Kernels live in headers: list them so that the sdist and setuptools know of them.
    depends=sorted(glob("csrc/include/fastrec/*.hpp") + glob("csrc/bindings/*.hpp")),
    include_dirs=["csrc/include"],
    cxx_std=17,
    extra_compile_args=list(COMPILE_ARGS),
    define_macros=[("FASTREC_X86", "1")] if IS_X86 else [],
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildCore})
