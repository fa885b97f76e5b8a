"""Plug-and-play deblurring and super-resolution by half-quadratic splitting (IRCNN/DPIR).

For ``y = A x + n`` (A: circular blur, or blur then decimation), HQS alternates

    x_k = argmin_x ||y - A x||^2 + mu_k ||x - z_{k-1}||^2     (closed form, FFT)
    z_k = denoise(x_k, sigma_k)                                 (the prior)

with ``sigma_k`` falling geometrically from `sigma_max` (49) to the noise level (at least
`sigma_min`) and ``mu_k = lam * sigma^2 / sigma_k^2`` (lam = 0.23, DPIR's values). Any
denoiser is a prior: ``"ksvd"`` (:func:`~sparseforge.restore.denoise_ksvd`), ``"hybrid"``
(the shipped blind hybrid restorer, ``load_pretrained("hybrid-blind")``), ``"cnn"`` (a
pure-torch blind DnCNN, when its weights are available) or a callable
``f(image, sigma) -> image``. Images are 2-D float arrays on the 0-255 scale.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .classical import check_noise_level
from .operators import (check_kernel, check_scale, crop_padding, data_step_deblur,
                        data_step_sr, imresize, pad_for_fft, psf2otf)

__all__ = ["bicubic_kernel", "deblur", "get_prior", "noise_schedule", "upscale"]

PRIORS = ("hybrid", "ksvd", "cnn")
UPSCALE_METHODS = ("bicubic", "zeyde", "cnn", "pnp-hybrid", "pnp-ksvd", "pnp-cnn", "pnp")
#: The pure-torch super-resolution CNN ``method="cnn"`` loads by default (package data).
SR_CNN_WEIGHTS = "dncnn-matched-upscale"
BOUNDARIES = ("taper", "wrap")
#: Names of pure-torch blind CNN weights the "cnn" prior looks for (package data): the
#: blind hybrid's network without codes at its parameter count (``plain-blind``), then the
#: earlier DnCNN baselines.
CNN_WEIGHTS = ("plain-blind", "dncnn-matched-blind", "dncnn-blind")


def _check_image(image: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(`image` as a float64 host array, a function returning a result as the caller gave the
    image): a torch tensor, on the CPU or a GPU, is read on the host (the solvers run there)
    and the result goes back as a tensor of its device and dtype (float32 or float64, as the
    arrays the checks accept)."""
    from .._arrays import is_torch_tensor
    from .._validation import host_float_array

    def same(out: np.ndarray) -> Any:
        return out

    back = same
    if is_torch_tensor(image):
        import torch

        device, dtype = image.device, image.dtype

        def back(out: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=device, dtype=dtype)

        image = image.detach().cpu().numpy()
    host = host_float_array(image, "image", ndim=2, user="deblur and upscale")
    return np.ascontiguousarray(host, dtype=np.float64), back


def _check_working_size(shape: tuple[int, int], image_shape: tuple[int, ...], prior: Any,
                        what: str) -> None:
    """The named priors denoise 8x8 patches: the image the iterations work on (`shape`: the
    image padded for `boundary="taper"`, or up-scaled) must hold one."""
    if not callable(prior) and (shape[0] < 8 or shape[1] < 8):
        raise ValueError(f"`image` is {image_shape[0]}x{image_shape[1]}: too small for "
                         f"prior {prior!r}, which denoises 8x8 patches ({what} is "
                         f"{shape[0]}x{shape[1]})")


def _check_n_iter(n_iter: Any) -> int:
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
        raise ValueError(f"`n_iter` must be a positive integer, got {n_iter!r}")
    return int(n_iter)


