"""Build the single extension module ``fastrec._cpp`` from ``csrc/``.

Every ``csrc/bindings/*.cpp`` file registers its own functions with the module, and
every ``csrc/isa/*.cpp`` file compiles all kernel headers once for one SIMD level
(baseline x86-64, AVX2+FMA, AVX-512).  The running CPU picks the level at import
time, so one build runs on any x86-64 machine and uses the widest vectors it has.
No ``-march=native``: the wheel must run on machines other than the build host.
"""

import platform
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("FASTREC_BUILD_JOBS", default=0).install()

is_x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
sources = sorted(glob("csrc/bindings/*.cpp"))
# The per-ISA translation units use x86 target pragmas; other CPUs build the
# portable baseline unit only.
sources += sorted(glob("csrc/isa/*.cpp")) if is_x86 else ["csrc/isa/baseline.cpp"]

ext = Pybind11Extension(
    "fastrec._cpp",
    sources,
    # Kernels live in headers: list them so that editing one rebuilds the module.
    depends=sorted(glob("csrc/include/fastrec/*.hpp") + glob("csrc/bindings/*.hpp")),
    include_dirs=["csrc/include"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast", "-Wno-psabi"],
    extra_link_args=["-fopenmp"],
    define_macros=[("FASTREC_X86", "1")] if is_x86 else [],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
