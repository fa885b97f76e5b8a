"""denoise_ksvd and inpaint_ksvd on dask images: lazy, tiled with a halo of patch_size - 1
(restore/tiled.py), equal to the in-memory results bit for bit, for every dictionary
(the adaptive one learned once, from the same patches as in memory), any step and uneven
chunks; errors at call time; once on the LocalCluster of worker processes."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.restore import denoise_ksvd, inpaint_ksvd

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

SIGMA = 20.0


def _clean(shape=(96, 80)):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return 128 + 60 * np.sin(y / 7.0) * np.cos(x / 9.0) + 20 * ((x + y) % 17 > 8)


@pytest.fixture(scope="module", params=[np.float64, np.float32], ids=["f64", "f32"])
def noisy(request):
    rng = np.random.default_rng(3)
    return (_clean() + SIGMA * rng.standard_normal((96, 80))).astype(request.param)


def _sync(x):
    return x.compute(scheduler="synchronous")


@pytest.mark.parametrize("step", [1, 2, 3, 5])
@pytest.mark.parametrize("dictionary", ["universal", "dct", "array"])
def test_denoise_equal_to_in_memory(noisy, step, dictionary):
    if dictionary == "array":
        dictionary = np.random.default_rng(1).standard_normal((100, 64))
        dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    lazy = denoise_ksvd(da.from_array(noisy, chunks=40), SIGMA, step=step,
                        dictionary=dictionary)
    assert isinstance(lazy, da.Array) and lazy.chunks == ((40, 40, 16), (40, 40))
    assert lazy.dtype == noisy.dtype
    np.testing.assert_array_equal(_sync(lazy), denoise_ksvd(noisy, SIGMA, step=step,
                                                            dictionary=dictionary))


def test_denoise_uneven_and_small_chunks(noisy):
    """Chunks smaller than the halo are merged first; odd chunkings and a 6x6 patch."""
    memory = denoise_ksvd(noisy, SIGMA, patch_size=6, step=4, dictionary="dct")
    for chunks in [((30, 3, 50, 13), (7, 73)), ((96,), (80,)), (25, 33)]:
        lazy = denoise_ksvd(da.from_array(noisy, chunks=chunks), SIGMA, patch_size=6, step=4,
                            dictionary="dct")
        np.testing.assert_array_equal(_sync(lazy), memory)


@pytest.mark.parametrize("step", [1, 3])
def test_denoise_adaptive_equal_to_in_memory(noisy, step):
    """The adaptive dictionary is learned once from the same random patches as in memory
    (cut from the dask image), so the image is the same too."""
    kw = dict(step=step, dictionary="adaptive", n_iter=2, max_training_patches=1500,
              random_state=4)
    lazy = denoise_ksvd(da.from_array(noisy, chunks=(40, 30)), SIGMA, **kw)
    np.testing.assert_array_equal(_sync(lazy), denoise_ksvd(noisy, SIGMA, **kw))


def test_denoise_sigma_zero_and_errors(noisy):
    image = da.from_array(noisy, chunks=40)
    np.testing.assert_array_equal(_sync(denoise_ksvd(image, 0.0)), noisy)
    with pytest.raises(TypeError, match="dtype"):
        denoise_ksvd(image.astype(np.int32), SIGMA)
    with pytest.raises(ValueError, match="2 dimensions"):
        denoise_ksvd(image[None], SIGMA)
    with pytest.raises(ValueError, match="step"):
        denoise_ksvd(image, SIGMA, step=9)
    with pytest.raises(ValueError, match="universal"):
        denoise_ksvd(image, SIGMA, patch_size=6)
    with pytest.raises(ValueError, match="sigma|negative"):
        denoise_ksvd(image, -1.0)


def test_denoise_nan_raises_at_compute(noisy):
    bad = noisy.copy()
    bad[70, 5] = np.nan
    lazy = denoise_ksvd(da.from_array(bad, chunks=40), SIGMA)
    with pytest.raises(ValueError, match="NaN"):
        _sync(lazy)


@pytest.mark.parametrize("step", [1, 3])
@pytest.mark.parametrize("mask_kind", ["numpy", "dask"])
def test_inpaint_equal_to_in_memory(noisy, step, mask_kind):
    mask = np.random.default_rng(5).random(noisy.shape) >= 0.5
    observed = np.where(mask, noisy, 0).astype(noisy.dtype)
    lazy_mask = mask if mask_kind == "numpy" else da.from_array(mask, chunks=(20, 50))
    lazy = inpaint_ksvd(da.from_array(observed, chunks=(40, 30)), lazy_mask, step=step,
                        n_iter=3)
    assert isinstance(lazy, da.Array)
    memory = inpaint_ksvd(observed, mask, step=step, n_iter=3)
    np.testing.assert_array_equal(_sync(lazy), memory)


def test_inpaint_errors(noisy):
    image = da.from_array(noisy, chunks=40)
    with pytest.raises(TypeError, match="bool"):
        inpaint_ksvd(image, np.ones(noisy.shape))
    with pytest.raises(ValueError, match="shape"):
        inpaint_ksvd(image, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="adaptive"):
        inpaint_ksvd(image, np.ones(noisy.shape, bool), dictionary="adaptive")


def test_on_the_local_cluster(client):
    """Worker processes: denoise (universal, step 2) and inpaint (dask mask), one compute."""
    rng = np.random.default_rng(8)
    noisy = (_clean() + SIGMA * rng.standard_normal((96, 80))).astype(np.float32)
    mask = rng.random(noisy.shape) >= 0.4
    observed = np.where(mask, noisy, 0).astype(np.float32)
    den = denoise_ksvd(da.from_array(noisy, chunks=40), SIGMA, step=2)
    inp = inpaint_ksvd(da.from_array(observed, chunks=40), da.from_array(mask, chunks=40),
                       n_iter=2)
    got_den, got_inp = dask.compute(den, inp, scheduler=client)
    np.testing.assert_array_equal(got_den, denoise_ksvd(noisy, SIGMA, step=2))
    np.testing.assert_array_equal(got_inp, inpaint_ksvd(observed, mask, n_iter=2))


def test_in_memory_restorers_refuse_dask_arrays_instead_of_computing_them():
    """The restorers without a dask path say so (naming the argument) rather than compute the
    graph unasked; an in-memory image with a dask mask likewise."""
    import dask.array as da

    from sparseforge.restore import deblur, imresize, inpaint_ksvd, upscale, zeyde_upscale

    image = da.from_array(np.full((32, 32), 100.0), chunks=16)
    for call in (lambda: deblur(image, np.ones((3, 3)), 1.0, prior="ksvd"),
                 lambda: upscale(image, 2, method="bicubic"),
                 lambda: zeyde_upscale(image, 2), lambda: imresize(image, 2)):
        with pytest.raises(TypeError, match=r"`image` is a dask array; .* pass "
                                            r"`image.compute\(\)`"):
            call()
    mask = da.from_array(np.ones((32, 32), bool), chunks=16)
    with pytest.raises(TypeError, match="`mask` is a dask array"):
        inpaint_ksvd(np.full((32, 32), 100.0), mask)
