"""Host memory the kernels may not simply be handed: buffers not aligned to their dtype, and
non-contiguous inputs of masked OMP (copied a bounded chunk at a time, never whole)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import sparseforge as sf
from datasets import gaussian_dictionary


def misaligned(a: np.ndarray, offset: int = 1) -> np.ndarray:
    """A copy of `a` whose data pointer is `offset` bytes past an aligned address (what
    ``np.frombuffer(buf, dtype, offset=1)`` gives: legal numpy, UB for a C++ kernel)."""
    buf = bytearray(a.nbytes + offset + 64)
    start = (-np.frombuffer(buf, np.uint8).ctypes.data) % 64 + offset
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=start).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % a.dtype.itemsize == offset % a.dtype.itemsize
    assert not out.flags.aligned
    return out


def same_or_named_error(call, want, name, *, exact=True):
    """`call()` equals `want` (the aligned input's result), or raises naming `name` and the
    alignment; never reads misaligned memory (the suite runs under UBSan in CI)."""
    try:
        got = call()
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert f"`{name}`" in message and "align" in message, message
        return
    if isinstance(want, sf.SparseCodes):
        for field in ("indices", "values", "counts", "status"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    elif exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def problem(request):
    dtype = request.param
    rng = np.random.default_rng(71)
    D = gaussian_dictionary(40, 12, rng, dtype)
    X = rng.standard_normal((30, 12)).astype(dtype)
    return X, D


@pytest.mark.parametrize("offset", [1, 2, 3])
@pytest.mark.parametrize("kw", [{"n_nonzero_coefs": 3}, {"tol": 1.0}], ids=["fixed", "tol"])
def test_misaligned_sparse_encode(problem, offset, kw):
    X, D = problem
    want = sf.sparse_encode(X, D, output="compact", **kw)
    same_or_named_error(lambda: sf.sparse_encode(misaligned(X, offset), D, output="compact",
                                                 **kw), want, "X")
    same_or_named_error(lambda: sf.sparse_encode(X, misaligned(D, offset), output="compact",
                                                 **kw), want, "dictionary")
    # Strided views of a misaligned buffer (the copy path of non-contiguous rows).
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
    wide[:, ::2] = X
    same_or_named_error(lambda: sf.sparse_encode(misaligned(wide, offset)[:, ::2], D,
                                                 output="compact", **kw), want, "X")
    # Precomputed products.
    G, cov = D @ D.T, D @ X.T
    want_gc = sf.sparse_encode(X, D, gram=G, cov=cov, output="compact", **kw)
    same_or_named_error(lambda: sf.sparse_encode(X, D, gram=misaligned(G, offset), cov=cov,
                                                 output="compact", **kw), want_gc, "gram")
    same_or_named_error(lambda: sf.sparse_encode(X, D, gram=G, cov=misaligned(cov, offset),
                                                 output="compact", **kw), want_gc, "cov")
    # Masked: X misaligned (the mask is bytes: always aligned).
    mask = np.random.default_rng(72).random(X.shape) > 0.3
    want_m = sf.sparse_encode(X, D, mask=mask, output="compact", **kw)
    same_or_named_error(lambda: sf.sparse_encode(misaligned(X, offset), D, mask=mask,
                                                 output="compact", **kw), want_m, "X")


def test_misaligned_orthogonal_mp_gram(problem):
    X, D = problem
    G, Xy = D @ D.T, D @ X.T
    norms = np.einsum("ij,ij->i", X, X)
    want = sf.orthogonal_mp_gram(G, Xy, n_nonzero_coefs=3)
    same_or_named_error(lambda: sf.orthogonal_mp_gram(misaligned(G), Xy, n_nonzero_coefs=3),
                        want, "Gram")
    same_or_named_error(lambda: sf.orthogonal_mp_gram(G, misaligned(Xy), n_nonzero_coefs=3),
                        want, "Xy")
    want_tol = sf.orthogonal_mp_gram(G, Xy, tol=1.0, norms_squared=norms)
    same_or_named_error(lambda: sf.orthogonal_mp_gram(G, Xy, tol=1.0,
                                                      norms_squared=misaligned(norms)),
                        want_tol, "norms_squared")


@pytest.mark.parametrize("channels", [0, 3])
def test_misaligned_patches(channels):
    rng = np.random.default_rng(73)
    shape = (15, 13) if channels == 0 else (15, 13, channels)
    for dtype in (np.float32, np.float64):
        image = rng.standard_normal(shape).astype(dtype)
        want = sf.extract_patches_2d(image, (4, 5), step=2)
        same_or_named_error(lambda: sf.extract_patches_2d(misaligned(image), (4, 5), step=2),
                            want, "image")
        weights = rng.random(want.shape[0]).astype(dtype) + 0.5
        back = sf.reconstruct_from_patches_2d(want, shape, step=2, weights=weights)
        same_or_named_error(lambda: sf.reconstruct_from_patches_2d(misaligned(want), shape,
                                                                   step=2, weights=weights),
                            back, "patches")
        same_or_named_error(lambda: sf.reconstruct_from_patches_2d(
            want, shape, step=2, weights=misaligned(weights)), back, "weights")


def test_misaligned_ksvd():
    rng = np.random.default_rng(74)
    X = rng.standard_normal((60, 9))
    want = sf.ksvd(X, 12, n_nonzero_coefs=2, n_iter=2, dict_init="data", random_state=0)
    try:
        got = sf.ksvd(misaligned(X), 12, n_nonzero_coefs=2, n_iter=2, dict_init="data",
                      random_state=0)
    except (ValueError, TypeError) as exc:
        assert "`X`" in str(exc) and "align" in str(exc)
        return
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[2], want[2])


# --- masked OMP on non-contiguous inputs: bounded copies -------------------------------------

N_FEATURES = 64


def _peak_extra(call, *args) -> int:
    """Peak bytes allocated (numpy's allocations are traced) during ``call(*args)``, above
    what was allocated before it; the result is kept alive until the measurement ends."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - before


def _masked_inputs(n, layout, seed=75):
    rng = np.random.default_rng(seed)
    if layout == "strided":        # every other column of a wider array
        X = rng.standard_normal((n, 2 * N_FEATURES))[:, ::2]
        mask = (rng.random((n, 2 * N_FEATURES)) > 0.3)[:, ::2]
    else:                          # Fortran order
        X = np.asfortranarray(rng.standard_normal((n, N_FEATURES)))
        mask = np.asfortranarray(rng.random((n, N_FEATURES)) > 0.3)
    assert not X.flags.c_contiguous and not mask.flags.c_contiguous
    return X, mask


@pytest.mark.parametrize("layout", ["strided", "fortran"])
def test_masked_non_contiguous_copies_a_bounded_chunk(layout):
    """Peak extra memory of masked sparse_encode over non-contiguous X and mask grows far
    less with N than copies of them would (the output grows, 17 bytes per signal here)."""
    D = gaussian_dictionary(32, N_FEATURES, np.random.default_rng(76))
    small, large = 10_000, 40_000
    peaks = {}
    for n in (small, large):
        peaks[n] = _peak_extra(lambda X, mask: sf.sparse_encode(
            X, D, mask=mask, n_nonzero_coefs=1, output="compact", n_jobs=1),
            *_masked_inputs(n, layout))
    growth = peaks[large] - peaks[small]
    copy_growth = (large - small) * N_FEATURES * (8 + 1)   # X (float64) and mask (bool)
    output_growth = (large - small) * (4 + 8 + 4 + 1)      # index, value, count, status
    assert growth < output_growth + 0.15 * copy_growth, (
        f"peak extra memory grew by {growth / 2**20:.1f} MiB from {small} to {large} signals "
        f"(copying X and the mask would add {copy_growth / 2**20:.1f} MiB; the output "
        f"{output_growth / 2**20:.1f} MiB)")


@pytest.mark.parametrize("layout", ["strided", "fortran"])
def test_masked_non_contiguous_same_result(layout):
    D = gaussian_dictionary(32, N_FEATURES, np.random.default_rng(76))
    X, mask = _masked_inputs(3000, layout)
    for kw in ({"n_nonzero_coefs": 3}, {"tol": 5.0}):
        got = sf.sparse_encode(X, D, mask=mask, output="compact", **kw)
        want = sf.sparse_encode(np.ascontiguousarray(X), D, mask=np.ascontiguousarray(mask),
                                output="compact", **kw)
        for field in ("indices", "values", "counts", "status"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
        # Chunked explicitly too (chunks smaller than the default copy chunk).
        got = sf.sparse_encode(X, D, mask=mask, output="compact", chunk_size=257, **kw)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.values, want.values)
