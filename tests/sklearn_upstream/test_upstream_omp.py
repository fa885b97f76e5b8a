"""scikit-learn's tests of orthogonal_mp and orthogonal_mp_gram
(``sklearn/linear_model/tests/test_omp.py``), run against sparseforge.

sparseforge's functions replace scikit-learn's in the test module and in
``sklearn.linear_model._omp``, so scikit-learn's OrthogonalMatchingPursuit estimators run on
sparseforge's pursuit too.
"""

from __future__ import annotations

import pytest

import sparseforge as sf

upstream = pytest.importorskip("sklearn.linear_model.tests.test_omp")
from sklearn.linear_model import _omp  # noqa: E402

# Every test of the module: they all exercise orthogonal_mp / orthogonal_mp_gram.
globals().update({name: getattr(upstream, name) for name in dir(upstream)
                  if name.startswith("test_")})

XFAIL = {
    "test_omp_path": "no_return_path",
    "test_omp_return_path_prop_with_gram": "no_return_path",
    "test_omp_cv": "no_return_path",                      # OrthogonalMatchingPursuitCV
    "test_omp_gram_numerical_consistency": "no_mixed_dtypes",  # float32 Gram, float64 Xy
    # The same coefficients as scikit-learn's, but no warning: the residual is exactly zero
    # (a duplicated column; 35 atoms asked of 25-dimensional signals).
    "test_identical_regressors": "residual_orthogonal",
    "test_unreachable_accuracy": "residual_orthogonal",
}


@pytest.fixture(autouse=True)
def _sparseforge(monkeypatch):
    for module in (upstream, _omp):
        monkeypatch.setattr(module, "orthogonal_mp", sf.orthogonal_mp)
        monkeypatch.setattr(module, "orthogonal_mp_gram", sf.orthogonal_mp_gram)
