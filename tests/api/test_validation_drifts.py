"""The checks that used to differ between the CPU and CUDA paths, now one validation for all
backends: a Gram matrix with a negative diagonal is rejected, `chunk_size` and `n_jobs` are
checked for device arrays too; and `n_jobs` itself (capped, never a crash)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import sparseforge as sf
from datasets import gaussian_dictionary


def raises_naming(exc, name):
    return pytest.raises(exc, match=re.escape(f"`{name}`"))


@pytest.fixture(scope="module")
def XD():
    rng = np.random.default_rng(61)
    D = gaussian_dictionary(24, 10, rng)
    X = rng.standard_normal((7, 10))
    return X, D


def negative_diagonal(G):
    """Symmetric and finite, but no Gram matrix: one diagonal entry negative."""
    G = G.copy()
    G[2, 2] = -G[2, 2]
    return G


def test_gram_with_negative_diagonal_is_rejected(XD, backend):
    X, D = XD
    B = backend.asarray
    G = negative_diagonal(D @ D.T)
    np.testing.assert_array_equal(G, G.T)
    with raises_naming(ValueError, "gram") as info:
        sf.sparse_encode(B(X), B(D), gram=B(G), n_nonzero_coefs=3)
    assert "diagonal" in str(info.value)
    with raises_naming(ValueError, "gram"):
        sf.sparse_encode(B(X), B(D), gram=B(G), tol=0.5)
    with raises_naming(ValueError, "Gram") as info:
        sf.orthogonal_mp_gram(B(G), B(D @ X.T), n_nonzero_coefs=3)
    assert "diagonal" in str(info.value)
    with raises_naming(ValueError, "Gram"):
        sf.orthogonal_mp_gram(B(G), B(D @ X.T), tol=0.5,
                              norms_squared=B(np.einsum("ij,ij->i", X, X)))


@pytest.mark.parametrize("chunk_size,exc", [(0, ValueError), (-3, ValueError),
                                            (2.5, TypeError), (True, TypeError)])
def test_chunk_size_checked_on_every_path(XD, backend, chunk_size, exc):
    X, D = XD
    B = backend.asarray
    mask = np.ones(X.shape, bool)
    calls = {
        "plain": lambda: sf.sparse_encode(B(X), B(D), chunk_size=chunk_size),
        "tol": lambda: sf.sparse_encode(B(X), B(D), tol=0.5, chunk_size=chunk_size),
        "cov": lambda: sf.sparse_encode(B(X), B(D), cov=B(D @ X.T), chunk_size=chunk_size),
        "masked": lambda: sf.sparse_encode(B(X), B(D), mask=B(mask), chunk_size=chunk_size),
        "empty": lambda: sf.sparse_encode(B(X[:0]), B(D), chunk_size=chunk_size),
    }
    for label, call in calls.items():
        with raises_naming(exc, "chunk_size"):
            call()


BAD_N_JOBS = [0, 1.5, True, "2", -0.5]


def _every_function(B, X, D, n_jobs):
    """Every public function that takes `n_jobs`, called with it."""
    image = np.random.default_rng(62).random((12, 9))
    patches = sf.extract_patches_2d(image, (4, 3))
    return {
        "sparse_encode": lambda: sf.sparse_encode(B(X), B(D), n_jobs=n_jobs),
        "sparse_encode masked": lambda: sf.sparse_encode(B(X), B(D), n_jobs=n_jobs,
                                                         mask=B(np.ones(X.shape, bool))),
        "orthogonal_mp_gram": lambda: sf.orthogonal_mp_gram(B(D @ D.T), B(D @ X.T),
                                                            n_jobs=n_jobs),
        "extract_patches_2d": lambda: sf.extract_patches_2d(B(image), (4, 3), n_jobs=n_jobs),
        "reconstruct_from_patches_2d": lambda: sf.reconstruct_from_patches_2d(
            B(patches), image.shape, n_jobs=n_jobs),
        "ksvd": lambda: sf.ksvd(B(X), 4, n_nonzero_coefs=2, n_iter=1, dict_init="data",
                                random_state=0, n_jobs=n_jobs),
    }


@pytest.mark.parametrize("n_jobs", BAD_N_JOBS, ids=repr)
def test_bad_n_jobs_named_everywhere(XD, backend, n_jobs):
    X, D = XD
    for label, call in _every_function(backend.asarray, X, D, n_jobs).items():
        with raises_naming(ValueError, "n_jobs"):
            call()


@pytest.mark.parametrize("n_jobs", [10 ** 6, 2 ** 31 + 5, -(10 ** 6)], ids=repr)
def test_huge_n_jobs_is_capped(XD, backend, n_jobs):
    """A huge thread count is capped at the CPU count (as joblib does): the same results as
    one thread, no crash, no exit (a huge negative count still means at least one thread)."""
    X, D = XD
    B = backend.asarray
    got = {label: call() for label, call in _every_function(B, X, D, n_jobs).items()}
    want = {label: call() for label, call in _every_function(B, X, D, 1).items()}
    for label in got:
        a, b = got[label], want[label]
        if label == "ksvd":
            np.testing.assert_array_equal(backend.result(a[0]), backend.result(b[0]))
            np.testing.assert_array_equal(a[2], b[2])
        else:
            np.testing.assert_array_equal(backend.result(a), backend.result(b))


def test_huge_n_jobs_estimators(XD):
    X, D = XD
    np.testing.assert_array_equal(
        sf.SparseCoder(D, n_jobs=10 ** 6).fit().transform(X),
        sf.SparseCoder(D, n_jobs=1).fit().transform(X))
    with raises_naming(ValueError, "n_jobs"):
        sf.SparseCoder(D, n_jobs=0).fit().transform(X)
    model = sf.KSVD(4, n_nonzero_coefs=2, n_iter=1, dict_init="data", random_state=0,
                    n_jobs=10 ** 6).fit(X)
    np.testing.assert_array_equal(model.transform(X), sf.KSVD(
        4, n_nonzero_coefs=2, n_iter=1, dict_init="data", random_state=0).fit(X).transform(X))
