"""The SparseCoder estimator: scikit-learn protocol and equality with sparse_encode."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.decomposition import SparseCoder as SkSparseCoder
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

import sparseforge as sf
from datasets import gaussian_dictionary


@pytest.fixture
def data(dtype):
    rng = np.random.default_rng(81)
    D = gaussian_dictionary(80, 20, rng, dtype)
    X = rng.standard_normal((50, 20)).astype(dtype)
    return X, D


def test_fit_transform_equals_sparse_encode(data):
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=4)
    assert coder.fit(X) is coder
    np.testing.assert_array_equal(coder.transform(X), sf.sparse_encode(X, D, n_nonzero_coefs=4))
    np.testing.assert_array_equal(coder.fit_transform(X),
                                  sf.sparse_encode(X, D, n_nonzero_coefs=4))
    assert coder.components_ is D or np.array_equal(coder.components_, D)
    exact = D.astype(np.float64) @ D.T.astype(np.float64)
    tol = 1e-5 if D.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(coder.gram_, exact, rtol=0, atol=tol)
    np.testing.assert_array_equal(coder.gram_, coder.gram_.T)
    assert coder.n_components_ == 80 and coder.n_features_in_ == 20
    # Default sparsity: max(n_features // 10, 1), like scikit-learn.
    np.testing.assert_array_equal(sf.SparseCoder(D).fit().transform(X),
                                  sf.sparse_encode(X, D, n_nonzero_coefs=2))


def test_matches_sklearn_sparse_coder(data):
    X, D = data
    for k in (None, 3):
        ours = sf.SparseCoder(D, transform_n_nonzero_coefs=k).fit(X).transform(X)
        theirs = SkSparseCoder(D, transform_algorithm="omp",
                               transform_n_nonzero_coefs=k).fit(X).transform(X)
        assert ours.dtype == X.dtype
        np.testing.assert_array_equal(ours != 0, theirs != 0)
        rtol = 1e-4 if X.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=rtol * np.abs(theirs).max())


def test_transform_alpha_is_tol(data):
    X, D = data
    coder = sf.SparseCoder(D, transform_alpha=3.0, output="compact").fit()
    codes = coder.transform(X)
    want = sf.sparse_encode(X, D, tol=3.0, output="compact")
    np.testing.assert_array_equal(codes.indices, want.indices)
    np.testing.assert_array_equal(codes.values, want.values)
    R = X.astype(np.float64) - codes.reconstruct(D)
    slack = 1e-4 if X.dtype == np.float32 else 1e-9
    assert np.all(np.einsum("ij,ij->i", R, R) <= 3.0 + slack * np.einsum("ij,ij->i", X, X))
    # With both, alpha is the target and n_nonzero_coefs the cap.
    capped = sf.SparseCoder(D, transform_alpha=3.0, transform_n_nonzero_coefs=2,
                            output="compact").fit().transform(X)
    np.testing.assert_array_equal(capped.counts, np.minimum(want.counts, 2))


@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
def test_inverse_transform(data, output):
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=5, output=output).fit()
    codes = coder.transform(X)
    if output == "dense":
        assert isinstance(codes, np.ndarray)
    elif output == "compact":
        assert isinstance(codes, sf.SparseCodes)
    else:
        assert sp.issparse(codes)
    dense = sf.sparse_encode(X, D, n_nonzero_coefs=5)
    want = dense.astype(np.float64) @ D.astype(np.float64)
    back = coder.inverse_transform(codes)
    assert isinstance(back, np.ndarray) and back.shape == X.shape
    rtol = 1e-5 if X.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, want, rtol=0, atol=rtol * np.abs(want).max())
    # Residual: orthogonal to the chosen atoms (the codes are least-squares fits).
    R = X - back
    for i in range(X.shape[0]):
        atoms = D[np.flatnonzero(dense[i])].astype(np.float64)
        assert np.abs(atoms @ R[i]).max() <= 1e3 * rtol * np.linalg.norm(X[i])


def test_clone_and_params(data):
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=3, n_jobs=1, output="compact")
    params = coder.get_params()
    # scikit-learn's parameters, in its order, then sparseforge's `output` (issue 14).
    assert list(params) == sorted(["dictionary", "transform_algorithm",
                                   "transform_n_nonzero_coefs", "transform_alpha",
                                   "split_sign", "n_jobs", "positive_code",
                                   "transform_max_iter", "output"])
    assert params["transform_n_nonzero_coefs"] == 3 and params["output"] == "compact"
    coder.fit()
    twin = clone(coder)
    assert not hasattr(twin, "components_")
    # Stateless, as scikit-learn's SparseCoder (issue 14): transform works without fit.
    np.testing.assert_array_equal(twin.transform(X).indices, coder.transform(X).indices)
    assert not hasattr(twin, "components_")
    for key, value in params.items():
        if key == "dictionary":
            np.testing.assert_array_equal(twin.get_params()[key], value)
        else:
            assert twin.get_params()[key] == value
    np.testing.assert_array_equal(twin.fit().transform(X).indices, coder.transform(X).indices)
    # set_params changes the behaviour after refitting.
    assert coder.set_params(transform_n_nonzero_coefs=6, output="dense") is coder
    assert coder.get_params()["transform_n_nonzero_coefs"] == 6
    np.testing.assert_array_equal(coder.fit().transform(X),
                                  sf.sparse_encode(X, D, n_nonzero_coefs=6))
    with pytest.raises(ValueError):
        coder.set_params(no_such_parameter=1)
    assert "SparseCoder" in repr(coder)


def test_in_pipeline(data):
    X, D = data
    rng = np.random.default_rng(82)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=4)
    w = rng.standard_normal(D.shape[0])
    y = codes.astype(np.float64) @ w + 0.5                     # linear in the codes
    pipe = Pipeline([("coder", sf.SparseCoder(D, transform_n_nonzero_coefs=4)),
                     ("reg", LinearRegression())])
    pipe.fit(X, y)
    manual = LinearRegression().fit(codes, y)
    np.testing.assert_allclose(pipe.predict(X), manual.predict(codes), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pipe.predict(X), y, atol=1e-3)
    # Pipelines are cloneable and their params reach the coder.
    pipe2 = clone(pipe).set_params(coder__transform_n_nonzero_coefs=2)
    out = pipe2[:-1].fit_transform(X)
    assert np.all(np.count_nonzero(out, axis=1) <= 2)
    # A FunctionTransformer step after the coder sees the codes.
    support = make_pipeline(sf.SparseCoder(D, transform_n_nonzero_coefs=3),
                            FunctionTransformer(lambda c: (c != 0).sum(axis=1, keepdims=True)))
    np.testing.assert_array_equal(support.fit_transform(X), 3)


def test_coder_errors(data):
    X, D = data
    with pytest.raises(ValueError, match="`transform_algorithm`"):
        sf.SparseCoder(D, transform_algorithm="lasso_lars").fit()
    with pytest.raises(ValueError, match="`dictionary`"):
        sf.SparseCoder(D[0]).fit()
    coder = sf.SparseCoder(D).fit()
    with pytest.raises(ValueError, match="`X`"):
        coder.transform(X[:, :5])
    # An estimator accepts what check_array accepts (issue 14): the codes take X's dtype.
    other = np.float64 if X.dtype == np.float32 else np.float32
    assert coder.transform(X.astype(other)).dtype == other
    # Stateless (issue 14): no NotFittedError.
    np.testing.assert_array_equal(sf.SparseCoder(D).transform(X), coder.transform(X))
    assert sf.SparseCoder(D).inverse_transform(np.zeros((1, 80))).shape == (1, 20)
    with pytest.raises(ValueError, match="`X`"):
        Xn = X.copy()
        Xn[0, 0] = np.nan
        coder.transform(Xn)


def test_constructor_only_stores_parameters():
    """scikit-learn convention: __init__ validates nothing (errors surface in fit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coder = sf.SparseCoder("not an array", transform_algorithm="bogus")
    assert coder.dictionary == "not an array"
    with pytest.raises(ValueError):
        coder.fit()


def test_pickle_round_trip(data):
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=3, output="compact").fit()
    twin = pickle.loads(pickle.dumps(coder))
    a, b = coder.transform(X), twin.transform(X)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.to_dense(), a.to_dense())