def noise_schedule(sigma: float, n_iter: int, *, sigma_max: float = 49.0,
                   sigma_min: float = 0.0, lam: float = 0.23) -> tuple[np.ndarray, np.ndarray]:
    """(denoiser sigmas, data weights mu) of the HQS iterations: sigmas geometric from
    `sigma_max` down to ``max(sigma, sigma_min, 0.255)``; ``mu_k = lam * max(sigma, 0.255)^2
    / sigma_k^2`` (0.255: DPIR's floor for noise-free data, for both: a schedule ending
    below it would weigh the data ever less at the last steps, and `sigma` = 0 would restore
    worse than a tiny positive `sigma`).

    Examples
    --------
    >>> from sparseforge.restore.pnp import noise_schedule
    >>> sigmas, mus = noise_schedule(2.55, 4)
    >>> [round(float(s), 2) for s in sigmas], round(float(mus[-1]), 2)
    ([49.0, 18.29, 6.83, 2.55], 0.23)
    >>> sigmas, _ = noise_schedule(0, 4)                 # noise-free: ends at the floor
    >>> round(float(sigmas[-1]), 3)
    0.255
    """
    sigma = check_noise_level(sigma)
    sigma_min = check_noise_level(sigma_min, "sigma_min")
    sigma_max = check_noise_level(sigma_max, "sigma_max")
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not (0 < lam < np.inf):
        raise ValueError(f"`lam` must be a finite positive number, got {lam!r}")
    n_iter = _check_n_iter(n_iter)
    last = max(sigma, sigma_min, 0.255)
    first = max(sigma_max, last)
    sigmas = np.geomspace(first, last, n_iter) if n_iter > 1 else np.array([last])
    mus = lam * max(sigma, 0.255) ** 2 / sigmas ** 2
    return sigmas, mus


def sr_iterations(scale: int) -> int:
    """The plug-and-play iterations :func:`upscale` runs by default at `scale`: 16 at x4, 8 at
    x2 and x3. Chosen on six held-out BSD68 images (`bench_inverse.py --datasets BSD68
    --max-images 6`, 8 against 16): at x4 16 iterations served both learned priors (the
    hybrid +0.05 dB, the pure-torch CNN +0.01), at x2 and x3 the CNN prior lost with them
    (-0.52 / -0.01 dB) while the hybrid gained +0.03, so 8 stays there.

    Examples
    --------
    >>> from sparseforge.restore import sr_iterations
    >>> sr_iterations(2), sr_iterations(3), sr_iterations(4)
    (8, 8, 16)
    """
    return 16 if check_scale(scale) == 4 else 8


def get_prior(prior: Any, *, threads: int | None = None, **options: Any) -> Callable:
    """The denoiser ``f(image, sigma) -> image`` for a prior name or callable.

    ``"ksvd"``: :func:`denoise_ksvd` with `options` (default: the universal dictionary,
    ``step=1``); ``"hybrid"``: the shipped blind hybrid (sigma clipped to its [0, 55]);
    ``"cnn"``: a pure-torch blind CNN from the package data (:data:`CNN_WEIGHTS`), else
    FileNotFoundError naming the missing weights. For the learned priors,
    ``options["weights"]`` is a shipped name or a weights file (``save_model``), the only
    option they take.
    """
    if callable(prior):
        return prior
    if prior not in PRIORS:
        raise ValueError(f"`prior` must be one of {PRIORS} or a callable(image, sigma), got "
                         f"{prior!r}")
    if prior == "ksvd":
        from .classical import denoise_ksvd

        opts = {"dictionary": "universal", "step": 1, **options}

        def ksvd_prior(x, s):
            return denoise_ksvd(x, float(s), n_jobs=threads, **opts)
        return ksvd_prior
    weights = options.pop("weights", None)
    if options:
        raise ValueError(f"prior={prior!r} takes prior_options={{'weights': name or path}} "
                         f"only, got {sorted(options)}")
    from ._registry import PRETRAINED, available_pretrained
    from .pretrained import load_model, load_pretrained

    if prior == "hybrid":
        if weights is None or (isinstance(weights, str) and weights in PRETRAINED):
            return _model_prior(load_pretrained(weights or "hybrid-blind"), threads)
        return _model_prior(load_model(weights), threads)
    # "cnn"
    if weights is None:
        known = [n for n in CNN_WEIGHTS if n in PRETRAINED and n in available_pretrained()]
        if not known:
            raise FileNotFoundError(
                "prior='cnn' needs a pure-torch blind CNN (trained for sigma in [0, 55]): "
                f"none of the weights {list(CNN_WEIGHTS)} is shipped in this build of "
                "sparseforge (sparseforge/data/<name>.pt; only "
                f"{sorted(available_pretrained())} are). Train one with `sparseforge train "
                "--model plain --blind --unshuffle 2 --depth 15 --width 56 --crop 50 "
                "--seconds 10800 --out cnn.pt` (or sparseforge.restore.train) and "
                "pass prior_options={'weights': 'cnn.pt'}, or give prior=callable(image, "
                "sigma)")
        model = load_pretrained(known[0])
    elif isinstance(weights, str) and weights in PRETRAINED:
        model = load_pretrained(weights)
    else:
        model = load_model(weights)
    return _model_prior(model, threads)


