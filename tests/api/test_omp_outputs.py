"""The three output forms of sparse_encode, orthogonal_mp_gram, the gram/cov arguments and
chunking, on every backend (tests/backends.py): device arrays in, device arrays out ("scipy"
output exists on the host only: a device call asks for "dense" or "compact")."""

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


def raises_output(backend):
    """What output="scipy" does on a device backend: a ValueError naming `output`."""
    return pytest.raises(ValueError, match=re.escape("`output`"))


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
def test_three_outputs_agree(problem, kw, backend):
    X, D = problem
    B = backend.asarray
    dense = backend.result(sf.sparse_encode(B(X), B(D), **kw))
    raw = sf.sparse_encode(B(X), B(D), output="compact", **kw)
    assert isinstance(raw, sf.SparseCodes)
    compact = backend.result(raw)
    if backend.is_device:
        with raises_output(backend):
            sf.sparse_encode(B(X), B(D), output="scipy", **kw)
        csr = compact.to_scipy()
    else:
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


def test_compact_selection_order_matches_reference(problem, backend):
    X, D = problem
    B = backend.asarray
    codes = backend.result(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=5, output="compact"))
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
def test_orthogonal_mp_gram_matches_sklearn(problem, kw, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    X = X[X.any(axis=1)]  # scikit-learn warns and stops on the zero signal; skip it
    G, Xy = D @ D.T, D @ X.T
    norms = np.einsum("ij,ij->i", X, X)
    if "tol" in kw:
        X = X[norms > kw["tol"]]          # (sklearn always selects one atom: see agreement)
        Xy = D @ X.T
        norms = np.einsum("ij,ij->i", X, X)
        kw = dict(kw, norms_squared=norms)
    rtol = 1e-4 if X.dtype == np.float32 else 1e-10

    dev_kw = {k: B(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}

    # 2-D Xy.
    coef, n_iter = sf.orthogonal_mp_gram(B(G), B(Xy), return_n_iter=True, **dev_kw)
    coef, n_iter = H(coef), H(n_iter)
    sk_coef, sk_n_iter = _sk(G, Xy, return_n_iter=True, **kw)
    assert coef.shape == sk_coef.shape == (D.shape[0], X.shape[0])
    assert coef.dtype == X.dtype
    np.testing.assert_array_equal(coef != 0, sk_coef != 0)
    np.testing.assert_allclose(coef, sk_coef, rtol=0, atol=rtol * np.abs(sk_coef).max())
    np.testing.assert_array_equal(n_iter, sk_n_iter)
    np.testing.assert_array_equal(n_iter, np.count_nonzero(coef, axis=0))
    # One target given as a 2-D column is squeezed to 1-D with an int count, as scikit-learn
    # does (issue 14).
    c2, n2 = sf.orthogonal_mp_gram(
        B(G), B(Xy)[:, :1], return_n_iter=True,
        **({**dev_kw, "norms_squared": B(norms[:1])} if "tol" in kw else dev_kw))
    c2 = H(c2)
    assert c2.shape == (D.shape[0],) and isinstance(n2, int)
    np.testing.assert_array_equal(c2, coef[:, 0])
    # Without return_n_iter: just the coefficients.
    np.testing.assert_array_equal(H(sf.orthogonal_mp_gram(B(G), B(Xy), **dev_kw)), coef)

    # 1-D Xy, one target at a time.
    for j in range(0, X.shape[0], 9):
        kw1 = dict(kw)
        if "norms_squared" in kw:
            kw1["norms_squared"] = norms[j]
        dev_kw1 = {k: B(v) if isinstance(v, (np.ndarray, np.generic)) else v
                   for k, v in kw1.items()}
        c1, n1 = sf.orthogonal_mp_gram(B(G), B(Xy[:, j]), return_n_iter=True, **dev_kw1)
        c1 = H(c1)
        if "norms_squared" in kw1:   # scikit-learn's validation wants an array, even 0-d
            kw1["norms_squared"] = np.asarray(kw1["norms_squared"])
        s1, sn1 = _sk(G, Xy[:, j], return_n_iter=True, **kw1)
        assert c1.shape == (D.shape[0],)
        assert isinstance(n1, int) and n1 == sn1
        np.testing.assert_array_equal(c1, coef[:, j])
        np.testing.assert_allclose(c1, s1, rtol=0, atol=rtol * np.abs(s1).max())


def test_orthogonal_mp_gram_equals_sparse_encode(problem, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    coef = H(sf.orthogonal_mp_gram(B(D @ D.T), B(D @ X.T), n_nonzero_coefs=5))
    codes = H(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=5))
    np.testing.assert_array_equal(coef != 0, codes.T != 0)
    np.testing.assert_allclose(coef, codes.T, rtol=_tight(X.dtype), atol=0)


def test_orthogonal_mp_gram_strided_Xy(problem, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    G = B(D @ D.T)
    Xy_host = np.asfortranarray(D @ X.T)
    Xy = B(Xy_host)
    want = H(sf.orthogonal_mp_gram(G, B(np.ascontiguousarray(Xy_host)), n_nonzero_coefs=3))
    np.testing.assert_array_equal(H(sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=3)), want)
    np.testing.assert_array_equal(H(sf.orthogonal_mp_gram(G, backend.flip(Xy, 1),
                                                          n_nonzero_coefs=3)),
                                  want[:, ::-1])
    np.testing.assert_array_equal(H(sf.orthogonal_mp_gram(G, Xy[:, ::3], n_nonzero_coefs=3)),
                                  want[:, ::3])
    # A Fortran-ordered Gram matrix (as scikit-learn passes it) is fine too.
    np.testing.assert_array_equal(
        H(sf.orthogonal_mp_gram(B(np.asfortranarray(D @ D.T)), Xy, n_nonzero_coefs=3)), want)


def test_orthogonal_mp_gram_does_not_modify_inputs(problem, backend):
    X, D = problem
    G0, Xy0 = D @ D.T, D @ X.T
    G, Xy = backend.asarray(G0.copy()), backend.asarray(Xy0.copy())
    sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=4, copy_Gram=False, copy_Xy=False)
    np.testing.assert_array_equal(backend.to_numpy(G), G0)
    np.testing.assert_array_equal(backend.to_numpy(Xy), Xy0)


# --- gram= and cov= ----------------------------------------------------------------------------

@MODES
def test_gram_and_cov_arguments(problem, kw, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    want = H(sf.sparse_encode(B(X), B(D), **kw))
    G = D @ D.T
    cov = D @ X.T
    tight = _tight(X.dtype)
    for args in ({"gram": G}, {"cov": cov}, {"gram": G, "cov": cov},
                 {"cov": np.asfortranarray(cov)}, {"gram": np.asfortranarray(G)},
                 {"gram": G, "check_input": False}):
        args = {k: B(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
        got = H(sf.sparse_encode(B(X), B(D), **args, **kw))
        np.testing.assert_array_equal(got != 0, want != 0)
        np.testing.assert_allclose(got, want, rtol=tight, atol=tight * np.abs(want).max())


def test_cov_is_used_for_the_correlations(problem, backend):
    """With `cov`, the correlations come from it; `X` only gives shapes (and norms for tol)."""
    X, D = problem
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(1)
    X2 = rng.standard_normal(X.shape).astype(X.dtype)
    got = H(sf.sparse_encode(B(X), B(D), cov=B(D @ X2.T), n_nonzero_coefs=4))
    want = H(sf.sparse_encode(B(X2), B(D), n_nonzero_coefs=4))
    np.testing.assert_array_equal(got != 0, want != 0)
    # Reversed-sample view of cov (negative strides) gives reversed codes.
    cov = B(D @ X.T)
    rev = H(sf.sparse_encode(backend.flip(B(X), 0), B(D), cov=backend.flip(cov, 1),
                             n_nonzero_coefs=4))
    np.testing.assert_array_equal(
        rev, H(sf.sparse_encode(B(X), B(D), cov=cov, n_nonzero_coefs=4))[::-1])


def test_cov_and_tol_use_norms_of_X(problem, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    cov = B(D @ X.T)
    want = H(sf.sparse_encode(B(X), B(D), tol=4.0, output="compact"))
    got = H(sf.sparse_encode(B(X), B(D), cov=cov, tol=4.0, output="compact"))
    np.testing.assert_array_equal(got.counts, want.counts)
    # Doubling X (not cov) moves every signal's energy: more atoms are needed.
    more = H(sf.sparse_encode(B(2 * X), B(D), cov=cov, tol=4.0, output="compact"))
    assert np.all(more.counts >= want.counts) and np.any(more.counts > want.counts)


# --- chunking ----------------------------------------------------------------------------------

@MODES
@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
def test_chunk_size_does_not_change_results(problem, kw, output, backend):
    X, D = problem
    B, H = backend.asarray, backend.result
    if output == "scipy" and backend.is_device:  # host memory only
        with raises_output(backend):
            sf.sparse_encode(B(X), B(D), output=output, chunk_size=7, **kw)
        return
    want = sf.sparse_encode(B(X), B(D), output=output, **kw)
    want = want if output == "scipy" else H(want)
    for chunk_size in (1, 7, 59, 60, 1000):
        got = sf.sparse_encode(B(X), B(D), output=output, chunk_size=chunk_size, **kw)
        got = got if output == "scipy" else H(got)
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


def test_tol_compact_chunks_of_different_widths(dtype, backend):
    """Error-constrained compact output assembled from chunks whose widest rows differ: the
    result has the overall width, each row padded with -1 / 0."""
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(41)
    D_host = gaussian_dictionary(90, 30, rng, dtype)
    scales = np.repeat([0.05, 3.0, 1.0, 0.0, 2.0], 7)        # chunks of 7 signals
    X_host = (rng.standard_normal((35, 30)) * scales[:, None]).astype(dtype)
    X, D = B(X_host), B(D_host)
    tol = 5.0
    one = H(sf.sparse_encode(X, D, tol=tol, output="compact"))
    chunked = H(sf.sparse_encode(X, D, tol=tol, output="compact", chunk_size=7))
    widths = [int(chunked.counts[i:i + 7].max()) for i in range(0, 35, 7)]
    assert len(set(widths)) >= 3, widths                        # really different widths
    assert widths[0] == 0 and widths[3] == 0
    assert chunked.indices.shape == (35, max(widths))
    np.testing.assert_array_equal(chunked.indices, one.indices)
    np.testing.assert_array_equal(chunked.counts, one.counts)
    np.testing.assert_array_equal(chunked.status, one.status)
    np.testing.assert_allclose(chunked.values, one.values, rtol=_tight(dtype), atol=0)
    np.testing.assert_array_equal(chunked.to_dense() != 0, H(sf.sparse_encode(
        X, D, tol=tol, chunk_size=7)) != 0)
    if backend.is_device:
        with raises_output(backend):
            sf.sparse_encode(X, D, tol=tol, output="scipy", chunk_size=7)
    else:
        np.testing.assert_array_equal(
            sf.sparse_encode(X, D, tol=tol, output="scipy", chunk_size=7).toarray(),
            chunked.to_dense())
    # All signals within tol: zero-width compact codes.
    none = H(sf.sparse_encode(X[:7], D, tol=tol, output="compact", chunk_size=3))
    assert none.indices.shape == (7, 0) and none.nnz == 0
    assert none.to_scipy().shape == (7, 90)


@pytest.mark.parametrize("chunk_size,exc", [(-1, ValueError), (-64, ValueError),
                                            (2.5, TypeError), ("3", TypeError)])
def test_bad_chunk_size(chunk_size, exc, backend):
    """An invalid chunk_size is rejected naming the argument (a negative one currently skips
    the kernel and returns uninitialised memory), for device arrays too."""
    rng = np.random.default_rng(0)
    D = gaussian_dictionary(40, 10, rng)
    X = rng.standard_normal((20, 10))
    with pytest.raises(exc, match=re.escape("`chunk_size`")):
        sf.sparse_encode(backend.asarray(X), backend.asarray(D), chunk_size=chunk_size)


# --- device results against the host's (from the former emulated-dispatch tests) -------------

@pytest.mark.parametrize("mode", [{"n_nonzero_coefs": 5}, {"tol": 4.0}], ids=["fixed", "tol"])
def test_device_codes_match_host_codes(backend, mode, dtype):
    rng = np.random.default_rng(101)
    D = gaussian_dictionary(70, 24, rng, dtype)
    X = rng.standard_normal((40, 24)).astype(dtype)
    B, H = backend.asarray, backend.result
    want = sf.sparse_encode(X, D, **mode)
    got = H(sf.sparse_encode(B(X), B(D), **mode))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    compact = H(sf.sparse_encode(B(X), B(D), output="compact", **mode))
    ref = sf.sparse_encode(X, D, output="compact", **mode)
    np.testing.assert_array_equal(compact.indices, ref.indices)      # tol: trimmed alike
    np.testing.assert_array_equal(compact.counts, ref.counts)
    np.testing.assert_array_equal(compact.status, ref.status)
    # cov given as (n_components, n_samples) with the samples contiguous: strides swapped.
    cov = B(D @ X.T)
    np.testing.assert_allclose(H(sf.sparse_encode(B(X), B(D), cov=cov, **mode)), want,
                               rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    if backend.cuda is not None:  # emulated: cov reached the kernel in place, not copied
        call = backend.cuda.last("omp_batch")
        assert (call["cov_stride_signal"], call["cov_stride_atom"]) == (1, 40)


def test_orthogonal_mp_gram_device_matches_host(backend, dtype):
    rng = np.random.default_rng(103)
    D = gaussian_dictionary(60, 20, rng, dtype)
    X = rng.standard_normal((9, 20)).astype(dtype)
    B, H = backend.asarray, backend.result
    G, Xy, norms = D @ D.T, D @ X.T, np.einsum("ij,ij->i", X, X)
    atol = 1e-5 if dtype == np.float32 else 1e-12
    for kw in ({"n_nonzero_coefs": 4}, {"tol": 2.0, "norms_squared": norms}):
        dev = {k: (B(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        got = H(sf.orthogonal_mp_gram(B(G), B(Xy), **dev))
        np.testing.assert_allclose(got, sf.orthogonal_mp_gram(G, Xy, **kw), rtol=0, atol=atol)
    # norms_squared of the other float dtype is cast to Gram's, as on the CPU.
    other = norms.astype(np.float64 if dtype == np.float32 else np.float32)
    np.testing.assert_allclose(
        H(sf.orthogonal_mp_gram(B(G), B(Xy), tol=2.0, norms_squared=B(other))),
        sf.orthogonal_mp_gram(G, Xy, tol=2.0, norms_squared=other), rtol=0, atol=atol)
    one, n_iter = sf.orthogonal_mp_gram(B(G), B(Xy[:, 2]), n_nonzero_coefs=3,
                                        return_n_iter=True)
    np.testing.assert_allclose(H(one), sf.orthogonal_mp_gram(G, Xy[:, 2], n_nonzero_coefs=3),
                               rtol=0, atol=1e-5)
    assert n_iter == 3


# --- out= --------------------------------------------------------------------------------------

@MODES
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_out_receives_the_dense_codes(problem, kw, chunk_size, backend):
    """`out` is returned, holds exactly the codes of a call without it (every stale element
    overwritten), and a column slice of a wider buffer leaves the other columns alone."""
    X, D = problem
    B, H = backend.asarray, backend.result
    want = H(sf.sparse_encode(B(X), B(D), chunk_size=chunk_size, **kw))
    n, k = want.shape
    out = B(np.full((n, k), np.nan, X.dtype))
    got = sf.sparse_encode(B(X), B(D), chunk_size=chunk_size, out=out, **kw)
    assert got is out
    np.testing.assert_array_equal(H(got), want)
    wide = B(np.full((n, k + 5), -3.0, X.dtype))
    sf.sparse_encode(B(X), B(D), chunk_size=chunk_size, out=wide[:, 2:k + 2], **kw)
    wide = H(wide)
    np.testing.assert_array_equal(wide[:, 2:k + 2], want)
    assert (wide[:, :2] == -3).all() and (wide[:, k + 2:] == -3).all()


def test_out_one_row_with_zero_stride(problem):
    """A single row whose row stride numpy reports as 0 (``a[None]``) is written correctly."""
    X, D = problem
    row = np.zeros(D.shape[0], X.dtype)[None]
    sf.sparse_encode(X[:1], D, n_nonzero_coefs=3, out=row)
    np.testing.assert_array_equal(row, sf.sparse_encode(X[:1], D, n_nonzero_coefs=3))


def test_out_errors(problem, backend):
    X, D = problem
    B = backend.asarray
    n, k = X.shape[0], D.shape[0]
    other = np.float32 if X.dtype == np.float64 else np.float64
    cases = [
        (ValueError, "has shape", B(np.empty((n, k - 1), X.dtype)), {}),
        (TypeError, "has dtype", B(np.empty((n, k), other)), {}),
        (ValueError, "unit stride", B(np.empty((n, 2 * k), X.dtype))[:, ::2], {}),
        (ValueError, "output='dense' only", B(np.empty((n, k), X.dtype)), {"output": "compact"}),
    ]
    for exc, words, out, extra in cases:
        with pytest.raises(exc, match=re.escape("`out`") + ".*" + re.escape(words)):
            sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3, out=out, **extra)
    # sharing memory with an input: X's own buffer
    arena = B(np.zeros((n, X.shape[1] + k), X.dtype))
    arena[:, :X.shape[1]] = B(X)
    with pytest.raises(ValueError, match=r"`out` shares memory with `X`"):
        sf.sparse_encode(arena[:, :X.shape[1]], B(D), out=arena[:, X.shape[1]:])
    # not an array the codes can be written into: refused, never written into a copy (next
    # to device inputs a host list is refused as host memory, naming `out` too)
    for bad in ([[0.0] * k] * n, "dense"):
        with pytest.raises((TypeError, ValueError), match=r"`out`"):
            sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3, out=bad)
    ro = B(np.empty((n, k), X.dtype))
    if backend.readonly(ro):
        with pytest.raises(ValueError, match=r"`out` is read-only"):
            sf.sparse_encode(B(X), B(D), out=ro)


def test_out_sharing_memory_with_a_sparse_X_is_refused(problem):
    """A scipy.sparse `X` is densified chunk by chunk: an `out` over its value array would
    be read after the kernel wrote it."""
    X, D = problem
    n, k = X.shape[0], D.shape[0]
    Xs = sp.csr_matrix(X)
    buf = np.zeros(n * k + Xs.nnz, X.dtype)
    buf[:Xs.nnz] = Xs.data
    Xs.data = buf[:Xs.nnz]
    with pytest.raises(ValueError, match=r"`out` shares memory with `X`"):
        sf.sparse_encode(Xs, D, n_nonzero_coefs=2, out=buf[:n * k].reshape(n, k), chunk_size=5)
    got = sf.sparse_encode(Xs, D, n_nonzero_coefs=2, out=buf[Xs.nnz:].reshape(n, k))
    np.testing.assert_array_equal(got, sf.sparse_encode(X, D, n_nonzero_coefs=2))


def test_out_tracked_by_autograd_is_refused(problem):
    torch = pytest.importorskip("torch")
    X, D = problem
    out = torch.zeros(X.shape[0], D.shape[0], dtype=torch.float64, requires_grad=True)
    with pytest.raises((TypeError, ValueError), match=r"`out`"):
        sf.sparse_encode(X.astype(np.float64), D.astype(np.float64), out=out)


def test_sparse_codes_compare_by_value():
    """Two SparseCodes are equal when they hold the same codes (the generated __eq__ raised
    on the arrays); unhashable, as their arrays are mutable."""
    import copy
    import pickle

    rng = np.random.default_rng(0)
    D = sf.overcomplete_dct(4, 6)
    X = rng.standard_normal((20, 16))
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    assert codes == copy.deepcopy(codes) == pickle.loads(pickle.dumps(codes))
    assert codes != sf.sparse_encode(X[:2], D, n_nonzero_coefs=3, output="compact")
    assert codes != sf.sparse_encode(X, D, n_nonzero_coefs=2, output="compact")
    assert codes != "codes"
    with pytest.raises(TypeError, match="unhashable"):
        hash(codes)
