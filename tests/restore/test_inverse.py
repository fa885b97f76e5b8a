"""Deblurring and super-resolution: FFT data steps against dense solves, operator adjoints,
MATLAB-compatible bicubic, argument checks, short PnP runs and Zeyde's SR."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import convolve

from sparseforge.datasets import load_image
from sparseforge.restore import (bicubic_kernel, check_kernel, check_scale, deblur, imresize,
                                 rgb_to_y, upscale, zeyde_upscale)
from sparseforge.restore.operators import (adjoint_blur, adjoint_blur_decimate, blur,
                                           blur_decimate, crop_padding, data_step_deblur,
                                           data_step_sr, pad_for_fft, psf2otf)
from sparseforge.restore.zeyde import _data_path


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((np.asarray(a, float) - b) ** 2))


def dense(op, shape_in):
    """The matrix of the linear map `op` on images of `shape_in`."""
    n = int(np.prod(shape_in))
    cols = []
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1
        cols.append(op(e.reshape(shape_in)).ravel())
    return np.stack(cols, axis=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -------------------------------------------------------------------------- operators


@pytest.mark.parametrize("kshape", [(3, 3), (2, 3), (4, 5)])
def test_blur_is_wrap_convolution(rng, kshape):
    x = rng.random((9, 11)) * 255
    k = check_kernel(rng.random(kshape))
    np.testing.assert_allclose(blur(x, k), convolve(x, k, mode="wrap"), atol=1e-9)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_adjoint_identity(rng, scale):
    k = check_kernel(rng.random((3, 4)))
    shape = (6 * scale if scale > 1 else 6, 7 * scale if scale > 1 else 7)
    x = rng.standard_normal(shape)
    if scale == 1:
        y = rng.standard_normal(shape)
        lhs, rhs = np.vdot(blur(x, k), y), np.vdot(x, adjoint_blur(y, k))
    else:
        y = rng.standard_normal((shape[0] // scale, shape[1] // scale))
        lhs = np.vdot(blur_decimate(x, k, scale), y)
        rhs = np.vdot(x, adjoint_blur_decimate(y, k, scale))
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_deblur_data_step_matches_dense_solve(rng):
    shape = (6, 7)
    k = check_kernel(rng.random((3, 3)))
    y, z, mu = rng.standard_normal(shape), rng.standard_normal(shape), 0.3
    A = dense(lambda x: blur(x, k), shape)
    expected = np.linalg.solve(A.T @ A + mu * np.eye(A.shape[1]), A.T @ y.ravel() + mu * z.ravel())
    otf = psf2otf(k, shape)
    got = data_step_deblur(z, otf, np.conj(otf) * np.fft.fft2(y), mu)
    np.testing.assert_allclose(got.ravel(), expected, atol=1e-10)


@pytest.mark.parametrize("scale,shape", [(2, (6, 8)), (3, (6, 9))])
def test_sr_data_step_matches_dense_solve(rng, scale, shape):
    k = check_kernel(rng.random((3, 4)))
    y = rng.standard_normal((shape[0] // scale, shape[1] // scale))
    z, mu = rng.standard_normal(shape), 0.05
    A = dense(lambda x: blur_decimate(x, k, scale), shape)
    expected = np.linalg.solve(A.T @ A + mu * np.eye(A.shape[1]), A.T @ y.ravel() + mu * z.ravel())
    otf = psf2otf(k, shape)
    up = np.zeros(shape)
    up[::scale, ::scale] = y
    got = data_step_sr(z, otf, np.conj(otf) * np.fft.fft2(up), mu, scale)
    np.testing.assert_allclose(got.ravel(), expected, atol=1e-9)


def test_pad_for_fft_is_periodic_smooth_and_cropped_back(rng):
    x = rng.random((20, 30)) * 255
    p = pad_for_fft(x, (5, 6), multiple=4)
    assert p.shape[0] % 4 == 0 and p.shape[1] % 4 == 0
    np.testing.assert_array_equal(crop_padding(p, (5, 6), x.shape), x)
    # no jump across the wrap-around: first and last rows/columns are equal
    np.testing.assert_allclose(p[0], p[-1], atol=1e-9)
    np.testing.assert_allclose(p[:, 0], p[:, -1], atol=1e-9)


# -------------------------------------------------------------------------- bicubic


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
def test_imresize_interior_matches_pillow_bicubic(rng, scale):
    """Pillow's float bicubic is the same kernel (a = -0.5, widened by 1/scale when
    down-scaling) and pixel-centre convention; only its border rule differs (MATLAB mirrors),
    so the interiors agree."""
    from PIL import Image

    x = (rng.random((72, 60)) * 255).astype(np.float32)
    out = imresize(x, scale)
    assert out.shape == (round(72 * scale), round(60 * scale))
    ref = np.asarray(Image.fromarray(x, "F").resize(out.shape[::-1], Image.BICUBIC))
    m = int(3 * max(scale, 1))
    np.testing.assert_allclose(out[m:-m, m:-m], ref[m:-m, m:-m], atol=1e-3)


def test_imresize_edges_and_constants():
    np.testing.assert_allclose(imresize(np.full((7, 9), 42.0), 1 / 3), 42.0)
    np.testing.assert_allclose(imresize(np.full((5, 4, 3), 7.0), 2), 7.0)
    # the anti-aliased down-scaling of an alternating pattern is nearly flat (no aliasing)
    stripes = np.tile([0.0, 255.0], (16, 8))
    assert np.ptp(imresize(stripes, 0.5)[2:-2, 2:-2]) < 1e-9
    assert imresize(np.zeros((4, 6)), output_shape=(8, 3)).shape == (8, 3)


def test_bicubic_kernel_is_matlab_downscaling(rng):
    for s in (2, 3, 4):
        x = rng.random((12 * s, 10 * s)) * 255
        a, b = blur_decimate(x, bicubic_kernel(s), s), imresize(x, 1 / s)
        np.testing.assert_allclose(a[3:-3, 3:-3], b[3:-3, 3:-3], atol=1e-9)


def test_rgb_to_y():
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16)
    assert rgb_to_y(np.full((1, 1, 3), 255.0))[0, 0] == pytest.approx(235, abs=1e-9)


# -------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kernel,exc,words", [
    (np.array([[0.5, -0.1], [0.3, 0.3]]), ValueError, "negative"),
    (np.zeros((3, 3)), ValueError, "all zero"),
    (np.ones(5), ValueError, "2-D"),
    (np.ones((3, 3, 1)), ValueError, "2-D"),
    (np.ones((40, 3)), ValueError, "larger than"),
    (np.array([["a"]]), TypeError, "numeric"),
])
def test_kernel_errors(kernel, exc, words):
    with pytest.raises(exc, match="`kernel`") as info:
        check_kernel(kernel, (32, 32))
    assert words in str(info.value)
    with pytest.raises(exc, match="`kernel`"):
        deblur(np.zeros((32, 32)), kernel, 1.0, prior="ksvd")


def test_kernel_normalised():
    k = check_kernel(np.ones((3, 3), dtype=np.uint8))
    assert k.sum() == pytest.approx(1) and k.dtype == np.float64


@pytest.mark.parametrize("scale,exc", [(1, ValueError), (5, ValueError), (2.5, ValueError),
                                       (True, TypeError), ("2", TypeError), (None, TypeError)])
def test_scale_errors(scale, exc):
    with pytest.raises(exc, match="`scale`"):
        check_scale(scale)
    with pytest.raises(exc, match="`scale`"):
        upscale(np.zeros((8, 8)), scale, method="bicubic")


def test_scale_accepts_integral_values():
    assert check_scale(3.0) == 3 and check_scale(np.int64(4)) == 4


def test_other_argument_errors():
    img = np.zeros((16, 16))
    k = np.ones((3, 3))
    with pytest.raises(ValueError, match="`prior`"):
        deblur(img, k, 1.0, prior="bm3d")
    with pytest.raises(ValueError, match="`sigma`"):
        deblur(img, k, -1.0, prior="ksvd")
    with pytest.raises(ValueError, match="`boundary`"):
        deblur(img, k, 1.0, prior="ksvd", boundary="zero")
    with pytest.raises(ValueError, match="`method`"):
        upscale(img, 2, method="lanczos")
    with pytest.raises(ValueError, match="`n_iter`"):
        deblur(img, k, 1.0, prior="ksvd", n_iter=0)


def test_cnn_prior_without_weights_names_them():
    from sparseforge.restore._registry import available_pretrained
    from sparseforge.restore.pnp import CNN_WEIGHTS

    if set(CNN_WEIGHTS) & set(available_pretrained()):
        pytest.skip("pure-torch blind CNN weights are shipped")
    pytest.importorskip("torch")
    with pytest.raises(FileNotFoundError, match="dncnn-matched-blind"):
        deblur(np.zeros((16, 16)), np.ones((3, 3)), 1.0, prior="cnn")


# -------------------------------------------------------------------------- PnP


@pytest.fixture(scope="module")
def camera_crop():
    return load_image("camera")[96:224, 160:288].astype(np.float64)  # 128x128


def test_pnp_deblur_raises_psnr(camera_crop):
    x = camera_crop
    k = np.zeros((9, 9))
    k[4, :] = 1  # horizontal motion blur
    k = check_kernel(k)
    y = convolve(x, k, mode="wrap") + np.random.default_rng(1).normal(0, 2.55, x.shape)
    calls = []

    def prior(img, s):  # the K-SVD prior at half the resolution of the schedule
        calls.append(s)
        from sparseforge.restore import denoise_ksvd
        return denoise_ksvd(img, s, step=2)

    out = deblur(y, k, 2.55, prior=prior, n_iter=6, boundary="wrap")
    assert len(calls) == 6 and calls[0] == pytest.approx(49) and calls[-1] == pytest.approx(2.55)
    assert np.all(np.diff(calls) < 0)
    assert psnr(x, y) < 22.5
    assert psnr(x, np.clip(out, 0, 255)) > psnr(x, y) + 4


def test_pnp_deblur_taper_on_non_circular_blur(camera_crop):
    """A real (non-circular) blur: the tapered boundary beats wrap-around near the edges."""
    x = camera_crop
    k = check_kernel(np.outer(np.hanning(9), np.hanning(9)))
    y = convolve(x, k, mode="reflect") + np.random.default_rng(2).normal(0, 1.0, x.shape)

    def prior(img, s):
        from sparseforge.restore import denoise_ksvd
        return denoise_ksvd(img, s, step=2)

    taper = deblur(y, k, 1.0, prior=prior, n_iter=5, boundary="taper")
    wrap = deblur(y, k, 1.0, prior=prior, n_iter=5, boundary="wrap")
    assert taper.shape == x.shape
    assert psnr(x, np.clip(taper, 0, 255)) > psnr(x, np.clip(wrap, 0, 255)) + 1
    assert psnr(x, np.clip(taper, 0, 255)) > psnr(x, y) + 1


def test_pnp_upscale_raises_psnr_over_bicubic(camera_crop):
    hr = camera_crop[:, :96]
    lr = np.round(imresize(hr, 0.5))

    def prior(img, s):
        from sparseforge.restore import denoise_ksvd
        return denoise_ksvd(img, s, step=2)

    out = upscale(lr, 2, method="pnp", prior=prior, n_iter=4, init="bicubic")
    assert out.shape == hr.shape
    c = (slice(2, -2), slice(2, -2))
    assert psnr(hr[c], np.clip(out, 0, 255)[c]) > psnr(hr[c], imresize(lr, 2)[c]) + 0.3


# -------------------------------------------------------------------------- Zeyde


@pytest.mark.skipif(not _data_path(2).is_file(), reason="zeyde-x2.npz not shipped")
def test_zeyde_beats_bicubic(camera_crop):
    hr = camera_crop
    lr = np.clip(np.round(imresize(hr, 0.5)), 0, 255)
    c = (slice(2, -2), slice(2, -2))
    z = zeyde_upscale(lr, 2)
    assert z.shape == hr.shape
    gain = psnr(hr[c], np.clip(z, 0, 255)[c]) - psnr(hr[c], imresize(lr, 2)[c])
    assert gain > 0.5
    np.testing.assert_array_equal(upscale(lr, 2), z)  # the default method


def test_shipped_zeyde_files_are_small():
    sizes = [_data_path(s).stat().st_size for s in (2, 3, 4) if _data_path(s).is_file()]
    assert sum(sizes) < 1_000_000


# -------------------------------------------------------------------------- edge cases


def _identity(x, s):
    return x


def test_noise_free_schedule_ends_at_the_data_floor(rng):
    """sigma = 0 is treated as DPIR's 0.255 for both the schedule and the data weight: a
    schedule ending lower would weigh the data less at the last steps, so a noise-free image
    restored worse than with a tiny positive sigma (it did: -0.2 to -2.8 dB)."""
    from sparseforge.restore.pnp import noise_schedule

    for a, b in zip(noise_schedule(0.0, 6), noise_schedule(0.255, 6)):
        np.testing.assert_array_equal(a, b)
    assert noise_schedule(0.0, 6)[0][-1] == pytest.approx(0.255)
    y = blur(rng.uniform(0, 255, (16, 16)), np.ones((3, 3)) / 9)
    np.testing.assert_array_equal(deblur(y, np.ones((3, 3)), 0.0, prior=_identity, n_iter=3),
                                  deblur(y, np.ones((3, 3)), 0.255, prior=_identity, n_iter=3))


@pytest.mark.parametrize("kwargs,words", [
    ({"lam": 0.0}, "`lam`"), ({"lam": -1.0}, "`lam`"), ({"lam": float("nan")}, "`lam`"),
    ({"sigma_max": float("nan")}, "`sigma_max`"), ({"sigma_max": -1.0}, "`sigma_max`"),
])
def test_schedule_settings_are_checked(kwargs, words):
    img = np.zeros((16, 16))
    with pytest.raises(ValueError, match=words):
        deblur(img, np.ones((3, 3)), 1.0, prior=_identity, **kwargs)
    with pytest.raises(ValueError, match=words):
        upscale(img, 2, method="pnp", prior=_identity, init="bicubic", **kwargs)


def test_sigma_must_be_finite():
    with pytest.raises(ValueError, match="`sigma` must be finite"):
        deblur(np.zeros((16, 16)), np.ones((3, 3)), float("inf"), prior=_identity)
    with pytest.raises(TypeError, match="`sigma` must be a finite real number"):
        deblur(np.zeros((16, 16)), np.ones((3, 3)), "2", prior=_identity)


def test_kernel_of_huge_values_is_normalised():
    """The sum of two 1e308 entries overflows: the kernel is scaled by its maximum first."""
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(check_kernel([[1e308, 1e308]]), [[0.5, 0.5]])


def test_upscale_kernel_is_checked_against_the_result():
    """A user's kernel larger than the up-scaled image is refused with either boundary (the
    padded image of "taper" used to hide it); an image too small for the default kernel
    says so instead of blaming a kernel the caller never gave."""
    lr = np.zeros((4, 4))
    for boundary in ("taper", "wrap"):
        with pytest.raises(ValueError, match="`kernel` is 31x31, larger than the 8x8 image"):
            upscale(lr, 2, method="pnp", prior=_identity, kernel=np.ones((31, 31)),
                    init="bicubic", boundary=boundary)
    with pytest.raises(ValueError, match=r"`image` is 1x1: too small for scale 2 \(the "
                                         r"\d+x\d+ bicubic kernel"):
        upscale(np.ones((1, 1)), 2, method="pnp", prior=_identity, boundary="wrap",
                init="bicubic")


def test_tiny_images_name_the_image():
    with pytest.raises(ValueError, match=r"`image` is 2x3: too small for prior 'ksvd', which "
                                         r"denoises 8x8 patches"):
        deblur(np.zeros((2, 3)), np.ones((1, 1)), 1.0, prior="ksvd", boundary="wrap")
    # a callable prior sets its own limits
    assert deblur(np.ones((2, 3)), np.ones((1, 1)), 1.0, prior=_identity, n_iter=2,
                  boundary="wrap").shape == (2, 3)


def test_non_pnp_methods_refuse_pnp_settings():
    lr = np.zeros((8, 8))
    for method in ("bicubic", "zeyde"):
        for kwargs, name in (({"kernel": np.ones((3, 3))}, "kernel"),
                             ({"prior": _identity}, "prior"), ({"sigma": 5.0}, "sigma")):
            with pytest.raises(ValueError, match=f"`{name}` applies to the plug-and-play"):
                upscale(lr, 2, method=method, **kwargs)
        with pytest.raises(ValueError, match="`sigma`"):
            upscale(lr, 2, method=method, sigma=-5.0)
        with pytest.raises(ValueError, match="`n_iter`"):
            upscale(lr, 2, method=method, n_iter=0)


def test_learned_prior_options(tmp_path):
    """prior_options of the learned priors: a shipped name or a weights file, nothing else
    (an unknown option is an error, not ignored)."""
    torch = pytest.importorskip("torch")
    from sparseforge.restore import HybridRestorer, save_model
    from sparseforge.restore.pnp import get_prior

    with pytest.raises(ValueError, match=r"prior='hybrid' takes prior_options=\{'weights'"):
        get_prior("hybrid", step=2)
    torch.manual_seed(0)
    path = save_model(HybridRestorer(sigma_range=(0, 55), depth=2, width=8, channels=2,
                                     n_jobs=1), tmp_path / "blind.pt")
    denoise = get_prior("hybrid", weights=str(path))
    assert denoise(np.full((16, 16), 100.0), 10.0).shape == (16, 16)


def test_torch_tensors_in_and_out(rng):
    """A tensor comes back as a tensor (device and dtype kept) with the numpy path's values;
    an integer tensor is refused as an integer array is."""
    torch = pytest.importorskip("torch")
    y = blur(rng.uniform(0, 255, (16, 16)), np.ones((3, 3)) / 9)
    want = deblur(y, np.ones((3, 3)), 1.0, prior=_identity, n_iter=2)
    got = deblur(torch.from_numpy(y).float(), np.ones((3, 3)), 1.0, prior=_identity, n_iter=2)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-3)
    up = upscale(torch.from_numpy(y), 2, method="bicubic")
    assert isinstance(up, torch.Tensor) and up.dtype == torch.float64 and up.shape == (32, 32)
    np.testing.assert_array_equal(up.numpy(), upscale(y, 2, method="bicubic"))
    for image in (np.round(y).astype(np.uint8), torch.from_numpy(np.round(y)).to(torch.uint8)):
        with pytest.raises(TypeError, match="`image` has dtype uint8"):
            upscale(image, 2, method="bicubic")


def test_host_only_restorers_say_what_to_pass():
    torch = pytest.importorskip("torch")
    from sparseforge.restore import denoise_ksvd

    with pytest.raises(TypeError, match=r"`image` is a torch tensor on the CPU; "
                                        r"sparseforge.restore's image functions work on numpy "
                                        r"arrays \(`image.numpy\(\)`"):
        denoise_ksvd(torch.zeros(16, 16), 5.0)


def test_zeyde_model_with_a_zero_atom_loads_and_upscales(tmp_path, camera_crop):
    """An LR atom that float16 storage rounds to zero stays zero on loading (not NaN): OMP
    never picks it and the model still beats bicubic."""
    from sparseforge.restore.zeyde import ZeydeModel, load_zeyde

    model = load_zeyde(2)
    dict_lo = model.dict_lo.copy()
    dict_lo[0] = 1e-9  # underflows in float16
    path = ZeydeModel(2, model.projection, dict_lo, model.dict_hi).save(tmp_path / "z.npz")
    loaded = ZeydeModel.load(path)
    assert np.isfinite(loaded.dict_lo).all() and not loaded.dict_lo[0].any()
    lr = np.clip(np.round(imresize(camera_crop, 0.5)), 0, 255)
    c = (slice(2, -2), slice(2, -2))
    out = loaded.upscale(lr)
    assert psnr(camera_crop[c], np.clip(out, 0, 255)[c]) > psnr(camera_crop[c],
                                                                   imresize(lr, 2)[c]) + 0.5


@pytest.mark.parametrize("scale, n_iter, calls", [(2, None, 8), (3, None, 8), (4, None, 16),
                                                   (4, 3, 3)])
def test_upscale_runs_sr_iterations_by_default(scale, n_iter, calls):
    """The plug-and-play upscale calls its prior sr_iterations(scale) times unless n_iter
    says otherwise."""
    from sparseforge.restore import sr_iterations

    seen = []

    def prior(x, sigma):
        seen.append(sigma)
        return x

    lr = np.random.default_rng(scale).uniform(0, 255, (12, 12))
    upscale(lr, scale, method="pnp", prior=prior, init="bicubic", n_iter=n_iter)
    assert len(seen) == calls == (n_iter or sr_iterations(scale))
    assert seen == sorted(seen, reverse=True) and seen[-1] == pytest.approx(scale)
