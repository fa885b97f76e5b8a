"""extract_patches_2d and reconstruct_from_patches_2d on dask arrays: lazy, equal to the
in-memory results bit for bit (blocks of patches from the bounding boxes of their positions;
image tiles from the grid rows that cover them, a halo of patch_size - 1 rows), errors at
compute time, CuPy blocks through the emulated CUDA backend."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

SMALL_BLOCKS = {"array.chunk-size": "16KiB"}  # many blocks even for small test images


def _explode(block):
    raise RuntimeError("a block of the image was computed")


@pytest.fixture(params=[(45, 38), (33, 29, 3)], ids=["gray", "rgb"])
def image(request):
    return np.random.default_rng(7).random(request.param)


@pytest.mark.parametrize("step", [1, 3])
def test_extract_equal_to_in_memory(image, step):
    lazy_image = da.from_array(image, chunks=(10, 16) + image.shape[2:])
    with dask.config.set(SMALL_BLOCKS):
        lazy = sf.extract_patches_2d(lazy_image, (6, 5), step=step)
    assert isinstance(lazy, da.Array) and lazy.numblocks[0] > 1
    memory = sf.extract_patches_2d(image, (6, 5), step=step)
    assert lazy.shape == memory.shape and lazy.dtype == memory.dtype
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), memory)


def test_extract_random_patches(image):
    lazy = sf.extract_patches_2d(da.from_array(image, chunks=12), (4, 4), max_patches=25,
                                 random_state=3)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), sf.extract_patches_2d(
        image, (4, 4), max_patches=25, random_state=3))


@pytest.mark.parametrize("step", [1, 2, 4])
@pytest.mark.parametrize("weights", [None, "numpy", "dask"])
def test_reconstruct_equal_to_in_memory(image, step, weights):
    patches = sf.extract_patches_2d(image, (6, 5), step=step)
    w = None if weights is None else np.random.default_rng(1).random(patches.shape[0])
    memory = sf.reconstruct_from_patches_2d(patches, image.shape, step=step, weights=w)
    lazy_w = da.from_array(w, chunks=50) if weights == "dask" else w
    with dask.config.set(SMALL_BLOCKS):
        lazy = sf.reconstruct_from_patches_2d(da.from_array(patches, chunks=(70, 6, 5) +
                                                            image.shape[2:]),
                                              image.shape, step=step, weights=lazy_w)
    assert isinstance(lazy, da.Array) and lazy.numblocks[0] > 1
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), memory)


def test_patch_functions_are_lazy(image):
    lazy_image = da.from_array(image, chunks=20).map_blocks(_explode, dtype=image.dtype)
    patches = sf.extract_patches_2d(lazy_image, (4, 4), step=2)
    rebuilt = sf.reconstruct_from_patches_2d(patches, image.shape, step=2)
    with pytest.raises(RuntimeError, match="a block of the image was computed"):
        rebuilt.compute(scheduler="synchronous")


def test_denoise_pipeline_equals_in_memory(image):
    """Patches -> codes -> patches -> image, all lazy, equal to the in-memory pipeline."""
    gray = image if image.ndim == 2 else image[..., 0]
    D = sf.overcomplete_dct(4, 6)
    memory_p = sf.extract_patches_2d(gray, (4, 4), step=2)
    flat = memory_p.reshape(len(memory_p), -1)
    codes = sf.sparse_encode(flat, D, n_nonzero_coefs=3)
    memory = sf.reconstruct_from_patches_2d((codes @ D).reshape(memory_p.shape), gray.shape,
                                            step=2)
    with dask.config.set(SMALL_BLOCKS):
        p = sf.extract_patches_2d(da.from_array(gray, chunks=15), (4, 4), step=2)
        c = sf.sparse_encode(p.reshape(p.shape[0], -1), D, n_nonzero_coefs=3)
        lazy = sf.reconstruct_from_patches_2d((c @ D).reshape(p.shape), gray.shape, step=2)
    np.testing.assert_allclose(lazy.compute(scheduler="threads"), memory, rtol=1e-12,
                               atol=1e-12)


def test_non_finite_pixels_raise_at_compute(image):
    bad = image.copy()
    bad[20, 7] = np.nan
    lazy = sf.extract_patches_2d(da.from_array(bad, chunks=10), (4, 4))
    with pytest.raises(ValueError, match=r"`image` contains NaN or infinity \(rows"):
        lazy.compute(scheduler="synchronous")
    patches = sf.extract_patches_2d(image, (4, 4), step=2)
    patches[3, 1, 1] = np.inf
    lazy = sf.reconstruct_from_patches_2d(da.from_array(patches, chunks=40), image.shape,
                                          step=2)
    with pytest.raises(ValueError, match=r"`patches` contains NaN or infinity"):
        lazy.compute(scheduler="synchronous")


def test_reconstruct_checks_shapes_at_call_time(image):
    patches = da.zeros((10, 4, 4), chunks=5)
    with pytest.raises(ValueError, match=r"`patches` has 10 patches"):
        sf.reconstruct_from_patches_2d(patches, image.shape[:2])


@pytest.mark.emulated_cuda
def test_cupy_blocks(image, monkeypatch):
    import emulated_cuda

    cuda = emulated_cuda.activate(monkeypatch)
    lazy_image = da.from_array(emulated_cuda.to_device(image), chunks=16, asarray=False)
    with dask.config.set(SMALL_BLOCKS):
        patches = sf.extract_patches_2d(lazy_image, (5, 5), step=2)
        rebuilt = sf.reconstruct_from_patches_2d(patches, image.shape, step=2)
    got_p, got = dask.compute(patches, rebuilt, scheduler="synchronous")
    assert isinstance(got, emulated_cuda.HostCupy)
    memory_p = sf.extract_patches_2d(image, (5, 5), step=2)
    np.testing.assert_array_equal(got_p.get(), memory_p)
    np.testing.assert_allclose(got.get(), sf.reconstruct_from_patches_2d(
        memory_p, image.shape, step=2), rtol=0, atol=1e-13)
    assert cuda.launches("extract_patches") and cuda.launches("aggregate_patches")


def test_grid_corners_stay_out_of_the_graph():
    # 16 million patches: their corners as a list would be 256 MB on the client and in the
    # graph; described as a grid, each block task carries a few integers (the whole graph,
    # ~60 blocks and the image's own tasks, pickles to ~0.2 MB).
    cloudpickle = pytest.importorskip("cloudpickle")
    image = da.zeros((4000, 4000), chunks=1000)
    lazy = sf.extract_patches_2d(image, (8, 8))
    assert lazy.shape[0] == 3993 ** 2 and lazy.numblocks[0] > 10
    assert len(cloudpickle.dumps(dict(lazy.__dask_graph__()))) < 2_000_000
    np.testing.assert_array_equal(lazy[-3:].compute(scheduler="threads"), np.zeros((3, 8, 8)))
    patches = da.zeros(lazy.shape, chunks=(200_000, 8, 8))
    image = sf.reconstruct_from_patches_2d(patches, (4000, 4000))
    assert len(cloudpickle.dumps(dict(image.__dask_graph__()))) < 2_000_000


def test_extreme_weights_equal_to_in_memory():
    # Weights far from overflow are not rescaled anywhere, and tiny ones are rescaled
    # exactly, so the tiles (each deciding on its own weights) equal the whole image.
    image = np.random.default_rng(3).random((64, 8))
    patches = sf.extract_patches_2d(image, (4, 4), step=2)
    for low, high in [(-85, 70), (-1060, -1000), (-30, 1000)]:
        weights = np.ldexp(np.full(patches.shape[0], 0.75), low)
        weights[0] = np.ldexp(0.75, high)
        memory = sf.reconstruct_from_patches_2d(patches, image.shape, step=2, weights=weights)
        with dask.config.set({"array.chunk-size": "2KiB"}):
            lazy = sf.reconstruct_from_patches_2d(da.from_array(patches, chunks=(20, 4, 4)),
                                                  image.shape, step=2, weights=weights)
        assert lazy.numblocks[0] > 4
        np.testing.assert_array_equal(lazy.compute(scheduler="threads"), memory)


def test_patches_near_the_float_maximum_equal_to_in_memory():
    # Sums near the float maximum overflow in some tiles only: each tile task rescales its
    # own patches by a power of two (exact), so the tiles still equal the whole image, and
    # no pixel is inf.
    top = np.finfo(np.float64).max
    image = np.random.default_rng(3).random((64, 8))
    image[40:] = top * (0.5 + 0.5 * image[40:])  # the lower tiles only
    patches = sf.extract_patches_2d(image, (4, 4))
    memory = sf.reconstruct_from_patches_2d(patches, image.shape)
    assert np.isfinite(memory).all()
    np.testing.assert_allclose(memory, image, rtol=1e-15)
    with dask.config.set({"array.chunk-size": "8KiB"}):
        lazy = sf.reconstruct_from_patches_2d(da.from_array(patches, chunks=(40, 4, 4)),
                                              image.shape)
    assert lazy.numblocks[0] > 2
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), memory)
