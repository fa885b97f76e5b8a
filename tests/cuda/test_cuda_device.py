"""On a GPU: the CUDA paths agree with the CPU (supports, coefficients, patches, K-SVD) for
torch and CuPy inputs, keep outputs on the input's device and framework, and run on the
caller's stream. Skipped (by decorator) without a CUDA build, a visible GPU and a CUDA torch."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf
from datasets import camera_patches, gaussian_dictionary


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _cupy_cuda() -> bool:
    try:
        import cupy
    except ImportError:
        return False
    return cupy.cuda.runtime.getDeviceCount() > 0


GPU = sf.cuda_available() and _torch_cuda()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not GPU, reason="needs a CUDA build, a GPU and CUDA torch")]


def _dev(a):
    import torch

    return torch.as_tensor(a, device="cuda")


def _host(t):
    return t.cpu().numpy() if hasattr(t, "cpu") else t.get()


def _problem(dtype, n=64, K=256, N=500, seed=0):
    rng = np.random.default_rng(seed)
    D = gaussian_dictionary(K, n, rng, dtype)
    X = rng.standard_normal((N, n)).astype(dtype)
    return X, D


def _assert_codes_close(got, want, dtype, min_same=0.98):
    same = np.all((got != 0) == (want != 0), axis=1)
    assert same.mean() >= min_same          # near-ties may resolve differently (FMA, cuBLAS)
    atol = (2e-4 if dtype == np.float32 else 1e-9) * max(1.0, np.abs(want).max())
    np.testing.assert_allclose(got[same], want[same], rtol=0, atol=atol)


@pytest.mark.parametrize("mode", [{"n_nonzero_coefs": 8}, {"tol": 20.0}], ids=["fixed", "tol"])
def test_sparse_encode_matches_cpu(mode, dtype):
    X, D = _problem(dtype)
    want = sf.sparse_encode(X, D, **mode)
    got = sf.sparse_encode(_dev(X), _dev(D), **mode)
    assert got.is_cuda and got.dtype == _dev(X).dtype and tuple(got.shape) == want.shape
    _assert_codes_close(_host(got), want, dtype)
    compact = sf.sparse_encode(_dev(X), _dev(D), output="compact", **mode)
    assert compact.indices.is_cuda and compact.status.is_cuda
    np.testing.assert_array_equal(_host(compact.counts), np.count_nonzero(_host(got), axis=1))


def test_masked_matches_cpu(dtype):
    X, D = _problem(dtype, n=32, K=96, N=300, seed=1)
    mask = np.random.default_rng(2).random(X.shape) > 0.4
    want = sf.sparse_encode(X, D, mask=mask, n_nonzero_coefs=5)
    got = sf.sparse_encode(_dev(X), _dev(D), mask=_dev(mask), n_nonzero_coefs=5)
    _assert_codes_close(_host(got), want, dtype)


def test_orthogonal_mp_gram_matches_cpu(dtype):
    X, D = _problem(dtype, N=40, seed=3)
    G, Xy = D @ D.T, D @ X.T
    norms = np.einsum("ij,ij->i", X, X)
    for kw in ({"n_nonzero_coefs": 6}, {"tol": 10.0, "norms_squared": norms}):
        dev_kw = {k: (_dev(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        want = sf.orthogonal_mp_gram(G, Xy, **kw)
        got = sf.orthogonal_mp_gram(_dev(G), _dev(Xy), **dev_kw)
        _assert_codes_close(_host(got).T, want.T, dtype)
    one = sf.orthogonal_mp_gram(_dev(G), _dev(Xy[:, 0]), n_nonzero_coefs=6)
    _assert_codes_close(_host(one)[None], sf.orthogonal_mp_gram(G, Xy[:, 0],
                                                                 n_nonzero_coefs=6)[None], dtype)


@pytest.mark.parametrize("step", [1, 3])
def test_patches_match_cpu(step, dtype):
    image = np.random.default_rng(4).random((40, 37, 3)).astype(dtype)
    want = sf.extract_patches_2d(image, (8, 8), step=step)
    got = sf.extract_patches_2d(_dev(image), (8, 8), step=step)
    np.testing.assert_array_equal(_host(got), want)
    weights = np.random.default_rng(5).random(want.shape[0]).astype(dtype)
    back = sf.reconstruct_from_patches_2d(got * 2, image.shape, step=step, weights=_dev(weights))
    np.testing.assert_allclose(_host(back), sf.reconstruct_from_patches_2d(
        want * 2, image.shape, step=step, weights=weights), rtol=1e-5)
    gray = sf.extract_patches_2d(_dev(image[..., 0]), (5, 6), max_patches=50, random_state=0)
    np.testing.assert_array_equal(_host(gray), sf.extract_patches_2d(
        image[..., 0], (5, 6), max_patches=50, random_state=0))


@pytest.mark.parametrize("method", ["approximate", "exact"])
def test_ksvd_matches_cpu(method):
    X = camera_patches(3000)
    _, _, err_cpu = sf.ksvd(X, 128, n_nonzero_coefs=4, n_iter=2, method=method)
    D_gpu, codes, err_gpu = sf.ksvd(_dev(X), 128, n_nonzero_coefs=4, n_iter=2, method=method)
    assert D_gpu.is_cuda and codes.values.is_cuda and codes.indices.shape == (3000, 4)
    # The same sequential algorithm; cuBLAS products and FMAs may flip a near-tie in OMP.
    np.testing.assert_allclose(err_gpu, err_cpu, rtol=1e-3)
    np.testing.assert_allclose(_host((D_gpu * D_gpu).sum(1)), 1.0, rtol=1e-9)


def test_grad_stream_and_errors():
    import torch

    X, D = _problem(np.float32, N=100)
    Xg = _dev(X).requires_grad_(True)              # torch refuses CAI for these; we use data_ptr
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = sf.sparse_encode(Xg, _dev(D), n_nonzero_coefs=4)
    stream.synchronize()
    _assert_codes_close(_host(got), sf.sparse_encode(X, D, n_nonzero_coefs=4), np.float32)
    bad = X.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN or infinity .* first at row 7"):
        sf.sparse_encode(_dev(bad), _dev(D), n_nonzero_coefs=4)
    with pytest.raises(ValueError, match="`X` is a CUDA array but `dictionary` is a numpy"):
        sf.sparse_encode(_dev(X), D)


@pytest.mark.skipif(not _cupy_cuda(), reason="needs CuPy with a GPU")
def test_cupy_inputs_match_cpu(dtype):
    import cupy

    X, D = _problem(dtype, N=200)
    got = sf.sparse_encode(cupy.asarray(X), cupy.asarray(D), n_nonzero_coefs=8)
    assert isinstance(got, cupy.ndarray)
    _assert_codes_close(got.get(), sf.sparse_encode(X, D, n_nonzero_coefs=8), dtype)
    image = np.random.default_rng(6).random((30, 30)).astype(dtype)
    patches = sf.extract_patches_2d(cupy.asarray(image), (6, 6))
    np.testing.assert_array_equal(patches.get(), sf.extract_patches_2d(image, (6, 6)))
