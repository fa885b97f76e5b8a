"""sparseforge as a drop-in for scikit-learn (issue 14): SparseCoder stateless with feature
names and set_output, split_sign / positive_code / transform_max_iter, sparse_encode's
scikit-learn arguments, orthogonal_mp, squeezing, integer and scipy.sparse input, patches of
(H, W, 1) images, the linear-dependence message, KSVD's "auto" start and inverse_transform.

pandas is optional: the set_output / DataFrame tests skip without it (a test dependency).
"""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.decomposition import SparseCoder as SkSparseCoder
from sklearn.decomposition import sparse_encode as sk_sparse_encode
from sklearn.feature_extraction.image import extract_patches_2d as sk_extract
from sklearn.linear_model import orthogonal_mp as sk_orthogonal_mp
from sklearn.linear_model import orthogonal_mp_gram as sk_orthogonal_mp_gram
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import sparseforge as sf
from sparseforge._compat import SKLEARN_DIFFERENCES
from datasets import gaussian_dictionary


@pytest.fixture
def data(dtype):
    rng = np.random.default_rng(141)
    D = gaussian_dictionary(30, 12, rng, dtype)
    X = rng.standard_normal((40, 12)).astype(dtype)
    return X, D


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return f(*args, **kwargs)


# --- SparseCoder ---------------------------------------------------------------------------

def test_sparse_coder_is_stateless(data):
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=3)
    codes = coder.transform(X)                     # no fit, no NotFittedError
    assert not hasattr(coder, "components_") and not hasattr(coder, "n_features_in_")
    np.testing.assert_array_equal(codes, sf.sparse_encode(X, D, n_nonzero_coefs=3))
    np.testing.assert_allclose(coder.inverse_transform(codes), codes @ D, rtol=1e-6)
    np.testing.assert_array_equal(coder.fit(X).transform(X), codes)
    # fit validates X and records n_features_in_, as scikit-learn's does.
    assert coder.n_features_in_ == 12 and coder.n_components_ == 30
    with pytest.raises(ValueError, match="Dictionary and X have different numbers of features"):
        sf.SparseCoder(D).fit(X[:, :5])
    with pytest.raises(ValueError, match=re.escape("X has 5 features, but SparseCoder is "
                                                   "expecting 12 features as input")):
        sf.SparseCoder(D).transform(X[:, :5])
    bad = X.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sf.SparseCoder(D).fit(bad)


def test_sparse_coder_uses_its_current_dictionary(data):
    """set_params(dictionary=...) after fit is honoured, as in scikit-learn (which reads
    `dictionary` at every transform)."""
    X, D = data
    coder = sf.SparseCoder(D, transform_n_nonzero_coefs=2).fit(X)
    other = D[::-1].copy()
    coder.set_params(dictionary=other)
    np.testing.assert_array_equal(coder.transform(X),
                                  sf.sparse_encode(X, other, n_nonzero_coefs=2))


def test_sparse_coder_matches_sklearn_with_split_sign(data):
    X, D = data
    ours = sf.SparseCoder(D, transform_n_nonzero_coefs=3, split_sign=True)
    theirs = SkSparseCoder(D, transform_algorithm="omp", transform_n_nonzero_coefs=3,
                           split_sign=True)
    a, b = ours.transform(X), theirs.transform(X)
    assert a.shape == b.shape == (40, 60) and a.dtype == X.dtype
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * np.abs(b).max())
    assert np.all(a >= 0)
    np.testing.assert_allclose(ours.inverse_transform(a), theirs.inverse_transform(b),
                               rtol=0, atol=tol * 10)
    for output in ("compact", "scipy"):
        split = clone(ours).set_params(output=output).transform(X)
        dense = split.to_dense() if output == "compact" else split.toarray()
        np.testing.assert_array_equal(dense, a)
        np.testing.assert_allclose(ours.inverse_transform(split), ours.inverse_transform(a),
                                   rtol=0, atol=tol * 10)
    with pytest.raises(ValueError, match="number of components in the code"):
        ours.inverse_transform(a[:, :30])


