#!/usr/bin/env bash
# Mutation testing of the Python layer of the metrics, KMeans, the recommenders and model
# selection (not run in CI).
#
#   tools/mutation.sh metrics   # fastrec/metrics/{ranking,rating,evaluate}.py: 679 mutants, about
#                               # 10 minutes on 2 busy cores, after a first run of the selected test
#                               # files that maps tests to functions (about 5 minutes)
#   tools/mutation.sh kmeans    # fastrec/cluster/kmeans.py: 1063 mutants, 5 to 10 a minute on 2 busy
#                               # cores (2 to 3 hours): a survivor runs every test that calls its
#                               # function, up to 80 seconds.  Pass mutant name globs to run part of
#                               # it, e.g. tools/mutation.sh kmeans 'fastrec.cluster.kmeans.x_lloyd*'
#   tools/mutation.sh recommenders  # fastrec/recommenders/{_base,knn,content,hybrid}.py: 1686
#                               # mutants, about 11 a minute on 2 busy cores (2 to 3 hours), without
#                               # the numba variants of the tests (see below).  Pass mutant names to
#                               # run part of it, e.g. a seeded random sample of 300 (25 minutes)
#   tools/mutation.sh model_selection
#                               # fastrec/model_selection/*.py: 1504 mutants, 15 to 25 a minute on 2
#                               # busy cores (1 to 1.5 hours).  Each mutant runs in a fresh process,
#                               # so a test with n_jobs=2 starts joblib's loky workers again (20 s
#                               # on busy cores): JOBLIB_MULTIPROCESSING=0 runs those folds in the
#                               # process instead, at the cost of the loky branch of _fit.run
#                               # (run its mutants without it: 'fastrec.model_selection._fit.x_run*')
#   tools/mutation.sh mf        # fastrec/mf/model.py and fastrec/recommenders/_factors.py (the MF
#                               # estimator and the factor-model base) against tests/test_mf.py,
#                               # test_contract.py and test_model_files.py; pass a seeded sample of
#                               # mutant names as for the others
#   tools/mutation.sh all       # all five
#
# Settings are in the [tool.mutmut] section of pyproject.toml: the files mutated, and the test
# files run against them (tests/test_metrics.py; tests/test_kmeans.py, test_kmeans_profile.py,
# test_estimator_checks.py, test_kmeans_behaviour.py; tests/test_recommenders.py,
# test_recommenders_behaviour.py, test_contract.py, test_model_files.py;
# tests/test_model_selection.py, test_model_selection_behaviour.py).  mutmut copies fastrec/
# into mutants/ (the compiled core fastrec/_cpp*.so included, so every backend runs there) and
# runs, for each mutant, only the tests that call the mutated function.  Mutants are forked from a clean fork server because
# the suite starts OpenMP and Numba thread pools, which deadlock in a plain fork.
#
# mutmut skips decorated functions, so KMeans.fit, predict, transform and score, and the
# recommenders' fit, recommend, score_items, similar_* and save (wrapped by fastrec._concurrency's
# reads/writes) and properties are not mutated; everything they call is.
#
# Afterwards: `mutmut results` lists the survivors, `mutmut show <name>` shows one,
# `mutmut browse` browses them.  Remove mutants/ to start from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls fastrec/_cpp*.so >/dev/null 2>&1; then
    echo "The compiled core is not built in place: run 'python setup.py build_ext --inplace'" \
         "first (or the cpp-backend tests will fail)." >&2
    exit 1
fi
python -m mutmut --version >/dev/null 2>&1 || { echo "pip install 'mutmut>=3'" >&2; exit 1; }

# Two workers: the runs are CPU-bound and the tests start threads of their own.
jobs=${MUTMUT_JOBS:-2}
what=${1:-all}
shift || true
case "$what" in
    metrics) targets=("${@:-fastrec.metrics.*}") ;;
    kmeans) targets=("${@:-fastrec.cluster.kmeans.*}") ;;
    recommenders) targets=("${@:-fastrec.recommenders.*}") ;;
    model_selection) targets=("${@:-fastrec.model_selection.*}") ;;
    mf) if [ $# -gt 0 ]; then targets=("$@")
        else targets=("fastrec.mf.model.*" "fastrec.recommenders._factors.*"); fi ;;
    all) targets=("fastrec.metrics.*" "fastrec.cluster.kmeans.*" "fastrec.recommenders.*"
                  "fastrec.model_selection.*" "fastrec.mf.model.*") ;;
    *) echo "usage: $0 [metrics|kmeans|recommenders|model_selection|mf|all] [mutant name globs]" >&2
       exit 2 ;;
esac
if [ "$what" = recommenders ]; then
    # The Python layer passes the same arguments to every backend: leave out the numba variants
    # of the tests, a third of them, each of which a forked mutant runs after loading Numba and its
    # cached machine code anew (the cpp and numpy variants still run).
    export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -k 'not numba'"
fi
mutmut run --max-children "$jobs" "${targets[@]}"
mutmut results
