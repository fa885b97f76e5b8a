"""The three output forms of sparse_encode, orthogonal_mp_gram, the gram/cov arguments and
chunking."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import orthogonal_mp_gram as sk_orthogonal_mp_gram

import reference
import sparseforge as sf
from datasets import gaussian_dictionary, selection_order

MODES = pytest.mark.parametrize("kw", [{"n_nonzero_coefs": 5}, {"tol": 4.0}],
                                ids=["fixed", "tol"])


def _tight(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@pytest.fixture(scope="module")
def problem64():
    rng = np.random.default_rng(31)
    D = gaussian_dictionary(120, 32, rng)
    X = rng.standard_normal((60, 32))
    X[7] = 0.0
    X[11] *= 0.2          # within tol=4 (|x|^2 ~ 32 * 0.04)
    return X, D


@pytest.fixture
def problem(problem64, dtype):
    X, D = problem64
    return X.astype(dtype), D.astype(dtype)


@MODES
def test_three_outputs_agree(problem, kw):
    X, D = problem
    dense = sf.sparse_encode(X, D, **kw)
    compact = sf.sparse_encode(X, D, output="compact", **kw)
    csr = sf.sparse_encode(X, D, output="scipy", **kw)

    assert isinstance(dense, np.ndarray) and dense.dtype == X.dtype
    assert dense.shape == (X.shape[0], D.shape[0])
    assert isinstance(compact, sf.SparseCodes)
    assert sp.issparse(csr) and csr.format == "csr" and csr.dtype == X.dtype
    assert compact.shape == csr.shape == dense.shape

    np.testing.assert_array_equal(compact.to_dense(), dense)
    np.testing.assert_array_equal(csr.toarray(), dense)
    np.testing.assert_array_equal(compact.to_scipy().toarray(), dense)

    # Compact invariants.
    assert compact.indices.dtype == np.int32 and compact.counts.dtype == np.int32
    assert compact.status.dtype == np.int8 and compact.values.dtype == X.dtype
    assert compact.indices.shape == compact.values.shape
    np.testing.assert_array_equal(compact.counts, np.count_nonzero(dense, axis=1))
    assert compact.nnz == np.count_nonzero(dense) == csr.nnz
    assert compact.n_components == D.shape[0]
    width = compact.indices.shape[1]
    slots = np.arange(width)[None, :]
    used = slots < compact.counts[:, None]
    assert np.all(compact.indices[~used] == -1) and np.all(compact.values[~used] == 0)
    assert np.all((compact.indices[used] >= 0) & (compact.indices[used] < D.shape[0]))
    if "n_nonzero_coefs" in kw:
        assert width == kw["n_nonzero_coefs"]
    else:
        assert width == compact.counts.max()
        assert compact.counts[7] == 0 and compact.counts[11] == 0
    # CSR: rows in order, sorted column indices, explicit values.
    assert csr.has_sorted_indices
    np.testing.assert_array_equal(np.diff(csr.indptr), compact.counts)

    # Reconstructions.
    want = dense.astype(np.float64) @ D.astype(np.float64)
    rtol = _tight(X.dtype) * 10
    np.testing.assert_allclose(compact.reconstruct(D), want, rtol=0,
                               atol=rtol * np.abs(want).max())
    with pytest.raises(ValueError, match="`dictionary`"):
        compact.reconstruct(D[:-1])
    # Status: zero signal stops orthogonal (fixed) / is within tol (tol mode).
    expected7 = sf.OMPStatus.RESIDUAL_ORTHOGONAL if "n_nonzero_coefs" in kw else sf.OMPStatus.OK
    assert compact.status[7] == expected7


def test_compact_selection_order_matches_reference(problem):
    X, D = problem
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=5, output="compact")
    ref = reference.omp(X, D, n_nonzero_coefs=5)
    for i, sel in enumerate(selection_order(codes)):
        assert sel == ref.paths[i].support


# --- orthogonal_mp_gram -------------------------------------------------------------------------

def _sk(G, Xy, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sk_orthogonal_mp_gram(G, Xy, **kw)


@pytest.mark.parametrize("kw", [{}, {"n_nonzero_coefs": 4}, {"tol": 3.0}],
                         ids=["default", "fixed", "tol"])
def test_orthogonal_mp_gram_matches_sklearn(problem, kw):
    X, D = problem
    X = X[X.any(axis=1)]  # scikit-learn warns and stops on the zero signal; skip it
    G, Xy = D @ D.T, D @ X.T
    norms = np.einsum("ij,ij->i", X, X)
    if "tol" in kw:
        X = X[norms > kw["tol"]]          # (sklearn always selects one atom: see agreement)
        Xy = D @ X.T
        norms = np.einsum("ij,ij->i", X, X)
        kw = dict(kw, norms_squared=norms)
    rtol = 1e-4 if X.dtype == np.float32 else 1e-10

    # 2-D Xy.
    coef, n_iter = sf.orthogonal_mp_gram(G, Xy, return_n_iter=True, **kw)
    sk_coef, sk_n_iter = _sk(G, Xy, return_n_iter=True, **kw)
    assert coef.shape == sk_coef.shape == (D.shape[0], X.shape[0])
    assert coef.dtype == X.dtype
    np.testing.assert_array_equal(coef != 0, sk_coef != 0)
    np.testing.assert_allclose(coef, sk_coef, rtol=0, atol=rtol * np.abs(sk_coef).max())
    np.testing.assert_array_equal(n_iter, sk_n_iter)
    np.testing.assert_array_equal(n_iter, np.count_nonzero(coef, axis=0))
    # One target given as a 2-D column keeps its documented 2-D shape (scikit-learn squeezes
    # it to 1-D).
    c2, n2 = sf.orthogonal_mp_gram(G, Xy[:, :1], return_n_iter=True,
                                   **({**kw, "norms_squared": norms[:1]} if "tol" in kw else kw))
    assert c2.shape == (D.shape[0], 1) and n2.shape == (1,)
    np.testing.assert_array_equal(c2[:, 0], coef[:, 0])
    # Without return_n_iter: just the coefficients.
    np.testing.assert_array_equal(sf.orthogonal_mp_gram(G, Xy, **kw), coef)

    # 1-D Xy, one target at a time.
    for j in range(0, X.shape[0], 9):
        kw1 = dict(kw)
        if "norms_squared" in kw:
            kw1["norms_squared"] = norms[j]
        c1, n1 = sf.orthogonal_mp_gram(G, Xy[:, j], return_n_iter=True, **kw1)
        if "norms_squared" in kw1:   # scikit-learn's validation wants an array, even 0-d
            kw1["norms_squared"] = np.asarray(kw1["norms_squared"])
        s1, sn1 = _sk(G, Xy[:, j], return_n_iter=True, **kw1)
        assert c1.shape == (D.shape[0],)
        assert isinstance(n1, int) and n1 == sn1
        np.testing.assert_array_equal(c1, coef[:, j])
        np.testing.assert_allclose(c1, s1, rtol=0, atol=rtol * np.abs(s1).max())


def test_orthogonal_mp_gram_equals_sparse_encode(problem):
    X, D = problem
    coef = sf.orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=5)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=5)
    np.testing.assert_array_equal(coef != 0, codes.T != 0)
    np.testing.assert_allclose(coef, codes.T, rtol=_tight(X.dtype), atol=0)


def test_orthogonal_mp_gram_strided_Xy(problem):
    X, D = problem
    G = D @ D.T
    Xy = np.asfortranarray(D @ X.T)
    want = sf.orthogonal_mp_gram(G, np.ascontiguousarray(Xy), n_nonzero_coefs=3)
    np.testing.assert_array_equal(sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=3), want)
    np.testing.assert_array_equal(sf.orthogonal_mp_gram(G, Xy[:, ::-1], n_nonzero_coefs=3),
                                  want[:, ::-1])
    np.testing.assert_array_equal(sf.orthogonal_mp_gram(G, Xy[:, ::3], n_nonzero_coefs=3),
                                  want[:, ::3])
    # A Fortran-ordered Gram matrix (as scikit-learn passes it) is fine too.
    np.testing.assert_array_equal(
        sf.orthogonal_mp_gram(np.asfortranarray(G), Xy, n_nonzero_coefs=3), want)


def test_orthogonal_mp_gram_does_not_modify_inputs(problem):
    X, D = problem
    G, Xy = D @ D.T, D @ X.T
    G0, Xy0 = G.copy(), Xy.copy()
    sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=4, copy_Gram=False, copy_Xy=False)
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_array_equal(Xy, Xy0)


# --- gram= and cov= ----------------------------------------------------------------------------

@MODES
def test_gram_and_cov_arguments(problem, kw):
    X, D = problem
    want = sf.sparse_encode(X, D, **kw)
    G = D @ D.T
    cov = D @ X.T
    tight = _tight(X.dtype)
    for args in ({"gram": G}, {"cov": cov}, {"gram": G, "cov": cov},
                 {"cov": np.asfortranarray(cov)}, {"gram": np.asfortranarray(G)},
                 {"gram": G, "check_input": False}):
        got = sf.sparse_encode(X, D, **args, **kw)
        np.testing.assert_array_equal(got != 0, want != 0)
        np.testing.assert_allclose(got, want, rtol=tight, atol=tight * np.abs(want).max())


def test_cov_is_used_for_the_correlations(problem):
    """With `cov`, the correlations come from it; `X` only gives shapes (and norms for tol)."""
    X, D = problem
    rng = np.random.default_rng(1)
    X2 = rng.standard_normal(X.shape).astype(X.dtype)
    got = sf.sparse_encode(X, D, cov=D @ X2.T, n_nonzero_coefs=4)
    want = sf.sparse_encode(X2, D, n_nonzero_coefs=4)
    np.testing.assert_array_equal(got != 0, want != 0)
    # Reversed-sample view of cov (negative strides) gives reversed codes.
    cov = D @ X.T
    rev = sf.sparse_encode(X[::-1], D, cov=cov[:, ::-1], n_nonzero_coefs=4)
    np.testing.assert_array_equal(rev, sf.sparse_encode(X, D, cov=cov, n_nonzero_coefs=4)[::-1])


def test_cov_and_tol_use_norms_of_X(problem):
    X, D = problem
    cov = D @ X.T
    want = sf.sparse_encode(X, D, tol=4.0, output="compact")
    got = sf.sparse_encode(X, D, cov=cov, tol=4.0, output="compact")
    np.testing.assert_array_equal(got.counts, want.counts)
    # Doubling X (not cov) moves every signal's energy: more atoms are needed.
    more = sf.sparse_encode(2 * X, D, cov=cov, tol=4.0, output="compact")
    assert np.all(more.counts >= want.counts) and np.any(more.counts > want.counts)


# --- chunking ----------------------------------------------------------------------------------

@MODES
@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
def test_chunk_size_does_not_change_results(problem, kw, output):
    X, D = problem
    want = sf.sparse_encode(X, D, output=output, **kw)
    for chunk_size in (1, 7, 59, 60, 1000):
        got = sf.sparse_encode(X, D, output=output, chunk_size=chunk_size, **kw)
        if output == "compact":
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.counts, want.counts)
            np.testing.assert_array_equal(got.status, want.status)
            np.testing.assert_allclose(got.values, want.values, rtol=_tight(X.dtype), atol=0)
        else:
            got = got.toarray() if output == "scipy" else got
            want_d = want.toarray() if output == "scipy" else want
            np.testing.assert_array_equal(got != 0, want_d != 0)
            np.testing.assert_allclose(got, want_d, rtol=_tight(X.dtype), atol=0)


def test_tol_compact_chunks_of_different_widths(dtype):
    """Error-constrained compact output assembled from chunks whose widest rows differ: the
    result has the overall width, each row padded with -1 / 0."""
    rng = np.random.default_rng(41)
    D = gaussian_dictionary(90, 30, rng, dtype)
    scales = np.repeat([0.05, 3.0, 1.0, 0.0, 2.0], 7)        # chunks of 7 signals
    X = (rng.standard_normal((35, 30)) * scales[:, None]).astype(dtype)
    tol = 5.0
    one = sf.sparse_encode(X, D, tol=tol, output="compact")
    chunked = sf.sparse_encode(X, D, tol=tol, output="compact", chunk_size=7)
    widths = [int(chunked.counts[i:i + 7].max()) for i in range(0, 35, 7)]
    assert len(set(widths)) >= 3, widths                        # really different widths
    assert widths[0] == 0 and widths[3] == 0
    assert chunked.indices.shape == (35, max(widths))
    np.testing.assert_array_equal(chunked.indices, one.indices)
    np.testing.assert_array_equal(chunked.counts, one.counts)
    np.testing.assert_array_equal(chunked.status, one.status)
    np.testing.assert_allclose(chunked.values, one.values, rtol=_tight(dtype), atol=0)
    np.testing.assert_array_equal(chunked.to_dense() != 0, sf.sparse_encode(
        X, D, tol=tol, chunk_size=7) != 0)
    np.testing.assert_array_equal(
        sf.sparse_encode(X, D, tol=tol, output="scipy", chunk_size=7).toarray(),
        chunked.to_dense())
    # All signals within tol: zero-width compact codes.
    none = sf.sparse_encode(X[:7], D, tol=tol, output="compact", chunk_size=3)
    assert none.indices.shape == (7, 0) and none.nnz == 0
    assert none.to_scipy().shape == (7, 90)


@pytest.mark.parametrize("chunk_size,exc", [(-1, ValueError), (-64, ValueError),
                                            (2.5, TypeError), ("3", TypeError)])
def test_bad_chunk_size(chunk_size, exc):
    """An invalid chunk_size is rejected naming the argument (a negative one currently skips
    the kernel and returns uninitialised memory)."""
    rng = np.random.default_rng(0)
    D = gaussian_dictionary(40, 10, rng)
    X = rng.standard_normal((20, 10))
    with pytest.raises(exc, match=re.escape("`chunk_size`")):
        sf.sparse_encode(X, D, chunk_size=chunk_size)