def test_positive_code_and_transform_max_iter_as_sklearn(data):
    X, D = data
    with pytest.raises(ValueError) as theirs:
        SkSparseCoder(D, transform_algorithm="omp", positive_code=True).fit(X).transform(X)
    for call in (lambda c: c.fit(X), lambda c: c.transform(X)):
        with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
            call(sf.SparseCoder(D, positive_code=True))
    # transform_max_iter: validated, unused by OMP (as in scikit-learn).
    np.testing.assert_array_equal(sf.SparseCoder(D, transform_max_iter=3).transform(X),
                                  sf.SparseCoder(D).transform(X))
    with pytest.raises(ValueError, match="transform_max_iter"):
        sf.SparseCoder(D, transform_max_iter=-1).transform(X)
    with pytest.raises(ValueError, match="transform_algorithm"):
        sf.SparseCoder(D, transform_algorithm="lasso_lars").transform(X)


def test_feature_names_out_and_pipeline(data):
    X, D = data
    coder = sf.SparseCoder(D)
    names = [f"sparsecoder{i}" for i in range(30)]
    assert coder.get_feature_names_out().tolist() == names          # stateless: no fit
    assert clone(coder).set_params(split_sign=True).get_feature_names_out().size == 60
    pipe = make_pipeline(StandardScaler(), sf.SparseCoder(D)).fit(X)
    assert pipe.get_feature_names_out().tolist() == names
    model = sf.KSVD(8, n_nonzero_coefs=2, n_iter=1, random_state=0).fit(X)
    assert model.get_feature_names_out().tolist() == [f"ksvd{i}" for i in range(8)]


@pytest.mark.parametrize("make", [lambda D: sf.SparseCoder(D, transform_n_nonzero_coefs=2),
                                  lambda D: sf.KSVD(6, n_nonzero_coefs=2, n_iter=1,
                                                    random_state=0)],
                         ids=["SparseCoder", "KSVD"])
def test_set_output_pandas(make):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(142)
    D = gaussian_dictionary(10, 5, rng)
    X = pd.DataFrame(rng.standard_normal((20, 5)), columns=list("abcde"))
    est = make(D).set_output(transform="pandas")
    out = est.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == est.get_feature_names_out().tolist()
    assert list(est.feature_names_in_) == list("abcde")
    pipe = make_pipeline(StandardScaler(), make(D)).set_output(transform="pandas")
    assert list(pipe.fit_transform(X).columns) == pipe.get_feature_names_out().tolist()
    # scikit-learn's own set_output checks (run in its test suite for its estimators only;
    # the widths of the data they make: 5 and 8 features).
    name = type(est).__name__
    estimator_checks.check_set_output_transform_pandas(name, make(D))
    estimator_checks.check_global_output_transform_pandas(name, make(D))
    wide = gaussian_dictionary(10, 8, rng)
    estimator_checks.check_dataframe_column_names_consistency(name, make(wide))


def test_set_output_default_check():
    D = gaussian_dictionary(10, 5, np.random.default_rng(143))
    estimator_checks.check_set_output_transform("SparseCoder", sf.SparseCoder(D))
    estimator_checks.check_set_output_transform("KSVD", sf.KSVD(4, n_iter=1, random_state=0))


def test_estimators_accept_what_check_array_accepts(data):
    X, D = data
    Xi = np.round(X * 4).astype(np.int64)
    coder = sf.SparseCoder(np.round(D * 8).astype(np.int32), transform_n_nonzero_coefs=2)
    codes = coder.fit(Xi).transform(Xi)
    assert codes.dtype == np.float64
    np.testing.assert_array_equal(codes, sf.sparse_encode(Xi.astype(np.float64),
                                                          np.round(D * 8).astype(np.float64),
                                                          n_nonzero_coefs=2))
    np.testing.assert_array_equal(coder.transform(Xi.tolist()), codes)
    # The codes take the dtype of X; the dictionary is cast (not the data).
    other = np.float32 if X.dtype == np.float64 else np.float64
    assert sf.SparseCoder(D).transform(X.astype(other)).dtype == other
    model = sf.KSVD(6, n_nonzero_coefs=2, n_iter=2, random_state=0).fit(Xi)
    assert model.components_.dtype == np.float64
    assert model.transform(X).dtype == X.dtype
    init = np.random.default_rng(0).integers(1, 5, (6, 12))
    assert sf.KSVD(6, n_nonzero_coefs=2, n_iter=1, dict_init=init).fit(X).components_.dtype \
        == X.dtype
    # ... while the functions keep refusing silent conversions.
    with pytest.raises(TypeError, match="`X`"):
        sf.sparse_encode(Xi, D)
    with pytest.raises(TypeError, match="mixed float32/float64"):
        sf.sparse_encode(X.astype(other), D)


