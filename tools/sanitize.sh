#!/usr/bin/env bash
# Build fastrec's compiled core with AddressSanitizer + UndefinedBehaviorSanitizer in a
# scratch copy of this checkout, then run the test suite (or the pytest arguments given)
# against that build.  The checkout's own build is never touched.
#
# Usage:  tools/sanitize.sh [pytest arguments...]      (default: tests/)
#   FASTREC_SANITIZE_DIR=/path  keep the scratch copy there (reused: unchanged sources
#                               are not recompiled); default: a fresh temporary folder,
#                               removed afterwards unless the run failed.
#   FASTREC_SANITIZE_JOBS=N     parallel compile jobs (default: all cores).
#
# Exit status: 0 only when the build succeeded, pytest passed and neither sanitizer
# wrote a report.  Reports are kept in <scratch>/sanitizer-logs/ and printed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CXX:-g++}
libasan=$("$cc" -print-file-name=libasan.so)
libubsan=$("$cc" -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
    # -print-file-name echoes the bare name when the compiler has no such runtime.
    if [[ "$lib" != /* || ! -e "$lib" ]]; then
        echo "sanitize.sh: $cc has no sanitizer runtime ($lib); install libasan/libubsan." >&2
        exit 2
    fi
done

if [[ -n "${FASTREC_SANITIZE_DIR:-}" ]]; then
    scratch=$FASTREC_SANITIZE_DIR
    keep=1
else
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/fastrec-sanitize.XXXXXX")
    keep=0
fi
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
if [[ "$scratch" == "$repo" ]]; then
    echo "sanitize.sh: FASTREC_SANITIZE_DIR must not be the checkout itself." >&2
    exit 2
fi

# Copy the tracked and untracked-but-not-ignored files (the working tree as edited,
# no build outputs).  tar keeps modification times, so a reused scratch copy only
# recompiles when a source changed.  Files deleted from the checkout are removed too.
find "$scratch" -mindepth 1 -maxdepth 1 ! -name build ! -name sanitizer-logs -exec rm -rf {} +
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -xf - -C "$scratch"
# Keep the previous sanitized module (if any) so an unchanged tree links nothing new.
if [[ -d "$scratch/build/lib-sanitized" ]]; then
    cp -p "$scratch"/build/lib-sanitized/_cpp*.so "$scratch/fastrec/" 2>/dev/null || true
fi

# The sanitizer flags replace -O3 in setup.py's compile arguments (only in the copy):
# extra_compile_args come last on the compiler line, so CFLAGS alone cannot lower -O3.
san_flags='"-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"'
grep -q '"-O3"' "$scratch/setup.py" || { echo "sanitize.sh: setup.py has no \"-O3\" to replace." >&2; exit 2; }
sed -i "s/\"-O3\"/$san_flags/" "$scratch/setup.py"
sed -i 's/extra_link_args=\["-fopenmp"\]/extra_link_args=["-fopenmp", "-fsanitize=address,undefined"]/' "$scratch/setup.py"
grep -q 'extra_link_args=\["-fopenmp", "-fsanitize=address,undefined"\]' "$scratch/setup.py" \
    || { echo "sanitize.sh: could not add the sanitizer to setup.py's link arguments." >&2; exit 2; }

echo "== building the sanitized core in $scratch"
start=$(date +%s)
# "-g" in CFLAGS stops pybind11 from adding -g0; python's own -O3 comes earlier on the line.
(cd "$scratch" && CFLAGS="-g" FASTREC_BUILD_JOBS=${FASTREC_SANITIZE_JOBS:-0} \
    python setup.py build_ext --inplace >"$scratch/build.log" 2>&1) || {
    tail -40 "$scratch/build.log"; echo "sanitize.sh: build failed (log: $scratch/build.log)" >&2; exit 2; }
mkdir -p "$scratch/build/lib-sanitized"
cp -p "$scratch"/fastrec/_cpp*.so "$scratch/build/lib-sanitized/"
echo "== built in $(( $(date +%s) - start )) s"

logs="$scratch/sanitizer-logs"
rm -rf "$logs"; mkdir -p "$logs"

# The interpreter is not instrumented, so the ASan runtime must be loaded first
# (LD_PRELOAD); libubsan after it.  Options, and why:
#   detect_leaks=0          CPython, numpy and Numba keep allocations alive until exit
#                           on purpose; LeakSanitizer would report them, not our bugs.
#   halt_on_error=1         the first report ends the process (and so fails the run).
#   detect_odr_violation=0  the per-SIMD-level translation units compile the same inline
#                           kernels on purpose; their identical globals are not a bug.
#   protect_shadow_gap=0    LLVM's JIT (Numba) maps code at addresses ASan reserves.
#   log_path                reports go to files that pytest's output capture cannot hide.
export LD_PRELOAD="$libasan $libubsan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_odr_violation=0:protect_shadow_gap=0:allocator_may_return_null=1:log_path=$logs/asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan:${UBSAN_OPTIONS:-}"
# Python objects through malloc, so ASan sees their bounds too.
export PYTHONMALLOC=malloc
export NUMBA_CACHE_DIR="$scratch/numba-cache"

cd "$scratch"
python - <<PY
import fastrec, fastrec._cpp as core
assert core.__file__.startswith("$scratch/"), f"imported {core.__file__}, not the sanitized build"
print("== sanitized core:", core.__file__, "| SIMD level:", fastrec.simd_level())
PY

[[ $# -eq 0 ]] && set -- tests
echo "== pytest $* (log: $scratch/pytest.log)"
start=$(date +%s)
set +e
python -m pytest -p no:cacheprovider -v "$@" >"$scratch/pytest.log" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
tail -25 "$scratch/pytest.log"
echo "== pytest exit status $rc after $elapsed s"

reports=$(find "$logs" -type f | sort)
if [[ -n "$reports" ]]; then
    echo "== sanitizer reports:"
    for f in $reports; do echo "--- $f"; cat "$f"; done
    echo "sanitize.sh: FAILED (sanitizer reports above; scratch kept at $scratch)" >&2
    exit 1
fi
if [[ $rc -ne 0 ]]; then
    # A report written to a closed log still shows up in the pytest log.
    grep -n -E "ERROR: AddressSanitizer|runtime error:" "$scratch/pytest.log" | head -20 || true
    echo "sanitize.sh: FAILED (pytest exit status $rc; scratch kept at $scratch)" >&2
    exit 1
fi
echo "sanitize.sh: clean (no sanitizer reports, tests passed)"
[[ $keep -eq 0 ]] && rm -rf "$scratch"
exit 0