def _model_prior(model: Any, threads: int | None) -> Callable:
    from .hybrid import restore_image

    lo, hi = model.sigma_range
    if lo == hi:
        raise ValueError(f"the model serves only sigma = {lo:g}; a PnP prior must be blind "
                         "(the noise level changes at every iteration)")

    def learned_prior(x, s):
        return restore_image(model, np.asarray(x, dtype=np.float32),
                             sigma=float(np.clip(s, lo, hi)), threads=threads
                             ).astype(np.float64)
    return learned_prior


def _hqs(z0, y_fft_term, otf, prior, sigmas, mus, step, verbose):
    x = z0
    it = zip(sigmas, mus)
    if verbose:
        from tqdm.auto import tqdm
        it = tqdm(list(it), desc="HQS", unit="iter")
    for s, mu in it:
        x = step(x, y_fft_term, mu)
        x = prior(x, s)
    return x


def deblur(image: Any, kernel: Any, sigma: float, *, prior: Any = "hybrid", n_iter: int = 8,
           boundary: str = "taper", sigma_max: float = 49.0, lam: float = 0.23,
           prior_options: dict | None = None, threads: int | None = None,
           verbose: bool = False) -> np.ndarray:
    """Non-blind deblurring by plug-and-play HQS.

    Parameters
    ----------
    image : ndarray or torch.Tensor (H, W)
        Blurred, noisy image, 0-255 scale. A tensor (CPU or CUDA) is restored on the host and
        returned as a tensor of its device and dtype.
    kernel : ndarray (kh, kw)
        Blur kernel (normalised to sum 1 here); non-negative, not all zero, at most the
        image's size. The model is ``y = kernel (*) x + noise``, centred at ``(kh//2, kw//2)``.
    sigma : float
        Noise standard deviation, 0-255 scale.
    prior : {"hybrid", "ksvd", "cnn"} or callable(image, sigma) -> image
    n_iter : int
        HQS iterations (the denoiser is called `n_iter` times).
    boundary : {"taper", "wrap"}
        "taper" (real photographs): the image is extended by reflection by the kernel's size
        and tapered (:func:`~sparseforge.restore.operators.pad_for_fft`), restored, and
        cropped. "wrap": the blur is circular (synthetic benchmarks' protocol).
    sigma_max, lam
        The schedule (:func:`noise_schedule`).
    prior_options : dict, optional
        Keyword arguments of the prior (e.g. ``{"step": 2}`` for "ksvd", ``{"weights":
        path}`` for "cnn").
    threads : int, optional
        Threads for the prior.
    verbose : bool
        A progress bar over the iterations.

    Returns
    -------
    restored : ndarray (H, W) float64 (a tensor for a tensor `image`), not clipped

    Examples
    --------
    A crop of the camera image blurred by a 7x7 Gaussian (not circularly: a photograph's
    blur), with noise of sigma 2.55 (1%):

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from scipy.ndimage import convolve
    >>> from sparseforge.restore import deblur
    >>> clean = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> t = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    >>> kernel = np.outer(t, t)                       # normalised by deblur
    >>> rng = np.random.default_rng(0)
    >>> blurred = (convolve(clean, kernel / kernel.sum(), mode="reflect")
    ...            + 2.55 * rng.standard_normal(clean.shape))
    >>> def psnr(x):
    ...     return round(float(10 * np.log10(255 ** 2 / np.mean((x - clean) ** 2))), 1)
    >>> with_ksvd = deblur(blurred, kernel, sigma=2.55, prior="ksvd", n_iter=4)
    >>> with_hybrid = deblur(blurred, kernel, sigma=2.55, n_iter=4)   # the default prior
    >>> with_hybrid.shape, with_hybrid.dtype
    ((64, 64), dtype('float64'))
    >>> psnr(blurred), psnr(with_ksvd), psnr(with_hybrid)            # dB
    (28.1, 30.3, 30.8)
    """
    y, back = _check_image(image)
    k = check_kernel(kernel, y.shape)
    sigmas, mus = noise_schedule(sigma, n_iter, sigma_max=sigma_max, lam=lam)
    if boundary not in BOUNDARIES:
        raise ValueError(f"`boundary` must be one of {BOUNDARIES}, got {boundary!r}")
    pad = (k.shape[0], k.shape[1]) if boundary == "taper" else (0, 0)
    yp = pad_for_fft(y, pad) if boundary == "taper" else y
    _check_working_size(yp.shape, y.shape, prior, "the padded image")
    denoise = get_prior(prior, threads=threads, **(prior_options or {}))
    otf = psf2otf(k, yp.shape)
    kty = np.conj(otf) * np.fft.fft2(yp)
    x = _hqs(yp, kty, otf, denoise, sigmas, mus,
             lambda z, t, mu: data_step_deblur(z, otf, t, mu), verbose)
    return back(crop_padding(x, pad, y.shape) if boundary == "taper" else x)