# --- sparse_encode's scikit-learn arguments ---------------------------------------------------

def test_sparse_encode_takes_sklearn_arguments(data):
    X, D = data
    base = sf.sparse_encode(X, D)
    # Every scikit-learn argument at its default (a TypeError before issue 14).
    same = sf.sparse_encode(X, D, gram=None, cov=None, algorithm="omp", n_nonzero_coefs=None,
                            alpha=None, copy_cov=True, init=None, max_iter=1000, n_jobs=None,
                            check_input=True, verbose=0, positive=False)
    np.testing.assert_array_equal(same, base)
    # Accepted and unused for OMP, as by scikit-learn.
    np.testing.assert_array_equal(
        sf.sparse_encode(X, D, copy_cov=False, init=np.ones((40, 30)), max_iter=0,
                         verbose=True), base)
    # alpha is OMP's tolerance (scikit-learn documents it so, and ignores it).
    np.testing.assert_array_equal(sf.sparse_encode(X, D, alpha=2.0),
                                  sf.sparse_encode(X, D, tol=2.0))
    with pytest.raises(ValueError, match="`alpha`"):
        sf.sparse_encode(X, D, alpha=1.0, tol=2.0)
    # positive=True: scikit-learn's ValueError, word for word.
    with pytest.raises(ValueError) as theirs:
        sk_sparse_encode(X, D, algorithm="omp", positive=True)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        sf.sparse_encode(X, D, positive=True)
    for kwargs, exc in [({"copy_cov": "yes"}, TypeError), ({"max_iter": -1}, ValueError),
                        ({"verbose": -2}, ValueError), ({"algorithm": "lars"}, ValueError)]:
        with pytest.raises(exc, match=f"`{next(iter(kwargs))}`"):
            sf.sparse_encode(X, D, **kwargs)


def test_sparse_encode_matches_sklearn_argument_for_argument(data):
    X, D = data
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    for kwargs in ({}, {"n_nonzero_coefs": 4}):
        ours = sf.sparse_encode(X, D, algorithm="omp", **kwargs)
        theirs = _quiet(sk_sparse_encode, X, D, algorithm="omp", **kwargs)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * np.abs(theirs).max())


# --- scipy.sparse X --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "csr_array", "csr_int64"])
def test_sparse_X_equals_dense(fmt, data):
    X, D = data
    X = np.where(np.abs(X) > 1.0, X, 0).astype(X.dtype)
    S = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "coo": sp.coo_matrix,
         "csr_array": sp.csr_array, "csr_int64": sp.csr_matrix}[fmt](X)
    if fmt == "csr_int64":
        S.indices, S.indptr = S.indices.astype(np.int64), S.indptr.astype(np.int64)
    for kwargs in ({"n_nonzero_coefs": 3}, {"tol": 1.5}, {"tol": 1.5, "cov": D @ X.T},
                   {"n_nonzero_coefs": 2, "mask": np.abs(X) < 2}, {"chunk_size": 7}):
        np.testing.assert_array_equal(sf.sparse_encode(S, D, **kwargs),
                                      sf.sparse_encode(X, D, **kwargs))
    np.testing.assert_array_equal(sf.SparseCoder(D).transform(S), sf.SparseCoder(D).transform(X))
    model = sf.KSVD(6, n_nonzero_coefs=2, n_iter=1, random_state=0).fit(X)
    np.testing.assert_array_equal(model.transform(S), model.transform(X))
    with pytest.raises(TypeError, match="[Ss]parse"):
        sf.KSVD(6, n_iter=1).fit(S)
    with pytest.raises(TypeError, match="`X`"):       # the functions' dtype rule holds
        sf.sparse_encode(sp.csr_matrix(X.astype(np.int64)), D)


