"""Classical K-SVD denoising and masked-OMP inpainting: PSNR floors on a small image, and
named errors."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

import sparseforge as sf
from sparseforge.restore import denoise_ksvd, inpaint_ksvd


@pytest.fixture(scope="module")
def crop():
    return sf.datasets.load_image("camera")[96:224, 160:288].astype(np.float64)


def psnr(clean, other):
    return peak_signal_noise_ratio(clean, other, data_range=255)


@pytest.mark.parametrize("dictionary,floor", [("universal", 27.0), ("dct", 26.5),
                                              ("adaptive", 27.0)])
def test_denoising_beats_a_psnr_floor(crop, dictionary, floor):
    rng = np.random.default_rng(0)
    noisy = crop + 25 * rng.standard_normal(crop.shape)
    out = denoise_ksvd(noisy, 25, dictionary=dictionary, n_iter=3)
    assert out.shape == crop.shape and out.dtype == crop.dtype
    assert psnr(crop, noisy) < 20.5
    assert psnr(crop, out) > floor


def test_denoising_float32_step_and_zero_sigma(crop):
    rng = np.random.default_rng(1)
    noisy = (crop + 15 * rng.standard_normal(crop.shape)).astype(np.float32)
    out = denoise_ksvd(noisy, 15, step=2)
    assert out.dtype == np.float32 and psnr(crop, out) > psnr(crop, noisy) + 5
    np.testing.assert_array_equal(denoise_ksvd(noisy, 0), noisy)


def test_inpainting_beats_a_psnr_floor_and_keeps_observed_pixels(crop):
    rng = np.random.default_rng(2)
    mask = rng.random(crop.shape) > 0.5
    damaged = np.where(mask, crop, 0.0)
    out = inpaint_ksvd(damaged, mask, step=2)
    np.testing.assert_array_equal(out[mask], crop[mask])
    assert psnr(crop, out) > 27.5 and psnr(crop, damaged) < 11


@pytest.mark.parametrize("missing", [0.5, 0.8])
def test_inpainting_rounds_beat_the_masked_pass(crop, missing):
    rng = np.random.default_rng(3)
    mask = rng.random(crop.shape) > missing
    damaged = np.where(mask, crop, 0.0)
    single = inpaint_ksvd(damaged, mask, n_iter=0)
    rounds = inpaint_ksvd(damaged, mask, n_iter=4)
    assert psnr(crop, rounds) > psnr(crop, single) + 0.1


def test_inpainting_a_mask_with_nothing_observed_returns_zeros(crop):
    out = inpaint_ksvd(crop, np.zeros(crop.shape, bool), n_iter=1)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("call,name,exc", [
    (lambda im: denoise_ksvd(im, -1.0), "sigma", ValueError),
    (lambda im: denoise_ksvd(im, float("nan")), "sigma", ValueError),
    (lambda im: denoise_ksvd(im[None], 10), "image", ValueError),
    (lambda im: denoise_ksvd(np.where(im > 200, np.inf, im), 10), "image", ValueError),
    (lambda im: denoise_ksvd(im, 10, patch_size=200), "patch_size", ValueError),
    (lambda im: denoise_ksvd(im, 10, step=0), "step", ValueError),
    (lambda im: denoise_ksvd(im, 10, dictionary="nope"), "dictionary", ValueError),
    (lambda im: denoise_ksvd(im, 10, dictionary=np.ones((10, 7))), "dictionary", ValueError),
    (lambda im: inpaint_ksvd(im, np.ones(im.shape)), "mask", TypeError),
    (lambda im: inpaint_ksvd(im, np.ones((3, 3), bool)), "mask", ValueError),
    (lambda im: inpaint_ksvd(im, im > 9, n_iter=-1), "n_iter", ValueError),
    (lambda im: inpaint_ksvd(im, im > 9, refine_rms=(1.0, 5.0)), "refine_rms", ValueError),
    (lambda im: inpaint_ksvd(im, im > 9, refine_rms=(10.0, 0.0)), "refine_rms", ValueError),
    (lambda im: denoise_ksvd(im, 0.0, dictionary="nope"), "dictionary", ValueError),
    (lambda im: denoise_ksvd(im, 0.0, step=0), "step", ValueError),
    (lambda im: denoise_ksvd(im, 10, lam=-1.0), "lam", ValueError),
    (lambda im: inpaint_ksvd(im, im > 9, refine_rms=3.0), "refine_rms", TypeError),
    (lambda im: inpaint_ksvd(im, im > 9, dictionary="adaptive"), "dictionary", ValueError),
])
def test_bad_input_names_the_argument(crop, call, name, exc):
    with pytest.raises(exc, match=f"`{name}`"):
        call(crop)