def _cnn_upscale(lr: np.ndarray, scale: int, options: dict, threads: int | None) -> np.ndarray:
    """``method="cnn"`` of :func:`upscale`: the upscaling DnCNN on the bicubic interpolation."""
    from .hybrid import restore_image
    from .pretrained import load_model, load_pretrained

    weights = options.pop("weights", None)
    if options:
        raise ValueError(f"method='cnn' takes prior_options={{'weights': path}} only, got "
                         f"{sorted(options)}")
    model = load_pretrained(SR_CNN_WEIGHTS) if weights is None else load_model(weights)
    if getattr(model, "task", None) != "upscale":
        raise ValueError(f"method='cnn' needs a model trained with task='upscale'; "
                         f"{weights or SR_CNN_WEIGHTS} restores {model.task!r}")
    return restore_image(model, imresize(lr, scale), threads=threads).astype(np.float64)


def bicubic_kernel(scale: int) -> np.ndarray:
    """The blur kernel k for which ``blur_decimate(x, k, scale)`` is MATLAB's anti-aliased
    ``imresize(x, 1/scale, "bicubic")`` away from the borders (separable, sum 1,
    (4s + 3) x (4s + 3), centred at index 2s + 1).

    It is the default `kernel` of the plug-and-play methods of :func:`upscale`: their data
    step then models the bicubic down-scaling that made the low-resolution image.

    Parameters
    ----------
    scale : int
        2, 3 or 4.

    Returns
    -------
    kernel : ndarray of float64, shape (4 * scale + 3, 4 * scale + 3)

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import bicubic_kernel, imresize
    >>> from sparseforge.restore.operators import blur_decimate
    >>> k = bicubic_kernel(2)
    >>> k.shape, round(float(k.sum()), 12), bool(np.allclose(k, k.T))
    ((11, 11), 1.0, True)
    >>> x = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> a, b = blur_decimate(x, k, 2), imresize(x, 1 / 2)
    >>> a.shape, bool(np.allclose(a[3:-3, 3:-3], b[3:-3, 3:-3]))   # equal inside
    ((32, 32), True)
    """
    s = check_scale(scale)
    size = 4 * s + 3
    c = size // 2
    # LR pixel j is centred on HR coordinate j*s + (s-1)/2; its weight on HR pixel m is
    # cubic((m - centre)/s)/s, and k[t] multiplies x[j*s + c - t].
    d = (c - np.arange(size)) - (s - 1) / 2.0
    ax = np.abs(d / s)
    w = ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
         + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))
    w /= w.sum()
    return np.outer(w, w)


