"""Patch extraction / aggregation against scikit-learn, a NumPy reference, and the adjoint
identity, on every backend (tests/backends.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.feature_extraction import image as skimage_patches

import sparseforge as sf
from sparseforge.patches import grid_positions


def reference_positions(length, patch, step):
    pos = list(range(0, length - patch + 1, step))
    if pos[-1] != length - patch:
        pos.append(length - patch)
    return pos


def reference_extract(image, ph, pw, step):
    rows = reference_positions(image.shape[0], ph, step)
    cols = reference_positions(image.shape[1], pw, step)
    return np.stack([image[y:y + ph, x:x + pw] for y in rows for x in cols])


def reference_aggregate(patches, shape, step, weights=None, normalise=True):
    ph, pw = patches.shape[1:3]
    rows = reference_positions(shape[0], ph, step)
    cols = reference_positions(shape[1], pw, step)
    out = np.zeros(shape)
    cover = np.zeros(shape[:2])
    w = np.ones(len(patches)) if weights is None else weights
    for p, (y, x) in enumerate((y, x) for y in rows for x in cols):
        out[y:y + ph, x:x + pw] += w[p] * patches[p]
        cover[y:y + ph, x:x + pw] += w[p]
    if not normalise:
        return out
    cover = cover.reshape(cover.shape + (1,) * (len(shape) - 2))
    return np.where(cover > 0, out / np.where(cover > 0, cover, 1), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,patch", [((40, 33), (8, 8)), ((17, 20, 3), (5, 4)),
                                         ((8, 8), (8, 8))])
def test_step_one_matches_scikit_learn(dtype, shape, patch, backend):
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(0)
    image = rng.standard_normal(shape).astype(dtype)
    ours = H(sf.extract_patches_2d(B(image), patch))
    theirs = skimage_patches.extract_patches_2d(image, patch)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == dtype
    np.testing.assert_allclose(H(sf.reconstruct_from_patches_2d(B(ours), shape)),
                               skimage_patches.reconstruct_from_patches_2d(theirs, shape),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_random_patches_match_scikit_learn(backend):
    image = np.random.default_rng(1).standard_normal((30, 26))
    for max_patches in (50, 0.1):
        np.testing.assert_array_equal(
            backend.result(sf.extract_patches_2d(backend.asarray(image), (6, 5),
                                                 max_patches=max_patches, random_state=7)),
            skimage_patches.extract_patches_2d(image, (6, 5), max_patches=max_patches,
                                               random_state=7))


@given(h=st.integers(1, 30), w=st.integers(1, 30), ph=st.integers(1, 9), pw=st.integers(1, 9),
       step=st.integers(1, 7), channels=st.sampled_from([0, 1, 3]), seed=st.integers(0, 999),
       weighted=st.booleans())
def test_steps_against_reference_and_round_trip(backend, h, w, ph, pw, step, channels, seed,
                                                weighted):
    B, H = backend.asarray, backend.result
    ph, pw = min(ph, h), min(pw, w)
    step = min(step, ph, pw)
    shape = (h, w) if channels == 0 else (h, w, channels)
    rng = np.random.default_rng(seed)
    image = rng.standard_normal(shape)
    patches = H(sf.extract_patches_2d(B(image), (ph, pw), step=step))
    want = reference_extract(image, ph, pw, step)
    if channels == 1:  # an (H, W, 1) image gives (n, ph, pw) patches, as in scikit-learn
        want = want[..., 0]
    np.testing.assert_array_equal(patches, want)
    weights = rng.random(len(patches)) + 0.1 if weighted else None
    # Extract then reconstruct is the identity (every pixel is covered).
    np.testing.assert_allclose(H(sf.reconstruct_from_patches_2d(B(patches), shape, step=step,
                                                                weights=B(weights))),
                               image, atol=1e-12)
    # Aggregating arbitrary patches matches the reference.
    other = rng.standard_normal(patches.shape)
    np.testing.assert_allclose(
        H(sf.reconstruct_from_patches_2d(B(other), shape, step=step, weights=B(weights))),
        reference_aggregate(other[..., None] if channels == 1 else other, shape, step,
                            weights), atol=1e-12)


@given(h=st.integers(2, 25), w=st.integers(2, 25), step=st.integers(1, 5),
       seed=st.integers(0, 999))
def test_adjoint_identity(h, w, step, seed):
    """<extract(x), y> = <x, aggregate_unnormalised(y)>: extraction and unnormalised
    aggregation are adjoint, through the native unnormalised path."""
    rng = np.random.default_rng(seed)
    ph, pw = min(4, h), min(3, w)
    step = min(step, ph, pw)
    x = rng.standard_normal((h, w))
    y = rng.standard_normal(sf.extract_patches_2d(x, (ph, pw), step=step).shape)
    lhs = np.vdot(sf.extract_patches_2d(x, (ph, pw), step=step), y)
    # Both bodies: the CPU's and the CUDA per-element one.
    for per_element in (False, True):
        out = np.empty((h, w, 1))
        sf._core.aggregate_patches({"H": h, "W": w, "C": 1, "ph": ph, "pw": pw, "step": step,
                                    "patches": np.ascontiguousarray(y[..., None]),
                                    "normalise": False, "out": out, "n_threads": 1,
                                    "per_element": per_element})
        rhs = np.vdot(x, out[..., 0])
        np.testing.assert_allclose(lhs, rhs, rtol=1e-10)
        np.testing.assert_allclose(out[..., 0], reference_aggregate(y, (h, w), step,
                                                                    normalise=False),
                                   atol=1e-12)


def test_zero_weights_give_zero_pixels(backend):
    B, H = backend.asarray, backend.result
    image = np.ones((10, 10))
    patches = sf.extract_patches_2d(B(image), (5, 5), step=5)
    weights = B(np.array([0.0, 1.0, 1.0, 1.0]))
    out = H(sf.reconstruct_from_patches_2d(patches, image.shape, step=5, weights=weights))
    assert np.all(out[:5, :5] == 0) and np.all(out[5:, :] == 1)


@pytest.mark.parametrize("dtype,shifts", [(np.float64, (1022, 1000, 600, -1000, -1060)),
                                          (np.float32, (125, 120, 70, -120, -140))])
def test_extreme_weights_give_the_same_image(backend, dtype, shifts):
    # Weights near the float maximum overflowed the per-pixel weight sums (the image came out
    # 0 or NaN); near the smallest float, the products underflowed. Scaling every weight by
    # a power of two leaves the weighted mean exactly as it was.
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(5)
    image = rng.random((11, 9, 2)).astype(dtype)
    patches = sf.extract_patches_2d(B(image), (4, 3), step=2)
    weights = rng.random(patches.shape[0]).astype(dtype) + dtype(0.25)
    expected = H(sf.reconstruct_from_patches_2d(patches, image.shape, step=2,
                                                weights=B(weights)))
    for shift in shifts:
        scaled = np.ldexp(weights, shift).astype(dtype)
        assert np.isfinite(scaled).all() and (scaled > 0).all()
        out = H(sf.reconstruct_from_patches_2d(patches, image.shape, step=2,
                                               weights=B(scaled)))
        if (scaled >= np.finfo(dtype).tiny).all():  # normal numbers: every bit kept
            np.testing.assert_array_equal(out, expected)
        else:  # subnormal weights carry fewer bits: the mean to their precision
            np.testing.assert_allclose(out, expected, rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_spanning_a_wide_range(backend, dtype):
    # A large weight far from overflow must not be brought down to 1 (which pushed the small
    # weights to subnormal numbers or 0): each pixel is its patches' weighted mean, to the
    # precision of the dtype, against a float64 reference from exact ratios.
    B, H = backend.asarray, backend.result
    image = np.random.default_rng(2).random((16, 8)).astype(dtype)
    patches = sf.extract_patches_2d(B(image), (4, 4), step=4)
    big = 70 if dtype == np.float32 else 600
    exps = np.full(patches.shape[0], -60.0)
    exps[0], exps[-1] = big, -85
    weights = np.ldexp(np.full(patches.shape[0], 0.75), exps.astype(int)).astype(dtype)
    out = H(sf.reconstruct_from_patches_2d(patches, image.shape, step=4, weights=B(weights)))
    np.testing.assert_allclose(out, image, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_patches_near_the_float_maximum(backend, dtype, weighted):
    # Patch values near the float maximum overflowed a pixel's sum (up to 16 patches here):
    # the pixel came out inf although every patch and the mean are finite. Each pixel is
    # the mean of copies of itself, so the image comes back, to the dtype's round-off.
    B, H = backend.asarray, backend.result
    top = np.finfo(dtype).max
    image = (top * (0.5 + 0.5 * np.random.default_rng(4).random((9, 10)))).astype(dtype)
    image[0, 0] = -image[0, 0]  # negative extremes too
    image[1, 1] = 1.0  # an ordinary value beside them keeps its bits
    patches = sf.extract_patches_2d(B(image), (4, 4))
    for scale in ((1.0, 4.0, 1e10) if weighted else (None,)):
        weights = None if scale is None else B(
            (scale * (np.random.default_rng(1).random(patches.shape[0]) + 0.5)).astype(dtype))
        out = H(sf.reconstruct_from_patches_2d(patches, image.shape, weights=weights))
        assert np.isfinite(out).all(), scale
        np.testing.assert_allclose(out, image, rtol=4 * np.finfo(dtype).eps)
        assert out[1, 1] == 1.0
    # Pixels that did not overflow keep the first pass's value, bit for bit.
    tiny = image.copy()
    tiny[:, :4] = np.finfo(dtype).smallest_subnormal * 3
    patches = sf.extract_patches_2d(B(tiny), (4, 4))
    out = H(sf.reconstruct_from_patches_2d(patches, tiny.shape))
    assert (out[:, 0] == tiny[:, 0]).all() and np.isfinite(out).all()


def test_grid_positions_cover_every_pixel():
    assert list(grid_positions(10, 4, 4)) == [0, 4, 6]
    assert list(grid_positions(8, 8, 3)) == [0]


# Each call gets the host image and the backend's `asarray` (B): host-side preparation, then
# the arrays move to the backend.
@pytest.mark.parametrize("call,name,exc", [
    (lambda B, im: sf.extract_patches_2d(B(im), (50, 4)), "patch_size", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im), (4, 4), step=0), "step", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im), (4, 4), step=-2), "step", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im[0]), (4, 4)), "image", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im[None, None]), (4, 4)), "image", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im), (4, 4), step=5), "step", ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im.astype(np.uint8)), (4, 4)), "image", TypeError),
    (lambda B, im: sf.extract_patches_2d(B(np.where(im > 1, np.nan, im)), (4, 4)), "image",
     ValueError),
    (lambda B, im: sf.extract_patches_2d(B(im), (4, 4), max_patches=-1), "max_patches",
     ValueError),
    (lambda B, im: sf.reconstruct_from_patches_2d(B(sf.extract_patches_2d(im, (4, 4))[1:]),
                                                  im.shape), "patches", ValueError),
    (lambda B, im: sf.reconstruct_from_patches_2d(B(sf.extract_patches_2d(im, (4, 4))),
                                                  im.shape, weights=B(-np.ones(27 * 17))),
     "weights", ValueError),
], ids=["patch_size", "step0", "step-2", "image1d", "image4d", "step>patch", "uint8", "nan",
        "max_patches", "patches", "weights"])
def test_bad_input_names_the_argument(call, name, exc, backend):
    image = np.random.default_rng(2).standard_normal((30, 20))
    with pytest.raises(exc, match=f"`{name}`"):
        call(backend.asarray, image)


@pytest.mark.parametrize("channels", [None, 2])
def test_device_patches_match_host(backend, channels, dtype):
    """From the former emulated-dispatch tests: steps, random draws and weights."""
    B, H = backend.asarray, backend.result
    shape = (13, 11) + ((channels,) if channels else ())
    image = np.random.default_rng(104).random(shape).astype(dtype)
    for kw in ({"step": 1}, {"step": 3}, {"max_patches": 20, "random_state": 5}):
        want = sf.extract_patches_2d(image, (4, 3), **kw)
        got = H(sf.extract_patches_2d(B(image), (4, 3), **kw))
        np.testing.assert_array_equal(got, want)
    patches = sf.extract_patches_2d(image, (4, 3), step=3) * 1.5
    w = np.random.default_rng(105).random(patches.shape[0]).astype(dtype)
    back = H(sf.reconstruct_from_patches_2d(B(patches), shape, step=3, weights=B(w)))
    np.testing.assert_array_equal(back, sf.reconstruct_from_patches_2d(patches, shape, step=3,
                                                                       weights=w))
    # A non-contiguous image and patches (a view with steps) give the same result.
    wide = np.random.default_rng(106).random((26,) + shape[1:]).astype(dtype)
    np.testing.assert_array_equal(H(sf.extract_patches_2d(B(wide)[::2], (4, 3), step=2)),
                                  sf.extract_patches_2d(np.ascontiguousarray(wide[::2]),
                                                        (4, 3), step=2))


def test_patch_size_and_max_patches_types():
    """Like the other integer arguments: 3.7 is not silently 3, True is not 1."""
    image = np.zeros((10, 10))
    for size in ((3.7, 3), ("3", 3), (True, 3)):
        with pytest.raises(TypeError, match="`patch_size` must be a pair of integers"):
            sf.extract_patches_2d(image, size)
    with pytest.raises(TypeError, match="`max_patches` must be an int or a float"):
        sf.extract_patches_2d(image, (3, 3), max_patches=True)
    assert sf.extract_patches_2d(image, (np.int64(3), 3)).shape == (64, 3, 3)
