"""scikit-learn's tests of sparse_encode and SparseCoder
(``sklearn/decomposition/tests/test_dict_learning.py``), run against sparseforge.

The test module's ``sparse_encode`` and ``SparseCoder`` are sparseforge's. Tests that loop
over every coding algorithm get sparseforge for OMP and scikit-learn's own function for the
others (sparseforge implements OMP only; those parts test nothing of sparseforge's);
parametrizations over other algorithms are deselected. The dictionary-learning tests
(DictionaryLearning, MiniBatchDictionaryLearning) are not sparseforge's and are not run.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf

from .conftest import only_omp

upstream = pytest.importorskip("sklearn.decomposition.tests.test_dict_learning")
_sklearn_sparse_encode = upstream.sparse_encode

SELECTED = [
    "test_sparse_encode_shapes_omp", "test_sparse_encode_shapes",
    "test_sparse_encode_unavailable_positivity", "test_sparse_encode_input",
    "test_sparse_encode_error", "test_sparse_encode_error_default_sparsity",
    "test_sparse_coder_estimator", "test_sparse_coder_estimator_clone",
    "test_sparse_coder_parallel_mmap", "test_sparse_coder_common_transformer",
    "test_sparse_coder_n_features_in", "test_sparse_encoder_feature_number_error",
    "test_sparse_encode_dtype_match", "test_sparse_encode_numerical_consistency",
    "test_sparse_coder_dtype_match",
]
globals().update({name: getattr(upstream, name) for name in SELECTED})

XFAIL = {
    # SparseCoder(transform_algorithm="lasso_lars"): sparseforge implements OMP only.
    "test_sparse_coder_estimator": "omp_only",
    "test_sparse_coder_estimator_clone": "omp_only",
}

keep = only_omp


def sparse_encode(X, dictionary, *, algorithm="omp", **kwargs):
    """sparseforge's sparse_encode for OMP (its default); scikit-learn's for the others, in
    one process (their `n_jobs` would start joblib workers for code not under test)."""
    if algorithm != "omp":
        kwargs.pop("n_jobs", None)
        return _sklearn_sparse_encode(X, dictionary, algorithm=algorithm, **kwargs)
    return sf.sparse_encode(X, dictionary, algorithm=algorithm, **kwargs)


@pytest.fixture(autouse=True)
def _sparseforge(monkeypatch):
    monkeypatch.setattr(upstream, "sparse_encode", sparse_encode)
    monkeypatch.setattr(upstream, "SparseCoder", sf.SparseCoder)


def test_get_feature_names_out_sparse_coder():
    """scikit-learn's test_get_feature_names_out, whose parameters are scikit-learn
    instances built at import, given sparseforge's SparseCoder."""
    dictionary = np.random.RandomState(0).uniform(size=(upstream.n_features,
                                                        upstream.n_features))
    upstream.test_get_feature_names_out(sf.SparseCoder(dictionary))
