"""Bad input is rejected with the argument named; degenerate input gives documented results.

Every check runs on every backend (tests/backends.py): validation happens once, on the
descriptions of the arguments, wherever they live."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import reference
import sparseforge as sf
from datasets import gaussian_dictionary, selection_order


@pytest.fixture(scope="module")
def XD():
    rng = np.random.default_rng(21)
    D = gaussian_dictionary(20, 8, rng)
    X = rng.standard_normal((5, 8))
    return X, D


def raises_naming(exc, name):
    """pytest.raises whose message must name the argument as `name`."""
    return pytest.raises(exc, match=re.escape(f"`{name}`"))


# --- dtypes and values of X and the dictionary -------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_integer_X(XD, dtype, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "X"):
        sf.sparse_encode(B((X * 10).astype(dtype)), B(D))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_X(XD, dtype, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "X"):
        sf.sparse_encode(B(X.astype(dtype)), B(D))


def test_float16_X(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "X"):
        sf.sparse_encode(B(X.astype(np.float16)), B(D))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode", [{"n_nonzero_coefs": 3}, {"tol": 0.5}], ids=["fixed", "tol"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_X(XD, bad, mode, dtype, backend):
    X, D = XD
    B = backend.asarray
    X = X.astype(dtype)
    X[3, 5] = bad
    with raises_naming(ValueError, "X") as info:
        sf.sparse_encode(B(X), B(D.astype(dtype)), **mode)
    assert "NaN or infinity" in str(info.value)
    assert "row 3" in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_X_with_cov_in_tol_mode(XD, dtype, backend):
    """With `cov` given, `X` still provides the signal energies in the tol mode; a NaN there
    is in `X`, and the error should say so (not blame the finite `cov`)."""
    X, D = XD
    B = backend.asarray
    X, D = X.astype(dtype), D.astype(dtype)
    cov = D @ X.T
    X = X.copy()
    X[2, 2] = np.nan
    with raises_naming(ValueError, "X"):
        sf.sparse_encode(B(X), B(D), cov=B(cov), tol=0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("extra", ["none", "gram", "cov", "mask"])
def test_non_finite_dictionary(XD, bad, extra, backend):
    """Named on every path to the kernel (the backends check it where they read it)."""
    X, D = XD
    B = backend.asarray
    G, C = D @ D.T, D @ X.T
    D = D.copy()
    D[4, 2] = bad
    kw = {"none": {}, "gram": {"gram": B(G)}, "cov": {"cov": B(C)},
          "mask": {"mask": B(np.ones(X.shape, bool))}}[extra]
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(B(X), B(D), **kw)


def test_non_finite_dictionary_is_blamed_before_its_gram(XD, backend):
    """A Gram matrix formed from a non-finite dictionary is non-finite too: the dictionary is
    named, not the Gram matrix."""
    X, D = XD
    B = backend.asarray
    D = D.copy()
    D[4, 2] = np.nan
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(B(X), B(D), gram=B(D @ D.T))


def test_unchecked_dictionary_is_checked_when_asked(XD):
    """The CPU Gram cache remembers whether its dictionary was checked: an infinite one first
    coded with check_input=False (cached unchecked) still raises when checked later, and a
    checked one modified in place is checked again."""
    X, D = XD
    D = D.copy()
    D[1, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sf.sparse_encode(X, D, check_input=False, n_nonzero_coefs=2)
        except ValueError:
            pass  # the kernel may still refuse the non-finite correlations; cached either way
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(X, D, n_nonzero_coefs=2)
    D[1, 1] = 0.5
    sf.sparse_encode(X, D, n_nonzero_coefs=2)  # checked and cached
    sf.sparse_encode(X, D, n_nonzero_coefs=2)  # a checked hit
    D[3, 0] = np.nan
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(X, D, n_nonzero_coefs=2)


def test_non_finite_cov_is_named(XD, backend):
    X, D = XD
    B = backend.asarray
    cov = D @ X.T
    cov[7, 1] = np.nan
    with raises_naming(ValueError, "cov"):
        sf.sparse_encode(B(X), B(D), cov=B(cov))


@pytest.mark.parametrize("shape", [(8,), (1, 5, 8), ()])
def test_wrong_rank_X(XD, shape, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "X"):
        sf.sparse_encode(B(np.ones(shape)), B(D))


def test_wrong_rank_dictionary(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(B(X), B(D[0]))


def test_mismatched_n_features(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "dictionary") as info:
        sf.sparse_encode(B(X[:, :7]), B(D))
    assert "`X`" in str(info.value)


def test_dictionary_without_features_or_atoms(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(B(X[:, :0]), B(D[:, :0]))
    with raises_naming(ValueError, "dictionary"):
        sf.sparse_encode(B(X), B(D[:0]))


@pytest.mark.parametrize("tol", [None, 1.0])
@pytest.mark.parametrize("k", [0, -1, -100, 21])
def test_n_nonzero_coefs_out_of_range(XD, k, tol, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "n_nonzero_coefs"):
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=k, tol=tol)


@pytest.mark.parametrize("k", [2.5, 3.0, "3", True])
def test_n_nonzero_coefs_not_integer(XD, k, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "n_nonzero_coefs"):
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=k)


def test_n_nonzero_coefs_numpy_integer_accepted(XD, backend):
    X, D = XD
    B, H = backend.asarray, backend.result
    a = H(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=np.int64(3)))
    b = H(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tol,exc", [(-1.0, ValueError), (-1e-300, ValueError),
                                     (np.nan, ValueError), (np.inf, ValueError),
                                     ("0.1", TypeError), (True, TypeError)])
def test_bad_tol(XD, tol, exc, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(exc, "tol"):
        sf.sparse_encode(B(X), B(D), tol=tol)


def test_mixed_precision(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "dictionary"):
        sf.sparse_encode(B(X.astype(np.float32)), B(D))
    with raises_naming(TypeError, "dictionary"):
        sf.sparse_encode(B(X), B(D.astype(np.float32)))


def test_algorithm_must_be_omp(XD, backend):
    X, D = XD
    B = backend.asarray
    for algorithm in ("lars", "lasso_cd", "threshold", "OMP"):
        with raises_naming(ValueError, "algorithm"):
            sf.sparse_encode(B(X), B(D), algorithm=algorithm)


@pytest.mark.parametrize("output", ["csr", "Dense", None, ""])
def test_bad_output(XD, output, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "output"):
        sf.sparse_encode(B(X), B(D), output=output)
    with raises_naming(ValueError, "output"):
        sf.sparse_encode(B(X[:0]), B(D), output=output)


def test_gram_wrong_shape(XD, backend):
    X, D = XD
    B = backend.asarray
    G = D @ D.T
    for bad in (G[:-1, :-1], G[:, :-1], G[0]):
        with raises_naming(ValueError, "gram"):
            sf.sparse_encode(B(X), B(D), gram=B(bad))


def test_gram_not_symmetric(XD, backend):
    X, D = XD
    B = backend.asarray
    G = D @ D.T
    G[0, 3] += 0.1
    with raises_naming(ValueError, "gram") as info:
        sf.sparse_encode(B(X), B(D), gram=B(G))
    assert "symmetric" in str(info.value)


def test_gram_wrong_dtype(XD, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(TypeError, "gram"):
        sf.sparse_encode(B(X), B(D), gram=B((D @ D.T).astype(np.float32)))


def test_cov_wrong_shape(XD, backend):
    X, D = XD
    B = backend.asarray
    cov = D @ X.T
    for bad in (cov.T, cov[:, :-1], cov[:-1], cov[:, 0]):
        with raises_naming(ValueError, "cov"):
            sf.sparse_encode(B(X), B(D), cov=B(bad))


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2"])
def test_bad_n_jobs(XD, n_jobs, backend):
    X, D = XD
    B = backend.asarray
    with raises_naming(ValueError, "n_jobs"):
        sf.sparse_encode(B(X), B(D), n_jobs=n_jobs)


@pytest.mark.parametrize("n_jobs", [1, 2, 7, -1, -2, -100, None])
def test_valid_n_jobs_same_result(XD, n_jobs, backend):
    X, D = XD
    B, H = backend.asarray, backend.result
    np.testing.assert_array_equal(H(sf.sparse_encode(B(X), B(D), n_jobs=n_jobs)),
                                  H(sf.sparse_encode(B(X), B(D), n_jobs=1)))


def test_torch_tensor_rejected_with_name(XD):
    torch = pytest.importorskip("torch")
    X, D = XD
    with raises_naming(TypeError, "X"):
        sf.sparse_encode(torch.from_numpy(X), D)


# --- orthogonal_mp_gram ------------------------------------------------------------------------

def test_orthogonal_mp_gram_errors(XD, backend):
    X, D = XD
    B = backend.asarray
    G_host, Xy_host = D @ D.T, D @ X.T
    G, Xy = B(G_host), B(Xy_host)
    with raises_naming(ValueError, "norms_squared"):
        sf.orthogonal_mp_gram(G, Xy, tol=1.0)
    with raises_naming(ValueError, "norms_squared"):
        sf.orthogonal_mp_gram(G, Xy, tol=1.0, norms_squared=B(np.ones(3)))
    with pytest.raises(ValueError, match="`return_path"):
        sf.orthogonal_mp_gram(G, Xy, return_path=True)
    with raises_naming(ValueError, "Xy"):
        sf.orthogonal_mp_gram(G, Xy[:5])
    with raises_naming(ValueError, "Xy"):
        sf.orthogonal_mp_gram(G, Xy[None])
    with raises_naming(TypeError, "Xy"):
        sf.orthogonal_mp_gram(G, B(Xy_host.astype(np.float32)))
    bad = Xy_host.copy()
    bad[2, 3] = np.inf
    with raises_naming(ValueError, "Xy"):
        sf.orthogonal_mp_gram(G, B(bad))
    G_bad = G_host.copy()
    G_bad[1, 0] -= 0.5
    with raises_naming(ValueError, "Gram"):
        sf.orthogonal_mp_gram(B(G_bad), Xy)
    with raises_naming(ValueError, "Gram"):
        sf.orthogonal_mp_gram(G[:, :3], Xy)
    with raises_naming(ValueError, "n_nonzero_coefs"):
        sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=21)
    with raises_naming(ValueError, "tol"):
        sf.orthogonal_mp_gram(G, Xy, tol=-1.0, norms_squared=B(np.ones(5)))
    # From the former emulated-dispatch tests: the messages themselves.
    with pytest.raises(ValueError, match="`Gram` is not symmetric"):
        sf.orthogonal_mp_gram(B(G_bad), Xy)
    nan_X = X.copy()
    nan_X[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"`X` contains NaN .* first at row 4"):
        sf.sparse_encode(B(nan_X), B(D), n_nonzero_coefs=3)


# --- documented results on unusual but valid input ---------------------------------------------

def _same_codes(a, b, dtype):
    """Identical supports, values equal to round-off."""
    np.testing.assert_array_equal(a != 0, b != 0)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("tol", [None, 2.0])
def test_non_contiguous_X(dtype, tol, backend):
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(5)
    D = gaussian_dictionary(50, 12, rng, dtype)
    D2 = gaussian_dictionary(50, 24, rng, dtype)
    big_host = rng.standard_normal((30, 24)).astype(dtype)
    big = B(big_host)          # the views are taken where the data live
    kw = {"n_nonzero_coefs": 4} if tol is None else {"tol": tol}
    views = {
        "every other column": (big[:, ::2], big_host[:, ::2], D),
        "every other row": (big[::2], big_host[::2], D2),
        "reversed rows": (backend.flip(big, 0), big_host[::-1], D2),
        "transpose of Fortran": (B(np.asfortranarray(big_host.T)).T,
                                 np.asfortranarray(big_host.T).T, D2),
        "Fortran": (B(np.asfortranarray(big_host)), np.asfortranarray(big_host), D2),
        "broadcast row (zero stride)": (backend.broadcast_to(big[3], (30, 24)),
                                        np.broadcast_to(big_host[3], (30, 24)), D2),
    }
    for label, (view, host_view, dictionary) in views.items():
        assert not host_view.flags.c_contiguous or label == "transpose of Fortran", label
        if isinstance(view, np.ndarray):
            assert not view.flags.c_contiguous or label == "transpose of Fortran", label
        got = H(sf.sparse_encode(view, B(dictionary), **kw))
        want = H(sf.sparse_encode(B(np.ascontiguousarray(host_view)), B(dictionary), **kw))
        _same_codes(got, want, dtype)
    # A non-contiguous dictionary too.
    Df = B(np.asfortranarray(D))
    _same_codes(H(sf.sparse_encode(big[:, ::2], Df, **kw)),
                H(sf.sparse_encode(B(np.ascontiguousarray(big_host[:, ::2])), B(D), **kw)),
                dtype)


def test_read_only_inputs(dtype, backend):
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(6)
    D_host = gaussian_dictionary(40, 10, rng, dtype)
    X_host = rng.standard_normal((12, 10)).astype(dtype)
    X, D = B(X_host), B(D_host)
    want = H(sf.sparse_encode(X, D, n_nonzero_coefs=3))
    want_tol = H(sf.sparse_encode(X, D, tol=1.0))
    G, cov = B(D_host @ D_host.T), B(D_host @ X_host.T)
    for a in (X, D, G, cov):
        backend.readonly(a)
    np.testing.assert_array_equal(H(sf.sparse_encode(X, D, n_nonzero_coefs=3)), want)
    np.testing.assert_array_equal(H(sf.sparse_encode(X, D, tol=1.0)), want_tol)
    _same_codes(H(sf.sparse_encode(X, D, gram=G, cov=cov, n_nonzero_coefs=3)), want, dtype)
    _same_codes(H(sf.orthogonal_mp_gram(G, cov, n_nonzero_coefs=3)).T, want, dtype)
    if not backend.is_device:  # the estimator is host-only
        coder = sf.SparseCoder(D, transform_n_nonzero_coefs=3).fit()
        np.testing.assert_array_equal(coder.transform(X), want)


def test_unpickled_arrays(dtype):
    """Arrays that went through pickle (joblib, multiprocessing, saved models) are ordinary
    float arrays: equal dtype, but not numpy's cached dtype *instance*. They must be accepted
    like any other (the dtype check must compare dtypes, not object identity)."""
    import pickle

    rng = np.random.default_rng(14)
    D = gaussian_dictionary(40, 10, rng, dtype)
    X = rng.standard_normal((12, 10)).astype(dtype)
    G, cov = D @ D.T, D @ X.T
    want = sf.sparse_encode(X, D, n_nonzero_coefs=3)
    Xp, Dp, Gp, covp = (pickle.loads(pickle.dumps(a)) for a in (X, D, G, cov))
    assert Dp.dtype == D.dtype
    np.testing.assert_array_equal(sf.sparse_encode(Xp, Dp, n_nonzero_coefs=3), want)
    _same_codes(sf.sparse_encode(X, D, gram=Gp, cov=covp, n_nonzero_coefs=3), want, dtype)
    _same_codes(sf.orthogonal_mp_gram(Gp, covp, n_nonzero_coefs=3).T, want, dtype)
    _same_codes(sf.sparse_encode(Xp, D, tol=1.0), sf.sparse_encode(X, D, tol=1.0), dtype)


@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
@pytest.mark.parametrize("tol", [None, 1.0])
def test_empty_X(dtype, output, tol, backend):
    B = backend.asarray
    D = B(gaussian_dictionary(30, 10, np.random.default_rng(0), dtype))
    X = B(np.empty((0, 10), dtype))
    if output == "scipy" and backend.is_device:   # host memory only
        with raises_naming(ValueError, "output"):
            sf.sparse_encode(X, D, tol=tol, output=output)
        return
    codes = sf.sparse_encode(X, D, tol=tol, output=output)
    assert codes.shape == (0, 30)
    if output != "scipy":
        codes = backend.result(codes)
    if output == "dense":
        assert isinstance(codes, np.ndarray) and codes.dtype == dtype
    elif output == "compact":
        assert codes.counts.shape == (0,) and codes.status.shape == (0,)
        assert codes.to_dense().shape == (0, 30)
    else:
        assert codes.nnz == 0


@pytest.mark.parametrize("output", ["dense", "compact"])
def test_all_zero_signals(dtype, output, backend):
    """Zero signals: zero codes, RESIDUAL_ORTHOGONAL (fixed sparsity) or OK (within tol at
    the start), and no warning."""
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(8)
    D_host = gaussian_dictionary(30, 10, rng, dtype)
    X_host = rng.standard_normal((6, 10)).astype(dtype)
    X_host[[0, 3, 4]] = 0
    X, D = B(X_host), B(D_host)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed = H(sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact"))
        with_tol = H(sf.sparse_encode(X, D, tol=0.0, output="compact"))
        dense = H(sf.sparse_encode(X, D, n_nonzero_coefs=3))
    zero = [0, 3, 4]
    np.testing.assert_array_equal(fixed.counts[zero], 0)
    np.testing.assert_array_equal(fixed.status[zero], sf.OMPStatus.RESIDUAL_ORTHOGONAL)
    np.testing.assert_array_equal(fixed.indices[zero], -1)
    np.testing.assert_array_equal(dense[zero], 0)
    np.testing.assert_array_equal(fixed.counts[[1, 2, 5]], 3)
    np.testing.assert_array_equal(fixed.status[[1, 2, 5]], sf.OMPStatus.OK)
    np.testing.assert_array_equal(with_tol.counts[zero], 0)
    np.testing.assert_array_equal(with_tol.status[zero], sf.OMPStatus.OK)
    # All-zero batch.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = H(sf.sparse_encode(B(np.zeros((4, 10), dtype)), D, n_nonzero_coefs=2,
                               output="compact"))
    np.testing.assert_array_equal(z.status, sf.OMPStatus.RESIDUAL_ORTHOGONAL)
    np.testing.assert_array_equal(z.to_dense(), 0)


def test_zero_and_duplicate_atoms(dtype, backend):
    """A zero atom is never selected; of duplicated atoms at most one is. No crash, valid
    (least-squares) codes that match the reference."""
    rng = np.random.default_rng(9)
    base = gaussian_dictionary(40, 16, rng, np.float64)
    D = np.vstack([base, base[[3, 17, 25]], np.zeros((2, 16))])   # 45, 46, 47 duplicate
    D[10] = 0                                                         # zero atom inside
    X = rng.standard_normal((25, 16))
    X[:5] = 2 * base[3] + base[17] - base[25] + 0.1 * rng.standard_normal((5, 16))
    X, D = X.astype(dtype), D.astype(dtype)
    groups = [{3, 40}, {17, 41}, {25, 42}]
    zeros = {10, 43, 44}
    ref = reference.omp(X, D, n_nonzero_coefs=6)
    for kw in ({"n_nonzero_coefs": 6}, {"tol": 0.5}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no linear dependence actually stops a signal
            codes = backend.result(sf.sparse_encode(backend.asarray(X), backend.asarray(D),
                                                    output="compact", **kw))
        for sel in selection_order(codes):
            assert not zeros & set(sel)
            for g in groups:
                assert len(g & set(sel)) <= 1
        assert np.all(np.isfinite(codes.values))
        if "n_nonzero_coefs" in kw:
            np.testing.assert_array_equal(codes.counts, 6)
            # Ties between duplicates go to the lowest index, as in the reference.
            for i, sel in enumerate(selection_order(codes)):
                step = reference.first_divergence(ref.paths[i].support, sel)
                if step is not None:
                    assert reference.explained_by_roundoff(ref.paths[i], step, tie_rtol=1e-5)
        # Codes are the least-squares fit on their support.
        R = X.astype(np.float64) - codes.to_dense().astype(np.float64) @ D.astype(np.float64)
        for i, sel in enumerate(selection_order(codes)):
            bound = (1e-3 if dtype == np.float32 else 1e-9) * np.linalg.norm(X[i])
            assert np.abs(D[sel].astype(np.float64) @ R[i]).max() <= bound


def test_more_atoms_than_features_stops_orthogonal_without_warning(dtype, backend):
    """n_features = 4, n_nonzero_coefs = 6: after 4 atoms in general position the residual is
    zero, so the pursuit stops with RESIDUAL_ORTHOGONAL (exact codes, no warning)."""
    rng = np.random.default_rng(10)
    D = gaussian_dictionary(10, 4, rng, dtype)
    X = rng.standard_normal((7, 4)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = backend.result(sf.sparse_encode(backend.asarray(X), backend.asarray(D),
                                                n_nonzero_coefs=6, output="compact"))
    np.testing.assert_array_equal(codes.counts, 4)
    np.testing.assert_array_equal(codes.status, sf.OMPStatus.RESIDUAL_ORTHOGONAL)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(codes.reconstruct(D), X, rtol=0, atol=rtol * np.abs(X).max())


def _nearly_collinear(dtype):
    """Atom 1 is atom 0 turned by delta towards a direction e that the signal contains 100
    times more than atom 0: after one of them is chosen, the other still correlates with the
    residual, but its Cholesky pivot (~delta^2) is below eps: linear dependence."""
    rng = np.random.default_rng(12)
    delta = 1e-8 if dtype == np.float64 else 1e-4
    E = np.linalg.qr(rng.standard_normal((16, 16)))[0].T     # orthonormal rows
    d2 = E[0] + delta * E[1]
    D = np.vstack([E[0], d2 / np.linalg.norm(d2), E[2:6]]).astype(dtype)
    X = np.vstack([E[0] + 100 * E[1], E[3] + E[4], 2 * E[0] + 200 * E[1]]).astype(dtype)
    return X, D


@pytest.mark.parametrize("kw", [{"n_nonzero_coefs": 3}, {"tol": 1e-3}], ids=["fixed", "tol"])
def test_linear_dependence_stops_and_warns_once(dtype, kw, backend):
    B, H = backend.asarray, backend.result
    X, D = _nearly_collinear(dtype)
    with pytest.warns(RuntimeWarning, match="ended prematurely") as record:
        codes = H(sf.sparse_encode(B(X), B(D), output="compact", **kw))
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "2 of 3 signal(s)" in messages[0]
    np.testing.assert_array_equal(codes.status[[0, 2]], sf.OMPStatus.LINEAR_DEPENDENCE)
    assert codes.status[1] != sf.OMPStatus.LINEAR_DEPENDENCE
    np.testing.assert_array_equal(codes.counts[[0, 2]], 1)
    assert selection_order(codes)[0][0] in (0, 1)
    # The early stop still returns the least-squares coefficient of the chosen atom.
    a = int(codes.indices[0, 0])
    expected = float(D[a].astype(np.float64) @ X[0].astype(np.float64))
    np.testing.assert_allclose(codes.values[0, 0], expected, rtol=1e-5)
    # Other output forms and orthogonal_mp_gram warn the same way.
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        sf.sparse_encode(B(X), B(D), **kw)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        energy = np.einsum("ij,ij->i", X, X)
        sf.orthogonal_mp_gram(B(D @ D.T), B(D @ X.T), norms_squared=B(energy), **kw)


def test_linear_dependence_warning_points_at_caller(backend):
    """The RuntimeWarning should be attributed to the user's call (as scikit-learn's is), not
    to a line inside sparseforge."""
    X, D = _nearly_collinear(np.float64)
    B = backend.asarray
    with pytest.warns(RuntimeWarning, match="ended prematurely") as record:
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)
    assert record[0].filename == __file__
    with pytest.warns(RuntimeWarning, match="ended prematurely") as record:
        sf.orthogonal_mp_gram(B(D @ D.T), B(D @ X.T), n_nonzero_coefs=3)
    assert record[0].filename == __file__


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e25), (np.float64, 1e200)])
def test_large_finite_signals_are_coded(dtype, scale, backend):
    """Finite signals of large magnitude are coded like the unscaled ones (codes scale
    linearly). Squaring the top correlation in the kernel's "negligible correlation" test
    must not overflow into silently all-zero codes."""
    rng = np.random.default_rng(13)
    D = gaussian_dictionary(20, 8, rng, dtype)
    X = rng.standard_normal((3, 8)).astype(dtype)
    assert np.isfinite(X * dtype(scale)).all() and np.isfinite(D @ (X * dtype(scale)).T).all()
    B, H = backend.asarray, backend.result
    base = H(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3, output="compact"))
    big = H(sf.sparse_encode(B(X * dtype(scale)), B(D), n_nonzero_coefs=3, output="compact"))
    np.testing.assert_array_equal(big.status, sf.OMPStatus.OK)
    np.testing.assert_array_equal(big.indices, base.indices)
    np.testing.assert_allclose(big.values / scale, base.values, rtol=1e-4)


def test_orthogonal_mp_names_the_column_of_y():
    X = np.eye(6)
    y = np.ones((6, 3))
    y[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"`y` contains NaN .* the first at column 2"):
        sf.orthogonal_mp(X, y, n_nonzero_coefs=2)


def test_orthogonal_mp_does_not_keep_a_tall_design_matrix():
    """orthogonal_mp's "dictionary" is X itself: a tall X is not held in the module's Gram
    cache after the call (two copies of it were)."""
    from sparseforge.backends.cpu import omp as cpu_omp

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200_000, 16))  # 25.6 MB
    sf.orthogonal_mp(X, X[:, 0] + X[:, 3], n_nonzero_coefs=2)
    entry = cpu_omp._GRAM_CACHE
    assert entry is None or entry[0].nbytes + entry[2].nbytes < X.nbytes