def upscale(image: Any, scale: int, *, method: str = "zeyde", prior: Any = None,
            sigma: float = 0.0, n_iter: int | None = None, kernel: Any = None,
            init: str = "zeyde",
            boundary: str = "taper", sigma_max: float = 49.0, lam: float = 0.23,
            prior_options: dict | None = None, threads: int | None = None,
            verbose: bool = False) -> np.ndarray:
    """Single-image super-resolution of a 2-D image (0-255 scale) by `scale` (2, 3 or 4).

    Methods: ``"bicubic"`` (MATLAB-compatible); ``"zeyde"`` (sparse coding, Zeyde et al.
    2010, shipped dictionaries); ``"cnn"``: the pure-torch super-resolution CNN (a
    :class:`DnCNN` with ``task="upscale"`` applied to the bicubic interpolation; weights from
    ``prior_options={"weights": path}`` or the package's ``dncnn-matched-upscale``);
    ``"pnp-hybrid"`` / ``"pnp-ksvd"`` / ``"pnp-cnn"``:
    plug-and-play HQS with that prior on the model ``y = (k (*) x)[::s, ::s] + noise``, where
    `kernel` defaults to :func:`bicubic_kernel` (the bicubic down-scaling of the
    benchmarks), the data step is the closed form of Zhao et al. (2016), and the iterations
    start from `init` ("zeyde" or "bicubic"); ``"pnp"`` with ``prior=callable``.

    `sigma` is the LR image's noise level (0 for clean bicubic down-scaling; the schedule
    then ends at `scale`, as DPIR's). Returns float64 (H*scale, W*scale), not clipped.

    Parameters
    ----------
    image : ndarray or torch.Tensor (H, W)
        Low-resolution image, 0-255 scale (at least 3x3 for "zeyde"). A tensor is handled
        as in :func:`deblur` (a tensor comes back).
    scale : int
        2, 3 or 4.
    method : {"zeyde", "bicubic", "cnn", "pnp-hybrid", "pnp-ksvd", "pnp-cnn", "pnp"}
        See above; "zeyde" by default.
    prior : callable(image, sigma) -> image, optional
        The denoiser of ``method="pnp"`` (only there).
    sigma : float
        Noise level of `image`, 0-255 scale (plug-and-play methods; the others refuse a
        non-zero `sigma`, and a `kernel` or `prior`, rather than ignore them).
    n_iter : int, optional
        HQS iterations (plug-and-play methods); default :func:`sr_iterations` (`scale`): 16 at
        x4, 8 at x2 and x3.
    kernel : ndarray (kh, kw), optional
        The blur before decimation; default :func:`bicubic_kernel` (`scale`).
    init : {"zeyde", "bicubic"}
        Starting point of the plug-and-play iterations.
    boundary : {"taper", "wrap"}
        As in :func:`deblur`.
    sigma_max, lam
        The schedule (:func:`noise_schedule`).
    prior_options : dict, optional
        Keyword arguments of the prior (as in :func:`deblur`); for ``method="cnn"``,
        ``{"weights": path}``.
    threads : int, optional
        Threads for the sparse coding and the prior.
    verbose : bool
        A progress bar over the iterations.

    Returns
    -------
    upscaled : ndarray (H * scale, W * scale) float64 (a tensor for a tensor `image`), not
        clipped

    Examples
    --------
    Down-scale a crop of the camera image by 2 as the benchmarks do (MATLAB bicubic,
    rounded to 8 bits), then bring it back:

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import imresize, upscale
    >>> hr = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> lr = np.clip(np.round(imresize(hr, 1 / 2)), 0, 255)
    >>> def psnr(x):
    ...     return round(float(10 * np.log10(255 ** 2 / np.mean((x - hr) ** 2))), 1)
    >>> bicubic = upscale(lr, 2, method="bicubic")
    >>> zeyde = upscale(lr, 2)                          # method="zeyde"
    >>> zeyde.shape, zeyde.dtype
    ((64, 64), dtype('float64'))
    >>> psnr(bicubic), psnr(zeyde)                      # dB
    (31.1, 32.0)
    >>> psnr(upscale(lr, 2, method="pnp-ksvd", n_iter=4)) > psnr(zeyde)
    True
    """
    lr, back = _check_image(image)
    s = check_scale(scale)
    if method not in UPSCALE_METHODS:
        raise ValueError(f"`method` must be one of {UPSCALE_METHODS}, got {method!r}")
    if n_iter is None:
        n_iter = sr_iterations(s)
    sigmas, mus = noise_schedule(sigma, n_iter, sigma_max=sigma_max, sigma_min=float(s),
                                 lam=lam)
    if method in ("bicubic", "zeyde", "cnn"):
        # They take a clean bicubic down-scaling: settings of the plug-and-play model would
        # be ignored, so they are refused rather than dropped.
        ignored = [name for name, value in (("kernel", kernel), ("prior", prior))
                   if value is not None] + (["sigma"] if sigma else [])
        if ignored:
            raise ValueError(f"`{ignored[0]}` applies to the plug-and-play methods, not to "
                             f"method={method!r} (which assumes a clean bicubic "
                             "down-scaling)")
    if method == "bicubic":
        return back(imresize(lr, s))
    if method == "zeyde":
        from .zeyde import zeyde_upscale

        return back(zeyde_upscale(lr, s, n_jobs=threads))
    if method == "cnn":
        return back(_cnn_upscale(lr, s, dict(prior_options or {}), threads))
    if boundary not in BOUNDARIES:
        raise ValueError(f"`boundary` must be one of {BOUNDARIES}, got {boundary!r}")
    if init not in ("zeyde", "bicubic"):
        raise ValueError(f"`init` must be 'zeyde' or 'bicubic', got {init!r}")
    if method == "pnp":
        if prior is None:
            raise ValueError("method='pnp' needs `prior` (a name or a callable)")
    else:
        if prior is not None:
            raise ValueError(f"`prior` is set by method={method!r}; use method='pnp' to "
                             "give one")
        prior = method[len("pnp-"):]
    out_shape = (lr.shape[0] * s, lr.shape[1] * s)
    if kernel is not None:
        k = check_kernel(kernel, out_shape)  # against the result, as deblur's (not padded)
    else:
        k = bicubic_kernel(s)
        if k.shape[0] > out_shape[0] or k.shape[1] > out_shape[1]:
            raise ValueError(f"`image` is {lr.shape[0]}x{lr.shape[1]}: too small for scale "
                             f"{s} (the {k.shape[0]}x{k.shape[1]} bicubic kernel exceeds the "
                             f"{out_shape[0]}x{out_shape[1]} result)")
    pad_lr = (max(4, -(-k.shape[0] // s)), max(4, -(-k.shape[1] // s))) \
        if boundary == "taper" else (0, 0)
    yp = pad_for_fft(lr, pad_lr) if boundary == "taper" else lr
    hr_shape = (yp.shape[0] * s, yp.shape[1] * s)
    _check_working_size(hr_shape, lr.shape, prior, "the up-scaled, padded image")
    denoise = get_prior(prior, threads=threads, **(prior_options or {}))
    otf = psf2otf(k, hr_shape)
    up = np.zeros(hr_shape)
    up[::s, ::s] = yp
    sty = np.conj(otf) * np.fft.fft2(up)
    if init == "zeyde":
        from .zeyde import zeyde_upscale

        x0 = zeyde_upscale(yp, s, n_jobs=threads)
    else:
        x0 = imresize(yp, s)
    x = _hqs(x0, sty, otf, denoise, sigmas, mus,
             lambda z, t, mu: data_step_sr(z, otf, t, mu, s), verbose)
    if boundary == "taper":
        x = crop_padding(x, (pad_lr[0] * s, pad_lr[1] * s), out_shape)
    return back(x)