def test_sparse_X_is_densified_a_chunk_at_a_time():
    """40,000 x 256 sparse signals (82 MB dense) are coded within a few MB (4 MiB chunks)."""
    rng = np.random.default_rng(144)
    D = gaussian_dictionary(16, 256, rng)
    n, per_row = 40_000, 2
    S = sp.csr_matrix((rng.standard_normal(n * per_row), rng.integers(0, 256, n * per_row),
                       np.arange(0, n * per_row + 1, per_row)), shape=(n, 256))
    dense_bytes = S.shape[0] * S.shape[1] * 8
    tracemalloc.start()
    try:
        codes = sf.sparse_encode(S, D, n_nonzero_coefs=1, output="compact")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes.shape == (n, 16)
    assert peak < dense_bytes / 10, (peak, dense_bytes)
    rows = S[:50].toarray()
    np.testing.assert_array_equal(codes.to_dense()[:50],
                                  sf.sparse_encode(rows, D, n_nonzero_coefs=1))


def test_sparse_X_with_device_arrays_is_refused(device_backend):
    rng = np.random.default_rng(145)
    D = gaussian_dictionary(10, 6, rng)
    with pytest.raises(ValueError, match="`X` is a scipy.sparse matrix"):
        sf.sparse_encode(sp.csr_matrix(rng.standard_normal((4, 6))), device_backend.asarray(D))


# --- orthogonal_mp / orthogonal_mp_gram --------------------------------------------------------

@pytest.fixture
def design(dtype):
    rng = np.random.default_rng(146)
    A = gaussian_dictionary(40, 20, rng, dtype).T.copy()        # 40 unit-norm columns
    y = rng.standard_normal((20, 5)).astype(dtype)
    return A, y


@pytest.mark.parametrize("kwargs", [{}, {"n_nonzero_coefs": 4}, {"tol": 2.0},
                                    {"n_nonzero_coefs": 3, "precompute": True},
                                    {"tol": 2.0, "precompute": "auto", "copy_X": False}],
                         ids=["default", "fixed", "tol", "precompute", "auto"])
def test_orthogonal_mp_matches_sklearn(design, kwargs, backend):
    A, y = design
    B, H = backend.asarray, backend.result
    tol = 1e-4 if A.dtype == np.float32 else 1e-10
    for target in (y, y[:, 2], y[:, :1], y[:, ::2]):
        coef, n_iter = sf.orthogonal_mp(B(A), B(target), return_n_iter=True, **kwargs)
        # (scikit-learn drops `return_n_iter` when it precomputes: compare counts instead.)
        want = _quiet(sk_orthogonal_mp, A, np.ascontiguousarray(target), **kwargs)
        coef = H(coef)
        assert coef.shape == want.shape and coef.dtype == A.dtype
        np.testing.assert_array_equal(coef != 0, want != 0)
        np.testing.assert_allclose(coef, want, rtol=0, atol=tol * np.abs(want).max())
        if want.ndim == 1:
            assert isinstance(n_iter, int) and n_iter == np.count_nonzero(want)
        else:
            np.testing.assert_array_equal(H(n_iter), np.count_nonzero(want, axis=0))
    # The same pursuit as sparse_encode (one front door), on the same backend.
    if "tol" not in kwargs:
        np.testing.assert_array_equal(
            H(sf.orthogonal_mp(B(A), B(y), **kwargs)),
            H(sf.sparse_encode(B(np.ascontiguousarray(y.T)), B(np.ascontiguousarray(A.T)),
                               n_nonzero_coefs=kwargs.get("n_nonzero_coefs", 4))).T)


def test_orthogonal_mp_errors(design):
    A, y = design
    with pytest.raises(ValueError, match="return_path"):
        sf.orthogonal_mp(A, y, return_path=True)
    with pytest.raises(ValueError, match="n_nonzero_coefs"):
        sf.orthogonal_mp(A, y, n_nonzero_coefs=41)
    with pytest.raises(ValueError, match="`y`"):
        sf.orthogonal_mp(A, y[:-1])
    with pytest.raises(ValueError, match="precompute"):
        sf.orthogonal_mp(A, y, precompute="always")
    with pytest.raises(TypeError, match="`y`"):
        sf.orthogonal_mp(A, y.astype(np.float32 if y.dtype == np.float64 else np.float64))
    bad = A.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="`X`"):
        sf.orthogonal_mp(bad, y)
    ro = y.copy()
    ro.setflags(write=False)
    before = A.copy()
    sf.orthogonal_mp(A, ro, copy_X=False)
    np.testing.assert_array_equal(A, before)