def test_estimators_refuse_device_arrays(device_backend):
    """The scikit-learn estimators keep host state (components_, gram_): device arrays are
    refused with a TypeError naming the argument (the functions take them)."""
    rng = np.random.default_rng(83)
    D = gaussian_dictionary(30, 10, rng)
    X = rng.standard_normal((12, 10))
    B = device_backend.asarray
    with pytest.raises(TypeError, match="`dictionary` is a CUDA array"):
        sf.SparseCoder(B(D)).fit()
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=3).fit()
    with pytest.raises(TypeError, match="`X` is a CUDA array"):
        coder.transform(B(X))
    model = sf.KSVD(8, n_nonzero_coefs=2, n_iter=1, dict_init="data", random_state=0).fit(X)
    with pytest.raises(TypeError, match="`X` is a CUDA array"):
        model.transform(B(X))


def test_dictionary_updated_in_place_after_fit():
    """An online-learning loop may change the fitted dictionary in place: the codes follow
    the new values (the Gram matrix of fit is stale then), as scikit-learn's do."""
    rng = np.random.default_rng(0)
    D = rng.standard_normal((32, 16))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((20, 16))
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=4).fit(X)
    D *= 2.0
    D[3] = rng.standard_normal(16)
    want = SkSparseCoder(D.copy(), transform_algorithm="omp",
                         transform_n_nonzero_coefs=4).transform(X)
    np.testing.assert_allclose(coder.transform(X), want, rtol=1e-10, atol=1e-10)


def test_errors_name_the_estimator_parameters():
    D = np.eye(8)
    with pytest.raises(ValueError, match=r"`transform_n_nonzero_coefs` must be in \[1, "):
        sf.SparseCoder(D, transform_n_nonzero_coefs=0).fit()
    with pytest.raises(ValueError, match="`transform_alpha`"):
        sf.SparseCoder(D, transform_alpha=-1.0).transform(np.ones((2, 8)))


def test_list_dictionary_updated_in_place_after_fit():
    """A list dictionary is copied at fit: its in-place changes are seen all the same."""
    rng = np.random.default_rng(1)
    rows = [list(map(float, r)) for r in rng.standard_normal((12, 6))]
    X = rng.standard_normal((8, 6))
    coder = sf.SparseCoder(rows, transform_n_nonzero_coefs=2).fit(X)
    for r in rows:
        r.reverse()
    fresh = sf.SparseCoder([r[:] for r in rows], transform_n_nonzero_coefs=2).transform(X)
    np.testing.assert_allclose(coder.transform(X), fresh, rtol=1e-12, atol=1e-12)
