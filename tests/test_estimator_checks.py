"""scikit-learn's own estimator check suite, run on fastrec.KMeans.

Every check scikit-learn runs on a third-party estimator must pass, except the
ones scikit-learn itself expects its own KMeans to fail (listed below).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_get_feature_names_out_error,
    check_global_output_transform_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

import fastrec

# scikit-learn's expected failures for sklearn.cluster.KMeans, as listed in
# sklearn/utils/_test_common/instance_generator.py (PER_ESTIMATOR_XFAIL_CHECKS[KMeans]):
# the k-means++ seeding draws rows by weight, so a weight of 2 does not act as a
# repeated row and the seeding (hence the labels) differs.
_WEIGHTS_ARE_NOT_REPEATS = "sample_weight is not equivalent to removing/repeating samples."
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_ARE_NOT_REPEATS,
    "check_sample_weight_equivalence_on_sparse_data": _WEIGHTS_ARE_NOT_REPEATS,
}

# Small problems keep the whole suite fast (scikit-learn tests its KMeans with these).
ESTIMATORS = [
    fastrec.KMeans(n_clusters=2, n_init=2, max_iter=5),
    fastrec.KMeans(n_clusters=2, n_init=2, max_iter=5, backend="numpy"),
]


def _name(check) -> str:
    while hasattr(check, "func"):
        check = check.func
    return check.__name__


def _run_array_api_check(estimator) -> None:
    """check_array_api_input needs SCIPY_ARRAY_API=1 before scipy is imported, so it runs in
    a fresh interpreter (scikit-learn would skip it in this one)."""
    code = textwrap.dedent(f"""
        import fastrec
        from sklearn.utils.estimator_checks import estimator_checks_generator

        ran = 0
        for est, check in estimator_checks_generator(fastrec.KMeans(**{estimator.get_params()!r})):
            if check.func.__name__ == "check_array_api_input":
                check(est)
                ran += 1
        print("array API checks run:", ran)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastrec.__file__)))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, SCIPY_ARRAY_API="1"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "array API checks run: 0" not in done.stdout
    assert "array API checks run:" in done.stdout


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS, xfail_strict=True
)
def test_sklearn_estimator_checks(estimator, check):
    if _name(check) == "check_array_api_input" and not os.environ.get("SCIPY_ARRAY_API"):
        _run_array_api_check(estimator)
    else:
        check(estimator)


def test_expected_failures_are_sklearns_own_for_kmeans():
    from sklearn.cluster import KMeans
    from sklearn.utils._test_common import instance_generator

    ours = set(EXPECTED_FAILED_CHECKS)
    theirs = set(instance_generator.PER_ESTIMATOR_XFAIL_CHECKS.get(KMeans, {}))
    assert ours <= theirs


# Checks scikit-learn runs on its own transformers (sklearn/tests/test_common.py) beyond the
# suite above: feature names in and out, and set_output.
EXTRA_CHECKS = [
    check_dataframe_column_names_consistency,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    check_get_feature_names_out_error,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_global_output_transform_pandas,
]


# The set_output checks fit on a DataFrame and transform an array (and the reverse), which
# warns for scikit-learn's own KMeans too.
@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names:UserWarning")
@pytest.mark.parametrize("check", EXTRA_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_feature_names_and_set_output_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))