def test_orthogonal_mp_gram_squeezes_like_sklearn(design, backend):
    A, y = design
    B, H = backend.asarray, backend.result
    G, Xy = A.T @ A, A.T @ y
    cases = [(G, Xy[:, :1], 3), (G, Xy[:, 0], 3), (G[:1, :1], Xy[:1], 1),
             (G[:1, :1], Xy[:1, :1], 1), (G, Xy, 3)]
    for g, xy, k in cases:
        coef, n_iter = sf.orthogonal_mp_gram(B(g), B(xy), n_nonzero_coefs=k, return_n_iter=True)
        want, want_n = _quiet(sk_orthogonal_mp_gram, g, xy, n_nonzero_coefs=k,
                              return_n_iter=True)
        assert tuple(H(coef).shape) == want.shape, (g.shape, xy.shape)
        assert isinstance(n_iter, int) == isinstance(want_n, int)


# --- patches of (H, W, 1) images --------------------------------------------------------------

def test_single_channel_patches_like_sklearn(backend, dtype):
    B, H = backend.asarray, backend.result
    image = np.random.default_rng(147).random((9, 11, 1)).astype(dtype)
    ours = H(sf.extract_patches_2d(B(image), (3, 4)))
    np.testing.assert_array_equal(ours, sk_extract(image, (3, 4)))
    assert ours.shape == (7 * 8, 3, 4)
    drawn = H(sf.extract_patches_2d(B(image), (3, 4), max_patches=5, random_state=0))
    np.testing.assert_array_equal(drawn, sk_extract(image, (3, 4), max_patches=5,
                                                    random_state=0))
    # Both image sizes rebuild from (n, ph, pw) patches.
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(H(sf.reconstruct_from_patches_2d(B(ours), (9, 11, 1))), image,
                               rtol=rtol)
    np.testing.assert_allclose(H(sf.reconstruct_from_patches_2d(B(ours), (9, 11))),
                               image[..., 0], rtol=rtol)
    with pytest.raises(ValueError, match="`patches`"):
        sf.reconstruct_from_patches_2d(B(ours), (9, 11, 3))


# --- KSVD --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_features", [1, 3, 7, 10, 16])
def test_ksvd_defaults_work_on_any_n_features(n_features):
    X = np.random.default_rng(149).standard_normal((300, n_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # fewer signals than 256 atoms
        model = sf.KSVD(n_iter=1).fit(X)
    assert model.components_.shape == (256, n_features)
    assert np.all(np.isfinite(model.components_))
    codes = model.transform(X[:4])
    assert model.inverse_transform(codes).shape == (4, n_features)


def test_ksvd_auto_start():
    X = np.random.default_rng(150).standard_normal((50, 16))
    auto = sf.KSVD(36, n_iter=0).fit(X).components_
    np.testing.assert_array_equal(auto, sf.KSVD(36, n_iter=0, dict_init="dct").fit(X).components_)
    Y = X[:, :15]
    np.testing.assert_array_equal(
        sf.KSVD(20, n_iter=0, random_state=3).fit(Y).components_,
        sf.KSVD(20, n_iter=0, dict_init="data", random_state=3).fit(Y).components_)
    with pytest.raises(ValueError, match="`dict_init`"):
        sf.ksvd(X[:, :1], 4, n_iter=1, dict_init="dct")     # a 1 x 1 "patch"
    # scikit-learn's RandomState is a valid random_state.
    a = sf.KSVD(8, n_iter=1, random_state=np.random.RandomState(0)).fit(Y).components_
    b = sf.KSVD(8, n_iter=1, random_state=np.random.RandomState(0)).fit(Y).components_
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
def test_ksvd_inverse_transform(output):
    X = np.random.default_rng(151).standard_normal((80, 9))
    model = sf.KSVD(12, n_nonzero_coefs=3, n_iter=2, random_state=0, output=output).fit(X)
    codes = model.transform(X)
    dense = sf.sparse_encode(X, model.components_, n_nonzero_coefs=3)
    np.testing.assert_allclose(model.inverse_transform(codes), dense @ model.components_,
                               rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="number of components in the code"):
        model.inverse_transform(dense[:, :5])


def test_differences_are_documented_once():
    """The deliberate differences live in one place, each a non-empty sentence."""
    assert all(isinstance(v, str) and v.endswith(".") for v in SKLEARN_DIFFERENCES.values())
    assert {"no_mixed_dtypes", "no_return_path", "residual_orthogonal",
            "omp_only"} <= set(SKLEARN_DIFFERENCES)
