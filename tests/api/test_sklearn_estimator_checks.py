"""scikit-learn's estimator checks over SparseCoder and KSVD (issue 14).

``parametrize_with_checks`` generates every check of the installed scikit-learn for each
instance: SparseCoder (its dictionary sized to what each check feeds it, below) and KSVD with
its defaults and with small settings. Every check passes; none is marked expected-failed
(`EXPECTED_FAILED` is the place to add one, with its reason, at most two per estimator).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

import sparseforge as sf

_RNG = np.random.RandomState(0)

# A SparseCoder's dictionary fixes n_features, and the checks feed data of various widths:
# each check gets a dictionary as wide as its data. These are the sizes scikit-learn's own
# test suite gives its SparseCoder (sklearn/utils/_test_common/instance_generator.py);
# every other check gets the instance's (5, 3) dictionary.
_DICTIONARY_FEATURES = {
    "check_estimators_dtypes": 5, "check_dtype_object": 10,
    "check_transformers_unfitted_stateless": 5, "check_fit_idempotent": 2,
    "check_set_output_transform": 5, "check_global_output_transform_pandas": 5,
    "check_set_output_transform_pandas": 5, "check_set_output_transform_polars": 5,
    "check_global_set_output_transform_polars": 5,
    "check_dataframe_column_names_consistency": 8, "check_estimators_overwrite_params": 2,
    "check_estimators_fit_returns_self": 2, "check_readonly_memmap_input": 2,
    "check_n_features_in_after_fitting": 4, "check_fit_check_is_fitted": 2,
    "check_n_features_in": 2, "check_positive_only_tag_during_fit": 4,
    "check_fit2d_1sample": 10, "check_fit2d_1feature": 1, "check_array_api_input": 10,
}
_DICTIONARIES = {n: np.random.RandomState(n).normal(size=(5, n)) for n in
                 set(_DICTIONARY_FEATURES.values()) | {3}}

ESTIMATORS = [
    sf.SparseCoder(_DICTIONARIES[3]),
    sf.SparseCoder(_DICTIONARIES[3], transform_n_nonzero_coefs=2, split_sign=True),
    sf.SparseCoder(_DICTIONARIES[3], transform_alpha=0.5, n_jobs=1),
    sf.KSVD(),
    # The checks set n_components=1 where an estimator has it: n_nonzero_coefs must fit.
    sf.KSVD(8, n_nonzero_coefs=1, n_iter=2, random_state=0),
    sf.KSVD(6, tol=0.5, n_iter=2, method="exact", dict_init="data", random_state=0),
]

# {estimator class name: {check name: reason}}: none needed.
EXPECTED_FAILED: dict[str, dict[str, str]] = {"SparseCoder": {}, "KSVD": {}}


def _expected_failed(estimator):
    return EXPECTED_FAILED[type(estimator).__name__]


def _check_name(check) -> str:
    return getattr(check, "__name__", None) or check.func.__name__


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    if isinstance(estimator, sf.SparseCoder):
        width = _DICTIONARY_FEATURES.get(_check_name(check))
        if width is not None:
            estimator = clone(estimator).set_params(dictionary=_DICTIONARIES[width])
    check(estimator)


def test_at_most_two_expected_failures():
    assert all(len(reasons) <= 2 for reasons in EXPECTED_FAILED.values())
    assert all(reason.strip() for reasons in EXPECTED_FAILED.values()
               for reason in reasons.values())


@pytest.mark.parametrize("estimator", [sf.SparseCoder(_DICTIONARIES[3]), sf.KSVD(4)],
                         ids=["SparseCoder", "KSVD"])
def test_every_check_ran(estimator):
    """The checks above are the installed scikit-learn's full list (not a subset)."""
    from sklearn.utils.estimator_checks import estimator_checks_generator

    names = {_check_name(check) for _, check in estimator_checks_generator(estimator)}
    assert {"check_transformer_general", "check_estimators_pickle", "check_fit_idempotent",
            "check_n_features_in_after_fitting", "check_methods_subset_invariance"} <= names
